"""The Mamba backbone shared by the classifier and the language model.

Axes (``mamba_jax.notation``): b, l, m, v.

    tokens (b, l) -> Embed (v, m) -> Dropout -> [ResidualBlock] * n_layers -> RMSNorm -> (b, l, m)

:class:`MambaClassifier` and :class:`MambaLM` hold one ``MambaBackbone`` each
and share its scope (``nn.share_scope``), so both keep the parameter names
``embed``, ``layers_N``, ``norm_f`` at the top of their tree: a classifier can be
initialized from an LM's parameters by name.
"""

from __future__ import annotations

from typing import List, Optional, Tuple

import chex
import jax
import jax.numpy as jnp
from flax import linen as nn

from mamba_jax import initializers as inits
from mamba_jax.block import NO_RECURRENCE, ResidualBlock, mixer_class
from mamba_jax.config import MambaConfig
from mamba_jax.mixer import LayerCache

Array = jax.Array
Cache = List[LayerCache]


def init_cache(config: MambaConfig, batch_size: int) -> Cache:
  """The model's recurrent state before any token: one LayerCache per layer.

  Raises:
    ValueError: the config is bidirectional (no recurrent inference).
  """
  if config.bidirectional:
    raise ValueError(NO_RECURRENCE)
  return [mixer_class(config).zero_cache(config, batch_size) for _ in range(config.n_layers)]


class MambaBackbone(nn.Module):
  """Embedding, residual Mamba blocks, final RMSNorm; parallel (``__call__``) and recurrent (``step``)."""

  config: MambaConfig

  def setup(self):
    cfg = self.config
    self.embed = nn.Embed(
        cfg.padded_vocab_size, cfg.d_model, embedding_init=inits.embedding,
        dtype=cfg.dtype, param_dtype=jnp.float32,
    )
    self.layers = [ResidualBlock(cfg) for _ in range(cfg.n_layers)]
    self.norm_f = nn.RMSNorm(epsilon=cfg.norm_epsilon, dtype=jnp.float32, param_dtype=jnp.float32)
    # Also applied by the classifier to its pooled features (one module, one rng stream).
    self.dropout = nn.Dropout(rate=cfg.dropout)

  def __call__(
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

  def step(self, token: Array, cache: Cache) -> Tuple[Array, Cache]:
    """One token of recurrent inference: token (b,) -> (features (b, m), new cache).

    ``features`` equal ``__call__``'s features at that position.
    """
    chex.assert_rank(token, 1)
    x = self.embed(token).astype(jnp.float32)
    new_cache = []
    for layer, layer_cache in zip(self.layers, cache):
      x, layer_cache = layer.step(x, layer_cache)
      new_cache.append(layer_cache)
    return self.norm_f(x), new_cache

  def embedding_table(self) -> Array:
    """The (v, m) float32 embedding matrix (the tied LM head reads it)."""
    return self.embed.embedding
