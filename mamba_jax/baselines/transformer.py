"""Transformer encoder classifier, the attention baseline of the study.

Axes (``mamba_jax.notation``): b, l, m, h, p, f, c (here p = m / h).

    tokens (b, l) -> Embed (+ a position table) -> Dropout
                  -> [x + Dropout(Attention(LayerNorm(x)))
                      x + Dropout(FeedForward(LayerNorm(x)))] * n_layers -> LayerNorm
                  -> masked pooling ("mean" | "last") -> Dropout -> Dense -> logits (b, c)

Pre-norm like the Mamba classifier, with the residual stream kept in float32.
Padded keys are masked out of every attention, so right padding changes no
real token's features; pooling never reads a padded position.

Positions (``TransformerConfig.positions``): a table added to the embeddings
("sinusoidal", "learned"), or rotary position embeddings ("rope"; Su et al. 2021,
RoFormer, arXiv:2104.09864): no table; every layer rotates each head's queries and
keys by angles proportional to their positions (:func:`rotary_embedding`), so a
query-key score depends on the two positions only through their difference.

Attention (``TransformerConfig.attention_block``): 0 computes each layer's (b, h, l, l) score matrix
at once (``nn.dot_product_attention``); > 0 computes the same exact softmax attention for blocks of
that many queries in turn and recomputes each block's scores in the backward pass
(:func:`exact_attention`: the memory schedule of flash attention, Dao et al. 2022, in plain JAX),
so a layer holds (b, h, block, l) scores instead of (b, h, l, l): at length 2,048, batch 32, the
LRA Transformer's training step fits in a few GiB instead of ~28.

The self-attention of a layer is ``EncoderLayer.self_attention``; the Performer
baseline (:mod:`mamba_jax.baselines.performer`) replaces only that method.
"""

from __future__ import annotations

import dataclasses
import functools
from typing import Any, Optional

import chex
import jax
import jax.numpy as jnp
import numpy as np
from flax import linen as nn

from mamba_jax import initializers as inits
from mamba_jax.classifier_fields import check_classifier_fields
from mamba_jax.pooling import pool

Array = jax.Array

POSITIONS = ("sinusoidal", "learned", "rope")


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
  # "sinusoidal" (any length), "learned" (up to max_length) or "rope" (rotary, any length; p even).
  positions: str = "sinusoidal"
  max_length: int = 512  # Longest sequence "learned" positions can encode.
  rope_theta: float = 10000.0  # "rope" only: the base of the rotation frequencies theta^(-2i/p).
  # Queries per attention block (0: the whole (l, l) score matrix at once); see the module docstring.
  attention_block: int = 0
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
    if self.positions == "rope" and (self.d_model // self.num_heads) % 2:
      raise ValueError(f"positions='rope' rotates pairs of channels: the head width d_model / num_heads "
                       f"= {self.d_model // self.num_heads} must be even")
    if self.positions == "rope" and not self.rope_theta > 1.0:
      raise ValueError(f"rope_theta must be > 1, got {self.rope_theta}")
    if not isinstance(self.attention_block, int) or self.attention_block < 0:
      raise ValueError(f"attention_block must be an integer >= 0 (0: dense attention), got {self.attention_block!r}")


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


def rotary_embedding(x: Array, theta: float = 10000.0) -> Array:
  """Rotary position embedding of x (b, l, h, p) at positions 0..l-1, in float32 -> x.dtype.

  Channel pairs (i, i + p/2) of the token at position t are rotated by the angle
  t * theta^(-2i/p) (the "rotate half" layout of GPT-NeoX and LLaMA). For every pair of
  positions (s, t), ``<R_s q, R_t k> = <q, R_(t-s) k>``: scores depend on t - s only.
  """
  length, width = x.shape[1], x.shape[-1]
  half = width // 2
  frequency = theta ** (-np.arange(half, dtype=np.float64) * 2.0 / width)  # (p/2,)
  angle = np.arange(length, dtype=np.float64)[:, None] * frequency[None]  # (l, p/2)
  cos = jnp.asarray(np.cos(angle), jnp.float32)[None, :, None, :]  # (1, l, 1, p/2)
  sin = jnp.asarray(np.sin(angle), jnp.float32)[None, :, None, :]
  x1, x2 = x[..., :half].astype(jnp.float32), x[..., half:].astype(jnp.float32)
  return jnp.concatenate([x1 * cos - x2 * sin, x2 * cos + x1 * sin], axis=-1).astype(x.dtype)


def exact_attention(query: Array, key: Array, value: Array, mask: Optional[Array] = None,
                    dropout_rng: Optional[Array] = None, dropout_rate: float = 0.0, broadcast_dropout: bool = True,
                    deterministic: bool = False, dtype: Any = None, precision: Any = None, *,
                    rope_theta: Optional[float] = None, block_size: int = 0) -> Array:
  """``nn.dot_product_attention``, after :func:`rotary_embedding` of the queries and keys (``rope_theta``
  given), for ``block_size`` queries at a time (> 0), each block recomputed in the backward pass.

  query, key, value (b, l, h, p) -> (b, l, h, p); the ``attention_fn`` of
  ``nn.MultiHeadDotProductAttention`` (its arguments). With ``block_size`` 0, or at most ``block_size``
  queries, this is ``nn.dot_product_attention`` itself. In blocks, the result is the same (scores in
  ``dtype``, softmax in float32, masked keys at the dtype's minimum) without its (b, h, l, l) matrix:
  ``jax.lax.map`` runs the query blocks in turn and ``jax.checkpoint`` keeps only each block's inputs
  for the backward pass. ``mask``: broadcastable to (b, h, l, l) (a key mask (b, 1, 1, l) here).
  Dropout on the attention weights draws each block's mask from ``fold_in(dropout_rng, block)``
  (``broadcast_dropout``: one (block, l) mask shared by the batch and heads, as flax's), so it is the
  same distribution as the dense function's, not the same draw.
  """
  if rope_theta is not None:
    query, key = rotary_embedding(query, rope_theta), rotary_embedding(key, rope_theta)
  dtype = query.dtype if dtype is None else dtype
  b, length, h, p = query.shape
  if not block_size or length <= block_size:
    return nn.dot_product_attention(query, key, value, mask=mask, dropout_rng=dropout_rng,
                                    dropout_rate=dropout_rate, broadcast_dropout=broadcast_dropout,
                                    deterministic=deterministic, dtype=dtype, precision=precision)
  num_blocks = -(-length // block_size)
  pad = num_blocks * block_size - length
  query = query / jnp.sqrt(p).astype(dtype)
  blocks = jnp.pad(query, ((0, 0), (0, pad), (0, 0), (0, 0))).reshape(b, num_blocks, block_size, h, p)
  if mask is not None:
    mask = jnp.broadcast_to(mask, mask.shape[:-2] + (mask.shape[-2], key.shape[1]))
  per_query_mask = mask is not None and mask.shape[-2] != 1
  if per_query_mask:
    mask = jnp.pad(mask, ((0, 0),) * (mask.ndim - 2) + ((0, pad), (0, 0)))
  use_dropout = not deterministic and dropout_rate > 0.0

  @jax.checkpoint
  def attend(q_block: Array, index: Array) -> Array:
    scores = jnp.einsum("bqhd,bkhd->bhqk", q_block, key, precision=precision).astype(dtype)
    if mask is not None:
      block_mask = (jax.lax.dynamic_slice_in_dim(mask, index * block_size, block_size, axis=mask.ndim - 2)
                    if per_query_mask else mask)
      scores = jnp.where(block_mask, scores, jnp.finfo(dtype).min)
    weights = jax.nn.softmax(scores.astype(jnp.float32)).astype(dtype)
    if use_dropout:
      keep_prob = 1.0 - dropout_rate
      shape = (1, 1) + weights.shape[-2:] if broadcast_dropout else weights.shape
      keep = jax.random.bernoulli(jax.random.fold_in(dropout_rng, index), keep_prob, shape)
      weights = weights * (keep.astype(dtype) / jnp.asarray(keep_prob, dtype))
    return jnp.einsum("bhqk,bkhd->bqhd", weights, value, precision=precision)

  out = jax.lax.map(lambda args: attend(*args), (jnp.moveaxis(blocks, 1, 0), jnp.arange(num_blocks)))
  return jnp.moveaxis(out, 0, 1).reshape(b, num_blocks * block_size, h, p)[:, :length]


class EncoderLayer(nn.Module):
  """One pre-norm encoder layer: self-attention then feed-forward, both residual.

  ``index``: the layer's place in the stack (the Performer seeds its random features with it).
  """

  config: TransformerConfig
  index: int = 0

  def self_attention(self, y: Array, key_mask: Array, train: bool) -> Array:
    """Multi-head softmax attention of y (b, l, m) over its real keys -> (b, l, m), submodule "attention"."""
    cfg = self.config
    attention_fn = functools.partial(exact_attention, block_size=cfg.attention_block,
                                     rope_theta=cfg.rope_theta if cfg.positions == "rope" else None)
    return nn.MultiHeadDotProductAttention(
        num_heads=cfg.num_heads,
        qkv_features=cfg.d_model,
        out_features=cfg.d_model,
        dropout_rate=cfg.dropout,
        dtype=cfg.dtype,
        param_dtype=jnp.float32,
        attention_fn=attention_fn,
        name="attention",
    )(y, y, mask=key_mask, deterministic=not train)

  @nn.compact
  def __call__(self, x: Array, key_mask: Array, train: bool = False) -> Array:
    """x (b, l, m) float32, key_mask (b, 1, 1, l) bool -> x' (b, l, m) float32."""
    cfg = self.config
    layer_norm = lambda name: nn.LayerNorm(
        epsilon=cfg.norm_epsilon, dtype=cfg.dtype, param_dtype=jnp.float32, name=name)
    y = layer_norm("attention_norm")(x)
    y = self.self_attention(y, key_mask, train)
    x = x + nn.Dropout(rate=cfg.dropout)(y, deterministic=not train).astype(jnp.float32)
    y = layer_norm("feed_forward_norm")(x)
    y = nn.Dense(cfg.d_ff, dtype=cfg.dtype, param_dtype=jnp.float32, name="ff_in")(y)
    y = nn.gelu(y)
    y = nn.Dropout(rate=cfg.dropout)(y, deterministic=not train)
    y = nn.Dense(cfg.d_model, dtype=cfg.dtype, param_dtype=jnp.float32, name="ff_out")(y)
    return x + nn.Dropout(rate=cfg.dropout)(y, deterministic=not train).astype(jnp.float32)


class TransformerClassifier(nn.Module):
  """``apply(variables, tokens, mask, train=False) -> logits (b, c)`` float32.

  ``layer_class``: the encoder layer (a subclass may change its self-attention).
  """

  config: TransformerConfig
  layer_class = EncoderLayer  # Not a dataclass field: a class attribute subclasses override.

  def setup(self):
    cfg = self.config
    self.embed = nn.Embed(
        cfg.vocab_size, cfg.d_model, embedding_init=inits.embedding,
        dtype=jnp.float32, param_dtype=jnp.float32,
    )
    if cfg.positions == "learned":
      self.position_embedding = self.param(
          "position_embedding", inits.embedding, (cfg.max_length, cfg.d_model))
    self.layers = [self.layer_class(cfg, index=i, name=f"layers_{i}") for i in range(cfg.n_layers)]
    self.norm_f = nn.LayerNorm(epsilon=cfg.norm_epsilon, dtype=jnp.float32,
                               param_dtype=jnp.float32)
    self.dropout = nn.Dropout(rate=cfg.dropout)
    self.head = nn.Dense(cfg.num_classes, dtype=jnp.float32, param_dtype=jnp.float32)

  def _positions(self, length: int) -> Array:
    """(l, m) float32 position encodings added to the embeddings ("sinusoidal" or "learned")."""
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
    x = self.embed(tokens)
    if self.config.positions != "rope":  # RoPE rotates queries and keys in every layer instead.
      x = x + self._positions(tokens.shape[1])[None]
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
