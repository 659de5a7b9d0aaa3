"""The Flax Mamba classifier, Mamba-1 and Mamba-2: both directions, recurrent inference, initialization, config checks.

What every classifier promises (padding, logits, dropout, bfloat16, gradients) is in tests/test_classifiers.py.
"""

import math

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from absl.testing import parameterized

from mamba_jax import MambaClassifier, MambaConfig, init_cache
from mamba_jax.block import reverse_real_tokens

VOCAB = 50


def _config(**overrides):
  kwargs = dict(vocab_size=VOCAB, d_model=16, n_layers=2, d_state=4, dropout=0.1)
  kwargs.update(overrides)
  return MambaConfig(**kwargs)


def _init(cfg, batch=3, length=9, seed=0):
  model = MambaClassifier(cfg)
  tokens = jax.random.randint(jax.random.key(seed), (batch, length), 1, VOCAB)
  mask = jnp.ones((batch, length), jnp.int32)
  variables = model.init({"params": jax.random.key(seed + 1)}, tokens, mask)
  return model, variables, tokens, mask


ABLATIONS = [
    dict(),
    dict(select_delta=False),
    dict(select_bc=False),
    dict(select_delta=False, select_bc=False),
    dict(use_conv=False),
]
MAMBA2 = dict(mixer="mamba2", head_dim=8, n_groups=2, chunk_size=4)  # 4 heads in 2 groups; l = 9 spans 3 chunks.
MIXERS = {"mamba1": {}, "mamba2": MAMBA2}
# The recurrent state of one layer for a batch of 3 (init_cache): (b, d, n), and Mamba-2's (b, h, p, n).
STATE_SHAPES = {"mamba1": (3, 32, 4), "mamba2": (3, 4, 8, 4)}


class BidirectionalTest(parameterized.TestCase):

  def test_reverse_real_tokens_reverses_each_row_and_keeps_padding(self):
    x = jnp.arange(2 * 5 * 3, dtype=jnp.float32).reshape(2, 5, 3)
    mask = jnp.array([[1, 1, 1, 0, 0], [1, 1, 1, 1, 1]])
    reversed_x = reverse_real_tokens(x, mask)
    np.testing.assert_array_equal(reversed_x[0], x[0, [2, 1, 0, 3, 4]])
    np.testing.assert_array_equal(reversed_x[1], x[1, ::-1])
    np.testing.assert_array_equal(reverse_real_tokens(reversed_x, mask), x)

  def test_backward_direction_sees_later_tokens(self):
    length, changed = 8, 6
    for bidirectional in (False, True):
      cfg = _config(bidirectional=bidirectional, dropout=0.0)
      model, variables, tokens, mask = _init(cfg, length=length)
      features, _ = model.apply(variables, tokens, mask, method=model.encode)
      edited = tokens.at[:, changed].set((tokens[:, changed] % (VOCAB - 1)) + 1)
      edited_features, _ = model.apply(variables, edited, mask, method=model.encode)
      earlier_change = float(jnp.max(jnp.abs(edited_features[:, :changed] - features[:, :changed])))
      if bidirectional:
        self.assertGreater(earlier_change, 1e-3)
      else:
        self.assertEqual(earlier_change, 0.0)  # Causal: the forward path never looks ahead.

  def test_parameter_layout(self):
    _, uni, _, _ = _init(_config())
    _, bi, _, _ = _init(_config(bidirectional=True))
    self.assertEqual(set(uni["params"]["layers_0"]), {"norm", "mixer"})
    self.assertEqual(set(bi["params"]["layers_0"]), {"norm", "mixer", "mixer_backward"})
    chex.assert_trees_all_equal_shapes(bi["params"]["layers_1"]["mixer_backward"],
                                       uni["params"]["layers_1"]["mixer"])

  def test_no_recurrent_inference(self):
    cfg = _config(bidirectional=True)
    model, variables, tokens, mask = _init(cfg)
    with pytest.raises(ValueError, match="no recurrent state"):
      init_cache(cfg, 3)
    with pytest.raises(ValueError, match="no recurrent state"):
      model.apply(variables, tokens, mask, method=model.prefill)


class RecurrentInferenceTest(parameterized.TestCase):

  @parameterized.parameters(*[("mamba1", ablation) for ablation in ABLATIONS], ("mamba2", {}))
  def test_step_reproduces_parallel_forward(self, mixer, ablation):
    cfg = _config(**MIXERS[mixer], **ablation)
    model, variables, tokens, mask = _init(cfg, length=12)
    features, _ = model.apply(variables, tokens, mask, method=model.encode)
    cache = init_cache(cfg, tokens.shape[0])
    chex.assert_shape(cache[0].ssm_state, STATE_SHAPES[mixer])
    step = jax.jit(lambda t, c: model.apply(variables, t, c, method=model.step))
    for t in range(tokens.shape[1]):
      out, cache = step(tokens[:, t], cache)
      np.testing.assert_allclose(out, features[:, t], atol=1e-5, rtol=1e-5)

  @parameterized.parameters(*MIXERS)
  def test_prefill_then_step_continues_the_sequence(self, mixer):
    cfg = _config(**MIXERS[mixer])
    model, variables, tokens, mask = _init(cfg, length=12)
    features, _ = model.apply(variables, tokens, mask, method=model.encode)
    # Prompts of different lengths in one right-padded batch.
    lengths = jnp.array([5, 2, 1])
    prompt_mask = (jnp.arange(12)[None] < lengths[:, None]).astype(jnp.int32)
    _, cache = model.apply(variables, tokens * prompt_mask, prompt_mask, method=model.prefill)
    for k in range(4):
      nxt = tokens[jnp.arange(3), lengths + k]
      out, cache = model.apply(variables, nxt, cache, method=model.step)
      expected = features[jnp.arange(3), lengths + k]
      np.testing.assert_allclose(out, expected, atol=1e-5, rtol=1e-5)

  def test_last_pooled_logits_from_step_features(self):
    cfg = _config(pooling="last")
    model, variables, tokens, mask = _init(cfg)
    cache = init_cache(cfg, 3)
    for t in range(tokens.shape[1]):
      feats, cache = model.apply(variables, tokens[:, t], cache, method=model.step)
    logits_step = model.apply(variables, feats, method=model.classify)
    np.testing.assert_allclose(logits_step, model.apply(variables, tokens, mask), atol=1e-5)


class InitializationTest(parameterized.TestCase):

  def test_matches_reference_initialization(self):
    cfg = _config(d_model=64, n_layers=4, d_state=16, dt_min=1e-3, dt_max=0.1)
    _, variables, _, _ = _init(cfg)
    params = variables["params"]
    for i in range(cfg.n_layers):
      mixer = params[f"layers_{i}"]["mixer"]
      dt = jax.nn.softplus(mixer["dt_proj"]["bias"])
      self.assertTrue(bool(jnp.all(dt >= cfg.dt_min * (1 - 1e-5))))
      self.assertTrue(bool(jnp.all(dt <= cfg.dt_max * (1 + 1e-5))))
      # log-uniform: the median of log(dt) is near the middle of the log range.
      mid = 0.5 * (math.log(cfg.dt_min) + math.log(cfg.dt_max))
      self.assertLess(abs(float(jnp.median(jnp.log(dt))) - mid), 0.6)
      A = -jnp.exp(mixer["A_log"])
      self.assertTrue(bool(jnp.all(A < 0)))
      np.testing.assert_allclose(
          mixer["A_log"], np.log(np.broadcast_to(np.arange(1, 17), (cfg.d_inner, 16))), rtol=1e-6)
      np.testing.assert_array_equal(mixer["D"], 1.0)
      r = cfg.resolved_dt_rank
      self.assertEqual(r, math.ceil(64 / 16))
      self.assertLessEqual(float(jnp.max(jnp.abs(mixer["dt_proj"]["kernel"]))), r**-0.5)
      # Torch default Linear init: U(+-1/sqrt(fan_in)); out_proj also / sqrt(n_layers).
      in_bound = 1 / math.sqrt(cfg.d_model)
      out_bound = 1 / math.sqrt(cfg.d_inner) / math.sqrt(cfg.n_layers)
      w_in, w_out = mixer["in_proj"]["kernel"], mixer["out_proj"]["kernel"]
      self.assertLessEqual(float(jnp.max(jnp.abs(w_in))), in_bound)
      self.assertGreater(float(jnp.max(jnp.abs(w_in))), 0.9 * in_bound)
      self.assertLessEqual(float(jnp.max(jnp.abs(w_out))), out_bound)
      self.assertGreater(float(jnp.max(jnp.abs(w_out))), 0.9 * out_bound)
      conv_bound = 1 / math.sqrt(cfg.d_conv)
      self.assertLessEqual(float(jnp.max(jnp.abs(mixer["conv_kernel"]))), conv_bound)
    emb = params["embed"]["embedding"]
    self.assertAlmostEqual(float(jnp.std(emb)), 0.02, delta=0.003)

  def test_dt_floor(self):
    cfg = _config(dt_min=1e-5, dt_max=1e-3, dt_init_floor=1e-4)
    _, variables, _, _ = _init(cfg)
    dt = jax.nn.softplus(variables["params"]["layers_0"]["mixer"]["dt_proj"]["bias"])
    self.assertGreaterEqual(float(jnp.min(dt)), 1e-4 * (1 - 1e-4))

  def test_config_validation(self):
    with pytest.raises(ValueError, match="pooling"):
      _config(pooling="max")
    with pytest.raises(ValueError, match="scan_method"):
      _config(scan_method="cuda")
    with pytest.raises(ValueError, match="dt_rank"):
      _config(dt_rank=0)

  def test_float64_activations_are_rejected(self):
    """float64 could not be honoured (features and logits stay float32): a clear error instead."""
    with pytest.raises(ValueError, match=r"dtype must be one of \('float32', 'bfloat16', 'float16'\).*float64"):
      _config(dtype=jnp.float64)
    for dtype in (jnp.float32, jnp.bfloat16, jnp.float16, "float32"):
      self.assertEqual(_config(dtype=dtype).dtype, dtype)


class Mamba2InitializationAndConfigTest(parameterized.TestCase):

  def test_matches_reference_initialization_and_layout(self):
    cfg = _config(d_model=64, n_layers=4, d_state=16, head_dim=16, mixer="mamba2")
    _, variables, _, _ = _init(cfg)
    for i in range(cfg.n_layers):
      mixer = variables["params"][f"layers_{i}"]["mixer"]
      chex.assert_shape([mixer["A_log"], mixer["D"], mixer["dt_bias"]], (8,))
      conv_dim = cfg.d_inner + 2 * cfg.d_state
      chex.assert_shape(mixer["in_proj"]["kernel"], (64, cfg.d_inner + conv_dim + 8))
      chex.assert_shape(mixer["conv_kernel"], (cfg.d_conv, conv_dim))
      A = np.exp(np.asarray(mixer["A_log"]))
      self.assertTrue(np.all((A >= 1.0) & (A <= 16.0)) and np.ptp(A) > 1.0)  # U[1, 16], not a constant.
      dt = jax.nn.softplus(mixer["dt_bias"])
      self.assertTrue(bool(jnp.all((dt >= cfg.dt_min * (1 - 1e-5)) & (dt <= cfg.dt_max * (1 + 1e-5)))))
      np.testing.assert_array_equal(mixer["D"], 1.0)
      np.testing.assert_array_equal(mixer["norm"]["scale"], 1.0)
      out_bound = 1 / math.sqrt(cfg.d_inner) / math.sqrt(cfg.n_layers)
      self.assertLessEqual(float(jnp.max(jnp.abs(mixer["out_proj"]["kernel"]))), out_bound)

  @parameterized.parameters(
      (dict(head_dim=12), "head_dim 12 must divide d_inner"),
      (dict(n_groups=3), "n_groups 3 must divide the 4 heads"),
      (dict(select_bc=False), "exist for mixer='mamba1' only"),
      (dict(scan_method="pallas"), "takes 'auto', 'associative' or 'sequential'"),
      (dict(dt_limit=(0.5, 0.1)), "dt_limit must be"),
      (dict(mixer="mamba3"), "mixer must be one of"),
  )
  def test_config_errors(self, overrides, message):
    with pytest.raises(ValueError, match=message):
      _config(**dict(MAMBA2, **overrides))
