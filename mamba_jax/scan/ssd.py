"""State space duality (SSD, Mamba-2): the selective SSM with a scalar decay per head, as matmuls.

Axes (``mamba_jax.notation``, with ``SCAN_AXES``): b, l, h, p, g (heads share B and C within a
group of h / g heads), n, c, q, r.

Mamba-2 (Dao & Gu 2024, arXiv:2405.21060) restricts A to one negative scalar per head. With
a_t = dt_t * A (b, l, h) the recurrence

    h_t = exp(a_t) h_{t-1} + dt_t x_t B_t^T        (b, h, p, n)
    y_t = h_t C_t                                   (b, h, p)

then has the closed form y_t = sum_{s <= t} exp(a_{s+1} + ... + a_t) (C_t . B_s) dt_s x_s, a
masked, decay-weighted "attention" C B^T that runs on the matrix units. The sequence is cut into
chunks of q tokens (``ssd_minimal.py`` of state-spaces/mamba):

1. inside each chunk, that quadratic form (one batched matmul per chunk);
2. each chunk's own final state from zero, B weighted by the decay to the chunk's end;
3. a linear recurrence over the c chunk states (``jax.lax.associative_scan`` or
   ``jax.lax.scan``: the ``chunk_recurrence`` argument) gives the state entering each chunk;
4. that entering state read out by C, decayed to each position, added to 1.

Everything here runs in the accumulation dtype the caller chose (float32, float64 for float64
inputs); a leaf module, imported by :mod:`mamba_jax.scan` (the entry point), never the reverse.
"""

from __future__ import annotations

from typing import Optional, Tuple

import jax
import jax.numpy as jnp

from mamba_jax.scan.recurrence import linear_recurrence_combine

Array = jax.Array

CHUNK_RECURRENCES = ("associative", "sequential")
NO_LIMIT = (0.0, float("inf"))


def step_sizes(dt: Array, dt_bias: Optional[Array], dt_softplus: bool, dt_limit: Tuple[float, float],
               mask: Optional[Array]) -> Array:
  """dt (..., h) -> clip(softplus(dt + dt_bias), *dt_limit) * mask, in dt's dtype.

  Each step is optional: no bias, no softplus (dt already positive), the (0, inf) limit, no mask.
  A masked token gets dt = 0: its step is the identity (no decay, no input).
  """
  if dt_bias is not None:
    dt = dt + dt_bias.astype(dt.dtype)
  if dt_softplus:
    dt = jax.nn.softplus(dt)
  if tuple(dt_limit) != NO_LIMIT:
    dt = jnp.clip(dt, dt_limit[0], dt_limit[1])
  if mask is not None:
    dt = dt * mask.astype(dt.dtype)[..., None]
  return dt


def _entering_states(decay: Array, states: Array, h0: Optional[Array], method: str) -> Tuple[Array, Array]:
  """The state entering each chunk and the final state.

  Args:
    decay: (b, c, g, r) exp of each chunk's summed log decay (r = h / g heads per group).
    states: (b, c, g, r, p, n) each chunk's final state started from zero.
    h0: (b, g, r, p, n) state before the first chunk, or None (zeros).
    method: "associative" (``jax.lax.associative_scan`` over chunks) or "sequential" (``lax.scan``).

  Returns:
    (entering (b, c, g, r, p, n), last (b, g, r, p, n)).
  """
  expand = (Ellipsis, None, None)
  if method == "sequential":
    def step(carry, chunk):
      chunk_decay, chunk_state = chunk
      return chunk_decay[expand] * carry + chunk_state, carry

    start = jnp.zeros_like(states[:, 0]) if h0 is None else h0
    last, entering = jax.lax.scan(step, start, (jnp.moveaxis(decay, 1, 0), jnp.moveaxis(states, 1, 0)))
    return jnp.moveaxis(entering, 0, 1), last
  if method != "associative":
    raise ValueError(f"chunk recurrence must be one of {CHUNK_RECURRENCES}, got {method!r}")
  if h0 is not None:  # Fold h0 into the first chunk: S_0 = decay_0 h0 + states_0.
    states = states.at[:, 0].add(decay[:, 0][expand] * h0)
  decay_b = jnp.broadcast_to(decay[expand], states.shape)
  _, after = jax.lax.associative_scan(linear_recurrence_combine, (decay_b, states), axis=1)
  first = jnp.zeros_like(states[:, :1]) if h0 is None else h0[:, None]
  entering = jnp.concatenate([first, after[:, :-1]], axis=1)
  return entering, after[:, -1]


# Up to this chunk length the within-chunk sums of log decays come from one matmul with a 0/1
# (q, q, q) selection tensor (1 MiB at q = 64): exact (no difference of cumulative sums) and,
# forward and backward, a matmul instead of reductions, which XLA's CPU backend runs far
# faster. Longer chunks use masked cumulative sums (ssd_minimal's stable segsum) instead.
SEGSUM_MATMUL_MAX = 64


def segment_sums(log_decay: Array) -> Array:
  """(..., q) -> (..., q, q): [l, s] = sum of log_decay over s < k <= l; -inf above the diagonal."""
  q = log_decay.shape[-1]
  index = jnp.arange(q)
  causal = index[:, None] >= index[None, :]
  if q <= SEGSUM_MATMUL_MAX:
    k = index[None, None, :]
    between = (index[:, None, None] >= k) & (k > index[None, :, None])  # (l, s, k)
    sums = jnp.einsum("...k,lsk->...ls", log_decay, between.astype(log_decay.dtype))
  else:
    after = index[:, None] > index[None, :]  # [k, s]: k > s.
    sums = jnp.cumsum(jnp.where(after, log_decay[..., :, None], 0.0), axis=-2)  # [l, s]: sum over s < k <= l.
  return jnp.where(causal, sums, -jnp.inf)


def ssd_chunked_scan(
    x: Array, dt: Array, A: Array, B: Array, C: Array, *, h0: Optional[Array], chunk_size: int,
    chunk_recurrence: str, return_state: bool,
) -> Tuple[Array, Optional[Array]]:
  """The SSD recurrence over a sequence, chunk by chunk (see the module docstring).

  Args:
    x: (b, l, h, p) inputs.
    dt: (b, l, h) step sizes, already positive (0 on masked tokens: the identity step).
    A: (h,) negative decay rates.
    B, C: (b, l, g, n); h must be a multiple of g.
    h0: (b, h, p, n) state before the first token, or None for zeros (then the inter-chunk
      terms of a single-chunk sequence are skipped: they are zero).
    chunk_size: q, tokens per chunk; a shorter sequence is one chunk of its own length, a
      longer one is padded with identity steps to a multiple of q.
    chunk_recurrence: "associative" or "sequential" (the recurrence over chunk states).
    return_state: also compute the final state.

  Returns:
    (y (b, l, h, p) without D, final state (b, h, p, n) or None), in the inputs' dtype.

  Inside, every tensor is laid out heads-major, (b, c, g, r, q, ...) with r = h / g heads per
  group, so that each product is a batched matmul over contiguous (q, .) blocks.
  """
  b, length, h, p = x.shape
  g, n = B.shape[2], B.shape[3]
  r = h // g
  q = min(chunk_size, length)
  num_chunks = -(-length // q)
  pad = num_chunks * q - length
  if pad:
    widths = lambda t: ((0, 0), (0, pad)) + ((0, 0),) * (t.ndim - 2)
    x, dt, B, C = (jnp.pad(t, widths(t)) for t in (x, dt, B, C))
  # (b, c, q, g, r, ...) -> (b, c, g, r, q, ...).
  xdt = (x * dt[..., None]).reshape(b, num_chunks, q, g, r, p).transpose(0, 1, 3, 4, 2, 5)
  log_decay = (dt * A).reshape(b, num_chunks, q, g, r).transpose(0, 1, 3, 4, 2)
  Bc = B.reshape(b, num_chunks, q, g, n).transpose(0, 1, 3, 2, 4)  # (b, c, g, q, n)
  Cc = C.reshape(b, num_chunks, q, g, n).transpose(0, 1, 3, 2, 4)

  # 1. Within chunks: y_l = sum_{s <= l} exp(sum_{s<k<=l} a_k) (C_l . B_s) dt_s x_s.
  decay_ls = jnp.exp(segment_sums(log_decay))  # (b, c, g, r, q, q); 0 above the diagonal.
  scores = jnp.einsum("bcgln,bcgsn->bcgls", Cc, Bc)
  # One product per head (r is small): the gradient of scores is then a sum of r terms, not a
  # reduction over a middle axis (slow on XLA's CPU backend).
  weights = jnp.stack([decay_ls[:, :, :, i] * scores for i in range(r)], axis=3)
  y = jnp.einsum("bcgrls,bcgrsp->bcgrlp", weights, xdt)

  last = None
  if return_state or num_chunks > 1 or h0 is not None:
    cumulative = jnp.cumsum(log_decay, axis=-1)  # (b, c, g, r, q)
    h0_g = None if h0 is None else h0.reshape(b, g, r, p, n)
    if return_state or num_chunks > 1:
      # 2. Each chunk's final state from zero: B_s decayed from s to the chunk's end.
      to_end = jnp.exp(cumulative[..., -1:] - cumulative)
      states = jnp.einsum("bcgrsp,bcgsn->bcgrpn", xdt * to_end[..., None], Bc)
      # 3. The state entering each chunk.
      entering, last = _entering_states(jnp.exp(cumulative[..., -1]), states, h0_g, chunk_recurrence)
      last = last.reshape(b, h, p, n)
    else:
      entering = h0_g[:, None]
    if num_chunks > 1 or h0 is not None:
      # 4. The entering state read by C at each position, decayed from the chunk's start.
      y = y + jnp.einsum("bcgln,bcgrpn->bcgrlp", Cc, entering) * jnp.exp(cumulative)[..., None]
  y = y.transpose(0, 1, 4, 2, 3, 5).reshape(b, num_chunks * q, h, p)[:, :length]
  return y, last


def ssd_state_step(h_prev: Array, x: Array, dt: Array, A: Array, B: Array, C: Array) -> Tuple[Array, Array]:
  """One token of the SSD recurrence.

  Args:
    h_prev: (b, h, p, n) state before the token.
    x: (b, h, p); dt: (b, h) positive; A: (h,); B, C: (b, g, n).

  Returns:
    (y (b, h, p) without D, h_new (b, h, p, n)), in the inputs' dtype.
  """
  b, h, p = x.shape
  g = B.shape[1]
  r = h // g
  decay = jnp.exp(dt * A)  # (b, h)
  B_h = jnp.repeat(B, r, axis=1)  # (b, h, n): head i reads group i // r.
  C_h = jnp.repeat(C, r, axis=1)
  h_new = decay[..., None, None] * h_prev + (dt[..., None] * x)[..., None] * B_h[:, :, None, :]
  y = jnp.einsum("bhpn,bhn->bhp", h_new, C_h)
  return y, h_new
