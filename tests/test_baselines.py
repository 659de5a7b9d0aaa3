"""Transformer and LSTM baselines: what is theirs alone (their padding paths, parameter counts, config checks).

What every classifier promises (padding, logits, dropout, bfloat16, gradients) is in tests/test_classifiers.py.
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from absl.testing import parameterized

from mamba_jax.baselines import (
    LSTMClassifier,
    LSTMConfig,
    TransformerClassifier,
    TransformerConfig,
    sinusoidal_positions,
)

VOCAB = 50


def _small(kind, **overrides):
  """A tiny model of each kind (fast on CPU)."""
  if kind == "transformer":
    kwargs = dict(vocab_size=VOCAB, d_model=16, num_heads=4, d_ff=32, max_length=32)
    kwargs.update(overrides)
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

  def test_transformer_attends_to_every_real_token(self):
    # Changing an early real token changes the first token's features
    # (bidirectional attention, unlike the causal models).
    model = _small("transformer")
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
