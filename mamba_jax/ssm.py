"""The selective state space model (S6) of Mamba as pure JAX functions.

Glossary: b batch, l length, d channels (d_inner), n state size.

The continuous system h'(t) = A h(t) + B(t) u(t), y(t) = C(t) h(t) is discretized
with step size delta (zero-order hold for A, the simplified Euler rule for B, as
the reference implementation `selective_scan_ref` of state-spaces/mamba):

    dA_t = exp(delta_t * A)          dB_t = delta_t * B_t
    h_t  = dA_t * h_{t-1} + dB_t * u_t
    y_t  = C_t . h_t + D * u_t       (the output reads the *updated* state)

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

from mamba_jax.scan import AUTO_METHOD, SCAN_METHODS, resolve_method, selective_scan
from mamba_jax.scan.recurrence import accumulation_dtype, discretize, linear_recurrence_combine

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
]


def selective_scan_step(
    h: Array, u: Array, delta: Array, A: Array, B: Array, C: Array, D: Optional[Array] = None
) -> Tuple[Array, Array]:
  """Advances the selective SSM by one token (recurrent inference).

  Args:
    h: (b, d, n) state before the token (float32).
    u: (b, d) input.
    delta: (b, d) step size.
    A: (d, n).
    B: (b, n).
    C: (b, n).
    D: optional (d,) skip connection.

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
  dA = jnp.exp(delta32[:, :, None] * jnp.asarray(A, acc))
  dBu = (delta32 * u32)[:, :, None] * jnp.asarray(B, acc)[:, None, :]
  h_new = dA * jnp.asarray(h, acc) + dBu
  y = jnp.einsum("bdn,bn->bd", h_new, jnp.asarray(C, acc))
  if D is not None:
    y = y + jnp.asarray(D, acc) * u32
  return y.astype(u.dtype), h_new
