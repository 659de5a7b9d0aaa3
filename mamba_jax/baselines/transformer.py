"""Transformer encoder classifier, the attention baseline of the study.

Axes (``mamba_jax.notation``): b, l, m, h, f, c.

    tokens (b, l) -> Embed + positions -> Dropout
                  -> [x + Dropout(Attention(LayerNorm(x)))
                      x + Dropout(FeedForward(LayerNorm(x)))] * n_layers -> LayerNorm
                  -> masked pooling ("mean" | "last") -> Dropout -> Dense -> logits (b, c)

Pre-norm like the Mamba classifier, with the residual stream kept in float32.
Padded keys are masked out of every attention, so right padding changes no
real token's features; pooling never reads a padded position.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import chex
import jax
import jax.numpy as jnp
import numpy as np
from flax import linen as nn

from mamba_jax import initializers as inits
from mamba_jax.classifier_fields import check_classifier_fields
from mamba_jax.pooling import pool

Array = jax.Array

POSITIONS = ("sinusoidal", "learned")


@dataclasses.dataclass(frozen=True)
class TransformerConfig:
  """Transformer encoder classifier hyper-parameters."""

  vocab_size: int  # Token ids are in [0, vocab_size); id 0 is padding.
  num_classes: int = 2  # Output logits.
  d_model: int = 64  # m: residual stream width.
  n_layers: int = 2  # Encoder layers.
  num_heads: int = 4  # h: attention heads; d_model must be divisible by it.
  d_ff: int = 128  # f: hidden width of the feed-forward block.
  dropout: float = 0.1  # Embeddings, attention weights, residual branches, pooled features.
  positions: str = "sinusoidal"  # "sinusoidal" (any length) or "learned" (up to max_length).
  max_length: int = 512  # Longest sequence "learned" positions can encode.
  pooling: str = "mean"  # "mean" over real tokens, or the "last" real token.
  norm_epsilon: float = 1e-5  # LayerNorm epsilon.
  dtype: Any = jnp.float32  # Activation dtype; parameters and the residual stream stay float32.

  def __post_init__(self):
    check_classifier_fields(
        self, ("vocab_size", "num_classes", "d_model", "n_layers", "num_heads", "d_ff", "max_length"))
    if self.positions not in POSITIONS:
      raise ValueError(f"positions must be one of {POSITIONS}, got {self.positions!r}")
    if self.d_model % self.num_heads:
      raise ValueError(
          f"d_model ({self.d_model}) must be divisible by num_heads ({self.num_heads})")


def sinusoidal_positions(length: int, width: int) -> np.ndarray:
  """Fixed positional encodings of Vaswani et al. (2017): (length, width) float32.

  Channel 2i is sin(p / 10000^(2i/width)), channel 2i+1 the matching cos.
  """
  position = np.arange(length, dtype=np.float64)[:, None]
  frequency = np.exp(-np.log(10000.0) * np.arange(0, width, 2, dtype=np.float64) / width)
  table = np.zeros((length, width), np.float64)
  table[:, 0::2] = np.sin(position * frequency)
  table[:, 1::2] = np.cos(position * frequency[: width // 2])
  return table.astype(np.float32)


class EncoderLayer(nn.Module):
  """One pre-norm encoder layer: self-attention then feed-forward, both residual."""

  config: TransformerConfig

  @nn.compact
  def __call__(self, x: Array, key_mask: Array, train: bool = False) -> Array:
    """x (b, l, m) float32, key_mask (b, 1, 1, l) bool -> x' (b, l, m) float32."""
    cfg = self.config
    layer_norm = lambda name: nn.LayerNorm(
        epsilon=cfg.norm_epsilon, dtype=cfg.dtype, param_dtype=jnp.float32, name=name)
    y = layer_norm("attention_norm")(x)
    y = nn.MultiHeadDotProductAttention(
        num_heads=cfg.num_heads,
        qkv_features=cfg.d_model,
        out_features=cfg.d_model,
        dropout_rate=cfg.dropout,
        dtype=cfg.dtype,
        param_dtype=jnp.float32,
        name="attention",
    )(y, y, mask=key_mask, deterministic=not train)
    x = x + nn.Dropout(rate=cfg.dropout)(y, deterministic=not train).astype(jnp.float32)
    y = layer_norm("feed_forward_norm")(x)
    y = nn.Dense(cfg.d_ff, dtype=cfg.dtype, param_dtype=jnp.float32, name="ff_in")(y)
    y = nn.gelu(y)
    y = nn.Dropout(rate=cfg.dropout)(y, deterministic=not train)
    y = nn.Dense(cfg.d_model, dtype=cfg.dtype, param_dtype=jnp.float32, name="ff_out")(y)
    return x + nn.Dropout(rate=cfg.dropout)(y, deterministic=not train).astype(jnp.float32)


class TransformerClassifier(nn.Module):
  """``apply(variables, tokens, mask, train=False) -> logits (b, c)`` float32."""

  config: TransformerConfig

  def setup(self):
    cfg = self.config
    self.embed = nn.Embed(
        cfg.vocab_size, cfg.d_model, embedding_init=inits.embedding,
        dtype=jnp.float32, param_dtype=jnp.float32,
    )
    if cfg.positions == "learned":
      self.position_embedding = self.param(
          "position_embedding", inits.embedding, (cfg.max_length, cfg.d_model))
    self.layers = [EncoderLayer(cfg, name=f"layers_{i}") for i in range(cfg.n_layers)]
    self.norm_f = nn.LayerNorm(epsilon=cfg.norm_epsilon, dtype=jnp.float32,
                               param_dtype=jnp.float32)
    self.dropout = nn.Dropout(rate=cfg.dropout)
    self.head = nn.Dense(cfg.num_classes, dtype=jnp.float32, param_dtype=jnp.float32)

  def _positions(self, length: int) -> Array:
    """(l, m) float32 position encodings."""
    cfg = self.config
    if cfg.positions == "sinusoidal":
      return jnp.asarray(sinusoidal_positions(length, cfg.d_model))
    if length > cfg.max_length:
      raise ValueError(
          f"Sequence length {length} exceeds max_length={cfg.max_length} of the learned "
          "positions; raise TransformerConfig.max_length or use positions='sinusoidal'.")
    return self.position_embedding[:length]

  def encode(self, tokens: Array, mask: Array, train: bool = False) -> Array:
    """Per-token features (b, l, m) float32 after the final LayerNorm.

    Args:
      tokens: (b, l) int ids, right-padded.
      mask: (b, l) 0/1, 1 on real tokens.
      train: enables dropout (needs the "dropout" rng).
    """
    chex.assert_rank([tokens, mask], [2, 2])
    chex.assert_equal_shape([tokens, mask])
    x = self.embed(tokens) + self._positions(tokens.shape[1])[None]
    x = self.dropout(x, deterministic=not train)
    # (b, 1, 1, l): every query (and head) may attend to the real keys only.
    key_mask = mask.astype(bool)[:, None, None, :]
    for layer in self.layers:
      x = layer(x, key_mask, train=train)
    return self.norm_f(x)

  def __call__(self, tokens: Array, mask: Array, train: bool = False) -> Array:
    features = self.encode(tokens, mask, train=train)
    pooled = pool(features, mask, self.config.pooling)
    return self.head(self.dropout(pooled, deterministic=not train))
