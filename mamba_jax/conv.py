"""Causal depthwise 1-D convolution of the Mamba block, parallel and one-token.

Axes (``mamba_jax.notation``): b, l, d, k.

Position t of the output sees inputs t-k+1 .. t (zeros before the start), so
right padding never changes an earlier position. This is PyTorch's
``Conv1d(groups=d, padding=k-1)`` truncated to the first l outputs, as in the
reference ``mamba_simple.Mamba``.
"""

from __future__ import annotations

from typing import Optional, Tuple

import chex
import jax
import jax.numpy as jnp

Array = jax.Array


def causal_depthwise_conv(x: Array, kernel: Array, bias: Optional[Array]) -> Array:
  """Parallel causal depthwise convolution.

  Args:
    x: (b, l, d) input.
    kernel: (k, d) one filter per channel; kernel[-1] weighs the current token.
    bias: optional (d,).

  Returns:
    (b, l, d) output in x's dtype.
  """
  chex.assert_rank([x, kernel], [3, 2])
  chex.assert_axis_dimension(kernel, 1, x.shape[-1])
  k = kernel.shape[0]
  length = x.shape[1]
  padded = jnp.pad(x, ((0, 0), (k - 1, 0), (0, 0)))
  kernel = kernel.astype(x.dtype)
  # k is small (4): k shifted multiply-adds beat a general convolution here.
  y = sum(padded[:, i : i + length] * kernel[i] for i in range(k))
  if bias is not None:
    y = y + bias.astype(x.dtype)
  return y


def causal_conv_step(
    window: Array, x_t: Array, kernel: Array, bias: Optional[Array]
) -> Tuple[Array, Array]:
  """One token of :func:`causal_depthwise_conv`.

  Args:
    window: (b, k-1, d) the previous k-1 inputs, oldest first (zeros at start).
    x_t: (b, d) the new input.
    kernel: (k, d).
    bias: optional (d,).

  Returns:
    y_t: (b, d) the convolution output for this token.
    new_window: (b, k-1, d) the window shifted by one, ending with x_t.
  """
  chex.assert_rank([window, x_t, kernel], [3, 2, 2])
  chex.assert_axis_dimension(window, 1, kernel.shape[0] - 1)
  full = jnp.concatenate([window.astype(x_t.dtype), x_t[:, None]], axis=1)
  y_t = jnp.einsum("bkd,kd->bd", full, kernel.astype(x_t.dtype))
  if bias is not None:
    y_t = y_t + bias.astype(x_t.dtype)
  return y_t, full[:, 1:]


def last_inputs_window(x: Array, lengths: Array, width: int) -> Array:
  """The conv window after a (right-padded) prompt: its last ``width`` inputs.

  Args:
    x: (b, l, d) conv inputs of the prompt.
    lengths: (b,) number of real tokens per row.
    width: k - 1.

  Returns:
    (b, width, d), zero-filled where a prompt is shorter than ``width``.
  """
  padded = jnp.pad(x, ((0, 0), (width, 0), (0, 0)))
  # Real input i sits at padded index i + width; we want inputs len-width..len-1.
  idx = lengths[:, None] + jnp.arange(width)[None, :]
  return jnp.take_along_axis(padded, idx[:, :, None], axis=1)
