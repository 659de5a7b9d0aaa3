"""Hash-based splits: deterministic, stratified, order-independent, duplicates together."""

import numpy as np
import pytest

from train.data import splits

FRACTIONS = (0.8, 0.1, 0.1)


def _corpus(seed=0):
  """3000 negative and 1000 positive texts, with duplicates and some texts under both labels."""
  rng = np.random.default_rng(seed)
  texts = [f"negative tweet {i}" for i in range(2800)] + [f"positive tweet {i}" for i in range(900)]
  labels = [0] * 2800 + [1] * 900
  for i in rng.integers(0, 2800, 200):  # Duplicates within a label.
    texts.append(f"negative tweet {i}")
    labels.append(0)
  for i in rng.integers(0, 900, 80):
    texts.append(f"positive tweet {i}")
    labels.append(1)
  for i in range(20):  # The same text with both labels.
    texts.append(f"negative tweet {i}")
    labels.append(1)
  return texts, np.asarray(labels, np.int32)


def test_keys_are_stable():
  keys = splits.text_keys(["hello", "hello", "world"])
  assert keys.dtype == np.uint64
  assert keys[0] == keys[1] != keys[2]
  assert int(keys[0]) == int.from_bytes(__import__("hashlib").blake2b(b"hello", digest_size=8).digest(), "little")


def test_split_is_deterministic_and_independent_of_row_order():
  texts, labels = _corpus()
  keys = splits.text_keys(texts)
  assignment = splits.assign_splits(keys, labels, FRACTIONS)
  np.testing.assert_array_equal(assignment, splits.assign_splits(keys, labels, FRACTIONS))
  order = np.random.default_rng(1).permutation(len(texts))
  np.testing.assert_array_equal(splits.assign_splits(keys[order], labels[order], FRACTIONS), assignment[order])


def test_split_is_stratified():
  texts, labels = _corpus()
  assignment = splits.assign_splits(splits.text_keys(texts), labels, FRACTIONS)
  for label in (0, 1):
    rows = np.sum(labels == label)
    counts = np.bincount(assignment[labels == label], minlength=3)
    # Exact up to the size of the duplicate group at each boundary.
    np.testing.assert_allclose(counts, np.asarray(FRACTIONS) * rows, atol=3)


def test_duplicates_share_a_split():
  texts, labels = _corpus()
  keys = splits.text_keys(texts)
  assignment = splits.assign_splits(keys, labels, FRACTIONS)
  for key in np.unique(keys):
    assert len(set(assignment[keys == key].tolist())) == 1


def test_duplicate_stats():
  texts = ["a", "b", "a", "c", "a", "b", "d"]
  labels = np.asarray([0, 0, 0, 1, 1, 0, 1])
  assert splits.duplicate_stats(splits.text_keys(texts), labels) == {
      "duplicate_rows": 3, "duplicate_groups": 2, "conflicting_label_texts": 1}


@pytest.mark.parametrize("bad", [(0.5, 0.5), (0.9, 0.2, 0.1), (1.1, -0.05, -0.05)])
def test_bad_fractions(bad):
  with pytest.raises(ValueError, match="split_fractions"):
    splits.assign_splits(np.zeros(3, np.uint64), np.zeros(3, np.int32), bad)
