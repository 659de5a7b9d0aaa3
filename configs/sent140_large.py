"""Larger Mamba for the best Sentiment140 accuracy (d_model 256, 4 layers).

9.94M parameters: 8.19M in the 32k x 256 embedding, 1.75M in the 4 blocks
and the head (the reference config has 2.11M, 2.05M of them embedding).
One epoch (1.57M tweets, ~3,060 steps of 512) is sized to take a few minutes
on one H100 with bfloat16 activations.
"""

import ml_collections

from configs import sent140


def get_config() -> ml_collections.ConfigDict:
  """The reference config with a wider, deeper model."""
  config = sent140.get_config()
  config.dtype = "bfloat16"  # bfloat16 matmuls; params, residual stream and scan state stay float32.
  config.model.d_model = 256  # 4x the reference width.
  config.model.n_layers = 4  # 2x the reference depth.
  config.model.d_state = 16  # Same state size as the reference.
  config.model.dropout = 0.1  # Less dropout: 1.57M examples are plenty for ~10M params.
  config.learning_rate = 1e-3  # Lower peak LR for the wider model.
  config.num_epochs = 4  # A few more epochs.
  config.warmup_steps = 2000  # Longer warmup with the longer run.
  return config
