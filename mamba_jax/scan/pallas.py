"""Fused selective scan as Pallas kernels (Triton lowering for NVIDIA GPUs).

Axes (``mamba_jax.notation``, with ``SCAN_AXES``): b, l, d, n, q, bd, c.

Semantics are those of the reference ``selective_scan_ref`` of
state-spaces/mamba (and of :func:`mamba_jax.scan.selective_scan`, whose
``method="pallas"`` is :func:`fused_selective_scan`)::

    delta = softplus(delta + delta_bias)     (softplus and bias optional)
    h_t   = exp(delta_t * A) * h_{t-1} + delta_t * u_t * B_t     (float32 state)
    y_t   = C_t . h_t + D * u_t
    out_t = y_t * silu(z_t)                  (gate optional)

Forward kernel: the grid is (b, ceil(d / bd), S); each program owns a (bd, n)
float32 state and walks its part of the sequence in chunks of q tokens (a
``fori_loop`` over chunks; the q tokens of a chunk are unrolled so the loads of
a chunk are independent of the state and can be issued together). u, delta,
z, B and C are read once and out is written once; no (b, l, d, n) array exists.
Tokens past l in the last chunk and channels past d in the last block are
masked (delta = 0 there makes the step the identity).

Segments (S > 1, for long l and few (batch, d-block) programs): pass 1 scans
every segment from a zero state and keeps its end state and sum of delta
(its decay is exp(A * sum)); those (b, S, d, n) summaries are chained outside
the kernel by an associative scan, and pass 2 rescans every segment from its
true start state (pass 1 is :func:`_forward_summary_kernel`, pass 2
:func:`_forward_kernel`). S = 1 is a single pass. See :func:`auto_num_segments`.

Backward kernel (``jax.custom_vjp``): when differentiated, the forward also
writes the state at the start of every chunk, (b, c, d, n) = l*d*n/q floats per
sequence (as big as u in float32 for n = q = 16). The backward walks the chunks
in reverse, recomputes the q states of a chunk from its start state, and runs
the adjoint recurrence ``g_{t-1} = exp(delta_t A) * g_t + dy_{t-1} C_{t-1}``
through them (segmented like the forward: pass 1 gives each segment's adjoint
at its start from a zero adjoint at its end, chained backwards:
:func:`_backward_summary_kernel`, then :func:`_backward_kernel`). du, d delta
and dz are written per token; dB and dC (reduced over d) are written as
per-channel-block partials (b, ceil(d / bd), l, n) and dA, dD, d delta_bias
(reduced over b and l) as per-(batch, segment) partials; those are summed
outside the kernel.

Every kernel receives its refs by name: the inputs all of them read as one
:class:`_ScanInputs` (pallas_call takes pytrees of arrays and BlockSpecs), the
others as named parameters in pallas_call order; the helpers :class:`_Program`,
:class:`_Token`, :func:`_forward_chunks` and :func:`_reverse_chunks` hold the
chunk loops the kernels share.

On backends other than GPU the same kernels run in Pallas interpret mode
(``interpret=None`` picks it), so CPU tests cover the kernel logic; interpret
mode is slow and only meant for tests. The tests also lower the kernels for
CUDA without a GPU, which checks every op against the Triton lowering rules.

GPU validation and benchmark (not yet run; from the repository root)::

    scripts/gpu_check.sh        # GPU tests, benchmarks, training runs (see README "GPU session")
    python -m pytest tests/test_pallas_scan.py -q -k Gpu       # GpuTest runs on a GPU
    python -m benchmarks.scan   # all shapes/dtypes/modes/methods -> results/scan_<device>.json/.md
    # tuning sweep of the kernel settings, e.g.
    python -m benchmarks.scan --shapes=tweet,long32k --dtypes=float32 \
        --methods=associative,pallas,pallas:block_d=32,pallas:num_warps=2,pallas:num_stages=2
"""

from __future__ import annotations

import dataclasses
import functools
from typing import Any, NamedTuple, Optional

import jax
import jax.numpy as jnp
from jax.experimental import pallas as pl
from jax.experimental.pallas import triton as plgpu

from mamba_jax.scan.recurrence import linear_recurrence_combine

Array = jax.Array

DEFAULT_CHUNK_SIZE = 16
DEFAULT_BLOCK_D = 16
# Above this softplus(x) == x in float32 (the threshold of torch's softplus).
_SOFTPLUS_THRESHOLD = 20.0


@dataclasses.dataclass(frozen=True)
class _KernelConfig:
  """Static (hashable) settings shared by the forward and backward kernels.

  The sequence is cut into ``num_segments`` segments of ``chunks_per_segment``
  chunks of ``chunk_size`` tokens; the grid is (b, d-blocks, segments).
  """

  length: int
  channels: int
  chunk_size: int
  block_d: int
  chunks_per_segment: int
  delta_softplus: bool
  has_z: bool
  interpret: bool
  num_warps: int
  num_stages: Optional[int]

  @property
  def num_chunks(self) -> int:
    return pl.cdiv(self.length, self.chunk_size)

  @property
  def num_segments(self) -> int:
    return pl.cdiv(self.num_chunks, self.chunks_per_segment)

  @property
  def num_d_blocks(self) -> int:
    return pl.cdiv(self.channels, self.block_d)


def _is_power_of_2(x: int) -> bool:
  return x > 0 and (x & (x - 1)) == 0


def _sigmoid(x):
  return 1.0 / (1.0 + jnp.exp(-x))


def _softplus(x):
  below = jnp.minimum(x, _SOFTPLUS_THRESHOLD)  # exp never overflows, even where unused.
  return jnp.where(x <= _SOFTPLUS_THRESHOLD, jnp.log1p(jnp.exp(below)), x)


def _softplus_grad(x):
  return jnp.where(x <= _SOFTPLUS_THRESHOLD, _sigmoid(x), 1.0)


# ---------------------------------------------------------------- in-kernel helpers


class _ScanInputs(NamedTuple):
  """The inputs every kernel reads, by name: arrays, their BlockSpecs, or (in a kernel) refs.

  pallas_call takes them as one pytree argument, so a kernel receives its refs
  under these names; z is None without a gate. Shapes below are a kernel's
  blocks (batch and segment squeezed).
  """

  u: Any  # (l, bd)
  delta: Any  # (l, bd), before the bias and the softplus
  A: Any  # (bd, n)
  B: Any  # (l, n)
  C: Any  # (l, n)
  bias: Any  # (bd,)
  z: Any = None  # (l, bd)


class _ForwardOutputs(NamedTuple):
  """Outputs of :func:`_forward_kernel`: arrays (shapes below), their specs, or a kernel's refs."""

  out: Any  # (b, l, d)
  h_end: Any  # (b, S, d, n), the state leaving each segment
  chunk_states: Any = None  # (b, c, d, n), the state entering each chunk (for the backward)


class _BackwardOutputs(NamedTuple):
  """Outputs of :func:`_backward_kernel`: arrays (shapes below), their specs, or a kernel's refs."""

  du: Any  # (b, l, d)
  d_delta: Any  # (b, l, d)
  dA: Any  # (b, S, d, n) per (batch, segment)
  dB: Any  # (b, ceil(d / bd), l, n) per d-block
  dC: Any  # (b, ceil(d / bd), l, n) per d-block
  dD: Any  # (b, S, d) per (batch, segment)
  d_bias: Any  # (b, S, d) per (batch, segment)
  g_start: Any  # (b, S, d, n), the adjoint entering each segment (from its start)
  dz: Any = None  # (b, l, d)


class _Program:
  """One (batch, d-block, segment) program: its channel mask, A, bias and chunks."""

  def __init__(self, cfg: _KernelConfig, ins: _ScanInputs):
    self.cfg = cfg
    self.ins = ins
    d_index = pl.program_id(1) * cfg.block_d + jnp.arange(cfg.block_d)
    self.d_mask = d_index < cfg.channels
    self.A = self.load_state(ins.A)
    self.bias = self.load_d_vector(ins.bias)
    # First chunk of the segment and its number of chunks.
    if cfg.num_segments == 1:
      self.first_chunk, self.num_chunks = 0, cfg.num_chunks  # Static: a plain counted loop.
    else:
      self.first_chunk = pl.program_id(2) * cfg.chunks_per_segment
      self.num_chunks = jnp.minimum(cfg.chunks_per_segment, cfg.num_chunks - self.first_chunk)

  def token(self, chunk, s) -> "_Token":
    """Token s of the given chunk."""
    return _Token(self, chunk * self.cfg.chunk_size + s)

  def load_d_vector(self, ref):
    return plgpu.load(ref, mask=self.d_mask, other=0).astype(jnp.float32)

  def load_state(self, ref):
    return plgpu.load(ref, mask=self.d_mask[:, None], other=0).astype(jnp.float32)

  def store_state(self, ref, h):
    plgpu.store(ref, h.astype(ref.dtype), mask=self.d_mask[:, None])


class _Token:
  """What the kernels read for token t of one program; loaded on first use."""

  def __init__(self, prog: _Program, t):
    self._prog = prog
    self.valid = t < prog.cfg.length
    # Clamped so that even masked-off reads stay inside the arrays.
    self.row = jnp.minimum(t, prog.cfg.length - 1)
    self.store_mask = prog.d_mask & self.valid

  def _load_d_row(self, ref):
    return plgpu.load(ref.at[self.row, :], mask=self._prog.d_mask, other=0).astype(jnp.float32)

  @functools.cached_property
  def u(self):
    return self._load_d_row(self._prog.ins.u)

  @functools.cached_property
  def delta_in(self):
    """delta + bias, before the softplus."""
    return self._load_d_row(self._prog.ins.delta) + self._prog.bias

  @functools.cached_property
  def delta(self):
    delta = _softplus(self.delta_in) if self._prog.cfg.delta_softplus else self.delta_in
    # delta = 0 makes a masked token the identity step: exp(0 A) = 1, no input.
    return jnp.where(self.store_mask, delta, 0.0)

  @functools.cached_property
  def B(self):
    return self._prog.ins.B[self.row, :].astype(jnp.float32)

  @functools.cached_property
  def C(self):
    return self._prog.ins.C[self.row, :].astype(jnp.float32)

  @functools.cached_property
  def z(self):
    return self._load_d_row(self._prog.ins.z)

  @functools.cached_property
  def decay(self):
    return jnp.exp(self.delta[:, None] * self._prog.A)  # (bd, n)

  def advance(self, h):
    """The state after this token, from the state before it. (bd, n)."""
    return self.decay * h + (self.delta * self.u)[:, None] * self.B[None, :]

  def output_grads(self, d_out_ref):
    """d loss / d out (float32) and d loss / d y (before the gate) of this token."""
    d_out = plgpu.load(d_out_ref.at[self.row, :], mask=self.store_mask, other=0)
    d_out = d_out.astype(jnp.float32)
    return d_out, (d_out * self.z * _sigmoid(self.z) if self._prog.cfg.has_z else d_out)


def _forward_chunks(prog: _Program, h, carry, step, chunk_start=None):
  """Walks the program's segment forwards from state h, a chunk per loop step.

  After every token ``carry = step(tok, h, carry)`` with h the state after it;
  ``chunk_start(chunk, h)``, if given, sees the state entering every chunk.
  Returns the final (h, carry).
  """
  cfg = prog.cfg

  def chunk_body(k, state):
    h, carry = state
    chunk = prog.first_chunk + k
    if chunk_start is not None:
      chunk_start(chunk, h)
    for s in range(cfg.chunk_size):
      tok = prog.token(chunk, s)
      h = tok.advance(h)
      carry = step(tok, h, carry)
    return h, carry

  return jax.lax.fori_loop(0, prog.num_chunks, chunk_body, (h, carry))


def _reverse_chunks(prog: _Program, body, carry):
  """Runs ``carry = body(chunk, carry)`` over the program's chunks, last chunk first."""

  def chunk_body(k, carry):
    return body(prog.first_chunk + prog.num_chunks - 1 - k, carry)

  return jax.lax.fori_loop(0, prog.num_chunks, chunk_body, carry)


# ---------------------------------------------------------------- forward kernels


def _forward_summary_kernel(ins: _ScanInputs, h_end_ref, delta_sum_ref, *, cfg: _KernelConfig):
  """Pass 1 of a segmented forward: one (batch, d-block, segment) program.

  Scans the segment from a zero state; outputs its end state h_end (bd, n) and
  its sum of delta (bd,) (the segment's decay is exp(A * sum)).
  """
  prog = _Program(cfg, ins)
  h, delta_sum = _forward_chunks(
      prog, jnp.zeros_like(prog.A), jnp.zeros((cfg.block_d,), jnp.float32),
      lambda tok, h, delta_sum: delta_sum + tok.delta)
  prog.store_state(h_end_ref, h)
  plgpu.store(delta_sum_ref, delta_sum, mask=prog.d_mask)


def _forward_kernel(ins: _ScanInputs, D_ref, h_start_ref, out_ref, h_end_ref, chunk_states_ref,
                    *, cfg: _KernelConfig):
  """One (batch, d-block, segment) program of the forward scan.

  Refs (batch and segment squeezed): ins; D (bd,); h_start (bd, n), the state
  entering the segment. Scans the segment from h_start; outputs out (l, bd),
  h_end (bd, n) and, unless chunk_states_ref is None, the state entering each
  chunk into chunk_states (c, bd, n).
  """
  prog = _Program(cfg, ins)
  D = prog.load_d_vector(D_ref)

  def output(tok, h, carry):
    y = jnp.sum(h * tok.C[None, :], axis=1) + D * tok.u
    if cfg.has_z:
      y = y * tok.z * _sigmoid(tok.z)
    plgpu.store(out_ref.at[tok.row, :], y.astype(out_ref.dtype), mask=tok.store_mask)
    return carry

  save_chunk_state = None
  if chunk_states_ref is not None:
    save_chunk_state = lambda chunk, h: prog.store_state(chunk_states_ref.at[chunk], h)
  h, _ = _forward_chunks(prog, prog.load_state(h_start_ref), (), output, save_chunk_state)
  prog.store_state(h_end_ref, h)


# ---------------------------------------------------------------- backward kernels
#
# The adjoint g of the state runs backwards: g_{t-1} = exp(delta_t A) g_t +
# dy_{t-1} C_{t-1}, starting from the adjoint of the segment's end state.


def _backward_summary_kernel(ins: _ScanInputs, d_out_ref, g_start_ref, *, cfg: _KernelConfig):
  """Pass 1 of a segmented backward: one (batch, d-block, segment) program.

  Refs (batch and segment squeezed): ins; d_out (l, bd). Outputs only the
  adjoint at the segment start given a zero adjoint at its end, g_start (bd, n).
  """
  prog = _Program(cfg, ins)

  def chunk_body(chunk, g):
    for s in reversed(range(cfg.chunk_size)):
      tok = prog.token(chunk, s)
      _, dy = tok.output_grads(d_out_ref)
      g = (g + dy[:, None] * tok.C[None, :]) * tok.decay
    return g

  prog.store_state(g_start_ref, _reverse_chunks(prog, chunk_body, jnp.zeros_like(prog.A)))


def _backward_kernel(ins: _ScanInputs, d_out_ref, D_ref, chunk_states_ref, g_end_ref,
                     du_ref, d_delta_ref, dA_ref, dB_ref, dC_ref, dD_ref, d_bias_ref, g_start_ref,
                     dz_ref, *, cfg: _KernelConfig):
  """One (batch, d-block, segment) program of the backward scan.

  Refs (batch and segment squeezed): ins; d_out (l, bd); D (bd,); chunk_states
  (c, bd, n); g_end (bd, n), the adjoint leaving the segment. Outputs du,
  d_delta (l, bd); dA partial (bd, n); dB, dC partials (l, n); dD, d_bias
  partials (bd,); g_start (bd, n); dz (l, bd) unless dz_ref is None.
  """
  prog = _Program(cfg, ins)
  A = prog.A
  n = A.shape[1]
  D = prog.load_d_vector(D_ref)

  def chunk_body(chunk, carry):
    g, dA, dD, d_bias = carry  # g: adjoint of the state after the current token.
    # Recompute the chunk's states from its start state.
    tokens, states = [], [prog.load_state(chunk_states_ref.at[chunk])]
    for s in range(cfg.chunk_size):
      tok = prog.token(chunk, s)
      states.append(tok.advance(states[-1]))  # states[s]: before token s.
      tokens.append(tok)
    # Adjoint recurrence, last token first.
    for s in reversed(range(cfg.chunk_size)):
      tok, h_before, h_after = tokens[s], states[s], states[s + 1]
      d_out, dy = tok.output_grads(d_out_ref)
      if cfg.has_z:
        y = jnp.sum(h_after * tok.C[None, :], axis=1) + D * tok.u
        gate_sigmoid = _sigmoid(tok.z)
        dz = d_out * y * gate_sigmoid * (1.0 + tok.z * (1.0 - gate_sigmoid))
        plgpu.store(dz_ref.at[tok.row, :], dz.astype(dz_ref.dtype), mask=tok.store_mask)
      dD = dD + dy * tok.u
      g = g + dy[:, None] * tok.C[None, :]
      row_mask = jnp.broadcast_to(tok.valid, (n,))
      plgpu.store(dC_ref.at[tok.row, :], jnp.sum(dy[:, None] * h_after, axis=0), mask=row_mask)
      x = tok.delta * tok.u
      plgpu.store(dB_ref.at[tok.row, :], jnp.sum(g * x[:, None], axis=0), mask=row_mask)
      dx = jnp.sum(g * tok.B[None, :], axis=1)
      g_decay = g * h_before * tok.decay  # d loss / d (delta * A)
      dA = dA + g_decay * tok.delta[:, None]
      d_delta = jnp.sum(g_decay * A, axis=1) + dx * tok.u
      du = dy * D + dx * tok.delta
      if cfg.delta_softplus:
        d_delta = d_delta * _softplus_grad(tok.delta_in)
      d_delta = jnp.where(tok.store_mask, d_delta, 0.0)
      d_bias = d_bias + d_delta
      plgpu.store(du_ref.at[tok.row, :], du.astype(du_ref.dtype), mask=tok.store_mask)
      plgpu.store(d_delta_ref.at[tok.row, :], d_delta.astype(d_delta_ref.dtype),
                  mask=tok.store_mask)
      g = g * tok.decay
    return g, dA, dD, d_bias

  zeros_d = jnp.zeros((cfg.block_d,), jnp.float32)
  g, dA, dD, d_bias = _reverse_chunks(
      prog, chunk_body, (prog.load_state(g_end_ref), jnp.zeros_like(A), zeros_d, zeros_d))
  prog.store_state(g_start_ref, g)
  prog.store_state(dA_ref, dA)
  plgpu.store(dD_ref, dD, mask=prog.d_mask)
  plgpu.store(d_bias_ref, d_bias, mask=prog.d_mask)


# ---------------------------------------------------------------- pallas_call wrappers


def _specs(cfg: _KernelConfig, n: int):
  """BlockSpecs by the role of an array, for the grid (b, d-blocks, segments)."""
  l, bd, c = cfg.length, cfg.block_d, cfg.num_chunks
  return dict(
      seq_d=pl.BlockSpec((None, l, bd), lambda i, j, s: (i, 0, j)),
      seq_n=pl.BlockSpec((None, l, n), lambda i, j, s: (i, 0, 0)),
      d_n=pl.BlockSpec((bd, n), lambda i, j, s: (j, 0)),
      d=pl.BlockSpec((bd,), lambda i, j, s: (j,)),
      # Per (batch, segment) arrays: (b, S, d, n) and (b, S, d).
      segment_state=pl.BlockSpec((None, None, bd, n), lambda i, j, s: (i, s, j, 0)),
      segment_d=pl.BlockSpec((None, None, bd), lambda i, j, s: (i, s, j)),
      chunk_states=pl.BlockSpec((None, c, bd, n), lambda i, j, s: (i, 0, j, 0)),
      seq_n_partial=pl.BlockSpec((None, None, l, n), lambda i, j, s: (i, j, 0, 0)),
  )


def _call(kernel, cfg: _KernelConfig, b, in_specs, out_specs, out_shape, name):
  return pl.pallas_call(
      kernel,
      out_shape=out_shape,
      grid=(b, cfg.num_d_blocks, cfg.num_segments),
      in_specs=in_specs,
      out_specs=out_specs,
      interpret=cfg.interpret,
      name=name,
      compiler_params=None if cfg.interpret else plgpu.CompilerParams(
          num_warps=cfg.num_warps, num_stages=cfg.num_stages),
  )


def _chain_segments(decay, offset, start):
  """Applies the per-segment affine maps h -> decay[:, s] * h + offset[:, s] in order.

  Args:
    decay, offset: (b, S, d, n).
    start: (b, d, n) the value entering segment 0.

  Returns:
    entering: (b, S, d, n) the value entering each segment; leaving: (b, d, n)
    the value leaving the last one.
  """
  offset = offset.at[:, 0].add(decay[:, 0] * start)
  _, leaving = jax.lax.associative_scan(linear_recurrence_combine, (decay, offset), axis=1)
  return jnp.concatenate([start[:, None], leaving[:, :-1]], axis=1), leaving[:, -1]


def _segment_decay(A, delta_sum):
  """(b, S, d, n) decay over each segment, exp(A * sum of delta)."""
  return jnp.exp(delta_sum[..., None] * A)


def _scan_inputs(sp, u, delta, A, B, C, bias, z):
  """The inputs every kernel reads and their BlockSpecs."""
  specs = _ScanInputs(u=sp["seq_d"], delta=sp["seq_d"], A=sp["d_n"], B=sp["seq_n"],
                      C=sp["seq_n"], bias=sp["d"], z=None if z is None else sp["seq_d"])
  return _ScanInputs(u, delta, A, B, C, bias, z), specs


def _forward(cfg: _KernelConfig, u, delta, A, B, C, D, bias, h0, z, save_chunk_states):
  """Returns out (b, l, d), h_last (b, d, n), chunk_states or None, delta_sum or None."""
  b, l, d = u.shape
  n = A.shape[1]
  S = cfg.num_segments
  sp = _specs(cfg, n)
  ins, in_specs = _scan_inputs(sp, u, delta, A, B, C, bias, z)
  f32 = jnp.float32
  delta_sum = None
  if S == 1:
    h_start = h0[:, None]
  else:
    # Pass 1: every segment from a zero state, in parallel; then chain them.
    h_end0, delta_sum = _call(
        functools.partial(_forward_summary_kernel, cfg=cfg), cfg, b, (in_specs,),
        (sp["segment_state"], sp["segment_d"]),
        (jax.ShapeDtypeStruct((b, S, d, n), f32), jax.ShapeDtypeStruct((b, S, d), f32)),
        "selective_scan_fwd_segments")(ins)
    h_start, _ = _chain_segments(_segment_decay(A, delta_sum), h_end0, h0)
  out_shape = _ForwardOutputs(
      out=jax.ShapeDtypeStruct((b, l, d), u.dtype),
      h_end=jax.ShapeDtypeStruct((b, S, d, n), f32),
      chunk_states=jax.ShapeDtypeStruct((b, cfg.num_chunks, d, n), f32)
      if save_chunk_states else None)
  out_specs = _ForwardOutputs(
      out=sp["seq_d"], h_end=sp["segment_state"],
      chunk_states=sp["chunk_states"] if save_chunk_states else None)
  outs = _call(
      functools.partial(_forward_kernel, cfg=cfg), cfg, b,
      (in_specs, sp["d"], sp["segment_state"]), out_specs, out_shape,
      "selective_scan_fwd")(ins, D, h_start)
  return outs.out, outs.h_end[:, -1], outs.chunk_states, delta_sum


def _backward(cfg: _KernelConfig, u, delta, A, B, C, D, bias, z, chunk_states, delta_sum,
              d_out, d_h_last):
  b, l, d = u.shape
  n = A.shape[1]
  S = cfg.num_segments
  nd = cfg.num_d_blocks
  sp = _specs(cfg, n)
  ins, in_specs = _scan_inputs(sp, u, delta, A, B, C, bias, z)
  f32 = jnp.float32
  if S == 1:
    g_end = d_h_last[:, None]
  else:
    # Pass 1: the adjoint at each segment start from a zero adjoint at its end;
    # then chain the segments from the last one backwards.
    g_start0 = _call(
        functools.partial(_backward_summary_kernel, cfg=cfg), cfg, b, (in_specs, sp["seq_d"]),
        sp["segment_state"], jax.ShapeDtypeStruct((b, S, d, n), f32),
        "selective_scan_bwd_segments")(ins, d_out)
    flip = lambda x: jnp.flip(x, axis=1)
    g_end_reversed, _ = _chain_segments(
        flip(_segment_decay(A, delta_sum)), flip(g_start0), d_h_last)
    g_end = flip(g_end_reversed)
  out_shape = _BackwardOutputs(
      du=jax.ShapeDtypeStruct((b, l, d), u.dtype),
      d_delta=jax.ShapeDtypeStruct((b, l, d), delta.dtype),
      dA=jax.ShapeDtypeStruct((b, S, d, n), f32),
      dB=jax.ShapeDtypeStruct((b, nd, l, n), f32),
      dC=jax.ShapeDtypeStruct((b, nd, l, n), f32),
      dD=jax.ShapeDtypeStruct((b, S, d), f32),
      d_bias=jax.ShapeDtypeStruct((b, S, d), f32),
      g_start=jax.ShapeDtypeStruct((b, S, d, n), f32),
      dz=None if z is None else jax.ShapeDtypeStruct((b, l, d), z.dtype))
  out_specs = _BackwardOutputs(
      du=sp["seq_d"], d_delta=sp["seq_d"], dA=sp["segment_state"], dB=sp["seq_n_partial"],
      dC=sp["seq_n_partial"], dD=sp["segment_d"], d_bias=sp["segment_d"],
      g_start=sp["segment_state"], dz=None if z is None else sp["seq_d"])
  g = _call(
      functools.partial(_backward_kernel, cfg=cfg), cfg, b,
      (in_specs, sp["seq_d"], sp["d"], sp["chunk_states"], sp["segment_state"]), out_specs,
      out_shape, "selective_scan_bwd")(ins, d_out, D, chunk_states, g_end)
  return (g.du, g.d_delta, g.dA.sum((0, 1)), g.dB.sum(1), g.dC.sum(1), g.dD.sum((0, 1)),
          g.d_bias.sum((0, 1)), g.g_start[:, 0], g.dz)


@functools.partial(jax.custom_vjp, nondiff_argnums=(0,))
def _scan(cfg, u, delta, A, B, C, D, bias, h0, z):
  out, h_last, _, _ = _forward(cfg, u, delta, A, B, C, D, bias, h0, z, save_chunk_states=False)
  return out, h_last


def _scan_fwd(cfg, u, delta, A, B, C, D, bias, h0, z):
  out, h_last, chunk_states, delta_sum = _forward(
      cfg, u, delta, A, B, C, D, bias, h0, z, save_chunk_states=True)
  return (out, h_last), (u, delta, A, B, C, D, bias, h0, z, chunk_states, delta_sum)


def _scan_bwd(cfg, residuals, cotangents):
  u, delta, A, B, C, D, bias, h0, z, chunk_states, delta_sum = residuals
  d_out, d_h_last = cotangents
  du, d_delta, dA, dB, dC, dD, d_bias, d_h0, dz = _backward(
      cfg, u, delta, A, B, C, D, bias, z, chunk_states, delta_sum, d_out.astype(u.dtype),
      d_h_last.astype(jnp.float32))
  cast = lambda g, like: None if like is None else g.astype(like.dtype)
  return (cast(du, u), cast(d_delta, delta), cast(dA, A), cast(dB, B), cast(dC, C),
          cast(dD, D), cast(d_bias, bias), cast(d_h0, h0), cast(dz, z))


_scan.defvjp(_scan_fwd, _scan_bwd)


# ---------------------------------------------------------------- public API


def default_interpret() -> bool:
  """Interpret mode everywhere but on GPUs (the kernels are written for Triton)."""
  return jax.default_backend() != "gpu"


# Programs wanted in flight: a few per streaming multiprocessor of an H100
# (132 SMs). Below this, long sequences are cut into segments.
_TARGET_PROGRAMS = 1024


def auto_num_segments(b: int, l: int, d: int, chunk_size: int = DEFAULT_CHUNK_SIZE,
                      block_d: int = DEFAULT_BLOCK_D) -> int:
  """Segments so that b * ceil(d / block_d) * segments reaches ~_TARGET_PROGRAMS.

  Segmenting doubles the scan work, so it is used only when the (batch,
  d-block) grid alone leaves the GPU idle, and each segment keeps at least 8
  chunks.
  """
  programs = b * pl.cdiv(d, block_d)
  if programs * 2 > _TARGET_PROGRAMS:
    return 1
  max_segments = max(1, pl.cdiv(l, chunk_size) // 8)
  return int(min(max_segments, pl.cdiv(_TARGET_PROGRAMS, programs)))


def _pad_state_dim(x: Optional[Array], axis: int, n_padded: int) -> Optional[Array]:
  if x is None or x.shape[axis] == n_padded:
    return x
  widths = [(0, 0)] * x.ndim
  widths[axis] = (0, n_padded - x.shape[axis])
  return jnp.pad(x, widths)


def selective_scan_pallas(
    u: Array, delta: Array, A: Array, B: Array, C: Array, D: Optional[Array] = None, *,
    z: Optional[Array] = None, delta_bias: Optional[Array] = None, delta_softplus: bool = False,
    initial_state: Optional[Array] = None, return_state: bool = False,
    chunk_size: int = DEFAULT_CHUNK_SIZE, block_d: int = DEFAULT_BLOCK_D,
    num_segments: Optional[int] = None, num_warps: int = 4, num_stages: Optional[int] = None,
    interpret: Optional[bool] = None,
):
  """The selective scan as fused Pallas kernels (differentiable).

  Args:
    u: (b, l, d) input, float32 or bfloat16.
    delta: (b, l, d) step sizes (before ``delta_bias`` / softplus).
    A: (d, n) state matrix (negative reals).
    B: (b, l, n) input matrix.
    C: (b, l, n) output matrix.
    D: optional (d,) skip connection.
    z: optional (b, l, d) gate: the output is multiplied by silu(z).
    delta_bias: optional (d,) added to delta before the softplus.
    delta_softplus: apply softplus to delta (+ bias).
    initial_state: optional (b, d, n) state before the first token (zeros).
    return_state: also return the final state.
    chunk_size: tokens per chunk q (a power of 2); the backward keeps the state
      at every chunk start, (b, ceil(l/q), d, n) float32.
    block_d: channels per program (a power of 2).
    num_segments: cut the sequence into this many segments scanned in
      parallel (two passes: segment summaries from a zero state, chained
      outside the kernel, then the full scan of every segment from its true
      start state). More parallelism for long l and small b * d / block_d at
      about twice the scan work. None: :func:`auto_num_segments`.
    num_warps: Triton warps per program (GPU only).
    num_stages: Triton software-pipelining stages of the chunk loop (GPU
      only); None: Pallas' default.
    interpret: run in Pallas interpret mode; None = unless the backend is GPU.

  Returns:
    out: (b, l, d) in u's dtype; with ``return_state`` the pair (out, h_last)
    with h_last (b, d, n) float32.
  """
  if u.ndim != 3 or delta.shape != u.shape:
    raise ValueError(f"u and delta must both be (b, l, d); got {u.shape} and {delta.shape}.")
  b, l, d = u.shape
  if A.ndim != 2 or A.shape[0] != d:
    raise ValueError(f"A must be (d, n) = ({d}, n); got {A.shape}.")
  n = A.shape[1]
  for name, x in (("B", B), ("C", C)):
    if x.shape != (b, l, n):
      raise ValueError(f"{name} must be (b, l, n) = {(b, l, n)}; got {x.shape}.")
  for name, x in (("D", D), ("delta_bias", delta_bias)):
    if x is not None and x.shape != (d,):
      raise ValueError(f"{name} must be (d,) = ({d},); got {x.shape}.")
  if z is not None and z.shape != u.shape:
    raise ValueError(f"z must be (b, l, d) = {u.shape}; got {z.shape}.")
  if initial_state is not None and initial_state.shape != (b, d, n):
    raise ValueError(f"initial_state must be (b, d, n) = {(b, d, n)}; got {initial_state.shape}.")
  if not (_is_power_of_2(chunk_size) and _is_power_of_2(block_d)):
    raise ValueError(f"chunk_size and block_d must be powers of 2; got {chunk_size}, {block_d}.")
  if l == 0:
    raise ValueError("The sequence length l must be at least 1.")

  if interpret is None:
    interpret = default_interpret()
  num_chunks = pl.cdiv(l, chunk_size)
  if num_segments is None:
    num_segments = 1 if interpret else auto_num_segments(b, l, d, chunk_size, block_d)
  if num_segments < 1:
    raise ValueError(f"num_segments must be at least 1; got {num_segments}.")
  cfg = _KernelConfig(
      length=l, channels=d, chunk_size=chunk_size, block_d=block_d,
      chunks_per_segment=pl.cdiv(num_chunks, min(num_segments, num_chunks)),
      delta_softplus=bool(delta_softplus), has_z=z is not None, interpret=bool(interpret),
      num_warps=num_warps, num_stages=num_stages)
  # Triton tensors have power-of-2 sizes: pad the state dimension with A = B =
  # C = h0 = 0, which leaves the extra state entries at 0 and out unchanged.
  n_padded = pl.next_power_of_2(n)
  A_p, B_p, C_p = (_pad_state_dim(x, x.ndim - 1, n_padded) for x in (A, B, C))
  D_ = jnp.zeros((d,), jnp.float32) if D is None else D
  bias = jnp.zeros((d,), jnp.float32) if delta_bias is None else delta_bias
  h0 = jnp.zeros((b, d, n), jnp.float32) if initial_state is None else initial_state
  out, h_last = _scan(cfg, u, delta, A_p, B_p, C_p, D_, bias,
                      _pad_state_dim(h0, 2, n_padded), z)
  h_last = h_last[:, :, :n]
  return (out, h_last) if return_state else out


def fused_selective_scan(
    u: Array, delta: Array, A: Array, B: Array, C: Array, D: Optional[Array], *,
    mask: Optional[Array], h0: Array, z: Optional[Array], delta_bias: Optional[Array],
    delta_softplus: bool,
):
  """``method="pallas"`` of :func:`mamba_jax.scan.selective_scan`: all of it in the kernel.

  The kernel reads u, delta, z, B and C in their own dtype and accumulates in
  float32 itself (casting bfloat16 inputs first would double its traffic); D,
  delta_bias, softplus and the SiLU(z) gate are applied inside it. A masked
  step is the identity: its delta becomes 0, or, when the softplus is fused,
  the most negative finite value of delta's dtype (softplus of it is exactly 0
  in float32, and so is its gradient). Masked outputs are set to 0.

  Args: as :func:`mamba_jax.scan.selective_scan`, with h0 (b, d, n) the state
    before the first token.

  Returns:
    y (b, l, d) in u's dtype and h_last (b, d, n) float32.
  """
  if mask is not None:
    identity = jnp.finfo(delta.dtype).min if delta_softplus else 0
    delta = jnp.where(jnp.asarray(mask, bool)[..., None], delta, jnp.asarray(identity, delta.dtype))
  y, h_last = selective_scan_pallas(
      u, delta, jnp.asarray(A, jnp.float32), B, C, D, z=z, delta_bias=delta_bias,
      delta_softplus=delta_softplus, initial_state=jnp.asarray(h0, jnp.float32),
      return_state=True)
  if mask is not None:
    y = y * jnp.asarray(mask, y.dtype)[..., None]
  return y, h_last
