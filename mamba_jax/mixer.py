"""The Mamba mixer block (``mamba_simple.Mamba``) as a thin Flax wrapper.

Axes (``mamba_jax.notation``): b, l, d, n, k, m, r.

    x (b, l, m) -> in_proj -> u, z (b, l, d)
    u -> causal depthwise conv -> SiLU -> x_proj -> (dt (b, l, r), B, C (b, l, n))
    delta = softplus(dt_proj(dt))                              (b, l, d)
    y = selective_scan(u, delta, A = -exp(A_log), B, C, D) * SiLU(z)   (b, l, d)
    out = out_proj(y)                                                   (b, l, m)

Every scan method is handed the same inputs: the raw ``dt @ dt_proj.kernel``,
``delta_bias = dt_proj.bias`` and z; each applies the softplus, the bias and the
SiLU(z) gate itself (in float32, the accumulation dtype, before casting y to the
activation dtype), so the mixer never asks which method runs. The fused Pallas
kernel (as the reference's CUDA kernel) never writes delta or the gate to memory.

The same parameters serve the parallel forward (``__call__``, optionally
returning the cache a prompt leaves behind) and recurrent inference
(``step``), which carries a :class:`LayerCache` per layer.
"""

from __future__ import annotations

import functools
import math
from typing import Callable, NamedTuple, Optional, Tuple

import chex
import jax
import jax.numpy as jnp
from flax import linen as nn

from mamba_jax import initializers as inits
from mamba_jax.config import MambaConfig
from mamba_jax.conv import causal_conv_step, causal_depthwise_conv, last_inputs_window
from mamba_jax.ssm import selective_scan, selective_scan_step

Array = jax.Array


class LayerCache(NamedTuple):
  """Recurrent state of one mixer (Mamba-1 or Mamba-2): what the next token needs."""

  conv_window: Array  # (b, k-1, conv channels) last conv inputs, oldest first.
  ssm_state: Array  # float32: (b, d, n) for Mamba-1, (b, h, p, n) for Mamba-2.


class DeltaProjection(nn.Module):
  """dt_proj: (..., r) -> (..., d) in float32, with its bias returned apart for fused scans.

  The same parameters (kernel (r, d), bias (d,)) and math as ``nn.Dense``.
  """

  features: int
  kernel_init: Callable
  bias_init: Callable

  @nn.compact
  def __call__(self, dt: Array) -> Tuple[Array, Array]:
    """Returns (dt @ kernel (..., d) float32, bias (d,)); delta = softplus of their sum."""
    kernel = self.param("kernel", self.kernel_init, (dt.shape[-1], self.features), jnp.float32)
    bias = self.param("bias", self.bias_init, (self.features,), jnp.float32)
    return jnp.dot(dt.astype(jnp.float32), kernel), bias


class MambaMixer(nn.Module):
  """Selective SSM mixer; see the module docstring for the data flow."""

  config: MambaConfig

  @staticmethod
  def zero_cache(config: MambaConfig, batch_size: int) -> LayerCache:
    """The layer's state before any token: conv window (b, k-1, d), SSM state (b, d, n)."""
    return LayerCache(
        conv_window=jnp.zeros((batch_size, config.d_conv - 1, config.d_inner), config.dtype),
        ssm_state=jnp.zeros((batch_size, config.d_inner, config.d_state), jnp.float32),
    )

  def setup(self):
    cfg = self.config
    d, n, r = cfg.d_inner, cfg.d_state, cfg.resolved_dt_rank
    dense = functools.partial(
        nn.Dense, dtype=cfg.dtype, param_dtype=jnp.float32, bias_init=inits.zeros
    )
    self.in_proj = dense(2 * d, use_bias=cfg.bias, kernel_init=inits.torch_linear_kernel())
    if cfg.use_conv:
      # (k, d): fan_in of a depthwise filter is k, as in PyTorch.
      self.conv_kernel = self.param("conv_kernel", inits.torch_linear_kernel(), (cfg.d_conv, d))
      self.conv_bias = (
          self.param("conv_bias", inits.uniform_fan_in_bias(cfg.d_conv), (d,))
          if cfg.conv_bias
          else None
      )
    x_proj_features = (r if cfg.select_delta else 0) + (2 * n if cfg.select_bc else 0)
    if x_proj_features:
      self.x_proj = dense(x_proj_features, use_bias=False, kernel_init=inits.torch_linear_kernel())
    dt_bias_init = inits.dt_bias(cfg.dt_min, cfg.dt_max, cfg.dt_init_floor)
    if cfg.select_delta:
      # delta is computed in float32 whatever the activation dtype: small steps
      # (dt_min = 1e-3) do not survive a bfloat16 softplus.
      self.dt_proj = DeltaProjection(
          d, kernel_init=inits.dt_proj_kernel(r, cfg.dt_scale), bias_init=dt_bias_init)
    else:
      self.dt_bias = self.param("dt_bias", dt_bias_init, (d,))
    if not cfg.select_bc:
      self.B = self.param("B", inits.ones, (n,))
      self.C = self.param("C", nn.initializers.normal(stddev=1.0), (n,))
    self.A_log = self.param("A_log", inits.s4d_real_a_log, (d, n))
    self.D = self.param("D", inits.ones, (d,))
    self.out_proj = dense(
        cfg.d_model,
        use_bias=cfg.bias,
        kernel_init=inits.torch_linear_kernel(1.0 / math.sqrt(cfg.n_layers)),
    )

  def _ssm_inputs(self, u: Array) -> Tuple[Array, Array, Array, Array]:
    """dt, delta_bias, B and C from u (..., d): delta = softplus(dt + delta_bias).

    dt (..., d) float32 is the dt_proj output without its bias (zeros for a
    constant delta), delta_bias (d,); B and C (..., n).
    """
    cfg = self.config
    r, n = cfg.resolved_dt_rank, cfg.d_state
    lead = u.shape[:-1]
    projected = self.x_proj(u) if hasattr(self, "x_proj") else None
    offset = 0
    if cfg.select_delta:
      dt, bias = self.dt_proj(projected[..., :r])
      offset = r
    else:
      dt, bias = jnp.zeros(lead + (cfg.d_inner,), jnp.float32), self.dt_bias
    if cfg.select_bc:
      B = projected[..., offset : offset + n]
      C = projected[..., offset + n : offset + 2 * n]
    else:
      B = jnp.broadcast_to(self.B, lead + (n,))
      C = jnp.broadcast_to(self.C, lead + (n,))
    return dt, bias, B, C

  def _A(self) -> Array:
    return -jnp.exp(self.A_log)

  def __call__(
      self, x: Array, mask: Array, return_cache: bool = False
  ) -> Tuple[Array, Optional[LayerCache]]:
    """Parallel forward.

    Args:
      x: (b, l, m) normalized inputs.
      mask: (b, l) 0/1, right padding. Padded positions neither feed the conv
        nor move the SSM state.
      return_cache: also return the :class:`LayerCache` after the last real
        token of each row (prefill for :meth:`step`).

    Returns:
      (out (b, l, m), cache or None).
    """
    cfg = self.config
    chex.assert_rank([x, mask], [3, 2])
    chex.assert_equal_shape_prefix([x, mask], 2)
    u, z = jnp.split(self.in_proj(x), 2, axis=-1)
    u = u * mask[..., None].astype(u.dtype)
    conv_inputs = u
    if cfg.use_conv:
      u = causal_depthwise_conv(u, self.conv_kernel, self.conv_bias)
    u = jax.nn.silu(u)
    dt, delta_bias, B, C = self._ssm_inputs(u)
    y, h_last = selective_scan(
        u, dt, self._A(), B, C, self.D, mask=mask, return_state=True, method=cfg.scan_method,
        z=z, delta_bias=delta_bias, delta_softplus=True,
    )
    out = self.out_proj(y)
    if not return_cache:
      return out, None
    lengths = jnp.sum(mask.astype(jnp.int32), axis=1)
    window = last_inputs_window(conv_inputs, lengths, cfg.d_conv - 1)
    return out, LayerCache(conv_window=window, ssm_state=h_last)

  def step(self, x_t: Array, cache: LayerCache) -> Tuple[Array, LayerCache]:
    """One token of recurrent inference.

    Args:
      x_t: (b, m) normalized input of the new token.
      cache: the layer's :class:`LayerCache` before it.

    Returns:
      (out (b, m), the updated cache).
    """
    cfg = self.config
    chex.assert_rank(x_t, 2)
    u, z = jnp.split(self.in_proj(x_t), 2, axis=-1)
    window = cache.conv_window
    if cfg.use_conv:
      u, window = causal_conv_step(window, u, self.conv_kernel, self.conv_bias)
    u = jax.nn.silu(u)
    dt, delta_bias, B, C = self._ssm_inputs(u)
    y, h = selective_scan_step(cache.ssm_state, u, dt, self._A(), B, C, self.D, z=z, delta_bias=delta_bias,
                               delta_softplus=True)
    out = self.out_proj(y)
    return out, LayerCache(conv_window=window.astype(cfg.dtype), ssm_state=h)
