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
  pairs = list(batching.eval_batches(split, batch_size))
  assert len(pairs) == batching.num_eval_batches(split, batch_size)
  batches = [b for _, b in pairs]
  ids = np.concatenate([_ids(b) for b in batches])
  rows = np.concatenate([r for r, _ in pairs])
  np.testing.assert_array_equal(rows[rows >= 0], np.arange(len(split)))  # Fixed padding: in order.
  np.testing.assert_array_equal(ids[rows >= 0], rows[rows >= 0] + 1)
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
  config = ml_collections.ConfigDict(dict(max_length=12, seed=0, max_train_examples=300, synthetic_train_size=4096,
                                          synthetic_eval_size=512))
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
  d = synthetic.make_datasets(ml_collections.ConfigDict(dict(max_length=20, seed=1, max_train_examples=None,
                                                           synthetic_train_size=4096, synthetic_eval_size=512)))
  split = d.splits["validation"]
  for text, label in zip(split.texts, split.labels):
    words, score = text.split(), 0
    for i, w in enumerate(words):
      sign = 1 if w in synthetic.POSITIVE_WORDS else -1 if w in synthetic.NEGATIVE_WORDS else 0
      if i and words[i - 1] == synthetic.NEGATION:
        sign = -sign
      score += sign
    assert score != 0 and label == int(score > 0)


# ---- Length buckets ----

def _varlen_split(n=101, max_length=12, seed=0):
  """Row id in the first token, then a random real length in [1, max_length]."""
  rng = np.random.default_rng(seed)
  lengths = rng.integers(1, max_length + 1, n)
  lengths[:3] = (1, max_length, 4)
  tokens = np.zeros((n, max_length), np.uint16)
  for i, length in enumerate(lengths):
    tokens[i, :length] = 9
    tokens[i, 0] = i + 1
  return Split(tokens=tokens, labels=(np.arange(n) % 2).astype(np.int32)), lengths


def test_resolve_bounds():
  assert batching.resolve_bounds(None, 64) == (64,)
  assert batching.resolve_bounds((), 64) == (64,)
  assert batching.resolve_bounds((16, 24, 32, 48), 64) == (16, 24, 32, 48, 64)
  assert batching.resolve_bounds((16, 24, 32, 48, 64, 96), 32) == (16, 24, 32)
  for bad in [(24, 16), (16, 16), (0, 8)]:
    with pytest.raises(ValueError, match="bounds"):
      batching.resolve_bounds(bad, 64)


def test_example_lengths_and_buckets():
  split, lengths = _varlen_split()
  np.testing.assert_array_equal(batching.example_lengths(split.tokens), lengths)
  assert batching.example_lengths(np.zeros((2, 5), np.uint16)).tolist() == [0, 0]
  buckets = batching.bucket_of(np.array([0, 1, 4, 5, 8, 9, 12]), (4, 8, 12))
  assert buckets.tolist() == [0, 0, 0, 1, 1, 2, 2]


@pytest.mark.parametrize("batch_size", [1, 4, 7, 50])
def test_bucketed_epoch_pads_to_the_bucket_and_sees_examples_once(batch_size):
  split, lengths = _varlen_split()
  bounds = (3, 6, 9, 12)
  order = batching.TrainOrder(split, batch_size, seed=5, bounds=bounds)
  counts = np.bincount(batching.bucket_of(lengths, bounds), minlength=4)
  expected_steps = int(np.sum(counts // batch_size) + np.sum(counts % batch_size) // batch_size)
  assert order.steps_per_epoch == expected_steps == batching.steps_per_epoch(split, batch_size, bounds)
  epoch = list(itertools.islice(batching.train_batches(split, batch_size, seed=5, bounds=bounds),
                                order.steps_per_epoch))
  ids = np.concatenate([_ids(b) for b in epoch]) - 1
  assert len(ids) == len(set(ids.tolist())) == order.steps_per_epoch * batch_size
  assert len(split) - len(ids) < batch_size  # Only the pool's last partial batch is dropped.
  mixed = 0
  for b in epoch:
    length = b["tokens"].shape[1]
    assert length in bounds
    member_lengths = lengths[_ids(b) - 1]
    assert member_lengths.max() <= length  # Nothing truncated.
    below = bounds[bounds.index(length) - 1] if length != bounds[0] else 0
    if member_lengths.min() <= below:
      mixed += 1  # A pooled-remainder batch.
    np.testing.assert_array_equal(b["mask"], b["tokens"] != 0)
    np.testing.assert_array_equal(b["label"], (_ids(b) - 1) % 2)
  assert mixed <= len(bounds) - 1
  assert len({b["tokens"].shape[1] for b in epoch}) > 1 or batch_size == 50


def test_single_bucket_is_the_fixed_padding_order():
  split, _ = _varlen_split()
  order = batching.TrainOrder(split, 7, seed=2, bounds=(12,))
  indices, lengths = order.epoch(3)
  permutation = batching.epoch_permutation(len(split), 2, 3)
  np.testing.assert_array_equal(indices, permutation[:order.steps_per_epoch * 7].reshape(-1, 7))
  assert set(lengths.tolist()) == {12}


@pytest.mark.parametrize("start_step", [0, 1, 13, 14, 30])
def test_bucketed_train_batches_resume_from_step(start_step):
  split, _ = _varlen_split()
  bounds = (3, 6, 9)
  fresh = list(itertools.islice(batching.train_batches(split, 7, seed=0, bounds=bounds), 32))
  resumed = list(itertools.islice(
      batching.train_batches(split, 7, seed=0, start_step=start_step, bounds=bounds), 32 - start_step))
  for a, b in zip(fresh[start_step:], resumed):
    for key in a:
      np.testing.assert_array_equal(a[key], b[key])
  assert not np.array_equal(np.concatenate([_ids(b) for b in fresh[:14]]),
                            np.concatenate([_ids(b) for b in fresh[14:28]]))  # Epochs differ.


@pytest.mark.parametrize("batch_size", [1, 8, 64, 200])
def test_bucketed_eval_batches_cover_every_example_once(batch_size):
  split, lengths = _varlen_split()
  bounds = (3, 6, 9)
  pairs = list(batching.eval_batches(split, batch_size, bounds))
  rows = np.concatenate([r for r, _ in pairs])
  np.testing.assert_array_equal(np.sort(rows[rows >= 0]), np.arange(len(split)))
  for r, b in pairs:
    real = r >= 0
    np.testing.assert_array_equal(_ids(b)[real], r[real] + 1)
    np.testing.assert_array_equal(b["weight"], real.astype(np.float32))
    assert np.all(b["tokens"][~real] == 0) and np.all(b["label"][~real] == 0)
    assert lengths[r[real]].max() <= b["tokens"].shape[1]
    assert b["tokens"].shape == (batch_size, b["tokens"].shape[1])
  assert {b["tokens"].shape[1] for _, b in pairs} == {3, 6, 9, 12}
