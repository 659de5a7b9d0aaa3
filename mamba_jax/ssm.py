"""The selective state space model (S6) of Mamba as pure JAX functions.

Axes (``mamba_jax.notation``): b, l, d, n.

The continuous system h'(t) = A h(t) + B(t) u(t), y(t) = C(t) h(t) is discretized
with step size delta (zero-order hold for A, the simplified Euler rule for B, as
the reference implementation `selective_scan_ref` of state-spaces/mamba):

    dA_t = exp(delta_t * A)          dB_t = delta_t * B_t
    h_t  = dA_t * h_{t-1} + dB_t * u_t
    y_t  = C_t . h_t + D * u_t       (the output reads the *updated* state)

:func:`ssd_scan` / :func:`ssd_step` are Mamba-2's form of the same recurrence (A a scalar per
head, x split into heads of p channels, B and C shared by groups of heads): see
:mod:`mamba_jax.scan.ssd`.

:func:`selective_scan` runs it over a sequence by one of the methods of
:mod:`mamba_jax.scan` ("associative", "sequential", "pallas", or "auto": see
:data:`AUTO_METHOD`), with the state accumulated in float32 whatever the input
dtype; :func:`selective_scan_step` advances it by one token (recurrent
inference). This module is the public face of the SSM math: the functions
below are those of :mod:`mamba_jax.scan` and its leaf module
:mod:`mamba_jax.scan.recurrence`.
"""

from __future__ import annotations

from typing import Optional, Tuple

import chex
import jax
import jax.numpy as jnp

from mamba_jax.scan import (AUTO_METHOD, SCAN_METHODS, SSD_AUTO_METHOD, resolve_method, resolve_ssd_method,
                            selective_scan, ssd_scan)
from mamba_jax.scan.recurrence import accumulation_dtype, discretize, linear_recurrence_combine
from mamba_jax.scan.ssd import NO_LIMIT, ssd_state_step, step_sizes

Array = jax.Array

__all__ = [
    "AUTO_METHOD",
    "SCAN_METHODS",
    "accumulation_dtype",
    "discretize",
    "linear_recurrence_combine",
    "resolve_method",
    "selective_scan",
    "selective_scan_step",
    "SSD_AUTO_METHOD",
    "resolve_ssd_method",
    "ssd_scan",
    "ssd_step",
]


def selective_scan_step(
    h: Array, u: Array, delta: Array, A: Array, B: Array, C: Array, D: Optional[Array] = None, *,
    z: Optional[Array] = None, delta_bias: Optional[Array] = None, delta_softplus: bool = False,
) -> Tuple[Array, Array]:
  """Advances the selective SSM by one token (recurrent inference).

  Args:
    h: (b, d, n) state before the token (float32).
    u: (b, d) input.
    delta: (b, d) step size, or with ``delta_softplus`` its pre-activation.
    A: (d, n).
    B: (b, n).
    C: (b, n).
    D: optional (d,) skip connection.
    z, delta_bias, delta_softplus: as :func:`selective_scan` (z (b, d), delta_bias (d,)).

  Returns:
    y: (b, d) output in u's dtype.
    h_new: (b, d, n) state after the token, float32 (float64 for float64 u).
  """
  chex.assert_rank([h, u, delta, A, B, C], [3, 2, 2, 2, 2, 2])
  chex.assert_equal_shape([u, delta])
  chex.assert_equal_shape([B, C])
  chex.assert_shape(h, (u.shape[0], u.shape[1], A.shape[1]))
  acc = accumulation_dtype(u.dtype)
  u32, delta32 = jnp.asarray(u, acc), jnp.asarray(delta, acc)
  if delta_bias is not None:
    delta32 = delta32 + jnp.asarray(delta_bias, acc)
  if delta_softplus:
    delta32 = jax.nn.softplus(delta32)
  dA = jnp.exp(delta32[:, :, None] * jnp.asarray(A, acc))
  dBu = (delta32 * u32)[:, :, None] * jnp.asarray(B, acc)[:, None, :]
  h_new = dA * jnp.asarray(h, acc) + dBu
  y = jnp.einsum("bdn,bn->bd", h_new, jnp.asarray(C, acc))
  if D is not None:
    y = y + jnp.asarray(D, acc) * u32
  if z is not None:
    y = y * jax.nn.silu(jnp.asarray(z, acc))
  return y.astype(u.dtype), h_new


def ssd_step(
    h: Array, x: Array, dt: Array, A: Array, B: Array, C: Array, D: Optional[Array] = None, *,
    dt_bias: Optional[Array] = None, dt_softplus: bool = False, dt_limit: Tuple[float, float] = NO_LIMIT,
) -> Tuple[Array, Array]:
  """Advances the Mamba-2 (SSD) SSM by one token: :func:`ssd_scan` of a length-1 sequence.

  Axes (``mamba_jax.notation``): b, h, p, g, n.

  Args:
    h: (b, h, p, n) state before the token (float32).
    x: (b, h, p) input.
    dt: (b, h) step size (pre-activation with ``dt_softplus``; see :func:`ssd_scan`).
    A: (h,).
    B, C: (b, g, n).
    D: optional (h,) skip connection.
    dt_bias, dt_softplus, dt_limit: as :func:`ssd_scan`.

  Returns:
    y: (b, h, p) in x's dtype.
    h_new: (b, h, p, n) float32 (float64 for float64 x).
  """
  chex.assert_rank([h, x, dt, A, B, C], [4, 3, 2, 1, 3, 3])
  chex.assert_equal_shape([B, C])
  chex.assert_shape(h, x.shape + (B.shape[-1],))
  chex.assert_shape(dt, x.shape[:2])
  acc = accumulation_dtype(x.dtype)
  x32 = jnp.asarray(x, acc)
  dt32 = step_sizes(jnp.asarray(dt, acc), dt_bias, dt_softplus, dt_limit, None)
  y, h_new = ssd_state_step(jnp.asarray(h, acc), x32, dt32, jnp.asarray(A, acc), jnp.asarray(B, acc),
                            jnp.asarray(C, acc))
  if D is not None:
    y = y + jnp.asarray(D, acc)[:, None] * x32
  return y.astype(x.dtype), h_new
