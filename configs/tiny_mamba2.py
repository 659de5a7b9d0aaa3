"""Tiny Mamba-2 on the synthetic toy task: configs/tiny.py with the Mamba-2 mixer (tests, dry runs).

  python -m train.main --config=configs/tiny_mamba2.py --workdir=/tmp/tiny_mamba2

d_model 16, d_inner 32 in 4 heads of 8 channels, one group of B and C; chunks of 8 tokens, so the
synthetic sequences (max_length 16) run the recurrence between chunks too. The dry run of
scripts/gpu_check.sh trains it in place of configs/sent140_mamba2.py.
"""

import ml_collections

from configs import tiny


def get_config() -> ml_collections.ConfigDict:
  """configs/tiny.py (data, sizes, schedule, checkpoints) with the Mamba-2 mixer."""
  config = tiny.get_config()
  config.model.mixer = "mamba2"  # mamba_jax.MambaConfig.mixer: Mamba-2's SSD instead of the selective scan.
  config.model.head_dim = 8  # p: channels per head; d_inner 32 / 8 = 4 heads.
  config.model.n_groups = 1  # Groups of heads sharing B and C (and the gated norm's statistics).
  config.model.chunk_size = 8  # SSD chunk length: two chunks at max_length 16.
  return config
