"""Imbalanced classes: ``config.class_weighting`` ("balanced": inverse class frequency) and macro-averaged recall."""

import numpy as np
import pytest

from train.loop import tasks, trainer as training
from train.scoring import metrics

from tests.test_train_own_data import _tiny

MAJORITY, MINORITY = "negative", "positive"
FILLER = [f"w{i}" for i in range(30)]


def test_balanced_weights_are_inverse_class_frequency_with_mean_one():
  labels = np.array([0] * 100 + [1] * 10 + [3] * 5)  # Class 2 never occurs.
  weights = tasks.balanced_class_weights(labels)
  np.testing.assert_allclose(weights, [115 / 300, 115 / 30, 0.0, 115 / 15], rtol=1e-6)
  assert np.mean(weights[labels]) == pytest.approx(1.0)


def test_macro_recall_is_the_mean_of_per_class_recalls_of_the_classes_that_occur():
  matrix = np.array([[8, 2, 0], [5, 5, 0], [0, 0, 0]])  # Class 2 never occurs.
  assert metrics.macro_recall(matrix) == pytest.approx((0.8 + 0.5) / 2)
  majority_everywhere = np.array([[90, 0], [10, 0]])
  assert metrics.macro_recall(majority_everywhere) == pytest.approx(0.5)
  report = metrics.classification_metrics(np.array([[0.9, 0.1], [0.8, 0.2], [0.3, 0.7]]), np.array([0, 1, 1]))
  assert report["macro_recall"] == pytest.approx((1.0 + 0.5) / 2)


def _cued_rows(label, count, cue_share, rng):
  """``count`` rows of ``label``: 6 random filler words, the word "zap" in a ``cue_share`` of them."""
  rows = []
  for i in range(count):
    words = list(rng.choice(FILLER, 6))
    if i < round(cue_share * count):
      words.insert(int(rng.integers(0, 6)), "zap")
    rows.append((label, " ".join(words)))
  return rows


def _write(path, rows, rng):
  order = rng.permutation(len(rows))
  path.write_text("label\ttext\n" + "".join(f"{rows[i][0]}\t{rows[i][1]}\n" for i in order), encoding="utf-8")
  return str(path)


@pytest.mark.slow
def test_balanced_weighting_raises_minority_recall_on_a_10_to_1_file(tmp_path):
  """A weak cue: "zap" in 60% of the minority's rows and 10% of the majority's. Unweighted, a row with
  the cue is still more likely the majority (0.6 * 60 < 0.1 * 600), so the minority is never predicted;
  weighted by inverse frequency, the cue decides (0.6 > 0.1)."""
  rng = np.random.default_rng(0)
  train_file = _write(tmp_path / "train.tsv", _cued_rows(MAJORITY, 600, 0.1, rng) + _cued_rows(MINORITY, 60, 0.6, rng), rng)
  test_file = _write(tmp_path / "test.tsv", _cued_rows(MAJORITY, 100, 0.1, rng) + _cued_rows(MINORITY, 100, 0.6, rng), rng)
  recall = {}
  for weighting in ("none", "balanced"):
    config = _tiny(tmp_path, train_file, test_file=test_file, class_weighting=weighting, num_epochs=6,
                   best_checkpoint_metric="macro_recall")
    report = training.train_and_evaluate(config, str(tmp_path / weighting))
    test = report["test"]
    recall[weighting] = (test["per_class"][1]["recall"], test["macro_recall"])  # Ids: negative 0, positive 1.
  assert recall["none"][0] < 0.2, recall
  assert recall["balanced"][0] > recall["none"][0] + 0.3, recall
  assert recall["balanced"][1] > recall["none"][1] + 0.1, recall
