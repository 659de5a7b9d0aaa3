"""The selective scan as a ``jax.lax.scan`` with a hand-written backward pass.

Axes (``mamba_jax.notation``, with ``SCAN_AXES``): b, l, d, n, c (ceil(l / CHECKPOINT_CHUNK) chunks),
q (ceil(l / c) <= CHECKPOINT_CHUNK tokens per chunk).

Differentiating a ``lax.scan`` of the step function lets JAX store every
per-step residual (dA, dB*u and the state: several (l, b, d, n) arrays) and
replay them through generic transposes, which on the CPU costs ~25x the
forward. Here the forward keeps only the state at the start of every chunk of q
tokens, (c, b, d, n), and the backward walks the chunks in reverse: it
recomputes the q states of a chunk from its start state and runs the adjoint
recurrence through them,

    g_t       = dL/dh_t = dh_{t} (from t+1) + dy_t C_t
    dh_{t-1}  = exp(delta_t A) * g_t
    du_t      = delta_t * sum_n g_t B_t
    ddelta_t  = sum_n g_t (A exp(delta_t A) h_{t-1} + B_t u_t)
    dB_t      = sum_d g_t delta_t u_t           dC_t = sum_d dy_t h_t
    dA       += sum_b,t g_t delta_t exp(delta_t A) h_{t-1}

so it never holds more than (q, b, d, n) of states. The chunks split l evenly
(l = 24 -> 2 x 12, l = 17 -> 2 x 9 with one padded step): the time axis is padded
by fewer than c steps, so the cost follows the real length instead of rounding
it up to a multiple of CHECKPOINT_CHUNK. Inputs here are already in
the accumulation dtype (float32 or float64); masking and D are applied by the
caller (:func:`mamba_jax.ssm.selective_scan`). Only reverse-mode
differentiation is defined (``jax.custom_vjp``).

Outside differentiation (evaluation, inference, ``prefill``) nothing has to be stored for a
backward pass, so the primal call runs :func:`_forward_only`: one loop over the tokens that reads
the inputs where they are (batch-major), with the state laid out (b, n, d) instead of (b, d, n),
so that the per-token update is vectorized along the d channels (n = 16 is shorter than a vector
register row). The same recurrence; only the order of the float32 sum over n in y may differ from
:func:`_forward` (differences ~1e-7). Under ``jax.vjp`` / ``jax.grad`` the chunked :func:`_forward` runs, so
training computes exactly what it did before this split.
"""

from __future__ import annotations

from typing import Tuple

import jax
import jax.numpy as jnp

Array = jax.Array

CHECKPOINT_CHUNK = 16  # Longest chunk between two stored states.


def chunk_length(length: int) -> int:
  """q: the shortest chunk that splits ``length`` into ceil(length / CHECKPOINT_CHUNK) chunks."""
  num_chunks = max(-(-length // CHECKPOINT_CHUNK), 1)
  return max(-(-length // num_chunks), 1)


def _step(A: Array, h: Array, inputs) -> Tuple[Array, Tuple[Array, Array]]:
  """One token: h (b, d, n) -> (h_new, (y (b, d), h_new))."""
  u_t, delta_t, B_t, C_t = inputs
  h = jnp.exp(delta_t[..., None] * A) * h + (delta_t * u_t)[..., None] * B_t[:, None, :]
  y = jnp.sum(h * C_t[:, None, :], axis=-1)
  return h, (y, h)


def _to_chunks(x: Array, length: int, chunk: int) -> Array:
  """(b, l, ...) -> (c, q, b, ...), zero-padded in time (delta = 0 is the identity)."""
  pad = (-length) % chunk
  x = jnp.pad(x, [(0, 0), (0, pad)] + [(0, 0)] * (x.ndim - 2))
  x = jnp.swapaxes(x, 0, 1)
  return x.reshape((x.shape[0] // chunk, chunk) + x.shape[1:])


def _from_chunks(x: Array, length: int) -> Array:
  """(c, q, b, ...) -> (b, l, ...)."""
  x = x.reshape((-1,) + x.shape[2:])[:length]
  return jnp.swapaxes(x, 0, 1)


def _forward(u, delta, A, B, C, h0):
  """Returns y (b, l, d), h_last (b, d, n) and the chunk start states (c, b, d, n)."""
  length = u.shape[1]
  chunks = [_to_chunks(x, length, chunk_length(length)) for x in (u, delta, B, C)]

  def token(h, x):
    h, (y, _) = _step(A, h, x)
    return h, y

  def chunk(h_start, chunk_inputs):
    h_end, ys = jax.lax.scan(token, h_start, chunk_inputs)
    return h_end, (ys, h_start)

  h_last, (ys, h_starts) = jax.lax.scan(chunk, h0, chunks)
  return _from_chunks(ys, length), h_last, h_starts


def _forward_only(u, delta, A, B, C, h0):
  """y (b, l, d) and h_last (b, d, n), the state carried as (b, n, d); nothing kept for a backward pass.

  A ``fori_loop`` over the tokens that reads token t of the batch-major inputs in place and writes
  y_t into a (b, l, d) buffer: unlike a ``lax.scan`` over time-major copies, the inputs and y are
  never transposed (one copy of each per layer saved).
  """
  A_nd = A.T  # (n, d)

  def token(t, carry):  # h (b, n, d)
    h, ys = carry
    u_t, delta_t, B_t, C_t = (jax.lax.dynamic_index_in_dim(x, t, axis=1, keepdims=False) for x in (u, delta, B, C))
    h = jnp.exp(delta_t[:, None, :] * A_nd) * h + (delta_t * u_t)[:, None, :] * B_t[:, :, None]
    y_t = jnp.sum(h * C_t[:, :, None], axis=1)
    return h, jax.lax.dynamic_update_index_in_dim(ys, y_t, t, axis=1)

  h_last, ys = jax.lax.fori_loop(0, u.shape[1], token, (jnp.swapaxes(h0, 1, 2), jnp.zeros_like(u)))
  return ys, jnp.swapaxes(h_last, 1, 2)


@jax.custom_vjp
def sequential_selective_scan(u: Array, delta: Array, A: Array, B: Array, C: Array,
                              h0: Array) -> Tuple[Array, Array]:
  """h_t = exp(delta_t A) h_{t-1} + delta_t u_t B_t, y_t = C_t . h_t.

  Args:
    u, delta: (b, l, d); A: (d, n); B, C: (b, l, n); h0: (b, d, n). All in the
      accumulation dtype.

  Returns:
    y (b, l, d) and h_last (b, d, n). Not differentiated: :func:`_forward_only`; under
    differentiation: :func:`_forward` (see the module docstring).
  """
  return _forward_only(u, delta, A, B, C, h0)


def _fwd(u, delta, A, B, C, h0):
  y, h_last, h_starts = _forward(u, delta, A, B, C, h0)
  return (y, h_last), (u, delta, A, B, C, h_starts)


def _bwd(residuals, cotangents):
  u, delta, A, B, C, h_starts = residuals
  dy, dh_last = cotangents
  length = u.shape[1]
  chunks = [_to_chunks(x, length, chunk_length(length)) for x in (u, delta, B, C, dy)]

  def token_adjoint(carry, inputs):
    dh, dA_sum = carry
    u_t, delta_t, B_t, C_t, dy_t, h_prev, h_t = inputs
    g = dh + dy_t[..., None] * C_t[:, None, :]
    decay = jnp.exp(delta_t[..., None] * A)
    g_decay_h = g * decay * h_prev
    g_B = jnp.sum(g * B_t[:, None, :], axis=-1)
    du = delta_t * g_B
    ddelta = jnp.sum(g_decay_h * A, axis=-1) + g_B * u_t
    dB = jnp.sum(g * (delta_t * u_t)[..., None], axis=1)
    dC = jnp.sum(dy_t[..., None] * h_t, axis=1)
    dA_sum = dA_sum + jnp.sum(g_decay_h * delta_t[..., None], axis=0)
    return (g * decay, dA_sum), (du, ddelta, dB, dC)

  def chunk_adjoint(carry, inputs):
    u_c, delta_c, B_c, C_c, dy_c, h_start = inputs

    def recompute(h, x):
      h, (_, h_new) = _step(A, h, x)
      return h, h_new

    _, hs = jax.lax.scan(recompute, h_start, (u_c, delta_c, B_c, C_c))
    h_prevs = jnp.concatenate([h_start[None], hs[:-1]], axis=0)
    carry, grads = jax.lax.scan(
        token_adjoint, carry, (u_c, delta_c, B_c, C_c, dy_c, h_prevs, hs), reverse=True)
    return carry, grads

  init = (dh_last, jnp.zeros_like(A))
  (dh0, dA), grads = jax.lax.scan(chunk_adjoint, init, tuple(chunks) + (h_starts,), reverse=True)
  du, ddelta, dB, dC = (_from_chunks(g, length) for g in grads)
  return du, ddelta, dA, dB, dC, dh0


sequential_selective_scan.defvjp(_fwd, _bwd)
