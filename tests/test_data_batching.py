"""Batch iterators: coverage, determinism, resumability; the synthetic task."""

import itertools

import ml_collections
import numpy as np
import pytest

from train.data import batching, synthetic
from train.data.datasets import Split


def _split(n=23, length=5):
  tokens = np.zeros((n, length), np.uint16)
  tokens[:, 0] = np.arange(1, n + 1)  # Row id in the first token.
  tokens[:, 1] = 7
  return Split(tokens=tokens, labels=(np.arange(n) % 2).astype(np.int32))


def _ids(batch):
  return batch["tokens"][:, 0]


def test_batch_dtypes_and_shapes():
  batch = next(batching.train_batches(_split(), 4, seed=0))
  assert batch["tokens"].dtype == np.int32 and batch["tokens"].shape == (4, 5)
  assert batch["mask"].dtype == np.int32
  np.testing.assert_array_equal(batch["mask"], batch["tokens"] != 0)
  assert batch["label"].dtype == np.int32 and batch["label"].shape == (4,)
  assert batch["weight"].dtype == np.float32
  np.testing.assert_array_equal(batch["weight"], 1.0)


@pytest.mark.parametrize("batch_size", [1, 4, 5, 23, 30])
def test_eval_batches_cover_every_example_once(batch_size):
  split = _split()
  batches = list(batching.eval_batches(split, batch_size))
  assert len(batches) == batching.num_eval_batches(split, batch_size)
  ids = np.concatenate([_ids(b) for b in batches])
  weights = np.concatenate([b["weight"] for b in batches])
  assert all(b["tokens"].shape == (batch_size, 5) for b in batches)
  np.testing.assert_array_equal(np.sort(ids[weights > 0]), np.arange(1, 24))
  assert weights.sum() == len(split)
  assert np.all(ids[weights == 0] == 0)  # Padding rows are all padding.
  labels = np.concatenate([b["label"] for b in batches])[weights > 0]
  np.testing.assert_array_equal(labels, split.labels)


def test_train_epoch_is_a_permutation_without_the_partial_batch():
  split = _split()
  steps = batching.steps_per_epoch(split, 5)
  assert steps == 4
  epoch = list(itertools.islice(batching.train_batches(split, 5, seed=3), steps))
  ids = np.concatenate([_ids(b) for b in epoch])
  assert len(set(ids.tolist())) == 20  # 20 distinct examples, 3 dropped.
  # Labels travel with their tokens.
  for b in epoch:
    np.testing.assert_array_equal(b["label"], (_ids(b) - 1) % 2)


def test_train_batches_deterministic_per_seed_and_epoch():
  split = _split()
  first = [_ids(b) for b in itertools.islice(batching.train_batches(split, 5, seed=1), 8)]
  again = [_ids(b) for b in itertools.islice(batching.train_batches(split, 5, seed=1), 8)]
  other = [_ids(b) for b in itertools.islice(batching.train_batches(split, 5, seed=2), 8)]
  np.testing.assert_array_equal(first, again)
  assert not np.array_equal(first, other)
  assert not np.array_equal(first[:4], first[4:])  # Each epoch reshuffles.


@pytest.mark.parametrize("start_step", [0, 1, 3, 4, 9])
def test_train_batches_resume_from_step(start_step):
  split = _split()
  fresh = list(itertools.islice(batching.train_batches(split, 5, seed=0), 12))
  resumed = list(itertools.islice(batching.train_batches(split, 5, seed=0, start_step=start_step), 12 - start_step))
  for a, b in zip(fresh[start_step:], resumed):
    for key in a:
      np.testing.assert_array_equal(a[key], b[key])


def test_train_batches_rejects_too_small_split():
  with pytest.raises(ValueError, match="fewer than one batch"):
    next(batching.train_batches(_split(3), 4, seed=0))


def test_synthetic_datasets_deterministic_and_consistent():
  config = ml_collections.ConfigDict(dict(max_length=12, seed=0, max_train_examples=300))
  a, b = synthetic.make_datasets(config), synthetic.make_datasets(config)
  assert set(a.splits) == {"train", "validation", "test", "manual_test"}
  assert len(a.splits["train"]) == 300
  for name in a.splits:
    np.testing.assert_array_equal(a.splits[name].tokens, b.splits[name].tokens)
    assert a.splits[name].tokens.dtype == np.uint16 and a.splits[name].tokens.shape[1] == 12
  assert set(np.unique(a.splits["manual_test"].labels)) == {0, 1, 2}
  assert set(np.unique(a.splits["train"].labels)) == {0, 1}
  tok = a.tokenizer
  assert tok.pad_id == 0 and int(a.splits["train"].tokens.max()) < tok.vocab_size
  text = a.splits["test"].texts[0]
  np.testing.assert_array_equal(tok.encode([text])[0], a.splits["test"].tokens[0])
  assert tok.decode(a.splits["test"].tokens[0]) == text


def test_synthetic_labels_follow_the_rule():
  """Label = sign of the sentiment-word sum with 'not' flipping the next word."""
  d = synthetic.make_datasets(ml_collections.ConfigDict(dict(max_length=20, seed=1)))
  split = d.splits["validation"]
  for text, label in zip(split.texts, split.labels):
    words, score = text.split(), 0
    for i, w in enumerate(words):
      sign = 1 if w in synthetic.POSITIVE_WORDS else -1 if w in synthetic.NEGATIVE_WORDS else 0
      if i and words[i - 1] == synthetic.NEGATION:
        sign = -sign
      score += sign
    assert score != 0 and label == int(score > 0)
