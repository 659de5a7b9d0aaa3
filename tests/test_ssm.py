"""The selective scan: every method against a float64 loop, gradients, state, mask, dtypes."""

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from absl.testing import parameterized
from jax import test_util as jtu

from mamba_jax import ssm
from tests.scan_reference import random_scan_inputs, rel_err, selective_scan_loop

METHODS = ("associative", "sequential")
LENGTHS = (1, 7, 16, 33)


def _stepwise(u, delta, A, B, C, D, initial_state=None):
  """The scan as a Python loop of selective_scan_step (the recurrent path)."""
  b, l, d = u.shape
  h = jnp.zeros((b, d, A.shape[1]), jnp.float32) if initial_state is None else initial_state
  ys = []
  for t in range(l):
    y, h = ssm.selective_scan_step(h, u[:, t], delta[:, t], A, B[:, t], C[:, t], D)
    ys.append(y)
  return jnp.stack(ys, axis=1), h


class DiscretizeTest(parameterized.TestCase):

  def test_zero_order_hold_and_euler_b(self):
    u, delta, A, B, C, D = random_scan_inputs(0, 2, 5, 3, 4)
    dA, dB = ssm.discretize(delta, A, B)
    chex.assert_shape([dA, dB], (2, 5, 3, 4))
    np.testing.assert_allclose(dA, np.exp(delta[..., None] * A), rtol=1e-6)
    np.testing.assert_allclose(dB, delta[..., None] * B[:, :, None, :], rtol=1e-6)

  def test_shape_mismatch_is_a_clear_error(self):
    u, delta, A, B, C, D = random_scan_inputs(0, 2, 5, 3, 4)
    with pytest.raises(AssertionError):
      ssm.discretize(delta, A[:, :2], B)


class CombineTest(parameterized.TestCase):

  def test_associative(self):
    rng = np.random.default_rng(1)
    e = [tuple(rng.normal(size=(3,)) for _ in range(2)) for _ in range(3)]
    left = ssm.linear_recurrence_combine(ssm.linear_recurrence_combine(e[0], e[1]), e[2])
    right = ssm.linear_recurrence_combine(e[0], ssm.linear_recurrence_combine(e[1], e[2]))
    for a, b in zip(left, right):
      np.testing.assert_allclose(a, b, rtol=1e-12)

  def test_composition_is_applying_in_order(self):
    (a1, b1), (a2, b2), h = (2.0, 1.0), (3.0, -1.0), 0.5
    a, b = ssm.linear_recurrence_combine((a1, b1), (a2, b2))
    self.assertAlmostEqual(a * h + b, a2 * (a1 * h + b1) + b2)


class SelectiveScanTest(parameterized.TestCase):

  @parameterized.product(method=METHODS, length=LENGTHS)
  def test_matches_float64_loop(self, method, length):
    u, delta, A, B, C, D = random_scan_inputs(length, 2, length, 5, 4)
    y, h = ssm.selective_scan(u, delta, A, B, C, D, return_state=True, method=method)
    y_ref, h_ref = selective_scan_loop(u, delta, A, B, C, D)
    chex.assert_shape(y, (2, length, 5))
    chex.assert_shape(h, (2, 5, 4))
    self.assertLessEqual(rel_err(y, y_ref), 1e-5)
    self.assertLessEqual(rel_err(h, h_ref), 1e-5)

  @parameterized.parameters(*LENGTHS)
  def test_step_by_step_matches_float64_loop(self, length):
    u, delta, A, B, C, D = random_scan_inputs(length, 2, length, 5, 4)
    y, h = _stepwise(*(jnp.asarray(x) for x in (u, delta, A, B, C, D)))
    y_ref, h_ref = selective_scan_loop(u, delta, A, B, C, D)
    self.assertLessEqual(rel_err(y, y_ref), 1e-5)
    self.assertLessEqual(rel_err(h, h_ref), 1e-5)

  @parameterized.parameters(1, 7, 16)
  def test_gradients_agree_between_methods(self, length):
    inputs = random_scan_inputs(100 + length, 2, length, 5, 4)
    cot = np.random.default_rng(2).normal(size=(2, length, 5)).astype(np.float32)

    def loss(method, *args):
      return jnp.sum(ssm.selective_scan(*args, method=method) * cot)

    grads = {
        m: jax.grad(lambda *a, m=m: loss(m, *a), argnums=tuple(range(6)))(*inputs)
        for m in METHODS
    }
    step_grads = jax.grad(
        lambda *a: jnp.sum(_stepwise(*a)[0] * cot), argnums=tuple(range(6))
    )(*inputs)
    for g_assoc, g_seq, g_step in zip(grads["associative"], grads["sequential"], step_grads):
      self.assertLessEqual(rel_err(g_assoc, g_seq), 1e-4)
      self.assertLessEqual(rel_err(g_step, g_seq), 1e-4)

  @parameterized.parameters(*METHODS)
  def test_check_grads_float64(self, method):
    with jax.enable_x64(True):
      u, delta, A, B, C, D = random_scan_inputs(3, 1, 5, 3, 2, dtype=np.float64)
      h0 = np.random.default_rng(4).normal(size=(1, 3, 2))
      f = lambda *a: ssm.selective_scan(*a[:6], initial_state=a[6], method=method)
      jtu.check_grads(f, (u, delta, A, B, C, D, h0), order=1, modes=("rev",))

  @parameterized.product(method=METHODS, split=(1, 5, 12))
  def test_two_halves_with_carried_state_equal_whole(self, method, split):
    u, delta, A, B, C, D = random_scan_inputs(5, 2, 13, 4, 3)
    y, h = ssm.selective_scan(u, delta, A, B, C, D, return_state=True, method=method)
    part = lambda x, s: x[:, s]
    first = slice(0, split)
    second = slice(split, None)
    y1, h1 = ssm.selective_scan(
        *(part(x, first) for x in (u, delta)), A, *(part(x, first) for x in (B, C)), D,
        return_state=True, method=method)
    y2, h2 = ssm.selective_scan(
        *(part(x, second) for x in (u, delta)), A, *(part(x, second) for x in (B, C)), D,
        initial_state=h1, return_state=True, method=method)
    np.testing.assert_allclose(np.concatenate([y1, y2], axis=1), y, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(h2, h, rtol=1e-5, atol=1e-6)

  @parameterized.parameters(*METHODS)
  def test_mask_makes_padding_the_identity(self, method):
    u, delta, A, B, C, D = random_scan_inputs(6, 3, 11, 4, 3)
    lengths = np.array([11, 6, 1])
    mask = (np.arange(11)[None] < lengths[:, None]).astype(np.float32)
    y, h = ssm.selective_scan(u, delta, A, B, C, D, mask=mask, return_state=True, method=method)
    y_ref, h_ref = selective_scan_loop(u, delta, A, B, C, D, mask=mask)
    self.assertLessEqual(rel_err(y, y_ref), 1e-5)
    self.assertLessEqual(rel_err(h, h_ref), 1e-5)
    for row, n in enumerate(lengths):
      yr, hr = ssm.selective_scan(
          u[row:row + 1, :n], delta[row:row + 1, :n], A, B[row:row + 1, :n],
          C[row:row + 1, :n], D, return_state=True, method=method)
      np.testing.assert_allclose(y[row, :n], yr[0], rtol=1e-6, atol=1e-6)
      np.testing.assert_allclose(h[row], hr[0], rtol=1e-6, atol=1e-6)
      np.testing.assert_array_equal(np.asarray(y[row, n:]), 0.0)

  @parameterized.product(method=METHODS, length=(1, 33))
  def test_bfloat16_inputs(self, method, length):
    u, delta, A, B, C, D = random_scan_inputs(7, 2, length, 5, 4)
    bf = lambda x: jnp.asarray(x, jnp.bfloat16)
    y, h = ssm.selective_scan(bf(u), bf(delta), A, bf(B), bf(C), D, return_state=True, method=method)
    self.assertEqual(y.dtype, jnp.bfloat16)
    self.assertEqual(h.dtype, jnp.float32)
    # Reference on the bf16-rounded inputs: only the output rounding remains.
    rounded = [np.asarray(bf(x), np.float64) for x in (u, delta, B, C)]
    y_ref, h_ref = selective_scan_loop(rounded[0], rounded[1], A, rounded[2], rounded[3], D)
    self.assertLessEqual(rel_err(y, y_ref), 1e-2)
    self.assertLessEqual(rel_err(h, h_ref), 1e-5)

  def test_auto_resolves_to_a_measured_method(self):
    method = ssm.resolve_method("auto")
    self.assertIn(method, ssm.SCAN_METHODS)
    self.assertEqual(method, ssm.AUTO_METHOD[jax.default_backend()])

  def test_unknown_method_is_a_clear_error(self):
    with pytest.raises(ValueError, match="Unknown scan method"):
      ssm.resolve_method("fft")

  def test_shape_errors(self):
    u, delta, A, B, C, D = random_scan_inputs(0, 2, 5, 3, 4)
    with pytest.raises(AssertionError):
      ssm.selective_scan(u, delta[:, :4], A, B, C, D)
    with pytest.raises(AssertionError):
      ssm.selective_scan(u, delta, A, B, C, D, mask=np.ones((2, 4)))


class VariantsTest(chex.TestCase):

  @chex.variants(with_jit=True, without_jit=True)
  @parameterized.parameters(*METHODS)
  def test_jit_and_eager_agree(self, method):
    u, delta, A, B, C, D = random_scan_inputs(8, 2, 9, 4, 3)
    fn = self.variant(lambda *a: ssm.selective_scan(*a, method=method))
    y = fn(u, delta, A, B, C, D)
    y_ref, _ = selective_scan_loop(u, delta, A, B, C, D)
    self.assertLessEqual(rel_err(y, y_ref), 1e-5)

  @chex.variants(with_jit=True, without_jit=True)
  def test_step_jit_and_eager_agree(self):
    u, delta, A, B, C, D = random_scan_inputs(9, 2, 1, 4, 3)
    h0 = np.random.default_rng(0).normal(size=(2, 4, 3)).astype(np.float32)
    fn = self.variant(ssm.selective_scan_step)
    y, h = fn(h0, u[:, 0], delta[:, 0], A, B[:, 0], C[:, 0], D)
    y_ref, h_ref = selective_scan_loop(u, delta, A, B, C, D, initial_state=h0)
    self.assertLessEqual(rel_err(y, y_ref[:, 0]), 1e-5)
    self.assertLessEqual(rel_err(h, h_ref), 1e-5)


def test_sequential_scan_chunks_follow_the_real_length():
  """The checkpoint chunks split l evenly, so l = 24 is not rounded up to 32 (cost ~ real length)."""
  from mamba_jax.scan import sequential as sequential_scan

  for length in range(1, 130):
    chunk = sequential_scan.chunk_length(length)
    chunks = -(-length // chunk)
    assert chunk <= sequential_scan.CHECKPOINT_CHUNK
    assert chunks == -(-length // sequential_scan.CHECKPOINT_CHUNK)
    assert chunks * chunk - length < chunks  # Fewer padded steps than chunks.
  assert sequential_scan.chunk_length(24) == 12 and sequential_scan.chunk_length(64) == 16


@pytest.mark.parametrize("length", [1, 17, 40])
def test_sequential_forward_alone_equals_the_differentiated_forward(length):
  """Outside differentiation the sequential method runs its forward-only loop (state (b, n, d)); under
  jax.vjp the chunked forward that keeps the backward's states: both give the same y and state."""
  u, delta, A, B, C, D = random_scan_inputs(40 + length, 3, length, 6, 5)
  scan = lambda *args: ssm.selective_scan(*args, return_state=True, method="sequential")
  y, h = jax.jit(scan)(u, delta, A, B, C, D)
  (y_vjp, h_vjp), _ = jax.vjp(scan, u, delta, A, B, C, D)
  np.testing.assert_allclose(y, y_vjp, rtol=1e-6, atol=1e-6)
  np.testing.assert_allclose(h, h_vjp, rtol=1e-6, atol=1e-6)
  y_ref, _ = selective_scan_loop(u, delta, A, B, C, D)
  assert rel_err(y, y_ref) <= 1e-5
