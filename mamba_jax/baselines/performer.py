"""Performer encoder classifier: the Transformer baseline with FAVOR+ attention (linear in length).

Axes (``mamba_jax.notation``): b, l, m, h, p, e, c (here p = m / h).

Choromanski et al. 2021, "Rethinking Attention with Performers" (arXiv:2009.14794): softmax
attention ``softmax(q k^T / sqrt(p)) v`` is approximated with positive random features

    phi(x) = exp(w_j . x - |x|^2 / 2) / sqrt(e),  j = 1..e,  x = q / p^(1/4) or k / p^(1/4)

whose inner products are unbiased estimates of ``exp(q . k / sqrt(p))`` (FAVOR+: the rows
w_j are orthogonal Gaussian features). Bidirectional (non-causal) attention then costs
O(l e p) instead of O(l^2 p):

    out_t = phi(q_t) (sum_s phi(k_s) v_s^T) / (phi(q_t) . sum_s phi(k_s))

Padded keys get phi = 0, so right padding changes no real token's output. Each layer's
features are drawn once from ``feature_seed`` and the layer index (not trained, the same at
every step and in every run with that seed; the Performer paper's LRA runs redrew them from
one fixed key, too). There are no attention weights, hence no attention dropout.

Everything else is :class:`mamba_jax.baselines.TransformerClassifier` (embeddings,
positions, pre-norm layers, feed-forward, pooling, head; the same parameters and names:
the projections are ``attention/{query,key,value,out}`` as in softmax attention). With
``positions="rope"`` the queries and keys are rotated before the feature map.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Optional, Sequence

import jax
import jax.numpy as jnp
import numpy as np
from flax import linen as nn

from mamba_jax.baselines.transformer import EncoderLayer, TransformerClassifier, TransformerConfig
from mamba_jax.baselines.transformer import rotary_embedding

Array = jax.Array

FEATURE_STABILIZER = 1e-6  # Added to every feature (as the Performer code does), so no denominator is 0.


@dataclasses.dataclass(frozen=True)
class PerformerConfig(TransformerConfig):
  """:class:`TransformerConfig` plus the random features of FAVOR+."""

  num_features: int = 64  # e: random features per head (the paper's LRA runs: 256).
  feature_seed: int = 0  # Seeds every layer's feature matrix (with the layer index).

  def __post_init__(self):
    super().__post_init__()
    if self.num_features < 1:
      raise ValueError(f"num_features must be >= 1, got {self.num_features}")


def orthogonal_gaussian_features(seed: Sequence[int] | int, num_features: int, width: int) -> np.ndarray:
  """(e, p) float32 random features: orthogonal rows with the norms of Gaussian vectors.

  Rows come in blocks of p mutually orthogonal directions (QR of a Gaussian matrix, sign-fixed
  so the rotation is Haar-uniform), each row scaled by the norm of an independent
  p-dimensional standard Gaussian, so every row is marginally N(0, I_p) (the estimator stays
  unbiased) while the rows of a block are exactly orthogonal (FAVOR+'s variance reduction).
  A pure function of ``seed`` (an int or a sequence of ints, ``np.random.SeedSequence``): a
  constant of the compiled program, drawn with numpy when the model is traced.
  """
  rng = np.random.Generator(np.random.PCG64(np.random.SeedSequence(seed)))
  blocks = -(-num_features // width)
  directions = []
  for _ in range(blocks):
    q, r = np.linalg.qr(rng.standard_normal((width, width)))
    directions.append((q * np.where(np.diagonal(r) < 0, -1.0, 1.0)[None, :]).T)
  directions = np.concatenate(directions, axis=0)[:num_features]
  norms = np.linalg.norm(rng.standard_normal((num_features, width)), axis=1)
  return (directions * norms[:, None]).astype(np.float32)


def positive_features(x: Array, features: Array, is_query: bool, valid: Optional[Array] = None) -> Array:
  """phi(x) of x (b, l, h, p) (already scaled by p^(-1/4)) -> (b, l, h, e) float32, > 0.

  A stabilizing shift is subtracted in the exponent: per token for queries (the max over
  features), per (row, head) for keys (the max over the real keys' features); each cancels
  in the normalized attention. ``valid`` (b, l) bool marks the real keys.
  """
  x = x.astype(jnp.float32)
  projection = jnp.einsum("blhp,ep->blhe", x, features)
  half_norm = 0.5 * jnp.sum(x * x, axis=-1, keepdims=True)
  if is_query:
    shift = jnp.max(projection, axis=-1, keepdims=True)
  else:
    masked = projection if valid is None else jnp.where(valid[:, :, None, None], projection, -jnp.inf)
    shift = jnp.max(masked, axis=(1, 3), keepdims=True)
  shift = jax.lax.stop_gradient(shift)
  return (jnp.exp(projection - half_norm - shift) + FEATURE_STABILIZER) / math.sqrt(features.shape[0])


def favor_attention(query: Array, key: Array, value: Array, features: Array,
                    key_mask: Optional[Array] = None) -> Array:
  """Bidirectional FAVOR+ attention: q, k, v (b, l, h, p), features (e, p) -> (b, l, h, p) float32.

  Approximates ``softmax_attention(query, key, value, key_mask)``; ``key_mask`` (b, l) 0/1
  marks the real keys (None: all real).
  """
  scale = query.shape[-1] ** -0.25
  valid = None if key_mask is None else key_mask.astype(bool)
  phi_q = positive_features(query * scale, features, is_query=True)
  phi_k = positive_features(key * scale, features, is_query=False, valid=valid)
  if valid is not None:
    phi_k = phi_k * valid[:, :, None, None]
  key_values = jnp.einsum("blhe,blhp->bhep", phi_k, value.astype(jnp.float32))
  numerator = jnp.einsum("blhe,bhep->blhp", phi_q, key_values)
  denominator = jnp.einsum("blhe,bhe->blh", phi_q, jnp.sum(phi_k, axis=1))
  return numerator / denominator[..., None]


def softmax_attention(query: Array, key: Array, value: Array, key_mask: Optional[Array] = None) -> Array:
  """Exact ``softmax(q k^T / sqrt(p)) v`` over the real keys: (b, l, h, p) -> (b, l, h, p) float32 (reference)."""
  scores = jnp.einsum("bqhp,bkhp->bhqk", query.astype(jnp.float32), key.astype(jnp.float32))
  scores = scores / math.sqrt(query.shape[-1])
  if key_mask is not None:
    scores = jnp.where(key_mask.astype(bool)[:, None, None, :], scores, -jnp.inf)
  return jnp.einsum("bhqk,bkhp->bqhp", jax.nn.softmax(scores, axis=-1), value.astype(jnp.float32))


class FavorSelfAttention(nn.Module):
  """Multi-head FAVOR+ self-attention: y (b, l, m), key_mask (b, l) -> (b, l, m).

  The projections have the names and shapes of ``nn.MultiHeadDotProductAttention``'s.
  """

  config: PerformerConfig
  index: int = 0  # The layer's index: seeds its features.

  @nn.compact
  def __call__(self, y: Array, key_mask: Array) -> Array:
    cfg = self.config
    width = cfg.d_model // cfg.num_heads
    project = lambda name: nn.DenseGeneral(
        (cfg.num_heads, width), dtype=cfg.dtype, param_dtype=jnp.float32, name=name)
    query, key, value = project("query")(y), project("key")(y), project("value")(y)
    if cfg.positions == "rope":
      query, key = rotary_embedding(query, cfg.rope_theta), rotary_embedding(key, cfg.rope_theta)
    features = jnp.asarray(orthogonal_gaussian_features((cfg.feature_seed, self.index), cfg.num_features, width))
    attended = favor_attention(query, key, value, features, key_mask).astype(cfg.dtype)
    return nn.DenseGeneral(cfg.d_model, axis=(-2, -1), dtype=cfg.dtype, param_dtype=jnp.float32,
                           name="out")(attended)


class PerformerEncoderLayer(EncoderLayer):
  """The Transformer's encoder layer with FAVOR+ self-attention."""

  def self_attention(self, y: Array, key_mask: Array, train: bool) -> Array:
    del train  # No attention weights to drop out.
    mask = key_mask[:, 0, 0, :]  # (b, 1, 1, l) -> (b, l).
    return FavorSelfAttention(self.config, self.index, name="attention")(y, mask)


class PerformerClassifier(TransformerClassifier):
  """``apply(variables, tokens, mask, train=False) -> logits (b, c)`` float32 (see the module docstring)."""

  config: PerformerConfig
  layer_class = PerformerEncoderLayer
