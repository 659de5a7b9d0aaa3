"""In-domain LM pretraining of the Mamba-2 release candidate on every training tweet.

  python -m train.main --config=configs/sent140_mamba2_lm.py --workdir=workdirs/sent140_mamba2_lm
  python -m train.main --config=configs/sent140_mamba2.py --workdir=workdirs/sent140_mamba2_from_lm \
      --config.model.d_model=128 --config.init_from=workdirs/sent140_mamba2_lm

configs/sent140_lm.py (a tied-head ``MambaLM``, sampled-softmax training, full-softmax
evaluation) with the backbone of configs/sent140_mamba2.py at d_model 128 (the width that
won the screening, results/sent140_d128_cpu/), over all 1.57M train-split tweets once
instead of a 500k subsample. Its embedding, blocks and final norm initialize the
classifier of the second command through ``config.init_from`` (config.model must match).
"""

import ml_collections

from configs import sent140_lm
from configs import sent140_mamba2


def get_config() -> ml_collections.ConfigDict:
  """configs/sent140_lm.py with the Mamba-2 mixer at d_model 128, on the whole train split."""
  config = sent140_lm.get_config()
  mamba2_model = sent140_mamba2.get_config().model
  for field in ("mixer", "d_state", "head_dim", "n_groups", "chunk_size"):
    config.model[field] = mamba2_model[field]  # The Mamba-2 mixer of configs/sent140_mamba2.py.
  config.model.d_model = 128  # The screening's width (d_inner 256: 4 heads of 64 channels).
  config.max_train_examples = None  # Every train-split tweet (1.57M), one pass.
  config.eval_every_steps = 1000  # Full-softmax validation is slow: a few per run.
  config.checkpoint_every_steps = 500  # Resume granularity (a stopped run loses at most this much).
  return config
