"""One entry point, :func:`selective_scan`, over interchangeable scan methods.

Glossary: b batch, l length, d channels (d_inner), n state size.

Every method computes the recurrence of :mod:`mamba_jax.ssm` with the state
accumulated in float32 (float64 for float64 inputs):

- ``"associative"`` (:mod:`~mamba_jax.scan.associative`): ``jax.lax.associative_scan``
  over (dA, dB*u) pairs; O(log l) depth, materializes (b, l, d, n).
- ``"sequential"`` (:mod:`~mamba_jax.scan.sequential`): ``jax.lax.scan`` over
  tokens; O(l) depth, keeps only (b, d, n) live, with a hand-written
  reverse-scan backward pass (reverse-mode differentiation only).
- ``"pallas"`` (:mod:`~mamba_jax.scan.pallas`): the fused GPU kernel, which also
  fuses delta_bias, the softplus of delta and the SiLU(z) gate.
- ``"auto"``: the fastest correct method for the current backend (see
  :data:`AUTO_METHOD`).

The shared math lives in the leaf module :mod:`~mamba_jax.scan.recurrence`;
this module imports the methods, never the reverse.
"""

from __future__ import annotations

from typing import Callable, Optional

import chex
import jax
import jax.numpy as jnp

from mamba_jax.scan import associative, pallas, sequential
from mamba_jax.scan.recurrence import accumulation_dtype

Array = jax.Array


def _unfused(core: Callable) -> Callable:
  """A method from a core scan (u, delta, A, B, C, h0) -> (y, h_last) in the accumulation dtype.

  Everything around the core is applied here in that dtype: delta_bias and
  softplus, the mask (delta = 0: the step is the identity; y = 0 there), D and
  the SiLU(z) gate.
  """

  def scan(u, delta, A, B, C, D, *, mask, h0, z, delta_bias, delta_softplus):
    acc = accumulation_dtype(u.dtype)
    u32, A32, delta32, B32, C32 = (jnp.asarray(x, acc) for x in (u, A, delta, B, C))
    if delta_bias is not None:
      delta32 = delta32 + jnp.asarray(delta_bias, acc)
    if delta_softplus:
      delta32 = jax.nn.softplus(delta32)
    mask32 = None if mask is None else jnp.asarray(mask, acc)[..., None]
    if mask is not None:
      delta32 = delta32 * mask32
    y, h_last = core(u32, delta32, A32, B32, C32, jnp.asarray(h0, acc))
    if D is not None:
      y = y + jnp.asarray(D, acc) * u32
    if mask is not None:
      y = y * mask32
    if z is not None:
      y = y * jax.nn.silu(jnp.asarray(z, acc))
    return y.astype(u.dtype), h_last

  return scan


# Each method: (u, delta, A, B, C, D, *, mask, h0, z, delta_bias, delta_softplus)
# -> (y (b, l, d) in u's dtype, h_last (b, d, n)).
METHODS = {
    "associative": _unfused(associative.associative_selective_scan),
    "sequential": _unfused(sequential.sequential_selective_scan),
    "pallas": pallas.fused_selective_scan,
}
SCAN_METHODS = tuple(METHODS)

# Method picked by method="auto", per backend, from the measurements of
# `python -m benchmarks.scan` recorded in results/scan_<device>.json. CPU
# (results/scan_cpu.json): the sequential scan wins at every tweet-sized shape,
# forward and backward (it streams the state instead of materializing
# (b, l, d, n)). GPU and TPU: the portable associative scan, until a recorded
# GPU benchmark (scripts/gpu_check.sh) validates the fused Pallas kernel
# (method="pallas") and shows it faster; "pallas" must be asked for explicitly until then.
AUTO_METHOD = {"cpu": "sequential", "gpu": "associative", "tpu": "associative"}


def resolve_method(method: str) -> str:
  """Maps ``"auto"`` to the measured-fastest method of the default backend."""
  if method == "auto":
    return AUTO_METHOD.get(jax.default_backend(), "associative")
  if method not in METHODS:
    raise ValueError(
        f"Unknown scan method {method!r}; expected 'auto' or one of {SCAN_METHODS}."
    )
  return method


def selective_scan(
    u: Array, delta: Array, A: Array, B: Array, C: Array, D: Optional[Array] = None, *,
    mask: Optional[Array] = None, initial_state: Optional[Array] = None,
    z: Optional[Array] = None, delta_bias: Optional[Array] = None, delta_softplus: bool = False,
    return_state: bool = False, method: str = "auto",
):
  """Runs the selective SSM over a sequence.

  Args:
    u: (b, l, d) input.
    delta: (b, l, d) step sizes: positive, or with ``delta_softplus`` the
      pre-activation (softplus(delta + delta_bias) is used).
    A: (d, n) state matrix (negative reals).
    B: (b, l, n) input matrix.
    C: (b, l, n) output matrix.
    D: optional (d,) skip connection.
    mask: optional (b, l) of 0/1. Where 0 the step is the identity: the state
      is carried unchanged and y is 0 there, so right padding never changes a
      real position's output nor the final state.
    initial_state: optional (b, d, n) state before the first token (zeros).
    z: optional (b, l, d) gate: y is multiplied by SiLU(z).
    delta_bias: optional (d,) added to delta (before the softplus).
    delta_softplus: apply softplus to delta (+ delta_bias).
    return_state: also return the final state.
    method: "auto", "associative", "sequential" or "pallas".

  Returns:
    y: (b, l, d) in u's dtype; with ``return_state`` the pair (y, h_last) with
    h_last (b, d, n) float32 (float64 for float64 inputs but with "pallas").
  """
  chex.assert_rank([u, delta, A, B, C], [3, 3, 2, 3, 3])
  chex.assert_equal_shape([u, delta])
  chex.assert_equal_shape([B, C])
  chex.assert_equal_shape_prefix([u, B], 2)
  chex.assert_shape(A, (u.shape[-1], B.shape[-1]))
  b, _, d = u.shape
  n = A.shape[-1]
  for vector in (D, delta_bias):
    if vector is not None:
      chex.assert_shape(vector, (d,))
  if z is not None:
    chex.assert_equal_shape([u, z])
  if mask is not None:
    chex.assert_shape(mask, u.shape[:2])
  if initial_state is not None:
    chex.assert_shape(initial_state, (b, d, n))
  scan = METHODS[resolve_method(method)]
  acc = accumulation_dtype(u.dtype)
  h0 = jnp.zeros((b, d, n), acc) if initial_state is None else jnp.asarray(initial_state, acc)
  y, h_last = scan(u, delta, A, B, C, D, mask=mask, h0=h0, z=z, delta_bias=delta_bias,
                   delta_softplus=delta_softplus)
  return (y, h_last) if return_state else y
