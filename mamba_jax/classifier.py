"""Mamba sequence classifier: embeddings, residual Mamba blocks, pooling, head.

Axes (``mamba_jax.notation``): b, l, m, c.

    tokens (b, l) -> MambaBackbone (Embed -> [ResidualBlock] * n_layers -> RMSNorm)
                  -> masked pooling ("mean" | "last") -> Dropout -> Dense -> logits (b, c)

With ``config.bidirectional`` each block also runs a backward mixer over the reversed
real tokens (see mamba_jax.block); such a model has no ``prefill``/``step``.

``encode``/``prefill``/``step`` expose the per-token features, so a prompt can be
run in parallel and continued token by token with the same parameters.
"""

from __future__ import annotations

from typing import Optional, Tuple

import jax
import jax.numpy as jnp
from flax import linen as nn

from mamba_jax import initializers as inits
from mamba_jax.backbone import Cache, MambaBackbone, init_cache
from mamba_jax.config import MambaConfig
from mamba_jax.pooling import pool

Array = jax.Array

__all__ = ["Cache", "MambaClassifier", "init_cache"]  # init_cache: importable from here as before.


class MambaClassifier(nn.Module):
  """``apply(variables, tokens, mask, train=False) -> logits (b, c)``."""

  config: MambaConfig

  def setup(self):
    cfg = self.config
    self.backbone = MambaBackbone(cfg)
    nn.share_scope(self, self.backbone)  # Parameters stay embed, layers_N, norm_f, head.
    self.head = nn.Dense(
        cfg.num_classes, kernel_init=inits.torch_linear_kernel(), bias_init=inits.zeros,
        dtype=jnp.float32, param_dtype=jnp.float32,
    )

  def encode(
      self, tokens: Array, mask: Array, train: bool = False, return_cache: bool = False
  ) -> Tuple[Array, Optional[Cache]]:
    """Per-token features (b, l, m) float32 and the cache or None; see ``MambaBackbone``."""
    return self.backbone(tokens, mask, train=train, return_cache=return_cache)

  def classify(self, pooled: Array, train: bool = False) -> Array:
    """Pooled features (b, m) -> logits (b, c) float32."""
    return self.head(self.backbone.dropout(pooled, deterministic=not train))

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
    return self.backbone.step(token, cache)
