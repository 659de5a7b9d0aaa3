"""Initializers matching the reference PyTorch Mamba (``mamba_simple.py``).

Flax defaults (lecun-normal kernels) differ from PyTorch's; the reference's
numbers depend on these, so they are reproduced here:

- ``nn.Linear`` / ``nn.Conv1d`` weights: kaiming-uniform(a=sqrt(5)), i.e.
  U(-1/sqrt(fan_in), 1/sqrt(fan_in)); Linear biases are re-initialized to zero
  by ``_init_weights``; the conv bias keeps U(-1/sqrt(fan_in), 1/sqrt(fan_in)).
- ``out_proj`` weights are divided by sqrt(n_layers) (prenorm residual rescale).
- ``dt_proj``: weight U(-s, s) with s = dt_rank**-0.5 * dt_scale; bias = inverse
  softplus of dt ~ log-uniform[dt_min, dt_max], floored at dt_init_floor.
- ``A_log`` = log(1..n) for every channel (S4D-real), ``D`` = 1.
- Embeddings: N(0, 0.02).
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
from flax import linen as nn

DType = jnp.dtype


def torch_linear_kernel(scale: float = 1.0):
  """PyTorch's default Linear/Conv weight init, times ``scale``.

  U(-b, b) with b = scale / sqrt(fan_in); fan_in is every axis but the last.
  """

  def init(key, shape, dtype=jnp.float32):
    fan_in = math.prod(shape[:-1])
    bound = scale / math.sqrt(fan_in)
    return jax.random.uniform(key, shape, dtype, -bound, bound)

  return init


def uniform_fan_in_bias(fan_in: int):
  """PyTorch's default conv bias init: U(-1/sqrt(fan_in), 1/sqrt(fan_in))."""
  bound = 1.0 / math.sqrt(fan_in)

  def init(key, shape, dtype=jnp.float32):
    return jax.random.uniform(key, shape, dtype, -bound, bound)

  return init


def dt_proj_kernel(dt_rank: int, dt_scale: float = 1.0):
  """U(-s, s) with s = dt_rank**-0.5 * dt_scale (dt_init="random")."""
  std = dt_rank**-0.5 * dt_scale

  def init(key, shape, dtype=jnp.float32):
    return jax.random.uniform(key, shape, dtype, -std, std)

  return init


def inverse_softplus(x):
  """softplus^{-1}(x) = x + log(-expm1(-x)), stable for small x."""
  return x + jnp.log(-jnp.expm1(-x))


def dt_bias(dt_min: float, dt_max: float, dt_init_floor: float):
  """Bias such that softplus(bias) ~ log-uniform[dt_min, dt_max] (floored)."""

  def init(key, shape, dtype=jnp.float32):
    u = jax.random.uniform(key, shape, jnp.float32)
    dt = jnp.exp(u * (math.log(dt_max) - math.log(dt_min)) + math.log(dt_min))
    dt = jnp.maximum(dt, dt_init_floor)
    return inverse_softplus(dt).astype(dtype)

  return init


def s4d_real_a_log(key, shape, dtype=jnp.float32):
  """A_log (d, n) = log(1, 2, ..., n) for every channel, so A = -exp(A_log) < 0."""
  del key
  _, n = shape
  return jnp.broadcast_to(jnp.log(jnp.arange(1, n + 1, dtype=jnp.float32)), shape).astype(dtype)


zeros = nn.initializers.zeros
ones = nn.initializers.ones
embedding = nn.initializers.normal(stddev=0.02)
