"""Pre-norm residual block: x + Dropout(Mixer(RMSNorm(x))), optionally bidirectional.

Axes (``mamba_jax.notation``): b, l, m. The residual stream is kept in
float32 whatever the activation dtype (``residual_in_fp32`` of the reference).

Bidirectional (``MambaConfig.bidirectional``): with h = RMSNorm(x),

    out = Mixer(h) + R(Mixer_backward(R(h)))

where R reverses each row's real tokens in place (:func:`reverse_real_tokens`; right
padding stays on the right, so the backward mixer sees a right-padded sequence and is
padding-invariant exactly like the forward one) and Mixer_backward is a second mixer
(:func:`mixer_class`: Mamba-1 or Mamba-2) with its own parameters. Summing the two directions after the
shared pre-norm is the "add" strategy of Caduceus' BiMamba (Schiff et al. 2024,
arXiv:2403.03234; there in_proj/out_proj may be tied, here nothing is) and the sum of
Vision Mamba's forward and backward branches (Zhu et al. 2024, arXiv:2401.09417). It
doubles the mixer parameters; a block without it has exactly the unidirectional layout.
"""

from __future__ import annotations

from typing import Optional, Tuple, Type, Union

import jax
import jax.numpy as jnp
from flax import linen as nn

from mamba_jax.config import MambaConfig
from mamba_jax.mamba2_mixer import Mamba2Mixer
from mamba_jax.mixer import LayerCache, MambaMixer

Array = jax.Array

NO_RECURRENCE = ("a bidirectional model has no recurrent state: its backward direction needs the "
                 "whole sequence (use the parallel forward)")


def mixer_class(config: MambaConfig) -> Union[Type[MambaMixer], Type[Mamba2Mixer]]:
  """The mixer ``config.mixer`` names: :class:`MambaMixer` (Mamba-1) or :class:`Mamba2Mixer` (Mamba-2).

  Both take (b, l, m) inputs and a (b, l) mask, return (b, l, m) and a :class:`LayerCache`, and
  have ``step`` and ``zero_cache``: everything above the mixer is the same for either.
  """
  return Mamba2Mixer if config.mixer == "mamba2" else MambaMixer


def reverse_real_tokens(x: Array, mask: Array) -> Array:
  """Reverses the real tokens of each right-padded row; padded positions stay where they are.

  Args:
    x: (b, l, ...) any features.
    mask: (b, l) 0/1 with right padding (real tokens first).

  Returns:
    (b, l, ...): row i holds x[i, len_i - 1 - t] at t < len_i and x[i, t] after. Applying it
    twice gives x back.
  """
  length = jnp.sum(mask.astype(jnp.int32), axis=1, keepdims=True)  # (b, 1)
  position = jnp.arange(x.shape[1])[None]  # (1, l)
  source = jnp.where(position < length, length - 1 - position, position)  # (b, l)
  return jax.vmap(lambda row, index: row[index])(x, source)


class ResidualBlock(nn.Module):
  config: MambaConfig

  def setup(self):
    cfg = self.config
    self.norm = nn.RMSNorm(epsilon=cfg.norm_epsilon, dtype=cfg.dtype, param_dtype=jnp.float32)
    mixer = mixer_class(cfg)
    self.mixer = mixer(cfg)
    if cfg.bidirectional:
      self.mixer_backward = mixer(cfg)
    self.dropout = nn.Dropout(rate=cfg.dropout)

  def __call__(
      self, x: Array, mask: Array, train: bool = False, return_cache: bool = False
  ) -> Tuple[Array, Optional[LayerCache]]:
    """x (b, l, m) float32, mask (b, l) -> (x' (b, l, m) float32, cache or None)."""
    if return_cache and self.config.bidirectional:
      raise ValueError(NO_RECURRENCE)
    h = self.norm(x)
    out, cache = self.mixer(h, mask, return_cache=return_cache)
    if self.config.bidirectional:
      backward, _ = self.mixer_backward(reverse_real_tokens(h, mask), mask)
      out = out + reverse_real_tokens(backward, mask)
    out = self.dropout(out, deterministic=not train)
    return x + out.astype(jnp.float32), cache

  def step(self, x_t: Array, cache: LayerCache) -> Tuple[Array, LayerCache]:
    """x_t (b, m) float32 -> (x_t' (b, m) float32, cache); inference (no dropout)."""
    if self.config.bidirectional:
      raise ValueError(NO_RECURRENCE)
    out, cache = self.mixer.step(self.norm(x_t), cache)
    return x_t + out.astype(jnp.float32), cache
