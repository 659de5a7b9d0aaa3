"""Pre-norm residual block: x + Dropout(Mixer(RMSNorm(x))).

Glossary: b batch, l length, m model width. The residual stream is kept in
float32 whatever the activation dtype (``residual_in_fp32`` of the reference).
"""

from __future__ import annotations

from typing import Optional, Tuple

import jax
import jax.numpy as jnp
from flax import linen as nn

from mamba_jax.config import MambaConfig
from mamba_jax.mixer import LayerCache, MambaMixer

Array = jax.Array


class ResidualBlock(nn.Module):
  config: MambaConfig

  def setup(self):
    cfg = self.config
    self.norm = nn.RMSNorm(epsilon=cfg.norm_epsilon, dtype=cfg.dtype, param_dtype=jnp.float32)
    self.mixer = MambaMixer(cfg)
    self.dropout = nn.Dropout(rate=cfg.dropout)

  def __call__(
      self, x: Array, mask: Array, train: bool = False, return_cache: bool = False
  ) -> Tuple[Array, Optional[LayerCache]]:
    """x (b, l, m) float32, mask (b, l) -> (x' (b, l, m) float32, cache or None)."""
    out, cache = self.mixer(self.norm(x), mask, return_cache=return_cache)
    out = self.dropout(out, deterministic=not train)
    return x + out.astype(jnp.float32), cache

  def step(self, x_t: Array, cache: LayerCache) -> Tuple[Array, LayerCache]:
    """x_t (b, m) float32 -> (x_t' (b, m) float32, cache); inference (no dropout)."""
    out, cache = self.mixer.step(self.norm(x_t), cache)
    return x_t + out.astype(jnp.float32), cache
