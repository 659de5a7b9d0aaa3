"""The math every scan method shares: the accumulation dtype, discretization, the combine operator.

Axes (``mamba_jax.notation``): b, l, d, n.

A leaf module: it imports no other part of :mod:`mamba_jax.scan`, so the
methods (:mod:`~mamba_jax.scan.associative`, :mod:`~mamba_jax.scan.sequential`,
:mod:`~mamba_jax.scan.pallas`) and the entry point can all import it.
"""

from __future__ import annotations

from typing import Tuple

import chex
import jax
import jax.numpy as jnp

Array = jax.Array


def accumulation_dtype(dtype) -> jnp.dtype:
  """The dtype the state accumulates in: float32, or float64 for float64 inputs."""
  return jnp.promote_types(dtype, jnp.float32)


def discretize(delta: Array, A: Array, B: Array) -> Tuple[Array, Array]:
  """Discretizes the SSM parameters with step size ``delta``.

  Args:
    delta: (b, l, d) positive step sizes.
    A: (d, n) continuous state matrix (diagonal per channel, negative reals).
    B: (b, l, n) input matrix (input-dependent in Mamba).

  Returns:
    dA: (b, l, d, n) = exp(delta * A) (zero-order hold).
    dB: (b, l, d, n) = delta * B (as the reference implementation).
  """
  chex.assert_rank([delta, A, B], [3, 2, 3])
  chex.assert_equal_shape_prefix([delta, B], 2)
  chex.assert_axis_dimension(A, 0, delta.shape[-1])
  chex.assert_axis_dimension(B, 2, A.shape[-1])
  dA = jnp.exp(delta[..., None] * A)
  dB = delta[..., None] * B[:, :, None, :]
  return dA, dB


def linear_recurrence_combine(
    earlier: Tuple[Array, Array], later: Tuple[Array, Array]
) -> Tuple[Array, Array]:
  """Associative operator of the linear recurrence ``h_t = a_t * h_{t-1} + b_t``.

  An element (a, b) is the affine map h -> a * h + b. Composing the map of an
  earlier segment with that of a later one gives

      (a1, b1) then (a2, b2)  =  (a2 * a1, a2 * b1 + b2),

  which is associative, so ``jax.lax.associative_scan`` computes all prefix
  compositions, i.e. every h_t given h_0 = 0. Works elementwise on arrays of
  any (matching) shape.
  """
  a1, b1 = earlier
  a2, b2 = later
  return a2 * a1, a2 * b1 + b2
