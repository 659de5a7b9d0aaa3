"""The fused Pallas selective scan against the float64 loop and the associative scan.

On CPU the kernels run in Pallas interpret mode (same kernel code, slow), so
shapes are tiny and chunk_size / block_d small, so that l not a multiple of the
chunk and d not a multiple of the block are exercised. ``GpuTest`` runs only on
a GPU backend (``python -m pytest tests/test_pallas_scan.py -k Gpu``).

Axes (``mamba_jax.notation``): b, l, d, n.
"""

import contextlib
import functools
from unittest import mock

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from absl.testing import parameterized

from mamba_jax import MambaClassifier, MambaConfig, scan, ssm
from mamba_jax.scan import pallas as pallas_scan
from tests.scan_reference import random_scan_inputs, rel_err, selective_scan_loop

# Small kernel tiles for the interpret-mode tests: 4 tokens per chunk, 4 channels per block.
SMALL = dict(chunk_size=4, block_d=4)
ON_GPU = jax.default_backend() == "gpu"


def _softplus_np(x):
  return np.log1p(np.exp(x))


def _silu_np(x):
  return x / (1.0 + np.exp(-x))


def _gated_reference(u, delta, A, B, C, D, z, bias, h0):
  """The full selective_scan semantics in float64 NumPy: softplus(delta + bias), SiLU(z) gate."""
  delta_eff = _softplus_np(np.asarray(delta, np.float64) + np.asarray(bias, np.float64))
  y, h = selective_scan_loop(u, delta_eff, A, B, C, D, initial_state=h0)
  return y * _silu_np(np.asarray(z, np.float64)), h


def _gated_associative(u, delta, A, B, C, D, z, bias, h0):
  """The same semantics composed from ssm.selective_scan (the differentiable reference)."""
  y, h = ssm.selective_scan(
      u, jax.nn.softplus(delta + bias), A, B, C, D, initial_state=h0, return_state=True,
      method="associative")
  return y * jax.nn.silu(z), h


def _random_extras(seed, b, l, d, n, dtype=np.float32):
  rng = np.random.default_rng(seed)
  z = rng.normal(size=(b, l, d)).astype(dtype)
  bias = (rng.normal(size=(d,)) * 0.5).astype(np.float32)
  h0 = rng.normal(size=(b, d, n)).astype(np.float32)
  return z, bias, h0


def _loss_with_state(scan, cot_y, cot_h):
  def loss(*args):
    y, h = scan(*args)
    return jnp.sum(y.astype(jnp.float32) * cot_y) + jnp.sum(h * cot_h)
  return loss


def _cotangents(seed, b, l, d, n):
  rng = np.random.default_rng(seed)
  return (rng.normal(size=(b, l, d)).astype(np.float32),
          rng.normal(size=(b, d, n)).astype(np.float32))


class ForwardTest(parameterized.TestCase):

  @parameterized.named_parameters(
      ("l1", 1, 5, 4),
      ("l_not_multiple_of_chunk_d_not_multiple_of_block", 11, 5, 4),
      ("l_multiple_of_chunk", 8, 8, 4),
      ("n_not_power_of_2", 6, 3, 3),
  )
  def test_matches_float64_loop(self, length, d, n):
    u, delta, A, B, C, D = random_scan_inputs(length, 2, length, d, n)
    _, _, h0 = _random_extras(length, 2, length, d, n)
    y, h = pallas_scan.selective_scan_pallas(
        u, delta, A, B, C, D, initial_state=h0, return_state=True, **SMALL)
    y_ref, h_ref = selective_scan_loop(u, delta, A, B, C, D, initial_state=h0)
    self.assertEqual(y.shape, (2, length, d))
    self.assertEqual(h.shape, (2, d, n))
    self.assertEqual(h.dtype, jnp.float32)
    self.assertLessEqual(rel_err(y, y_ref), 1e-5)
    self.assertLessEqual(rel_err(h, h_ref), 1e-5)

  def test_gate_bias_softplus_match_float64_loop(self):
    b, l, d, n = 2, 7, 6, 4
    u, delta, A, B, C, D = random_scan_inputs(7, b, l, d, n)
    z, bias, h0 = _random_extras(8, b, l, d, n)
    y, h = pallas_scan.selective_scan_pallas(
        u, delta, A, B, C, D, z=z, delta_bias=bias, delta_softplus=True, initial_state=h0,
        return_state=True, **SMALL)
    y_ref, h_ref = _gated_reference(u, delta, A, B, C, D, z, bias, h0)
    self.assertLessEqual(rel_err(y, y_ref), 1e-5)
    self.assertLessEqual(rel_err(h, h_ref), 1e-5)

  def test_without_optional_inputs_returns_only_y(self):
    u, delta, A, B, C, _ = random_scan_inputs(3, 1, 5, 4, 4)
    y = pallas_scan.selective_scan_pallas(u, delta, A, B, C, **SMALL)
    y_ref, _ = selective_scan_loop(u, delta, A, B, C)
    self.assertIsInstance(y, jax.Array)
    self.assertLessEqual(rel_err(y, y_ref), 1e-5)

  def test_bfloat16_inputs_float32_state(self):
    b, l, d, n = 2, 9, 5, 4
    inputs = random_scan_inputs(9, b, l, d, n)
    u, delta, A, B, C, D = inputs
    bf16 = lambda x: jnp.asarray(x, jnp.bfloat16)
    y, h = pallas_scan.selective_scan_pallas(
        bf16(u), bf16(delta), A, bf16(B), bf16(C), D, return_state=True, **SMALL)
    # Reference on the bfloat16-rounded inputs: only y's final rounding differs.
    rounded = [np.asarray(bf16(x), np.float64) for x in (u, delta)] + [A] + [
        np.asarray(bf16(x), np.float64) for x in (B, C)] + [D]
    y_ref, h_ref = selective_scan_loop(*rounded)
    self.assertEqual(y.dtype, jnp.bfloat16)
    self.assertEqual(h.dtype, jnp.float32)
    self.assertLessEqual(rel_err(y, y_ref), 1e-2)
    self.assertLessEqual(rel_err(h, h_ref), 1e-5)

  def test_bad_shapes_are_clear_errors(self):
    u, delta, A, B, C, D = random_scan_inputs(0, 1, 4, 3, 2)
    with self.assertRaisesRegex(ValueError, "A must be"):
      pallas_scan.selective_scan_pallas(u, delta, A[:2], B, C)
    with self.assertRaisesRegex(ValueError, "B must be"):
      pallas_scan.selective_scan_pallas(u, delta, A, B[:, :2], C)
    with self.assertRaisesRegex(ValueError, "powers of 2"):
      pallas_scan.selective_scan_pallas(u, delta, A, B, C, chunk_size=3)


class GradientTest(parameterized.TestCase):

  @parameterized.named_parameters(("l1", 1), ("l_not_multiple_of_chunk", 11))
  def test_all_gradients_match_associative(self, length):
    b, d, n = 2, 5, 4
    u, delta, A, B, C, D = random_scan_inputs(20 + length, b, length, d, n)
    _, _, h0 = _random_extras(21, b, length, d, n)
    cot_y, cot_h = _cotangents(22, b, length, d, n)
    pallas = lambda u, delta, A, B, C, D, h0: pallas_scan.selective_scan_pallas(
        u, delta, A, B, C, D, initial_state=h0, return_state=True, **SMALL)
    assoc = lambda u, delta, A, B, C, D, h0: ssm.selective_scan(
        u, delta, A, B, C, D, initial_state=h0, return_state=True, method="associative")
    args = (u, delta, A, B, C, D, h0)
    grads = jax.grad(_loss_with_state(pallas, cot_y, cot_h), argnums=tuple(range(7)))(*args)
    grads_ref = jax.grad(_loss_with_state(assoc, cot_y, cot_h), argnums=tuple(range(7)))(*args)
    for name, g, g_ref, x in zip("u delta A B C D h0".split(), grads, grads_ref, args):
      self.assertEqual(g.shape, x.shape, name)
      self.assertLessEqual(rel_err(g, g_ref), 1e-4, name)

  def test_gate_bias_softplus_segmented_gradients_match_associative(self):
    # l = 11: 3 chunks of 4, in 2 segments (the last one a single, partial chunk).
    b, l, d, n = 2, 11, 5, 4
    u, delta, A, B, C, D = random_scan_inputs(30, b, l, d, n)
    z, bias, h0 = _random_extras(31, b, l, d, n)
    cot_y, cot_h = _cotangents(32, b, l, d, n)

    def pallas(u, delta, A, B, C, D, z, bias, h0):
      return pallas_scan.selective_scan_pallas(
          u, delta, A, B, C, D, z=z, delta_bias=bias, delta_softplus=True, initial_state=h0,
          return_state=True, num_segments=2, **SMALL)

    args = (u, delta, A, B, C, D, z, bias, h0)
    y, h = pallas(*args)
    y_ref, h_ref = _gated_reference(*args)
    self.assertLessEqual(rel_err(y, y_ref), 1e-5)
    self.assertLessEqual(rel_err(h, h_ref), 1e-5)
    grads = jax.grad(_loss_with_state(pallas, cot_y, cot_h), argnums=tuple(range(9)))(*args)
    grads_ref = jax.grad(
        _loss_with_state(_gated_associative, cot_y, cot_h), argnums=tuple(range(9)))(*args)
    for name, g, g_ref in zip("u delta A B C D z bias h0".split(), grads, grads_ref):
      self.assertLessEqual(rel_err(g, g_ref), 1e-4, name)

  def test_bfloat16_gradients_have_input_dtypes(self):
    b, l, d, n = 1, 5, 4, 4
    u, delta, A, B, C, D = random_scan_inputs(40, b, l, d, n)
    bf16 = lambda x: jnp.asarray(x, jnp.bfloat16)
    args = (bf16(u), bf16(delta), A, bf16(B), bf16(C), D)
    loss = lambda *a: jnp.sum(pallas_scan.selective_scan_pallas(*a, **SMALL).astype(jnp.float32))
    grads = jax.grad(loss, argnums=tuple(range(6)))(*args)
    # Same math in float32 on the rounded inputs.
    loss32 = lambda *a: jnp.sum(ssm.selective_scan(*a, method="associative"))
    grads32 = jax.grad(loss32, argnums=tuple(range(6)))(
        *(jnp.asarray(x, jnp.float32) for x in args))
    for name, g, g32, x in zip("u delta A B C D".split(), grads, grads32, args):
      self.assertEqual(g.dtype, x.dtype, name)
      self.assertLessEqual(rel_err(g, g32), 2e-2, name)


class SelectiveScanMethodTest(parameterized.TestCase):
  """method="pallas" of the core API: mask, initial_state, return_state, gradients."""

  def test_masked_scan_and_gradients_match_associative(self):
    b, l, d, n = 2, 9, 3, 4
    u, delta, A, B, C, D = random_scan_inputs(50, b, l, d, n)
    _, _, h0 = _random_extras(51, b, l, d, n)
    mask = np.ones((b, l), np.int32)
    mask[1, 6:] = 0
    cot_y, cot_h = _cotangents(52, b, l, d, n)

    def scan(method):
      return lambda *a: ssm.selective_scan(
          *a[:6], mask=mask, initial_state=a[6], return_state=True, method=method)

    args = (u, delta, A, B, C, D, h0)
    y, h = scan("pallas")(*args)
    y_ref, h_ref = selective_scan_loop(u, delta, A, B, C, D, mask=mask, initial_state=h0)
    self.assertLessEqual(rel_err(y, y_ref), 1e-5)
    self.assertLessEqual(rel_err(h, h_ref), 1e-5)
    grads = jax.grad(_loss_with_state(scan("pallas"), cot_y, cot_h), argnums=tuple(range(7)))(*args)
    grads_ref = jax.grad(
        _loss_with_state(scan("associative"), cot_y, cot_h), argnums=tuple(range(7)))(*args)
    for name, g, g_ref in zip("u delta A B C D h0".split(), grads, grads_ref):
      self.assertLessEqual(rel_err(g, g_ref), 1e-4, name)

  @parameterized.parameters(dict(dtype="float32", fused=True), dict(dtype="bfloat16", fused=False))
  def test_fused_and_plain_match_associative(self, dtype, fused):
    # The check GpuTest runs, at one tiny shape in interpret mode: l, d not multiples of the tiles.
    _check_against_associative(self, (2, 5, 6, 4, None), dtype, fused, **SMALL)

  def test_auto_method(self):
    self.assertIs(scan.METHODS["pallas"], pallas_scan.fused_selective_scan)
    self.assertEqual(ssm.resolve_method("auto"),
                     ssm.AUTO_METHOD.get(jax.default_backend(), "associative"))


class FusedMixerTest(parameterized.TestCase):
  """scan_method="pallas" hands the kernel raw dt, delta_bias and z: same model, same gradients."""

  @parameterized.named_parameters(
      ("selective", {}), ("constant_delta", dict(select_delta=False)))
  def test_model_output_and_gradients_match_associative(self, ablation):
    # d_inner = 2 * 6 = 12: not a multiple of the 8-channel block of the kernel below.
    kwargs = dict(vocab_size=20, d_model=6, n_layers=2, d_state=4, dropout=0.0, **ablation)
    models = {m: MambaClassifier(MambaConfig(scan_method=m, **kwargs))
              for m in ("pallas", "associative")}
    tokens = jax.random.randint(jax.random.key(0), (2, 7), 1, 20)
    mask = jnp.asarray([[1] * 7, [1] * 4 + [0] * 3], jnp.int32)  # One padded row.
    params = models["associative"].init(jax.random.key(1), tokens, mask)["params"]
    calls = []
    fused = pallas_scan.fused_selective_scan

    def spy(*args, **kw):
      calls.append(kw)
      return fused(*args, **kw)

    def loss_and_logits(method):
      def f(params):
        logits = models[method].apply({"params": params}, tokens, mask)
        return jnp.sum(logits * jnp.asarray([1.0, -2.0])), logits
      return jax.jit(jax.value_and_grad(f, has_aux=True))

    small_kernel = functools.partial(pallas_scan.selective_scan_pallas, chunk_size=4, block_d=8)
    with mock.patch.dict(scan.METHODS, {"pallas": spy}), \
         mock.patch.object(pallas_scan, "selective_scan_pallas", small_kernel):
      (_, logits), grads = loss_and_logits("pallas")(params)
    (_, logits_ref), grads_ref = loss_and_logits("associative")(params)
    # Every layer fused softplus, bias and gate into the kernel.
    self.assertLen(calls, 2)
    for kw in calls:
      self.assertTrue(kw["delta_softplus"])
      self.assertIsNotNone(kw["z"])
      self.assertIsNotNone(kw["delta_bias"])
    self.assertLessEqual(rel_err(logits, logits_ref), 1e-5)
    flat = jax.tree_util.tree_leaves_with_path(grads)
    flat_ref = jax.tree_util.tree_leaves(grads_ref)
    self.assertLen(flat, len(flat_ref))
    for (path, g), g_ref in zip(flat, flat_ref):
      self.assertLessEqual(rel_err(g, g_ref), 1e-4, jax.tree_util.keystr(path))


class TritonLoweringTest(parameterized.TestCase):
  """Lowers the kernels for CUDA without a GPU: catches ops the Triton lowering lacks."""

  @parameterized.parameters((jnp.float32, 1), (jnp.bfloat16, 1), (jnp.float32, 3))
  def test_forward_and_backward_lower_to_triton(self, dtype, num_segments):
    b, l, d, n = 2, 100, 40, 16
    seq = lambda last: jax.ShapeDtypeStruct((b, l, last), dtype)
    f32 = lambda *shape: jax.ShapeDtypeStruct(shape, jnp.float32)
    args = (seq(d), seq(d), f32(d, n), seq(n), seq(n), f32(d), seq(d), f32(d), f32(b, d, n))

    def loss(u, delta, A, B, C, D, z, bias, h0):
      y, h = pallas_scan.selective_scan_pallas(
          u, delta, A, B, C, D, z=z, delta_bias=bias, delta_softplus=True, initial_state=h0,
          return_state=True, num_segments=num_segments, interpret=False)
      return jnp.sum(y.astype(jnp.float32)) + jnp.sum(h)

    with _verifying_triton_modules() as verified:
      lowered = jax.jit(jax.grad(loss, argnums=tuple(range(9)))).trace(*args).lower(
          lowering_platforms=("cuda",))
    # A forward kernel (saving chunk states) and a backward kernel, each with a
    # segment-summary pass before it when segmented.
    kernels = 2 if num_segments == 1 else 4
    self.assertEqual(lowered.as_text().count("__gpu$xla.gpu.triton"), kernels)
    if verified is not None:  # The MLIR verifier accepted every Triton module.
      self.assertEqual(verified, [True] * kernels)


@contextlib.contextmanager
def _verifying_triton_modules():
  """Runs the MLIR verifier on each Triton module Pallas builds (private API; None if absent)."""
  try:
    from jax._src.pallas.triton import pallas_call_registration as registration

    lower = registration.lowering.lower_jaxpr_to_triton_module
  except (ImportError, AttributeError):
    yield None
    return
  results = []

  def lower_and_verify(*args, **kwargs):
    lowering_result = lower(*args, **kwargs)
    results.append(lowering_result.module.operation.verify())
    return lowering_result

  with mock.patch.object(registration.lowering, "lower_jaxpr_to_triton_module", lower_and_verify):
    yield results


# GPU cases (b, l, d, n, num_segments): l = 1; l not a multiple of the 16-token
# chunk and d not a multiple of the 16-channel block; n = 8; a long segmented scan.
GPU_SHAPES = ((3, 1, 64, 16, None), (2, 37, 100, 16, None), (1, 1000, 48, 8, None),
              (1, 4097, 96, 16, 7))
# Outputs and gradients in a bfloat16 array differ from the reference by its rounding.
BF16_TOLERANCE = 1e-2


def _check_against_associative(test, shape, dtype, fused, **kernel_options):
  """selective_scan(method="pallas") vs "associative": y, h_last and every gradient.

  Float32 arrays within 1e-5 (forward) and 1e-4 (gradients); bfloat16 arrays
  within BF16_TOLERANCE. ``fused``: with z, delta_bias and delta_softplus.
  """
  b, l, d, n, num_segments = shape
  u, delta, A, B, C, D = random_scan_inputs(l + d, b, l, d, n)
  z, bias, h0 = _random_extras(l, b, l, d, n)
  cot_y, cot_h = _cotangents(d, b, l, d, n)
  low = lambda x: jnp.asarray(x, dtype)
  args = (low(u), low(delta), A, low(B), low(C), D, low(z), bias, h0)
  names = "u delta A B C D z bias h0".split()
  if not fused:  # Plain scan: no gate, no bias, delta used as given.
    args, names = args[:6] + args[8:], names[:6] + names[8:]

  def by(method):
    def scan(*a):
      extras = dict(z=a[6], delta_bias=a[7], delta_softplus=True) if fused else {}
      return ssm.selective_scan(*a[:6], initial_state=a[-1], return_state=True,
                                method=method, **extras)
    return scan

  def tolerance(x, f32_tolerance):
    return f32_tolerance if x.dtype == jnp.float32 else BF16_TOLERANCE

  def values_and_grads(method):
    grad = jax.grad(_loss_with_state(by(method), cot_y, cot_h), argnums=tuple(range(len(args))))
    return jax.jit(by(method))(*args), jax.jit(grad)(*args)

  kernel = functools.partial(pallas_scan.selective_scan_pallas, num_segments=num_segments,
                             **kernel_options)
  with mock.patch.object(pallas_scan, "selective_scan_pallas", kernel):
    (y, h), grads = values_and_grads("pallas")
  (y_ref, h_ref), grads_ref = values_and_grads("associative")
  test.assertEqual(y.dtype, jnp.dtype(dtype))
  test.assertLessEqual(rel_err(y, y_ref), tolerance(y, 1e-5))
  test.assertLessEqual(rel_err(h, h_ref), 1e-5)
  for name, g, g_ref, x in zip(names, grads, grads_ref, args):
    test.assertEqual(g.dtype, x.dtype, name)
    test.assertLessEqual(rel_err(g, g_ref), tolerance(g, 1e-4), name)


@pytest.mark.skipif(not ON_GPU, reason="needs a GPU backend (compiled Triton kernels)")
class GpuTest(parameterized.TestCase):
  """Compiled kernels vs the associative scan on random shapes.

  Forward rel <= 1e-5 and every gradient rel <= 1e-4 for float32 arrays (all
  of them with float32 inputs; the state and the A, D, delta_bias, h0
  gradients with bfloat16 inputs); bfloat16 arrays within BF16_TOLERANCE.
  """

  @parameterized.parameters(*[
      dict(shape=shape, dtype=dtype, fused=fused)
      for shape in GPU_SHAPES for dtype in ("float32", "bfloat16") for fused in (True, False)
  ] + [dict(shape=(2, 513, 1536, 16, None), dtype=dtype, fused=True)
       for dtype in ("float32", "bfloat16")])
  def test_forward_and_gradients_match_associative(self, shape, dtype, fused):
    _check_against_associative(self, shape, dtype, fused)

  def test_core_api_pallas_is_available(self):
    self.assertEqual(ssm.resolve_method("pallas"), "pallas")
    self.assertFalse(pallas_scan.default_interpret())


@pytest.mark.skipif(not ON_GPU, reason="needs a GPU backend (compiled Triton kernels)")
class GpuFusedMixerTest(FusedMixerTest):
  """The fused mixer of FusedMixerTest with compiled kernels."""
