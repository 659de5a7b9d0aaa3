"""Mamba sequence classifier: embeddings, residual Mamba blocks, pooling, head.

Glossary: b batch, l length, m model width (d_model), c classes.

    tokens (b, l) -> Embed -> [ResidualBlock] * n_layers -> RMSNorm
                  -> masked pooling ("mean" | "last") -> Dropout -> Dense -> logits (b, c)

With ``config.bidirectional`` each block also runs a backward mixer over the reversed
real tokens (see mamba_jax.block); such a model has no ``prefill``/``step``.

``encode``/``prefill``/``step`` expose the per-token features, so a prompt can be
run in parallel and continued token by token with the same parameters.
"""

from __future__ import annotations

from typing import List, Optional, Tuple

import chex
import jax
import jax.numpy as jnp
from flax import linen as nn

from mamba_jax import initializers as inits
from mamba_jax.block import NO_RECURRENCE, ResidualBlock
from mamba_jax.config import MambaConfig
from mamba_jax.mixer import LayerCache, init_layer_cache
from mamba_jax.pooling import pool

Array = jax.Array
Cache = List[LayerCache]


def init_cache(config: MambaConfig, batch_size: int) -> Cache:
  """The model's recurrent state before any token: one LayerCache per layer.

  Raises:
    ValueError: the config is bidirectional (no recurrent inference).
  """
  if config.bidirectional:
    raise ValueError(NO_RECURRENCE)
  return [init_layer_cache(config, batch_size) for _ in range(config.n_layers)]


class MambaClassifier(nn.Module):
  """``apply(variables, tokens, mask, train=False) -> logits (b, c)``."""

  config: MambaConfig

  def setup(self):
    cfg = self.config
    self.embed = nn.Embed(
        cfg.vocab_size, cfg.d_model, embedding_init=inits.embedding,
        dtype=cfg.dtype, param_dtype=jnp.float32,
    )
    self.layers = [ResidualBlock(cfg) for _ in range(cfg.n_layers)]
    self.norm_f = nn.RMSNorm(epsilon=cfg.norm_epsilon, dtype=jnp.float32, param_dtype=jnp.float32)
    self.dropout = nn.Dropout(rate=cfg.dropout)
    self.head = nn.Dense(
        cfg.num_classes, kernel_init=inits.torch_linear_kernel(), bias_init=inits.zeros,
        dtype=jnp.float32, param_dtype=jnp.float32,
    )

  def encode(
      self, tokens: Array, mask: Array, train: bool = False, return_cache: bool = False
  ) -> Tuple[Array, Optional[Cache]]:
    """Per-token features.

    Args:
      tokens: (b, l) int ids, right-padded.
      mask: (b, l) 0/1, 1 on real tokens.
      train: enables dropout (needs the "dropout" rng).
      return_cache: also return the cache after the last real token (prefill).

    Returns:
      (features (b, l, m) float32 after the final norm, cache or None).
    """
    chex.assert_rank([tokens, mask], [2, 2])
    chex.assert_equal_shape([tokens, mask])
    x = self.embed(tokens) * mask[..., None].astype(self.config.dtype)
    x = self.dropout(x, deterministic=not train).astype(jnp.float32)
    caches = []
    for layer in self.layers:
      x, cache = layer(x, mask, train=train, return_cache=return_cache)
      caches.append(cache)
    return self.norm_f(x), (caches if return_cache else None)

  def classify(self, pooled: Array, train: bool = False) -> Array:
    """Pooled features (b, m) -> logits (b, c) float32."""
    return self.head(self.dropout(pooled, deterministic=not train))

  def __call__(self, tokens: Array, mask: Array, train: bool = False) -> Array:
    features, _ = self.encode(tokens, mask, train=train)
    return self.classify(pool(features, mask, self.config.pooling), train=train)

  def prefill(self, tokens: Array, mask: Array) -> Tuple[Array, Cache]:
    """Runs a prompt in parallel: (features (b, l, m), cache after its last real token)."""
    return self.encode(tokens, mask, train=False, return_cache=True)

  def step(self, token: Array, cache: Cache) -> Tuple[Array, Cache]:
    """One token of recurrent inference: token (b,) -> (features (b, m), new cache).

    ``features`` equal ``encode``'s features at that position.
    """
    chex.assert_rank(token, 1)
    x = self.embed(token).astype(jnp.float32)
    new_cache = []
    for layer, layer_cache in zip(self.layers, cache):
      x, layer_cache = layer.step(x, layer_cache)
      new_cache.append(layer_cache)
    return self.norm_f(x), new_cache
