"""Mamba-2's SSD scan against a float64 NumPy loop of its recurrence: outputs, final state,
gradients, chunk boundaries, padding, carried state, the one-token step, errors.

Axes (``mamba_jax.notation``): b, l, h, p, g, n.
"""

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from absl.testing import parameterized
from jax import test_util as jtu

from mamba_jax import ssm
from tests.scan_reference import rel_err

METHODS = ("associative", "sequential")
CHUNK = 8
# 1, chunk - 1, chunk, chunk + 1, several chunks (with a partial last one).
LENGTHS = (1, CHUNK - 1, CHUNK, CHUNK + 1, 3 * CHUNK + 5)


def ssd_loop(x, dt, A, B, C, D=None, mask=None, initial_state=None, dt_bias=None, softplus=False):
  """y (b, l, h, p) and h_last (b, h, p, n) by the plain recurrence, in float64."""
  x, dt, A, B, C = (np.asarray(t, np.float64) for t in (x, dt, A, B, C))
  b, length, h, p = x.shape
  g, n = B.shape[2:]
  if dt_bias is not None:
    dt = dt + np.asarray(dt_bias, np.float64)
  if softplus:
    dt = np.log1p(np.exp(dt))
  m = np.ones((b, length)) if mask is None else np.asarray(mask, np.float64)
  state = np.zeros((b, h, p, n)) if initial_state is None else np.asarray(initial_state, np.float64).copy()
  y = np.zeros((b, length, h, p))
  heads_per_group = h // g
  for t in range(length):
    for head in range(h):
      group = head // heads_per_group
      step = dt[:, t, head] * m[:, t]  # (b,)
      state[:, head] = (np.exp(step * A[head])[:, None, None] * state[:, head]
                        + (step[:, None] * x[:, t, head])[:, :, None] * B[:, t, group][:, None, :])
      y[:, t, head] = np.einsum("bpn,bn->bp", state[:, head], C[:, t, group])
      if D is not None:
        y[:, t, head] += D[head] * x[:, t, head]
    y[:, t] *= m[:, t, None, None]
  return y, state


def random_ssd_inputs(seed, b, length, h=4, p=3, g=2, n=5, dtype=np.float32):
  """x, dt (positive), A (negative), B, C, D in the ranges a trained Mamba-2 sees."""
  rng = np.random.default_rng(seed)
  x = rng.normal(size=(b, length, h, p))
  dt = np.log1p(np.exp(rng.normal(size=(b, length, h)) - 1.0))
  A = -rng.uniform(1.0, 16.0, size=(h,)) / 4
  B = rng.normal(size=(b, length, g, n))
  C = rng.normal(size=(b, length, g, n))
  D = rng.normal(size=(h,))
  return tuple(t.astype(dtype) for t in (x, dt, A, B, C, D))


def _stepwise(x, dt, A, B, C, D, initial_state=None, **dt_args):
  """The scan as a Python loop of ssd_step (the recurrent path)."""
  b, length, h, p = x.shape
  state = jnp.zeros((b, h, p, B.shape[-1]), jnp.float32) if initial_state is None else initial_state
  ys = []
  for t in range(length):
    y, state = ssm.ssd_step(state, x[:, t], dt[:, t], A, B[:, t], C[:, t], D, **dt_args)
    ys.append(y)
  return jnp.stack(ys, axis=1), state


class SSDScanTest(parameterized.TestCase):

  @parameterized.product(method=METHODS, length=LENGTHS)
  def test_matches_float64_loop(self, method, length):
    x, dt, A, B, C, D = random_ssd_inputs(length, 2, length)
    y, h = ssm.ssd_scan(x, dt, A, B, C, D, return_state=True, chunk_size=CHUNK, method=method)
    y_ref, h_ref = ssd_loop(x, dt, A, B, C, D)
    chex.assert_shape(y, (2, length, 4, 3))
    chex.assert_shape(h, (2, 4, 3, 5))
    self.assertEqual(h.dtype, jnp.float32)
    self.assertLessEqual(rel_err(y, y_ref), 1e-5)
    self.assertLessEqual(rel_err(h, h_ref), 1e-5)

  @parameterized.product(method=METHODS, length=(1, CHUNK, 2 * CHUNK + 3))
  def test_initial_state_mask_bias_and_softplus(self, method, length):
    x, dt, A, B, C, D = random_ssd_inputs(10 + length, 3, length)
    rng = np.random.default_rng(length)
    h0 = rng.normal(size=(3, 4, 3, 5)).astype(np.float32)
    bias = rng.normal(size=(4,)).astype(np.float32)
    lengths = np.array([length, max(length // 2, 1), 1])
    mask = (np.arange(length)[None] < lengths[:, None]).astype(np.float32)
    y, h = ssm.ssd_scan(x, dt, A, B, C, D, mask=mask, initial_state=h0, dt_bias=bias, dt_softplus=True,
                        return_state=True, chunk_size=CHUNK, method=method)
    y_ref, h_ref = ssd_loop(x, dt, A, B, C, D, mask=mask, initial_state=h0, dt_bias=bias, softplus=True)
    self.assertLessEqual(rel_err(y, y_ref), 1e-5)
    self.assertLessEqual(rel_err(h, h_ref), 1e-5)

  @parameterized.parameters(*METHODS)
  def test_right_padding_never_changes_real_positions_nor_the_final_state(self, method):
    x, dt, A, B, C, D = random_ssd_inputs(6, 3, 2 * CHUNK + 3)
    lengths = np.array([2 * CHUNK + 3, CHUNK + 1, 1])
    mask = (np.arange(2 * CHUNK + 3)[None] < lengths[:, None]).astype(np.float32)
    y, h = ssm.ssd_scan(x, dt, A, B, C, D, mask=mask, return_state=True, chunk_size=CHUNK, method=method)
    for row, n in enumerate(lengths):
      yr, hr = ssm.ssd_scan(x[row:row + 1, :n], dt[row:row + 1, :n], A, B[row:row + 1, :n],
                            C[row:row + 1, :n], D, return_state=True, chunk_size=CHUNK, method=method)
      np.testing.assert_allclose(y[row, :n], yr[0], rtol=1e-5, atol=1e-5)
      np.testing.assert_allclose(h[row], hr[0], rtol=1e-5, atol=1e-5)
      np.testing.assert_array_equal(np.asarray(y[row, n:]), 0.0)

  @parameterized.parameters(1, CHUNK - 1, CHUNK + 1, 2 * CHUNK + 3)
  def test_gradients_match_float64_loop_and_agree_between_methods(self, length):
    x, dt, A, B, C, D = random_ssd_inputs(100 + length, 2, length)
    h0 = np.random.default_rng(3).normal(size=(2, 4, 3, 5)).astype(np.float32)
    mask = np.ones((2, length), np.float32)
    mask[1, length // 2 + 1:] = 0
    cot = np.random.default_rng(2).normal(size=(2, length, 4, 3))
    cot_h = np.random.default_rng(5).normal(size=(2, 4, 3, 5))

    def loss(method, *args):
      y, h = ssm.ssd_scan(*args[:6], initial_state=args[6], mask=mask, return_state=True,
                          chunk_size=CHUNK, method=method)
      return jnp.sum(y * cot) + jnp.sum(h * cot_h)

    argnums = tuple(range(7))
    grads = {m: jax.grad(lambda *a, m=m: loss(m, *a), argnums=argnums)(x, dt, A, B, C, D, h0) for m in METHODS}
    with jax.enable_x64(True):
      args64 = tuple(np.asarray(t, np.float64) for t in (x, dt, A, B, C, D, h0))

      def loss64(*args):
        y, h = ssm.ssd_scan(*args[:6], initial_state=args[6], mask=mask, return_state=True,
                            chunk_size=CHUNK, method="sequential")
        return jnp.sum(y * cot) + jnp.sum(h * cot_h)

      grads64 = jax.grad(loss64, argnums=argnums)(*args64)
      if length <= CHUNK + 1:  # The float64 scan against finite differences (slow at longer lengths).
          jtu.check_grads(lambda *a: ssm.ssd_scan(*a[:6], initial_state=a[6], mask=mask, chunk_size=CHUNK,
                                                method="associative"),
                        args64, order=1, modes=("rev",))
      y64, h64 = ssm.ssd_scan(*args64[:6], initial_state=args64[6], mask=mask, return_state=True,
                              chunk_size=CHUNK)
    y_ref, h_ref = ssd_loop(x, dt, A, B, C, D, mask=mask, initial_state=h0)
    self.assertLessEqual(rel_err(y64, y_ref), 1e-12)
    self.assertLessEqual(rel_err(h64, h_ref), 1e-12)
    for name, g_assoc, g_seq, g64 in zip("x dt A B C D h0".split(), grads["associative"], grads["sequential"],
                                         grads64):
      self.assertLessEqual(rel_err(g_assoc, g64), 1e-4, name)
      self.assertLessEqual(rel_err(g_seq, g64), 1e-4, name)

  @parameterized.product(method=METHODS, split=(1, CHUNK, CHUNK + 3))
  def test_two_halves_with_carried_state_equal_whole(self, method, split):
    x, dt, A, B, C, D = random_ssd_inputs(5, 2, 2 * CHUNK + 5)
    run = lambda s, h0=None: ssm.ssd_scan(x[:, s], dt[:, s], A, B[:, s], C[:, s], D, initial_state=h0,
                                          return_state=True, chunk_size=CHUNK, method=method)
    y, h = run(slice(None))
    y1, h1 = run(slice(0, split))
    y2, h2 = run(slice(split, None), h1)
    np.testing.assert_allclose(np.concatenate([y1, y2], axis=1), y, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(h2, h, rtol=1e-5, atol=1e-5)

  def test_chunk_size_does_not_change_the_result(self):
    x, dt, A, B, C, D = random_ssd_inputs(7, 2, 29)
    y_ref, h_ref = ssd_loop(x, dt, A, B, C, D)
    for chunk in (1, 4, 29, 64):  # 29: one chunk; 64 > SEGSUM_MATMUL_MAX is tested below.
      y, h = ssm.ssd_scan(x, dt, A, B, C, D, return_state=True, chunk_size=chunk)
      self.assertLessEqual(rel_err(y, y_ref), 1e-5, chunk)
      self.assertLessEqual(rel_err(h, h_ref), 1e-5, chunk)

  @parameterized.parameters(*METHODS)
  def test_long_chunks_use_the_cumulative_segment_sums(self, method):
    from mamba_jax.scan import ssd
    length = ssd.SEGSUM_MATMUL_MAX + 9
    x, dt, A, B, C, D = random_ssd_inputs(12, 1, 2 * length, h=2, p=2, g=1, n=3)
    y, h = ssm.ssd_scan(x, dt, A, B, C, D, return_state=True, chunk_size=length, method=method)
    y_ref, h_ref = ssd_loop(x, dt, A, B, C, D)
    self.assertLessEqual(rel_err(y, y_ref), 1e-5)
    self.assertLessEqual(rel_err(h, h_ref), 1e-5)
    gap = np.asarray(ssd.segment_sums(jnp.asarray(dt[0, :length, 0])))
    cum = np.cumsum(np.asarray(dt[0, :length, 0], np.float64))
    lower = np.tril(np.ones((length, length), bool))
    np.testing.assert_allclose(gap[lower], (cum[:, None] - cum[None, :])[lower], rtol=1e-4, atol=1e-4)
    self.assertTrue(np.all(np.isneginf(gap[~lower])))

  def test_dt_limit_clips_the_step_sizes(self):
    x, dt, A, B, C, D = random_ssd_inputs(8, 2, 9)
    y = ssm.ssd_scan(x, dt, A, B, C, D, dt_limit=(0.2, 0.5), chunk_size=CHUNK)
    y_ref, _ = ssd_loop(x, np.clip(dt, 0.2, 0.5), A, B, C, D)
    self.assertLessEqual(rel_err(y, y_ref), 1e-5)
    self.assertGreater(rel_err(ssm.ssd_scan(x, dt, A, B, C, D, chunk_size=CHUNK), y_ref), 1e-3)

  def test_bfloat16_inputs_keep_a_float32_state(self):
    x, dt, A, B, C, D = random_ssd_inputs(9, 2, 2 * CHUNK + 1)
    bf = lambda t: jnp.asarray(t, jnp.bfloat16)
    y, h = ssm.ssd_scan(bf(x), bf(dt), A, bf(B), bf(C), D, return_state=True, chunk_size=CHUNK)
    self.assertEqual(y.dtype, jnp.bfloat16)
    self.assertEqual(h.dtype, jnp.float32)
    rounded = [np.asarray(bf(t), np.float64) for t in (x, dt, B, C)]
    y_ref, h_ref = ssd_loop(rounded[0], rounded[1], A, rounded[2], rounded[3], D)
    self.assertLessEqual(rel_err(y, y_ref), 1e-2)
    self.assertLessEqual(rel_err(h, h_ref), 1e-5)

  @parameterized.parameters(1, CHUNK + 1)
  def test_step_by_step_matches_float64_loop(self, length):
    x, dt, A, B, C, D = random_ssd_inputs(11, 2, length)
    h0 = np.random.default_rng(1).normal(size=(2, 4, 3, 5)).astype(np.float32)
    bias = np.random.default_rng(2).normal(size=(4,)).astype(np.float32)
    y, h = jax.jit(lambda *a: _stepwise(*a, dt_bias=bias, dt_softplus=True))(x, dt, A, B, C, D, h0)
    y_ref, h_ref = ssd_loop(x, dt, A, B, C, D, initial_state=h0, dt_bias=bias, softplus=True)
    self.assertLessEqual(rel_err(y, y_ref), 1e-5)
    self.assertLessEqual(rel_err(h, h_ref), 1e-5)

  def test_auto_resolves_to_a_measured_method(self):
    self.assertEqual(ssm.resolve_ssd_method("auto"), ssm.SSD_AUTO_METHOD[jax.default_backend()])

  def test_errors(self):
    x, dt, A, B, C, D = random_ssd_inputs(0, 2, 5)
    with pytest.raises(ValueError, match="no Pallas SSD kernel"):
      ssm.ssd_scan(x, dt, A, B, C, D, method="pallas")
    with pytest.raises(ValueError, match="cannot be split into 3 groups"):
      ssm.ssd_scan(x, dt, A, np.concatenate([B, B[:, :, :1]], 2), np.concatenate([C, C[:, :, :1]], 2), D)
    with pytest.raises(AssertionError):
      ssm.ssd_scan(x, dt[:, :4], A, B, C, D)
    with pytest.raises(AssertionError):
      ssm.ssd_scan(x, dt, A, B, C, D, mask=np.ones((2, 4)))
