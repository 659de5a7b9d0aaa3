"""Mamba-2 (SSD) on Sentiment140: configs/sent140.py with the Mamba-2 mixer at the same budget.

  python -m train.main --config=configs/sent140_mamba2.py --workdir=workdirs/sent140_mamba2

Only the mixer changes (mamba_jax.mamba2_mixer): A is one scalar per head, so the selective
SSM runs as matmuls (mamba_jax.scan.ssd) instead of a token-by-token scan. 2 layers, d_model
64, d_inner 128 in 2 heads of 64 channels, state 16 per head channel (as Mamba-1's d_state;
this project's d_state ablation found 1 to 64 equal within seed noise, and a larger state
costs time: each of B and C is as wide as the state), one group of B and C. A chunk of 64
tokens holds every tweet (max_length 64): training never runs the recurrence between chunks.
Parameters: 2.104M, 56k outside the embedding (Mamba-1: 2.114M, 66k).
Everything else (data, tokenizer, optimizer, schedule, buckets) is the reference's.
"""

import ml_collections

from configs import sent140


def get_config() -> ml_collections.ConfigDict:
  """The reference config with the Mamba-2 mixer."""
  config = sent140.get_config()
  config.model.mixer = "mamba2"  # mamba_jax.MambaConfig.mixer: "mamba1" (the reference) | "mamba2".
  config.model.d_state = 16  # n: state size per head channel (as the reference Mamba-1's d_state).
  config.model.head_dim = 64  # p: channels per head; d_inner / head_dim = 2 heads.
  config.model.n_groups = 1  # Groups of heads sharing B and C (and the gated norm's statistics).
  config.model.chunk_size = 64  # SSD chunk length: one chunk per tweet (max_length 64).
  # No select_delta / select_bc ablations for Mamba-2 (MambaConfig refuses them): the fields
  # inherited from the reference keep their True values.
  return config
