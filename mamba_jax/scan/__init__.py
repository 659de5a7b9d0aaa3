"""One entry point, :func:`selective_scan`, over interchangeable scan methods.

Axes (``mamba_jax.notation``): b, l, d, n.

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

:func:`ssd_scan` is Mamba-2's entry point (:mod:`~mamba_jax.scan.ssd`: the same recurrence with
a scalar decay per head, computed chunk by chunk as matmuls); its ``method`` picks how the state
is carried from chunk to chunk ("associative" | "sequential" | "auto": :data:`SSD_AUTO_METHOD`).

The shared math lives in the leaf module :mod:`~mamba_jax.scan.recurrence`;
this module imports the methods, never the reverse.
"""

from __future__ import annotations

from typing import Callable, Optional, Tuple

import chex
import jax
import jax.numpy as jnp

from mamba_jax.scan import associative, pallas, sequential, ssd
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

# Method picked by method="auto", per backend: the fastest correct one that the benchmarks of
# results/scan_<device>.json showed ("pallas" only ever when asked for). Why each: DESIGN.md.
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


# Chunk recurrence picked by ssd_scan(method="auto"), per backend, from results/scan_ssd_cpu.json.
# Why each: DESIGN.md.
SSD_AUTO_METHOD = {"cpu": "sequential", "gpu": "associative", "tpu": "associative"}


def resolve_ssd_method(method: str) -> str:
  """Maps ``"auto"`` to :data:`SSD_AUTO_METHOD` of the default backend; checks the name."""
  if method == "auto":
    return SSD_AUTO_METHOD.get(jax.default_backend(), "associative")
  if method not in ssd.CHUNK_RECURRENCES:
    raise ValueError(f"Unknown SSD method {method!r}; expected 'auto' or one of {ssd.CHUNK_RECURRENCES} "
                     "(the recurrence over chunk states; there is no Pallas SSD kernel)")
  return method


def ssd_scan(
    x: Array, dt: Array, A: Array, B: Array, C: Array, D: Optional[Array] = None, *,
    mask: Optional[Array] = None, initial_state: Optional[Array] = None,
    dt_bias: Optional[Array] = None, dt_softplus: bool = False,
    dt_limit: Tuple[float, float] = ssd.NO_LIMIT, return_state: bool = False,
    chunk_size: int = 256, method: str = "auto",
):
  """Runs the Mamba-2 (SSD) selective SSM over a sequence.

  Axes (``mamba_jax.notation``): b, l, h, p, g, n.

      dt_t = clip(softplus(dt_t + dt_bias), *dt_limit)     (b, l, h), 0 where masked
      h_t = exp(dt_t A) h_{t-1} + dt_t x_t B_t^T            (b, h, p, n) float32
      y_t = h_t C_t + D x_t                                  (b, h, p)

  Args:
    x: (b, l, h, p) input.
    dt: (b, l, h) step sizes: positive, or with ``dt_softplus`` the pre-activation.
    A: (h,) negative decay rate per head.
    B, C: (b, l, g, n); head i reads group i // (h / g).
    D: optional (h,) skip connection.
    mask: optional (b, l) of 0/1. Where 0 the step is the identity and y is 0, so right
      padding never changes a real position's output nor the final state.
    initial_state: optional (b, h, p, n) state before the first token (zeros).
    dt_bias: optional (h,) added to dt before the softplus.
    dt_softplus: apply softplus to dt (+ dt_bias).
    dt_limit: (low, high) clip of the step sizes; (0, inf) is no clip.
    return_state: also return the final state.
    chunk_size: tokens per chunk (any length works: the last chunk is padded with identity steps).
    method: the recurrence over chunk states, "auto", "associative" or "sequential".

  Returns:
    y: (b, l, h, p) in x's dtype; with ``return_state`` the pair (y, h_last) with h_last
    (b, h, p, n) float32 (float64 for float64 inputs).
  """
  chex.assert_rank([x, dt, A, B, C], [4, 3, 1, 4, 4])
  chex.assert_equal_shape_prefix([x, dt], 3)
  chex.assert_equal_shape([B, C])
  chex.assert_equal_shape_prefix([x, B], 2)
  b, _, h, p = x.shape
  g, n = B.shape[2], B.shape[3]
  chex.assert_shape(A, (h,))
  if h % g:
    raise ValueError(f"{h} heads cannot be split into {g} groups")
  if chunk_size < 1:
    raise ValueError(f"chunk_size must be >= 1, got {chunk_size}")
  for vector in (D, dt_bias):
    if vector is not None:
      chex.assert_shape(vector, (h,))
  if mask is not None:
    chex.assert_shape(mask, x.shape[:2])
  if initial_state is not None:
    chex.assert_shape(initial_state, (b, h, p, n))
  recurrence = resolve_ssd_method(method)
  acc = accumulation_dtype(x.dtype)
  x32, B32, C32, A32 = (jnp.asarray(t, acc) for t in (x, B, C, A))
  dt32 = ssd.step_sizes(jnp.asarray(dt, acc), dt_bias, dt_softplus, dt_limit, mask)
  h0 = None if initial_state is None else jnp.asarray(initial_state, acc)
  y, h_last = ssd.ssd_chunked_scan(x32, dt32, A32, B32, C32, h0=h0, chunk_size=chunk_size,
                                   chunk_recurrence=recurrence, return_state=return_state)
  if D is not None:
    y = y + jnp.asarray(D, acc)[:, None] * x32
  if mask is not None:
    y = y * jnp.asarray(mask, acc)[:, :, None, None]
  y = y.astype(x.dtype)
  return (y, h_last) if return_state else y
