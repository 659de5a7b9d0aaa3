"""Transformer, Performer and LSTM baselines: what is theirs alone (their padding paths, parameter counts,
config checks, RoPE's relative positions, FAVOR+ against softmax attention, a train step through the trainer).

What every classifier promises (padding, logits, dropout, bfloat16, gradients) is in tests/test_classifiers.py.
"""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from absl.testing import parameterized

import chex

from mamba_jax.baselines import (
    LSTMClassifier,
    LSTMConfig,
    PerformerClassifier,
    PerformerConfig,
    TransformerClassifier,
    TransformerConfig,
    rotary_embedding,
    sinusoidal_positions,
)
from mamba_jax.baselines import performer as performer_lib
from mamba_jax.baselines import transformer as transformer_lib

VOCAB = 50


def _small(kind, **overrides):
  """A tiny model of each kind (fast on CPU)."""
  if kind in ("transformer", "performer"):
    kwargs = dict(vocab_size=VOCAB, d_model=16, num_heads=4, d_ff=32, max_length=32)
    kwargs.update(overrides)
    if kind == "performer":
      return PerformerClassifier(PerformerConfig(**{"num_features": 32, **kwargs}))
    return TransformerClassifier(TransformerConfig(**kwargs))
  kwargs = dict(vocab_size=VOCAB, embed_dim=8, hidden_size=16)
  kwargs.update(overrides)
  return LSTMClassifier(LSTMConfig(**kwargs))


def _init(model, batch=3, length=9, seed=0):
  tokens = jax.random.randint(jax.random.key(seed), (batch, length), 1, VOCAB)
  mask = jnp.ones((batch, length), jnp.int32)
  variables = model.init({"params": jax.random.key(seed + 1)}, tokens, mask)
  return variables, tokens, mask


class RealTokensTest(parameterized.TestCase):

  def test_lstm_final_state_stops_at_the_last_real_token(self):
    model = _small("lstm", pooling="last")
    variables, tokens, _ = _init(model)
    mask = jnp.array([[1] * 5 + [0] * 4] * 3, jnp.int32)
    junk = tokens.at[:, 5:].set(3)
    features = model.apply(variables, tokens * mask, mask, method=model.encode)
    features_junk = model.apply(variables, junk, mask, method=model.encode)
    np.testing.assert_allclose(features_junk[:, :5], features[:, :5], atol=1e-6)

  @parameterized.parameters("transformer", "performer")
  def test_attention_reaches_every_real_token(self, kind):
    # Changing a later real token changes the first token's features
    # (bidirectional attention, unlike the causal models).
    model = _small(kind)
    variables, tokens, mask = _init(model)
    a = model.apply(variables, tokens, mask, method=model.encode)
    b = model.apply(variables, tokens.at[:, 5].set(tokens[:, 5] % (VOCAB - 1) + 1), mask,
                    method=model.encode)
    self.assertGreater(float(jnp.max(jnp.abs(a[:, 0] - b[:, 0]))), 1e-4)


def _num_params(model, length=4):
  tokens = jnp.ones((1, length), jnp.int32)
  shapes = jax.eval_shape(lambda: model.init({"params": jax.random.key(0)}, tokens, tokens))
  return sum(x.size for x in jax.tree_util.tree_leaves(shapes["params"]))


class ParameterCountTest(parameterized.TestCase):

  def test_transformer_study_size(self):
    v, m, f, c, n_layers = 32000, 64, 128, 2, 2
    attention = 4 * (m * m + m)  # q, k, v, out projections with biases
    feed_forward = (m * f + f) + (f * m + m)
    norms = 2 * 2 * m
    expected = v * m + n_layers * (attention + feed_forward + norms) + 2 * m + (m * c + c)
    model = TransformerClassifier(TransformerConfig(vocab_size=v))
    self.assertEqual(_num_params(model), expected)
    learned = TransformerClassifier(TransformerConfig(vocab_size=v, positions="learned",
                                                      max_length=64))
    self.assertEqual(_num_params(learned), expected + 64 * m)
    rope = TransformerClassifier(TransformerConfig(vocab_size=v, positions="rope"))
    self.assertEqual(_num_params(rope), expected)  # Rotations have no parameters.
    performer = PerformerClassifier(PerformerConfig(vocab_size=v, positions="rope", num_features=256))
    self.assertEqual(_num_params(performer), expected)  # Same projections; random features are not trained.

  def test_lstm_study_size(self):
    v, e, u, c = 32000, 64, 128, 2
    # Four gates, each with an input kernel, a recurrent kernel and one bias.
    layer = lambda n_in: 4 * (n_in * u + u * u + u)
    expected = v * e + layer(e) + layer(u) + (u * c + c)
    self.assertEqual(_num_params(LSTMClassifier(LSTMConfig(vocab_size=v))), expected)


class ConfigTest(parameterized.TestCase):

  def test_validation(self):
    with pytest.raises(ValueError, match="divisible"):
      TransformerConfig(vocab_size=10, d_model=10, num_heads=4)
    with pytest.raises(ValueError, match="positions"):
      TransformerConfig(vocab_size=10, positions="rotary")
    with pytest.raises(ValueError, match="must be even"):
      TransformerConfig(vocab_size=10, d_model=12, num_heads=4, positions="rope")
    with pytest.raises(ValueError, match="attention_block"):
      TransformerConfig(vocab_size=10, attention_block=-1)
    with pytest.raises(ValueError, match="num_features"):
      PerformerConfig(vocab_size=10, num_features=0)
    with pytest.raises(ValueError, match="pooling"):
      LSTMConfig(vocab_size=10, pooling="max")
    with pytest.raises(ValueError, match="dropout"):
      LSTMConfig(vocab_size=10, dropout=1.0)

  def test_learned_positions_reject_long_inputs(self):
    model = _small("transformer", positions="learned", max_length=8)
    with pytest.raises(ValueError, match="max_length=8"):
      _init(model, length=9)

  def test_sinusoidal_table(self):
    table = sinusoidal_positions(50, 8)
    np.testing.assert_allclose(table[0], [0, 1] * 4, atol=1e-7)
    np.testing.assert_allclose(table[7, 0], np.sin(7.0), rtol=1e-6)
    np.testing.assert_allclose(table[7, 3], np.cos(7.0 / 10000 ** (2 / 8)), rtol=1e-6)
    np.testing.assert_allclose(table ** 2 @ np.ones(8), 4.0, rtol=1e-5)  # sin^2 + cos^2 per pair


class RotaryPositionTest(parameterized.TestCase):

  def test_scores_depend_on_the_position_difference_only(self):
    # The same query and key vector at every position: after the rotations the score matrix
    # S[s, t] = <R_s q, R_t k> is Toeplitz (a function of t - s), and not constant.
    length, width = 12, 8
    q = jax.random.normal(jax.random.key(0), (width,))
    k = jax.random.normal(jax.random.key(1), (width,))
    tile = lambda v: jnp.broadcast_to(v, (1, length, 1, width))
    rq, rk = rotary_embedding(tile(q))[0, :, 0], rotary_embedding(tile(k))[0, :, 0]
    scores = np.asarray(rq @ rk.T)
    for shift in range(1, 5):
      np.testing.assert_allclose(scores[shift:, shift:], scores[:-shift, :-shift], atol=1e-5)
    self.assertGreater(float(np.ptp(np.diagonal(scores, 3)) + np.ptp(scores[0])), 1e-2)
    np.testing.assert_allclose(rq[0], q, atol=1e-7)  # Position 0 is not rotated.
    np.testing.assert_allclose(jnp.linalg.norm(rq, axis=-1), jnp.linalg.norm(q) * np.ones(length), rtol=1e-5)

  def test_random_vectors_keep_relative_scores_under_a_shift(self):
    # Any q at position s and k at position t score as q at s + d and k at t + d.
    width, s, t, d = 16, 3, 9, 5
    q, k = jax.random.normal(jax.random.key(2), (2, width))
    at = lambda v, position: jnp.zeros((1, 20, 1, width)).at[0, position, 0].set(v)
    score = lambda a, b: float(rotary_embedding(at(q, a))[0, a, 0] @ rotary_embedding(at(k, b))[0, b, 0])
    self.assertAlmostEqual(score(s, t), score(s + d, t + d), places=4)
    self.assertNotAlmostEqual(score(s, t), score(s, t + 1), places=2)

  def test_rope_model_is_order_sensitive_without_a_position_table(self):
    model = _small("transformer", positions="rope", dropout=0.0)
    variables, tokens, mask = _init(model)
    self.assertNotIn("position_embedding", variables["params"])
    swapped = tokens.at[:, 2].set(tokens[:, 6]).at[:, 6].set(tokens[:, 2])
    logits, logits_swapped = model.apply(variables, tokens, mask), model.apply(variables, swapped, mask)
    self.assertGreater(float(jnp.max(jnp.abs(logits - logits_swapped))), 1e-5)


class BlockwiseAttentionTest(parameterized.TestCase):
  """``attention_block`` > 0: the dense attention's function, gradients and dropout law in blocks of queries."""

  def _pair(self, positions, block=4, length=19, **overrides):
    dense = _small("transformer", positions=positions, n_layers=1, **overrides)
    blockwise = _small("transformer", positions=positions, n_layers=1, attention_block=block, **overrides)
    tokens = jax.random.randint(jax.random.key(3), (3, length), 1, VOCAB)
    mask = (jnp.arange(length)[None] < jnp.array([[length], [11], [5]])).astype(jnp.int32)  # Right padding.
    variables = dense.init({"params": jax.random.key(4)}, tokens, mask)
    return dense, blockwise, variables, tokens, mask

  @parameterized.parameters("rope", "sinusoidal")
  def test_same_logits_and_gradients_as_dense(self, positions):
    dense, blockwise, variables, tokens, mask = self._pair(positions)  # 19 queries: 5 blocks, the last padded.
    np.testing.assert_allclose(jax.jit(blockwise.apply)(variables, tokens, mask),
                               jax.jit(dense.apply)(variables, tokens, mask), atol=1e-5)
    loss = lambda model: lambda params: jnp.sum(model.apply({"params": params}, tokens, mask) ** 2)
    grads = [jax.jit(jax.grad(loss(m)))(variables["params"]) for m in (dense, blockwise)]
    chex.assert_trees_all_close(grads[1], grads[0], atol=1e-5)
    short = _small("transformer", positions=positions, n_layers=1, attention_block=64)  # One block: the dense function.
    np.testing.assert_allclose(short.apply(variables, tokens, mask), dense.apply(variables, tokens, mask), atol=1e-6)

  def test_dropout_masks_per_block_keep_the_dense_rate(self):
    dense, blockwise, variables, tokens, mask = self._pair("rope", dropout=0.5)
    apply = jax.jit(lambda seed: blockwise.apply(variables, tokens, mask, train=True,
                                                 rngs={"dropout": jax.random.key(seed)}))
    np.testing.assert_array_equal(apply(7), apply(7))  # Same rng, same draw.
    self.assertGreater(float(jnp.max(jnp.abs(apply(7) - apply(8)))), 1e-4)
    key = jax.random.normal(jax.random.key(5), (1, 64, 1, 4))
    value = jnp.ones((1, 64, 1, 4))
    out = jax.jit(functools.partial(transformer_lib.exact_attention, dropout_rate=0.25, block_size=8))(
        key, key, value, dropout_rng=jax.random.key(6))
    # Each output row is sum(kept weights) / 0.75 (the weights sum to 1): its mean over rows is ~1.
    self.assertAlmostEqual(float(jnp.mean(out)), 1.0, delta=0.1)
    self.assertGreater(float(jnp.std(out[0, :, 0, 0])), 0.05)

  def test_training_step_memory_grows_with_the_block_not_the_length(self):
    length = 512
    tokens, mask = jnp.ones((2, length), jnp.int32), jnp.ones((2, length), jnp.int32)

    def temp_bytes(block):
      model = _small("transformer", positions="rope", attention_block=block, max_length=length)
      params = model.init({"params": jax.random.key(0)}, tokens[:, :8], mask[:, :8])["params"]
      grad = jax.jit(jax.grad(lambda p: jnp.sum(model.apply({"params": p}, tokens, mask, train=True,
                                                             rngs={"dropout": jax.random.key(1)}))))
      return grad.lower(params).compile().memory_analysis().temp_size_in_bytes

    dense, blockwise = temp_bytes(0), temp_bytes(32)
    self.assertGreater(dense, 2 * 4 * length * length * 4)  # At least one layer's (b, h, l, l) float32 scores.
    self.assertLess(blockwise, dense / 4)


class FavorAttentionTest(parameterized.TestCase):

  def _qkv(self, b=2, l=24, h=2, p=8):
    k1, k2, k3 = jax.random.split(jax.random.key(0), 3)
    return (0.7 * jax.random.normal(k1, (b, l, h, p)), 0.7 * jax.random.normal(k2, (b, l, h, p)),
            jax.random.normal(k3, (b, l, h, p)))

  def test_approaches_softmax_attention_as_the_features_grow(self):
    q, k, v = self._qkv()
    mask = jnp.ones(q.shape[:2], jnp.int32).at[1, 15:].set(0)
    exact = performer_lib.softmax_attention(q, k, v, mask)
    errors = []
    for num_features in (16, 256, 4096):
      per_seed = [float(jnp.mean(jnp.abs(performer_lib.favor_attention(
          q, k, v, performer_lib.orthogonal_gaussian_features(seed, num_features, 8), mask)
                                            - exact))) for seed in range(3)]
      errors.append(np.mean(per_seed))
    self.assertGreater(errors[0], errors[1])
    self.assertGreater(errors[1], errors[2])
    self.assertLess(errors[2], 0.3 * errors[0])
    self.assertLess(errors[2], 0.05)  # |v| ~ 1: a few percent.

  def test_features_are_orthogonal_within_a_block(self):
    features = performer_lib.orthogonal_gaussian_features(0, 20, 8)
    chex.assert_shape(features, (20, 8))
    gram = np.asarray(features[:8] @ features[:8].T)
    np.testing.assert_allclose(gram - np.diag(np.diag(gram)), 0.0, atol=1e-4)
    self.assertTrue(np.all(np.asarray(performer_lib.positive_features(
        jax.random.normal(jax.random.key(1), (1, 5, 2, 8)), features, is_query=True)) > 0))

  def test_padded_keys_get_no_weight(self):
    q, k, v = self._qkv(b=1, l=10)
    features = performer_lib.orthogonal_gaussian_features(0, 64, 8)
    mask = jnp.ones((1, 10), jnp.int32).at[0, 6:].set(0)
    junk_k, junk_v = k.at[:, 6:].set(50.0), v.at[:, 6:].set(-50.0)
    np.testing.assert_allclose(performer_lib.favor_attention(q, junk_k, junk_v, features, mask),
                               performer_lib.favor_attention(q, k, v, features, mask), atol=1e-5)
    alone = performer_lib.favor_attention(q[:, :6], k[:, :6], v[:, :6], features)
    np.testing.assert_allclose(performer_lib.favor_attention(q, junk_k, junk_v, features, mask)[:, :6], alone,
                               atol=1e-5)


class TrainStepTest(parameterized.TestCase):
  """The trainer builds the new baselines by model_type and one batch is learned in a few steps."""

  @parameterized.parameters(("transformer", "rope"), ("performer", "rope"), ("performer", "sinusoidal"))
  def test_trainer_fits_one_batch(self, model_type, positions):
    import ml_collections  # pylint: disable=import-outside-toplevel
    from configs import tiny  # pylint: disable=import-outside-toplevel
    from train.loop import models, trainer as train  # pylint: disable=import-outside-toplevel

    config = tiny.get_config()
    config.model_type = model_type
    config.model = ml_collections.ConfigDict(dict(d_model=16, n_layers=1, num_heads=2, d_ff=32, dropout=0.0,
                                                  positions=positions))
    if model_type == "performer":
      config.model.num_features = 16
    model = models.create_model(config, vocab_size=VOCAB, num_classes=3)
    state = train.create_train_state(config, model, jax.random.key(0), total_steps=40)
    tokens = jax.random.randint(jax.random.key(1), (8, 12), 1, VOCAB)
    batch = {"tokens": tokens, "mask": jnp.ones_like(tokens), "label": jnp.arange(8) % 3,
             "weight": jnp.ones((8,), jnp.float32)}
    step = jax.jit(train.train_step)
    losses = []
    for _ in range(25):
      state, metrics = step(state, batch)
      self.assertTrue(bool(metrics["finite"]))
      losses.append(float(metrics["loss"]))
    self.assertLess(losses[-1], 0.5 * losses[0], losses)
