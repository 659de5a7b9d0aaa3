"""The Flax Mamba classifier: padding, recurrent inference, initialization, dtypes."""

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


class PaddingTest(parameterized.TestCase):

  @parameterized.parameters(
      *[dict(pooling=p, method=m, ablation={})
        for p in ("mean", "last") for m in ("associative", "sequential")],
      *[dict(pooling="last", method="sequential", ablation=a) for a in ABLATIONS[1:]],
      *[dict(pooling=p, method=m, ablation=dict(bidirectional=True))
        for p in ("mean", "last") for m in ("associative", "sequential")],
  )
  def test_appending_padding_leaves_logits_unchanged(self, pooling, method, ablation):
    cfg = _config(pooling=pooling, scan_method=method, **ablation)
    model, variables, tokens, _ = _init(cfg)
    lengths = jnp.array([9, 4, 1])
    mask = (jnp.arange(9)[None] < lengths[:, None]).astype(jnp.int32)
    tokens = tokens * mask
    logits = model.apply(variables, tokens, mask)
    padded_tokens = jnp.pad(tokens, ((0, 0), (0, 7)))
    padded_mask = jnp.pad(mask, ((0, 0), (0, 7)))
    # Junk in the padded positions must not matter either.
    padded_tokens = padded_tokens.at[:, 9:].set(7)
    logits_padded = model.apply(variables, padded_tokens, padded_mask)
    np.testing.assert_allclose(logits_padded, logits, atol=1e-6, rtol=0)
    for row, n in enumerate(lengths):
      alone = model.apply(variables, tokens[row:row + 1, :n], mask[row:row + 1, :n])
      np.testing.assert_allclose(alone[0], logits[row], atol=1e-6, rtol=0)


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

  @parameterized.parameters(*ABLATIONS)
  def test_step_reproduces_parallel_forward(self, **ablation):
    cfg = _config(**ablation)
    model, variables, tokens, mask = _init(cfg)
    features, _ = model.apply(variables, tokens, mask, method=model.encode)
    cache = init_cache(cfg, tokens.shape[0])
    step = jax.jit(lambda t, c: model.apply(variables, t, c, method=model.step))
    for t in range(tokens.shape[1]):
      out, cache = step(tokens[:, t], cache)
      np.testing.assert_allclose(out, features[:, t], atol=1e-5, rtol=1e-5)

  def test_prefill_then_step_continues_the_sequence(self):
    cfg = _config()
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


class DtypeAndTrainingModeTest(chex.TestCase):

  def test_bfloat16_activations_float32_params(self):
    cfg32, cfg16 = _config(), _config(dtype=jnp.bfloat16)
    model32, variables, tokens, mask = _init(cfg32)
    logits16 = MambaClassifier(cfg16).apply(variables, tokens, mask)
    self.assertEqual(logits16.dtype, jnp.float32)
    fresh = MambaClassifier(cfg16).init({"params": jax.random.key(0)}, tokens, mask)
    for leaf in jax.tree_util.tree_leaves(fresh):
      self.assertEqual(leaf.dtype, jnp.float32)
    logits32 = model32.apply(variables, tokens, mask)
    np.testing.assert_allclose(logits16, logits32, atol=0.05)

  def test_dropout_is_active_only_in_training(self):
    model, variables, tokens, mask = _init(_config(dropout=0.5))
    eval_a = model.apply(variables, tokens, mask, train=False)
    eval_b = model.apply(variables, tokens, mask, train=False)
    np.testing.assert_array_equal(eval_a, eval_b)
    train_a = model.apply(variables, tokens, mask, train=True, rngs={"dropout": jax.random.key(1)})
    train_b = model.apply(variables, tokens, mask, train=True, rngs={"dropout": jax.random.key(2)})
    self.assertGreater(float(jnp.max(jnp.abs(train_a - train_b))), 1e-4)

  @chex.variants(with_jit=True, without_jit=True)
  def test_logits_shape_and_dtype(self):
    model, variables, tokens, mask = _init(_config(num_classes=3))
    logits = self.variant(lambda v, t, m: model.apply(v, t, m))(variables, tokens, mask)
    chex.assert_shape(logits, (3, 3))
    chex.assert_type(logits, jnp.float32)
    chex.assert_tree_all_finite(logits)

  @parameterized.parameters(False, True)
  def test_gradients_reach_every_parameter(self, bidirectional):
    model, variables, tokens, mask = _init(_config(bidirectional=bidirectional))
    labels = jnp.array([0, 1, 1])

    def loss(params):
      logits = model.apply({"params": params}, tokens, mask, train=True,
                           rngs={"dropout": jax.random.key(0)})
      return -jnp.mean(jax.nn.log_softmax(logits)[jnp.arange(3), labels])

    grads = jax.grad(loss)(variables["params"])
    for path, g in jax.tree_util.tree_leaves_with_path(grads):
      if "embed" in jax.tree_util.keystr(path):
        continue  # only rows of tokens present get a gradient
      self.assertGreater(float(jnp.max(jnp.abs(g))), 0.0, msg=jax.tree_util.keystr(path))


# ---- Mamba-2: the same classifier with MambaConfig(mixer="mamba2") ---------------------------

MAMBA2 = dict(mixer="mamba2", head_dim=8, n_groups=2, chunk_size=4)  # 4 heads in 2 groups; l = 9 spans 3 chunks.


class Mamba2ModelTest(parameterized.TestCase):

  @parameterized.product(pooling=("mean", "last"), method=("associative", "sequential"),
                         bidirectional=(False, True))
  def test_appending_padding_leaves_logits_unchanged(self, pooling, method, bidirectional):
    cfg = _config(pooling=pooling, scan_method=method, bidirectional=bidirectional, **MAMBA2)
    model, variables, tokens, _ = _init(cfg)
    lengths = jnp.array([9, 4, 1])
    mask = (jnp.arange(9)[None] < lengths[:, None]).astype(jnp.int32)
    tokens = tokens * mask
    logits = model.apply(variables, tokens, mask)
    padded_tokens = jnp.pad(tokens, ((0, 0), (0, 7))).at[:, 9:].set(7)
    logits_padded = model.apply(variables, padded_tokens, jnp.pad(mask, ((0, 0), (0, 7))))
    np.testing.assert_allclose(logits_padded, logits, atol=1e-6, rtol=0)
    for row, n in enumerate(lengths):
      alone = model.apply(variables, tokens[row:row + 1, :n], mask[row:row + 1, :n])
      np.testing.assert_allclose(alone[0], logits[row], atol=1e-6, rtol=0)

  def test_step_and_prefill_reproduce_the_parallel_forward(self):
    cfg = _config(**MAMBA2)
    model, variables, tokens, mask = _init(cfg, length=12)
    features, _ = model.apply(variables, tokens, mask, method=model.encode)
    cache = init_cache(cfg, tokens.shape[0])
    chex.assert_shape(cache[0].ssm_state, (3, 4, 8, 4))
    step = jax.jit(lambda t, c: model.apply(variables, t, c, method=model.step))
    for t in range(tokens.shape[1]):
      out, cache = step(tokens[:, t], cache)
      np.testing.assert_allclose(out, features[:, t], atol=1e-5, rtol=1e-5)
    lengths = jnp.array([5, 2, 1])
    prompt_mask = (jnp.arange(12)[None] < lengths[:, None]).astype(jnp.int32)
    _, cache = model.apply(variables, tokens * prompt_mask, prompt_mask, method=model.prefill)
    for k in range(4):
      out, cache = step(tokens[jnp.arange(3), lengths + k], cache)
      np.testing.assert_allclose(out, features[jnp.arange(3), lengths + k], atol=1e-5, rtol=1e-5)

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

  def test_gradients_reach_every_parameter_and_bfloat16_stays_close(self):
    cfg = _config(**MAMBA2)
    model, variables, tokens, mask = _init(cfg)
    labels = jnp.array([0, 1, 1])

    def loss(params):
      logits = model.apply({"params": params}, tokens, mask, train=True, rngs={"dropout": jax.random.key(0)})
      return -jnp.mean(jax.nn.log_softmax(logits)[jnp.arange(3), labels])

    for path, g in jax.tree_util.tree_leaves_with_path(jax.grad(loss)(variables["params"])):
      if "embed" not in jax.tree_util.keystr(path):
        self.assertGreater(float(jnp.max(jnp.abs(g))), 0.0, msg=jax.tree_util.keystr(path))
    logits16 = MambaClassifier(_config(dtype=jnp.bfloat16, **MAMBA2)).apply(variables, tokens, mask)
    self.assertEqual(logits16.dtype, jnp.float32)
    np.testing.assert_allclose(logits16, model.apply(variables, tokens, mask), atol=0.05)

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
