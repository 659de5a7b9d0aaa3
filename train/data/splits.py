"""Leak-free, stratified, order-independent train/validation/test assignment.

Each row is keyed by a stable 64-bit hash of its normalized text (blake2b), so exact duplicates
(after normalization) always land in the same split and nothing depends on file order or on
the id column. Within each label, distinct texts are ordered by key (a pseudo-random but fixed
order) and cut where the cumulative row count reaches the split fractions, so every split has
the label proportions of the whole file (up to one duplicate group per boundary). A text that
occurs with several labels is placed with its smallest label, keeping all its copies together.

Axes (``mamba_jax.notation``): N, U.
"""

from __future__ import annotations

import hashlib

import numpy as np

SPLITS_OF_TRAINING_FILE = ("train", "validation", "test")


def text_keys(normalized_texts: list[str]) -> np.ndarray:
  """np.uint64 (N,): blake2b-64 of each UTF-8 normalized text (stable across runs and machines)."""
  blake2b = hashlib.blake2b
  return np.fromiter(
      (int.from_bytes(blake2b(t.encode("utf-8"), digest_size=8).digest(), "little") for t in normalized_texts),
      dtype=np.uint64, count=len(normalized_texts))


def check_fractions(fractions) -> np.ndarray:
  fractions = np.asarray(fractions, np.float64)
  if fractions.shape != (3,) or np.any(fractions < 0) or abs(fractions.sum() - 1.0) > 1e-6:
    raise ValueError(f"split_fractions must be 3 non-negative numbers summing to 1, got {tuple(fractions)}")
  return fractions


def assign_splits(keys: np.ndarray, labels: np.ndarray, fractions) -> np.ndarray:
  """np.int8 (N,): 0 train, 1 validation, 2 test for each row.

  Labels are handled in ascending order. For label c, the distinct texts with a row of label c
  that are not placed yet (a text seen with a smaller label already is) fill, in key order, the
  row quotas fractions * (rows of label c) left over after the already placed ones.

  Args:
    keys: np.uint64 (N,) from text_keys.
    labels: int (N,).
    fractions: (train, validation, test), summing to 1.
  """
  fractions = check_fractions(fractions)
  unique_keys, inverse = np.unique(keys, return_inverse=True)
  group_split = np.full(unique_keys.shape, -1, np.int8)
  for label in np.unique(labels):
    rows_of_label = np.bincount(inverse[labels == label], minlength=len(unique_keys))
    groups = np.flatnonzero(rows_of_label)  # Sorted by key.
    placed = groups[group_split[groups] >= 0]
    already = np.bincount(group_split[placed], weights=rows_of_label[placed], minlength=3)
    quotas = np.maximum(fractions * rows_of_label.sum() - already, 0.0)
    free = groups[group_split[groups] < 0]
    rows = rows_of_label[free]
    rows_before = np.cumsum(rows) - rows
    group_split[free] = np.searchsorted(np.cumsum(quotas)[:-1], rows_before, side="right")
  return group_split[inverse]


def duplicate_stats(keys: np.ndarray, labels: np.ndarray) -> dict[str, int]:
  """Counts of exact duplicates after normalization.

  duplicate_rows: rows whose normalized text occurred before (N - U);
  duplicate_groups: texts that occur more than once; conflicting_label_texts: texts seen with
  more than one label.
  """
  unique_keys, inverse, counts = np.unique(keys, return_inverse=True, return_counts=True)
  stride = int(labels.max()) + 1 if len(labels) else 1  # Distinct (text, label) pairs, any number of classes.
  pairs = np.unique(inverse.astype(np.int64) * stride + labels.astype(np.int64))
  labels_per_text = np.bincount(pairs // stride, minlength=len(unique_keys))
  return {
      "duplicate_rows": int(len(keys) - len(unique_keys)),
      "duplicate_groups": int(np.sum(counts > 1)),
      "conflicting_label_texts": int(np.sum(labels_per_text > 1)),
  }
