"""The Mamba-2 mixer (``mamba2_simple.Mamba2`` / transformers' ``Mamba2Mixer``) as a thin Flax wrapper.

Axes (``mamba_jax.notation``): b, l, m, d, h, p, g, n, k.

    x (b, l, m) -> in_proj -> z (b, l, d), xBC (b, l, d + 2 g n), dt (b, l, h)
    xBC -> causal depthwise conv -> SiLU -> x (b, l, h, p), B, C (b, l, g, n)

(in_proj and the conv compute x, B and C as separate arrays, with slices of the same parameters:
see :class:`BlockDense`.)
    y = ssd_scan(x, dt, A = -exp(A_log), B, C, D, dt_bias, softplus, dt_limit)   (b, l, h, p)
    out = out_proj(GatedRMSNorm(y * SiLU(z)))                                      (b, l, m)

What changes from Mamba-1 (:mod:`mamba_jax.mixer`): A is one scalar per head instead of a
(d, n) matrix, so the scan becomes matmuls (:mod:`mamba_jax.scan.ssd`); B, C and dt come from
in_proj directly (no x_proj / dt_proj), and B and C go through the conv with x; the gate is
applied inside a grouped RMSNorm (``norm_before_gate=False``) before out_proj.

Initialization as the reference: A_log = log(U[1, 16]) per head, softplus(dt_bias) log-uniform
in [dt_min, dt_max] floored at dt_init_floor, D = 1, the norm's scale 1, PyTorch's default
Linear/Conv1d init elsewhere (out_proj scaled by 1/sqrt(n_layers), as ``MambaLMHeadModel``).
"""

from __future__ import annotations

import math
from typing import Callable, Optional, Tuple

import chex
import jax
import jax.numpy as jnp
from flax import linen as nn

from mamba_jax import initializers as inits
from mamba_jax.config import MambaConfig
from mamba_jax.conv import causal_conv_step, causal_depthwise_conv, last_inputs_window
from mamba_jax.mixer import LayerCache
from mamba_jax.ssm import ssd_scan, ssd_step

Array = jax.Array


class GatedRMSNorm(nn.Module):
  """RMSNorm of y * SiLU(z) over groups of ``group_size`` channels, times a learned scale (d,).

  ``RMSNormGated(norm_before_gate=False, group_size=d / g)`` of state-spaces; with one group
  it is transformers' ``MambaRMSNormGated``. Computed in float32, returned in ``dtype``.
  """

  group_size: int
  epsilon: float
  dtype: jnp.dtype

  @nn.compact
  def __call__(self, y: Array, z: Array) -> Array:
    """y, z (..., d) -> (..., d)."""
    scale = self.param("scale", inits.ones, (y.shape[-1],), jnp.float32)
    gated = y.astype(jnp.float32) * jax.nn.silu(z.astype(jnp.float32))
    grouped = gated.reshape(gated.shape[:-1] + (-1, self.group_size))
    grouped = grouped * jax.lax.rsqrt(jnp.mean(grouped * grouped, axis=-1, keepdims=True) + self.epsilon)
    return (grouped.reshape(gated.shape) * scale).astype(self.dtype)


class BlockDense(nn.Module):
  """``nn.Dense`` (same parameters: kernel (m, sum(sizes)), optional bias) returning its output
  column blocks of ``sizes`` as separate arrays, each its own matmul with a slice of the kernel.

  Slicing one wide output instead costs a copy per block forward and a pad-and-add per block
  backward, which on XLA's CPU backend cost more than the matmul itself; each block's backward
  materializes its gradient first (:func:`matmul_materialized_grad`).
  """

  sizes: Tuple[int, ...]
  use_bias: bool
  dtype: jnp.dtype
  kernel_init: Callable = inits.torch_linear_kernel()

  @nn.compact
  def __call__(self, x: Array) -> Tuple[Array, ...]:
    """x (..., m) -> one (..., size) array per entry of ``sizes``, in ``dtype``."""
    total = sum(self.sizes)
    kernel = self.param("kernel", self.kernel_init, (x.shape[-1], total), jnp.float32)
    bias = self.param("bias", inits.zeros, (total,), jnp.float32) if self.use_bias else None
    x = x.astype(self.dtype)
    blocks, start = [], 0
    for size in self.sizes:
      block = matmul_materialized_grad(x, kernel[:, start:start + size].astype(self.dtype))
      if bias is not None:
        block = block + bias[start:start + size].astype(self.dtype)
      blocks.append(block)
      start += size
    return tuple(blocks)


@jax.custom_vjp
def matmul_materialized_grad(x: Array, kernel: Array) -> Array:
  """x (..., m) @ kernel (m, k); its backward first materializes the incoming gradient dy.

  Without that (an ``optimization_barrier``), XLA's CPU backend fuses the whole elementwise
  chain that produces dy (gated norm, SSD skip, SiLU and conv backward) into the transposed
  copy that feeds the kernel's gradient and evaluates it in column order, a slower training step
  (DESIGN.md). Same math, same result.
  """
  return jnp.dot(x, kernel)


def _matmul_fwd(x, kernel):
  return jnp.dot(x, kernel), (x, kernel)


def _matmul_bwd(residuals, dy):
  x, kernel = residuals
  dy = jax.lax.optimization_barrier(dy)
  dx = jnp.dot(dy, kernel.T)
  dk = jnp.einsum("...m,...k->mk", x, dy)
  return dx, dk


matmul_materialized_grad.defvjp(_matmul_fwd, _matmul_bwd)


def a_log_init(key, shape, dtype=jnp.float32):
  """A_log (h,) = log(U[1, 16]) (``A_init_range`` of the reference), so A = -exp(A_log) in [-16, -1]."""
  return jnp.log(jax.random.uniform(key, shape, jnp.float32, 1.0, 16.0)).astype(dtype)


class Mamba2Mixer(nn.Module):
  """SSD mixer; see the module docstring for the data flow. Same interface as ``MambaMixer``."""

  config: MambaConfig

  @staticmethod
  def zero_cache(config: MambaConfig, batch_size: int) -> LayerCache:
    """The layer's state before any token: conv window (b, k-1, d + 2 g n), SSM state (b, h, p, n)."""
    conv_dim = config.d_inner + 2 * config.n_groups * config.d_state
    return LayerCache(
        conv_window=jnp.zeros((batch_size, config.d_conv - 1, conv_dim), config.dtype),
        ssm_state=jnp.zeros((batch_size, config.num_heads, config.head_dim, config.d_state), jnp.float32),
    )

  def setup(self):
    cfg = self.config
    d, h, g, n = cfg.d_inner, cfg.num_heads, cfg.n_groups, cfg.d_state
    conv_dim = d + 2 * g * n
    # in_proj's output is (z, x, B, C, dt): the reference's (z, xBC, dt) with xBC cut in three.
    self.in_proj = BlockDense(sizes=(d, d, g * n, g * n, h), use_bias=cfg.bias, dtype=cfg.dtype)
    self.conv_kernel = self.param("conv_kernel", inits.torch_linear_kernel(), (cfg.d_conv, conv_dim))
    self.conv_bias = (self.param("conv_bias", inits.uniform_fan_in_bias(cfg.d_conv), (conv_dim,))
                      if cfg.conv_bias else None)
    self.dt_bias = self.param("dt_bias", inits.dt_bias(cfg.dt_min, cfg.dt_max, cfg.dt_init_floor), (h,))
    self.A_log = self.param("A_log", a_log_init, (h,))
    self.D = self.param("D", inits.ones, (h,))
    self.norm = GatedRMSNorm(group_size=d // g, epsilon=cfg.norm_epsilon, dtype=cfg.dtype)
    self.out_proj = nn.Dense(cfg.d_model, use_bias=cfg.bias, dtype=cfg.dtype, param_dtype=jnp.float32,
                             kernel_init=inits.torch_linear_kernel(1.0 / math.sqrt(cfg.n_layers)),
                             bias_init=inits.zeros)

  def _conv_blocks(self):
    """(kernel (k, width), bias (width,) or None) of the conv's x, B and C channels."""
    cfg = self.config
    d, gn = cfg.d_inner, cfg.n_groups * cfg.d_state
    blocks = []
    for start, width in ((0, d), (d, gn), (d + gn, gn)):
      bias = None if self.conv_bias is None else self.conv_bias[start:start + width]
      blocks.append((self.conv_kernel[:, start:start + width], bias))
    return blocks

  def _heads(self, x: Array, B: Array, C: Array) -> Tuple[Array, Array, Array]:
    """Conv outputs x (..., d), B and C (..., g n) -> x (..., h, p), B and C (..., g, n)."""
    cfg = self.config
    lead = x.shape[:-1]
    return (x.reshape(lead + (cfg.num_heads, cfg.head_dim)), B.reshape(lead + (cfg.n_groups, cfg.d_state)),
            C.reshape(lead + (cfg.n_groups, cfg.d_state)))

  def __call__(self, x: Array, mask: Array, return_cache: bool = False) -> Tuple[Array, Optional[LayerCache]]:
    """Parallel forward.

    Args:
      x: (b, l, m) normalized inputs.
      mask: (b, l) 0/1, right padding. Padded positions neither feed the conv nor move the state.
      return_cache: also return the :class:`LayerCache` after the last real token of each row.

    Returns:
      (out (b, l, m), cache or None).
    """
    cfg = self.config
    chex.assert_rank([x, mask], [3, 2])
    chex.assert_equal_shape_prefix([x, mask], 2)
    z, *conv_inputs, dt = self.in_proj(x)
    conv_inputs = [t * mask[..., None].astype(t.dtype) for t in conv_inputs]  # x, B, C.
    xs, B, C = self._heads(*(jax.nn.silu(causal_depthwise_conv(t, kernel, bias))
                             for t, (kernel, bias) in zip(conv_inputs, self._conv_blocks())))
    scanned = ssd_scan(
        xs, dt, -jnp.exp(self.A_log), B, C, self.D, mask=mask, dt_bias=self.dt_bias, dt_softplus=True,
        dt_limit=cfg.dt_limit, return_state=return_cache, chunk_size=cfg.chunk_size, method=cfg.scan_method)
    y, h_last = scanned if return_cache else (scanned, None)
    out = self.out_proj(self.norm(y.reshape(z.shape), z))
    if not return_cache:
      return out, None
    lengths = jnp.sum(mask.astype(jnp.int32), axis=1)
    window = last_inputs_window(jnp.concatenate(conv_inputs, axis=-1), lengths, cfg.d_conv - 1)
    return out, LayerCache(conv_window=window, ssm_state=h_last)

  def step(self, x_t: Array, cache: LayerCache) -> Tuple[Array, LayerCache]:
    """One token of recurrent inference: x_t (b, m) and the cache before it -> (out (b, m), cache)."""
    cfg = self.config
    chex.assert_rank(x_t, 2)
    z, *conv_inputs, dt = self.in_proj(x_t)
    conv_out, window = causal_conv_step(cache.conv_window, jnp.concatenate(conv_inputs, axis=-1),
                                        self.conv_kernel, self.conv_bias)
    d, gn = cfg.d_inner, cfg.n_groups * cfg.d_state
    conv_out = jax.nn.silu(conv_out)
    xs, B, C = self._heads(conv_out[..., :d], conv_out[..., d:d + gn], conv_out[..., d + gn:])
    y, state = ssd_step(cache.ssm_state, xs, dt, -jnp.exp(self.A_log), B, C, self.D, dt_bias=self.dt_bias,
                        dt_softplus=True, dt_limit=cfg.dt_limit)
    out = self.out_proj(self.norm(y.reshape(z.shape), z))
    return out, LayerCache(conv_window=window.astype(cfg.dtype), ssm_state=state)
