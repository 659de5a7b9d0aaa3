"""Metric functions, loss, optimizer mask and schedule, model factory: hand-made cases."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from configs import sent140, tiny
from train.loop import models, optimizer
from train.loop.tasks import weighted_cross_entropy
from train.scoring import metrics


def test_confusion_matrix_and_macro_f1():
  labels = np.array([0, 0, 0, 1, 1, 1, 1, 1])
  preds = np.array([0, 0, 1, 1, 1, 1, 0, 0])
  matrix = metrics.confusion_matrix(labels, preds, 2)
  np.testing.assert_array_equal(matrix, [[2, 1], [2, 3]])
  # class 0: P = 2/4, R = 2/3 -> F1 = 4/7; class 1: P = 3/4, R = 3/5 -> F1 = 2/3.
  assert metrics.macro_f1(matrix) == pytest.approx((4 / 7 + 2 / 3) / 2)


def test_macro_f1_ignores_absent_classes_and_scores_perfect_one():
  matrix = metrics.confusion_matrix(np.array([1, 1]), np.array([1, 1]), 3)
  assert metrics.macro_f1(matrix) == 1.0


def test_expected_calibration_error_hand_case():
  # Two bins of 10 (num_bins=10): confidences 0.95 (2 right of 2) and 0.55 (1 right of 2).
  confidence = np.array([0.95, 0.95, 0.55, 0.55])
  correct = np.array([1, 1, 1, 0])
  # |1 - 0.95| * 2/4 + |0.5 - 0.55| * 2/4 = 0.025 + 0.025.
  assert metrics.expected_calibration_error(confidence, correct, 10) == pytest.approx(0.05)
  # Perfectly calibrated: 0.75 confidence, 3 of 4 right.
  assert metrics.expected_calibration_error(np.full(4, 0.75), np.array([1, 1, 1, 0]), 10) == pytest.approx(0)
  # Bin edges: 1.0 is in the last bin, 0.1 in the first.
  assert metrics.expected_calibration_error(np.array([1.0, 0.1]), np.array([1, 0]), 10) == pytest.approx(0.05)


def test_classification_metrics():
  probs = np.array([[0.9, 0.1], [0.2, 0.8], [0.6, 0.4], [0.3, 0.7]])
  labels = np.array([0, 1, 1, 1])
  m = metrics.classification_metrics(probs, labels, num_bins=10)
  assert m["accuracy"] == 0.75
  assert m["num_examples"] == 4
  assert m["confusion_matrix"] == [[1, 0], [1, 2]]
  assert m["loss"] == pytest.approx(-np.mean(np.log([0.9, 0.8, 0.4, 0.7])))
  with pytest.raises(ValueError, match="labels must be in"):
    metrics.classification_metrics(probs, np.array([0, 1, 2, 1]))


def test_three_way_threshold_and_curve():
  probs = np.array([[0.95, 0.05], [0.45, 0.55], [0.3, 0.7], [0.6, 0.4]])
  labels = np.array([0, 2, 1, 2])
  np.testing.assert_array_equal(metrics.three_way_predictions(probs, 0.65), [0, 2, 1, 2])
  assert metrics.three_way_accuracy(probs, labels, 0.65) == 1.0
  assert metrics.three_way_accuracy(probs, labels, 0.5) == 0.5  # Nothing neutral.
  assert metrics.three_way_accuracy(probs, labels, 0.99) == 0.5  # Everything neutral.
  curve = metrics.three_way_curve(probs, labels, [0.5, 0.65, 0.99])
  assert curve == [[0.5, 0.5], [0.65, 1.0], [0.99, 0.5]]
  report = metrics.manual_test_report(probs, labels, 0.65, num_bins=10)
  assert report["binary"]["num_examples"] == 2 and report["binary"]["accuracy"] == 1.0
  assert report["three_way"]["accuracy"] == 1.0 and report["three_way"]["num_neutral"] == 2


def test_label_smoothing_loss_value():
  logits = jnp.array([[2.0, -1.0], [0.5, 0.5]])
  labels = jnp.array([0, 1])
  eps = 0.1
  # smooth_labels: (1 - eps) * one_hot + eps / c -> targets [0.95, 0.05] and [0.05, 0.95].
  log_p = jax.nn.log_softmax(logits)
  expected_rows = -(0.95 * log_p[0, 0] + 0.05 * log_p[0, 1]), -(0.05 * log_p[1, 0] + 0.95 * log_p[1, 1])
  loss = weighted_cross_entropy(logits, labels, jnp.ones(2), eps)
  assert float(loss) == pytest.approx(float(np.mean(expected_rows)), rel=1e-6)
  # Zero-weight rows do not count.
  only_first = weighted_cross_entropy(logits, labels, jnp.array([1.0, 0.0]), eps)
  assert float(only_first) == pytest.approx(float(expected_rows[0]), rel=1e-6)
  # eps = 0 is plain cross-entropy.
  plain = weighted_cross_entropy(logits, labels, jnp.ones(2), 0.0)
  assert float(plain) == pytest.approx(float(-(log_p[0, 0] + log_p[1, 1]) / 2), rel=1e-6)


def _mamba_params(config):
  model = models.create_model(config, vocab_size=30)
  dummy = jnp.ones((1, 8), jnp.int32)
  return jax.eval_shape(model.init, jax.random.key(0), dummy, dummy)["params"]


def test_weight_decay_mask_excludes_dynamics_biases_and_norms():
  config = tiny.get_config()
  params = _mamba_params(config)
  mask = optimizer.weight_decay_mask(params, config.no_decay_regex)
  flat = {optimizer.param_path(path): leaf
          for path, leaf in jax.tree_util.tree_flatten_with_path(mask)[0]}
  no_decay = sorted(p for p, decayed in flat.items() if not decayed)
  decayed = sorted(p for p, decayed in flat.items() if decayed)
  for name in ("A_log", "D", "conv_bias", "scale", "bias"):
    assert any(p.split("/")[-1] == name for p in no_decay), (name, no_decay)
  assert not any(p.split("/")[-1] in ("A_log", "D", "bias", "conv_bias", "scale") for p in decayed)
  for name in ("embed/embedding", "head/kernel", "mixer/in_proj/kernel", "mixer/conv_kernel"):
    assert any(p.endswith(name) for p in decayed), (name, decayed)


def test_weight_decay_skips_masked_parameters():
  config = tiny.get_config()
  config.learning_rate = 0.1
  config.warmup_steps = 0
  params = {"mixer": {"A_log": jnp.ones(3), "kernel": jnp.ones(3)}}
  tx = optimizer.create_optimizer(config, 10, params)
  zero_grads = jax.tree_util.tree_map(jnp.zeros_like, params)
  updates, _ = tx.update(zero_grads, tx.init(params), params)
  np.testing.assert_array_equal(updates["mixer"]["A_log"], 0.0)
  assert float(updates["mixer"]["kernel"][0]) < 0.0


def test_schedule_warmup_peak_and_end():
  config = sent140.get_config()
  schedule = optimizer.learning_rate_schedule(config, 10_000)
  assert float(schedule(0)) == 0.0
  assert float(schedule(config.warmup_steps)) == pytest.approx(config.learning_rate)
  assert float(schedule(10_000)) == pytest.approx(config.learning_rate * config.end_learning_rate_factor)


def test_create_model_dispatch_and_errors():
  config = tiny.get_config()
  assert models.count_params(_mamba_params(config)) > 0
  config.model_type = "rnn"
  with pytest.raises(ValueError, match="model_type must be one of"):
    models.create_model(config, 30)
  config = tiny.get_config()
  config.model.not_a_field = 3
  with pytest.raises(ValueError, match="does not fit MambaConfig"):
    models.create_model(config, 30)
  config = tiny.get_config()
  config.dtype = "float16"
  with pytest.raises(ValueError, match="config.dtype"):
    models.create_model(config, 30)


def test_every_config_field_is_commented():
  """A field is documented by a comment on its line or by the comment block right above it."""
  import inspect  # pylint: disable=import-outside-toplevel
  from configs import sent140_large  # pylint: disable=import-outside-toplevel
  for module in (sent140, sent140_large, tiny):
    previous = ""
    for line in inspect.getsource(module.get_config).splitlines():
      stripped = line.strip()
      if stripped.startswith("config.") and "=" in stripped and not stripped.startswith("config = "):
        assert "#" in stripped or previous.startswith("#"), f"uncommented config field: {stripped}"
      previous = stripped
