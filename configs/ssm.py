"""Non-selective (linear time-invariant, S4D-real style) SSM baseline on Sentiment140.

  python -m train.main --config=configs/ssm.py --workdir=workdirs/ssm

The Mamba block of configs/sent140.py with delta, B and C learned parameters
instead of functions of the input (MambaConfig select_delta=False,
select_bc=False); everything else, including the conv and the gate, unchanged.
It is also the "no selection" point of the Mamba ablations.
"""

import ml_collections

from configs import sent140


def get_config() -> ml_collections.ConfigDict:
  """The reference Mamba config with selection switched off."""
  config = sent140.get_config()
  config.model.select_delta = False  # delta = softplus(learned (d,) bias), the same at every token.
  config.model.select_bc = False  # B and C = learned (n,) vectors, the same at every token.
  return config
