"""Classification metrics on numpy arrays (host side): pure functions, nothing read or written.

Axes (``mamba_jax.notation``): N, c. ``probs`` are softmax outputs (N, c) over
(negative, positive); labels are 0 negative, 1 positive, 2 neutral (manual_test only).
A classifier's report scores the splits of ``REPORTED_SPLITS`` with ``split_metrics``.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

NEUTRAL = 2
DEFAULT_THRESHOLDS = tuple(np.round(np.arange(0.5, 1.0001, 0.025), 3).tolist())
REPORTED_SPLITS = ("validation", "test", "manual_test")  # What a classifier's report scores, in this order.


def softmax(logits: np.ndarray) -> np.ndarray:
  """Row-wise softmax in float64: (N, c) -> (N, c); N may be 0."""
  z = logits.astype(np.float64) - logits.max(axis=-1, keepdims=True, initial=-np.inf)
  e = np.exp(z)
  return e / e.sum(axis=-1, keepdims=True)


def confusion_matrix(labels: np.ndarray, predictions: np.ndarray, num_classes: int) -> np.ndarray:
  """(num_classes, num_classes) counts; row = true label, column = prediction."""
  matrix = np.zeros((num_classes, num_classes), np.int64)
  np.add.at(matrix, (labels, predictions), 1)
  return matrix


def macro_f1(matrix: np.ndarray) -> float:
  """Unweighted mean of per-class F1 over classes that occur (true or predicted)."""
  tp = np.diag(matrix).astype(np.float64)
  support = matrix.sum(axis=1)
  predicted = matrix.sum(axis=0)
  present = (support + predicted) > 0
  denominator = support + predicted
  f1 = np.where(denominator > 0, 2 * tp / np.maximum(denominator, 1), 0.0)
  return float(f1[present].mean()) if present.any() else 0.0


def macro_recall(matrix: np.ndarray) -> float:
  """Unweighted mean of per-class recall over the classes that occur (true count > 0).

  Unlike accuracy it does not reward ignoring a rare class: predicting the majority class
  everywhere scores 1 / (classes that occur).
  """
  matrix = np.asarray(matrix)
  support = matrix.sum(axis=1)
  present = support > 0
  if not present.any():
    return 0.0
  return float((np.diag(matrix)[present] / support[present]).mean())


def per_class_metrics(matrix: np.ndarray) -> list[dict]:
  """Per class (in id order): precision, recall, f1 and support (true count) from a confusion matrix.

  A class never predicted has precision 0; one that never occurs has recall 0.
  """
  matrix = np.asarray(matrix)
  tp = np.diag(matrix).astype(np.float64)
  support, predicted = matrix.sum(axis=1), matrix.sum(axis=0)
  rows = []
  for c in range(matrix.shape[0]):
    precision = tp[c] / predicted[c] if predicted[c] else 0.0
    recall = tp[c] / support[c] if support[c] else 0.0
    f1 = 2 * tp[c] / (support[c] + predicted[c]) if support[c] + predicted[c] else 0.0
    rows.append({"precision": float(precision), "recall": float(recall), "f1": float(f1),
                 "support": int(support[c])})
  return rows


def expected_calibration_error(confidence: np.ndarray, correct: np.ndarray, num_bins: int = 15) -> float:
  """sum_bins |bin| / N * |accuracy(bin) - mean confidence(bin)|, equal-width bins on (0, 1].

  A confidence of exactly 0 goes into the first bin.
  """
  confidence = np.asarray(confidence, np.float64)
  correct = np.asarray(correct, np.float64)
  n = confidence.shape[0]
  if n == 0:
    return 0.0
  bins = np.clip(np.ceil(confidence * num_bins).astype(np.int64) - 1, 0, num_bins - 1)
  ece = 0.0
  for b in range(num_bins):
    in_bin = bins == b
    count = int(in_bin.sum())
    if count:
      ece += count / n * abs(correct[in_bin].mean() - confidence[in_bin].mean())
  return float(ece)


def classification_metrics(probs: np.ndarray, labels: np.ndarray, num_bins: int = 15) -> dict:
  """accuracy, loss (plain cross-entropy, no smoothing), macro_f1, macro_recall, ece, confusion_matrix,
  num_examples, per_class (``per_class_metrics``, in class id order)."""
  probs = np.asarray(probs, np.float64)
  labels = np.asarray(labels, np.int64)
  num_classes = probs.shape[1]
  if labels.size and (labels.min() < 0 or labels.max() >= num_classes):
    raise ValueError(f"labels must be in [0, {num_classes}); got {sorted(set(labels.tolist()))}")
  predictions = probs.argmax(axis=1)
  confidence = probs.max(axis=1)
  correct = predictions == labels
  n = int(labels.shape[0])
  true_probs = probs[np.arange(n), labels] if n else np.zeros((0,))
  matrix = confusion_matrix(labels, predictions, num_classes)
  return {
      "accuracy": float(correct.mean()) if n else 0.0,
      "loss": float(-np.log(np.maximum(true_probs, 1e-12)).mean()) if n else 0.0,
      "macro_f1": macro_f1(matrix),
      "macro_recall": macro_recall(matrix),
      "ece": expected_calibration_error(confidence, correct, num_bins),
      "confusion_matrix": matrix.tolist(),
      "num_examples": n,
      "per_class": per_class_metrics(matrix),
  }


def three_way_predictions(probs: np.ndarray, threshold: float) -> np.ndarray:
  """argmax over (negative, positive), replaced by NEUTRAL where max prob < threshold."""
  probs = np.asarray(probs)
  return np.where(probs.max(axis=1) < threshold, NEUTRAL, probs.argmax(axis=1))


def three_way_accuracy(probs: np.ndarray, labels: np.ndarray, threshold: float) -> float:
  labels = np.asarray(labels)
  if labels.size == 0:
    return 0.0
  return float((three_way_predictions(probs, threshold) == labels).mean())


def three_way_curve(
    probs: np.ndarray, labels: np.ndarray, thresholds: Sequence[float] = DEFAULT_THRESHOLDS
) -> list[list[float]]:
  """[[threshold, three-way accuracy], ...]."""
  return [[float(t), three_way_accuracy(probs, labels, t)] for t in thresholds]


def manual_test_report(probs: np.ndarray, labels: np.ndarray, threshold: float, num_bins: int = 15) -> dict:
  """{"binary": metrics on the pos/neg rows, "three_way": {threshold, accuracy, curve}} on all rows."""
  labels = np.asarray(labels)
  binary = labels != NEUTRAL
  return {
      "binary": classification_metrics(probs[binary], labels[binary], num_bins),
      "three_way": {
          "threshold": float(threshold),
          "accuracy": three_way_accuracy(probs, labels, threshold),
          "num_examples": int(labels.shape[0]),
          "num_neutral": int((~binary).sum()),
          "curve": three_way_curve(probs, labels),
      },
  }


def split_metrics(name: str, probs: np.ndarray, labels: np.ndarray, neutral_threshold: float,
                  ece_bins: int) -> dict:
  """The report's metrics of split ``name``: ``manual_test_report`` for "manual_test", else
  ``classification_metrics``.

  probs (N, c) softmax probabilities, labels (N,).
  """
  if name == "manual_test":
    return manual_test_report(probs, labels, neutral_threshold, ece_bins)
  return classification_metrics(probs, labels, ece_bins)
