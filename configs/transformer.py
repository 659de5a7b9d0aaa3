"""Transformer encoder baseline on Sentiment140 (same data, tokenizer and training as configs/sent140.py).

  python -m train.main --config=configs/transformer.py --workdir=workdirs/transformer

Only the model changes: 2 pre-norm layers, d_model 64, 4 heads, feed-forward 128,
dropout 0.1, sinusoidal positions, padding mask, the same masked mean pooling.
Non-embedding parameters: ~67k (Mamba: ~66k); embeddings are identical (32000 x 64).
"""

import ml_collections

from configs import sent140


def get_config() -> ml_collections.ConfigDict:
  """The reference config with a Transformer encoder in place of Mamba."""
  config = sent140.get_config()
  config.model_type = "transformer"  # mamba_jax.baselines.transformer.TransformerClassifier.
  config.model = ml_collections.ConfigDict()  # Constructor fields of TransformerConfig.
  config.model.d_model = 64  # Residual stream width (as Mamba).
  config.model.n_layers = 2  # Encoder layers (as Mamba).
  config.model.num_heads = 4  # Attention heads (head width 16).
  config.model.d_ff = 128  # Feed-forward hidden width.
  config.model.dropout = 0.1  # Embeddings, attention weights, residual branches, pooled features.
  config.model.positions = "sinusoidal"  # "sinusoidal" (no length limit) or "learned".
  config.model.max_length = 512  # Longest input "learned" positions support (unused by sinusoidal).
  config.model.pooling = "mean"  # Masked mean over real tokens (as Mamba).
  return config
