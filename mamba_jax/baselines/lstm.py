"""Stacked LSTM classifier, the recurrent baseline of the study.

Axes (``mamba_jax.notation``): b, l, m (the embedding width, embed_dim), u, c.

    tokens (b, l) -> Embed (b, l, m) -> Dropout
                  -> [LSTM (b, l, u) -> Dropout] * n_layers
                  -> masked pooling ("mean" | "last") -> Dense -> logits (b, c)

The LSTM reads left to right and is told each row's length, so its state stops
at the last real token; with right padding, padded positions can therefore not
change any real token's output, and pooling never reads a padded position.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import chex
import jax
import jax.numpy as jnp
from flax import linen as nn

from mamba_jax import initializers as inits
from mamba_jax.classifier_fields import check_classifier_fields
from mamba_jax.pooling import pool

Array = jax.Array


@dataclasses.dataclass(frozen=True)
class LSTMConfig:
  """Stacked unidirectional LSTM classifier hyper-parameters."""

  vocab_size: int  # Token ids are in [0, vocab_size); id 0 is padding.
  num_classes: int = 2  # Output logits.
  embed_dim: int = 64  # m: token embedding width (the d_model of the other models).
  hidden_size: int = 128  # u: units per LSTM layer.
  n_layers: int = 2  # Stacked LSTM layers.
  dropout: float = 0.2  # On the embeddings and after every LSTM layer.
  pooling: str = "mean"  # "mean" over real tokens, or the "last" real token.
  dtype: Any = jnp.float32  # Activation dtype; parameters stay float32.

  def __post_init__(self):
    check_classifier_fields(
        self, ("vocab_size", "num_classes", "embed_dim", "hidden_size", "n_layers"))


class LSTMClassifier(nn.Module):
  """``apply(variables, tokens, mask, train=False) -> logits (b, c)`` float32."""

  config: LSTMConfig

  def setup(self):
    cfg = self.config
    self.embed = nn.Embed(
        cfg.vocab_size, cfg.embed_dim, embedding_init=inits.embedding,
        dtype=cfg.dtype, param_dtype=jnp.float32,
    )
    self.layers = [
        nn.RNN(
            nn.OptimizedLSTMCell(cfg.hidden_size, dtype=cfg.dtype, param_dtype=jnp.float32),
            name=f"lstm_{i}",
        )
        for i in range(cfg.n_layers)
    ]
    self.dropout = nn.Dropout(rate=cfg.dropout)
    self.head = nn.Dense(cfg.num_classes, dtype=jnp.float32, param_dtype=jnp.float32)

  def encode(self, tokens: Array, mask: Array, train: bool = False) -> Array:
    """Per-token features (b, l, u) float32 of the last LSTM layer.

    Args:
      tokens: (b, l) int ids, right-padded.
      mask: (b, l) 0/1, 1 on real tokens.
      train: enables dropout (needs the "dropout" rng).
    """
    chex.assert_rank([tokens, mask], [2, 2])
    chex.assert_equal_shape([tokens, mask])
    lengths = jnp.sum(mask.astype(jnp.int32), axis=1)
    x = self.embed(tokens) * mask[..., None].astype(self.config.dtype)
    x = self.dropout(x, deterministic=not train)
    for layer in self.layers:
      x = layer(x, seq_lengths=lengths)
      x = self.dropout(x, deterministic=not train)
    return x.astype(jnp.float32)

  def __call__(self, tokens: Array, mask: Array, train: bool = False) -> Array:
    features = self.encode(tokens, mask, train=train)
    return self.head(pool(features, mask, self.config.pooling))
