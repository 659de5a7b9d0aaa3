"""The selective state space model (S6) of Mamba as pure JAX functions.

Glossary: b batch, l length, d channels (d_inner), n state size.

The continuous system h'(t) = A h(t) + B(t) u(t), y(t) = C(t) h(t) is discretized
with step size delta (zero-order hold for A, the simplified Euler rule for B, as
the reference implementation `selective_scan_ref` of state-spaces/mamba):

    dA_t = exp(delta_t * A)          dB_t = delta_t * B_t
    h_t  = dA_t * h_{t-1} + dB_t * u_t
    y_t  = C_t . h_t + D * u_t       (the output reads the *updated* state)

Every method below computes exactly this recurrence, with the state accumulated
in float32 whatever the input dtype:

- ``"associative"``: ``jax.lax.associative_scan`` over (dA, dB*u) pairs;
  O(log l) depth, materializes (b, l, d, n).
- ``"sequential"``: ``jax.lax.scan`` over tokens; O(l) depth, keeps only
  (b, d, n) live, with a hand-written reverse-scan backward pass
  (:mod:`mamba_jax.sequential_scan`; reverse-mode differentiation only).
- ``"pallas"``: the fused GPU kernel of :mod:`mamba_jax.pallas_scan`.
- ``"auto"``: the fastest correct method for the current backend (see
  :data:`AUTO_METHOD`).
"""

from __future__ import annotations

from typing import Optional, Tuple

import chex
import jax
import jax.numpy as jnp

from mamba_jax import sequential_scan

Array = jax.Array

SCAN_METHODS = ("associative", "sequential", "pallas")

# Method picked by method="auto", per backend, from the measurements of
# `python -m benchmarks.scan` recorded in results/scan_<device>.json. CPU
# (results/scan_cpu.json): the sequential scan wins at every tweet-sized shape,
# forward and backward (it streams the state instead of materializing
# (b, l, d, n)). GPU and TPU: the portable associative scan, until a recorded
# GPU benchmark validates the fused Pallas kernel (method="pallas") and shows
# it faster; "pallas" must be asked for explicitly until then.
AUTO_METHOD = {"cpu": "sequential", "gpu": "associative", "tpu": "associative"}


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


def _associative_states(u, delta, A, B, h0):
  """All states h_1..h_l (b, l, d, n) by a parallel prefix scan."""
  dA, dB = discretize(delta, A, B)
  dBu = dB * u[..., None]
  # Fold the initial state into the first element: h_1 = dA_1 h_0 + dB_1 u_1.
  dBu = dBu.at[:, 0].add(dA[:, 0] * h0)
  _, hs = jax.lax.associative_scan(linear_recurrence_combine, (dA, dBu), axis=1)
  return hs


def _scan_associative(u, delta, A, B, C, h0):
  hs = _associative_states(u, delta, A, B, h0)
  y = jnp.einsum("bldn,bln->bld", hs, C)
  return y, hs[:, -1]


def _scan_sequential(u, delta, A, B, C, h0):
  return sequential_scan.sequential_selective_scan(u, delta, A, B, C, h0)


def _scan_pallas(u, delta, A, B, C, h0):
  from mamba_jax import pallas_scan  # Imported lazily: Pallas is GPU-oriented.

  return pallas_scan.selective_scan_pallas(
      u, delta, A, B, C, initial_state=h0, return_state=True
  )


_SCANS = {
    "associative": _scan_associative,
    "sequential": _scan_sequential,
    "pallas": _scan_pallas,
}


def resolve_method(method: str) -> str:
  """Maps ``"auto"`` to the measured-fastest method of the default backend."""
  if method == "auto":
    backend = jax.default_backend()
    method = AUTO_METHOD.get(backend, "associative")
    if method == "pallas" and not _pallas_available():
      method = "associative"
    return method
  if method not in _SCANS:
    raise ValueError(
        f"Unknown scan method {method!r}; expected 'auto' or one of {SCAN_METHODS}."
    )
  return method


def _pallas_available() -> bool:
  try:
    from mamba_jax import pallas_scan  # noqa: F401
  except ImportError:
    return False
  return True


def selective_scan(
    u: Array, delta: Array, A: Array, B: Array, C: Array, D: Optional[Array] = None, *,
    mask: Optional[Array] = None, initial_state: Optional[Array] = None,
    return_state: bool = False, method: str = "auto",
):
  """Runs the selective SSM over a sequence.

  Args:
    u: (b, l, d) input.
    delta: (b, l, d) positive step sizes (already passed through softplus).
    A: (d, n) state matrix (negative reals).
    B: (b, l, n) input matrix.
    C: (b, l, n) output matrix.
    D: optional (d,) skip connection.
    mask: optional (b, l) of 0/1. Where 0 the step is the identity: the state
      is carried unchanged and y is 0 there, so right padding never changes a
      real position's output nor the final state.
    initial_state: optional (b, d, n) state before the first token (zeros).
    return_state: also return the final state.
    method: "auto", "associative", "sequential" or "pallas".

  Returns:
    y: (b, l, d) in u's dtype; with ``return_state`` the pair (y, h_last) with
    h_last (b, d, n) float32 (float64 for float64 inputs).
  """
  chex.assert_rank([u, delta, A, B, C], [3, 3, 2, 3, 3])
  chex.assert_equal_shape([u, delta])
  chex.assert_equal_shape([B, C])
  chex.assert_equal_shape_prefix([u, B], 2)
  chex.assert_shape(A, (u.shape[-1], B.shape[-1]))
  b, _, d = u.shape
  n = A.shape[-1]
  if D is not None:
    chex.assert_shape(D, (d,))
  if mask is not None:
    chex.assert_shape(mask, u.shape[:2])
  if initial_state is not None:
    chex.assert_shape(initial_state, (b, d, n))
  method = resolve_method(method)

  acc = accumulation_dtype(u.dtype)
  u32, A32 = jnp.asarray(u, acc), jnp.asarray(A, acc)
  mask32 = None if mask is None else jnp.asarray(mask, acc)
  h0 = jnp.zeros((b, d, n), acc) if initial_state is None else jnp.asarray(initial_state, acc)
  if method == "pallas":
    # The kernel reads u, delta, B and C in their own dtype and accumulates in
    # float32 itself: casting bfloat16 inputs first would double its traffic.
    # delta = 0 makes a masked step the identity: dA = 1 and dB = 0.
    delta_in = delta if mask is None else delta * jnp.asarray(mask, delta.dtype)[..., None]
    y, h_last = _scan_pallas(u, delta_in, A32, B, C, h0)
    y = jnp.asarray(y, acc)
  else:
    delta32, B32, C32 = (jnp.asarray(x, acc) for x in (delta, B, C))
    if mask is not None:
      delta32 = delta32 * mask32[..., None]  # delta = 0: the step is the identity.
    y, h_last = _SCANS[method](u32, delta32, A32, B32, C32, h0)
  if D is not None:
    y = y + jnp.asarray(D, acc) * u32
  if mask is not None:
    y = y * mask32[..., None]
  y = y.astype(u.dtype)
  return (y, h_last) if return_state else y
