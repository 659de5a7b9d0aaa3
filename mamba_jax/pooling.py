"""Masked pooling of per-token features into one vector per sequence.

Axes (``mamba_jax.notation``): b, l, d. Masks are (b, l) of 0/1 with right
padding; pooling never reads a padded position.
"""

from __future__ import annotations

import chex
import jax
import jax.numpy as jnp

Array = jax.Array


def masked_mean(x: Array, mask: Array) -> Array:
  """Mean of x (b, l, d) over the positions where mask (b, l) is 1 -> (b, d)."""
  chex.assert_rank([x, mask], [3, 2])
  chex.assert_equal_shape_prefix([x, mask], 2)
  m = mask.astype(jnp.float32)[..., None]
  total = jnp.sum(x.astype(jnp.float32) * m, axis=1)
  count = jnp.maximum(jnp.sum(m, axis=1), 1.0)
  return (total / count).astype(x.dtype)


def last_real(x: Array, mask: Array) -> Array:
  """Features of the last real token of each (right-padded) row -> (b, d)."""
  chex.assert_rank([x, mask], [3, 2])
  chex.assert_equal_shape_prefix([x, mask], 2)
  last = jnp.maximum(jnp.sum(mask.astype(jnp.int32), axis=1) - 1, 0)
  return jnp.take_along_axis(x, last[:, None, None], axis=1)[:, 0]


def pool(x: Array, mask: Array, pooling: str) -> Array:
  """Dispatches to :func:`masked_mean` ("mean") or :func:`last_real` ("last")."""
  if pooling == "mean":
    return masked_mean(x, mask)
  if pooling == "last":
    return last_real(x, mask)
  raise ValueError(f"Unknown pooling {pooling!r}; expected 'mean' or 'last'.")
