"""The selective scan as a parallel prefix scan (``jax.lax.associative_scan``).

Axes (``mamba_jax.notation``): b, l, d, n.

O(log l) depth; materializes the (b, l, d, n) states. Inputs are already in
the accumulation dtype; masking and D are applied by the caller
(:func:`mamba_jax.scan.selective_scan`).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from mamba_jax.scan.recurrence import discretize, linear_recurrence_combine

Array = jax.Array


def associative_states(u: Array, delta: Array, A: Array, B: Array, h0: Array) -> Array:
  """All states h_1..h_l (b, l, d, n) by a parallel prefix scan."""
  dA, dB = discretize(delta, A, B)
  dBu = dB * u[..., None]
  # Fold the initial state into the first element: h_1 = dA_1 h_0 + dB_1 u_1.
  dBu = dBu.at[:, 0].add(dA[:, 0] * h0)
  _, hs = jax.lax.associative_scan(linear_recurrence_combine, (dA, dBu), axis=1)
  return hs


def associative_selective_scan(u: Array, delta: Array, A: Array, B: Array, C: Array, h0: Array):
  """h_t = exp(delta_t A) h_{t-1} + delta_t u_t B_t, y_t = C_t . h_t.

  Args:
    u, delta: (b, l, d); A: (d, n); B, C: (b, l, n); h0: (b, d, n).

  Returns:
    y (b, l, d) and h_last (b, d, n).
  """
  hs = associative_states(u, delta, A, B, h0)
  y = jnp.einsum("bldn,bln->bld", hs, C)
  return y, hs[:, -1]
