"""A float64 NumPy loop of the selective scan: the ground truth for the tests.

Axes (``mamba_jax.notation``): b, l, d, n.
"""

import numpy as np


def selective_scan_loop(u, delta, A, B, C, D=None, mask=None, initial_state=None):
  """y (b, l, d) and h_last (b, d, n) by the plain recurrence, in float64."""
  u, delta, A, B, C = (np.asarray(x, np.float64) for x in (u, delta, A, B, C))
  b, l, d = u.shape
  n = A.shape[1]
  h = np.zeros((b, d, n)) if initial_state is None else np.asarray(initial_state, np.float64).copy()
  m = np.ones((b, l)) if mask is None else np.asarray(mask, np.float64)
  y = np.zeros((b, l, d))
  for t in range(l):
    dt = delta[:, t] * m[:, t, None]  # (b, d)
    dA = np.exp(dt[:, :, None] * A[None])  # (b, d, n)
    dBu = (dt * u[:, t])[:, :, None] * B[:, t, None, :]
    h = dA * h + dBu
    y[:, t] = np.einsum("bdn,bn->bd", h, C[:, t])
    if D is not None:
      y[:, t] += np.asarray(D, np.float64) * u[:, t]
    y[:, t] *= m[:, t, None]
  return y, h


def random_scan_inputs(key_seed, b, l, d, n, dtype=np.float32):
  """Random inputs in the ranges a trained Mamba sees (delta ~ softplus scale)."""
  rng = np.random.default_rng(key_seed)
  u = rng.normal(size=(b, l, d))
  delta = np.log1p(np.exp(rng.normal(size=(b, l, d)) - 1.0))  # softplus
  A = -np.exp(rng.normal(size=(d, n)) * 0.5)
  B = rng.normal(size=(b, l, n))
  C = rng.normal(size=(b, l, n))
  D = rng.normal(size=(d,))
  return tuple(x.astype(dtype) for x in (u, delta, A, B, C, D))


def rel_err(x, ref):
  x, ref = np.asarray(x, np.float64), np.asarray(ref, np.float64)
  return float(np.max(np.abs(x - ref)) / max(np.max(np.abs(ref)), 1e-30))
