"""Batch iterators over an in-memory Split, optionally bucketed by length.

Every batch is a dict of numpy arrays (b batch, l padded length of that batch, l <= L max_length):
  tokens int32 (b, l), mask int32 (b, l) (= tokens != 0), label int32 (b,), weight float32 (b,).

Length buckets. ``bounds`` (increasing, the last one L) split the examples by their real
length (position after the last non-padding token): an example of length t belongs to the
first bucket whose bound is >= t, and a batch is padded only to its bucket's bound. With
``bounds=(L,)`` there is one bucket and every batch is padded to L (fixed padding). At most
``len(bounds)`` batch shapes occur, so a jitted step compiles at most that many programs.

Training order (:class:`TrainOrder`). Epoch e streams the examples in
``epoch_permutation(N, seed, e)`` order into one buffer per bucket; a buffer that holds b
examples becomes the next batch (as ``tf.data``'s ``bucket_by_sequence_length`` does), so
the buckets' batches are interleaved the way their examples fall in the shuffled stream.
At the end of the epoch the remainders of all buckets (each < b) are pooled, in bucket
order, into full batches padded to the bound of their longest member; the pool's last
partial batch (< b examples, different ones every epoch) is dropped, exactly as fixed
padding drops the epoch's last partial batch. So every example is seen at most once per
epoch and all but fewer than b of them exactly once; the number of steps per epoch is the
same in every epoch, and the whole order is a pure function of (seed, epoch), which is what
makes resuming at any step exact. With one bucket this is exactly the fixed-padding order.

Evaluation batches (:func:`eval_batches`) go bucket by bucket, in example order within a
bucket; each bucket's last batch is filled with zero-weight all-padding rows, and every
batch comes with the example index of each row, so predictions can be put back in order.
"""

from __future__ import annotations

from typing import Iterator, Optional, Sequence

import numpy as np

from train.data.datasets import Split

Batch = dict[str, np.ndarray]


def resolve_bounds(bounds: Optional[Sequence[int]], max_length: int) -> tuple[int, ...]:
  """The bucket bounds actually used: the given ones below ``max_length``, then ``max_length``.

  ``None`` or ``()``: one bucket, fixed padding to ``max_length``.
  """
  if max_length < 1:
    raise ValueError(f"max_length must be >= 1, got {max_length}")
  bounds = tuple(int(b) for b in (bounds or ()))
  if any(b < 1 for b in bounds):
    raise ValueError(f"length bucket bounds must be >= 1, got {bounds}")
  if list(bounds) != sorted(set(bounds)):
    raise ValueError(f"length bucket bounds must be strictly increasing, got {bounds}")
  return tuple(b for b in bounds if b < max_length) + (int(max_length),)


def config_bounds(config, max_length: int) -> tuple[int, ...]:
  """Bounds from ``config.bucket_by_length`` / ``config.length_bucket_bounds``."""
  if not config.bucket_by_length:
    return (int(max_length),)
  return resolve_bounds(config.length_bucket_bounds, max_length)


def example_lengths(tokens: np.ndarray) -> np.ndarray:
  """Real lengths (N,) int32 of right-padded token rows (N, L): position after the last non-zero id."""
  nonzero = np.asarray(tokens) != 0
  last = tokens.shape[1] - np.argmax(nonzero[:, ::-1], axis=1)
  return np.where(nonzero.any(axis=1), last, 0).astype(np.int32)


def bucket_of(lengths: np.ndarray, bounds: Sequence[int]) -> np.ndarray:
  """Bucket index (N,) of each length: the first bound >= length."""
  bounds = np.asarray(bounds)
  if lengths.size and lengths.max() > bounds[-1]:
    raise ValueError(f"an example of length {int(lengths.max())} exceeds the last bound {int(bounds[-1])}")
  return np.searchsorted(bounds, lengths, side="left").astype(np.int32)


def epoch_permutation(num_examples: int, seed: int, epoch: int) -> np.ndarray:
  """The example order of one epoch; a pure function of (seed, epoch)."""
  rng = np.random.Generator(np.random.PCG64(np.random.SeedSequence([seed, epoch])))
  return rng.permutation(num_examples)


class TrainOrder:
  """The batches of every training epoch of one split (see the module docstring).

  Attributes:
    bounds: the bucket bounds (last = L).
    steps_per_epoch: full batches per epoch (the same every epoch).
  """

  def __init__(self, split: Split, batch_size: int, *, seed: int, bounds: Optional[Sequence[int]] = None):
    if batch_size < 1:
      raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    self.batch_size = int(batch_size)
    self.seed = int(seed)
    self.bounds = resolve_bounds(bounds, split.max_length)
    self.num_examples = len(split)
    self._bucket = bucket_of(example_lengths(split.tokens), self.bounds)
    counts = np.bincount(self._bucket, minlength=len(self.bounds))
    self.bucket_counts = counts
    self.steps_per_epoch = int(np.sum(counts // batch_size) + np.sum(counts % batch_size) // batch_size)

  def epoch(self, epoch: int) -> tuple[np.ndarray, np.ndarray]:
    """Epoch ``epoch``: example indices (steps, b) int64 and padded length (steps,) of each batch."""
    b = self.batch_size
    order = epoch_permutation(self.num_examples, self.seed, epoch)
    stream_bucket = self._bucket[order]
    positions, ends, lengths, rest = [], [], [], []
    for k, bound in enumerate(self.bounds):
      pos = np.flatnonzero(stream_bucket == k)  # Stream positions of bucket k, in stream order.
      full = len(pos) // b
      p = pos[:full * b].reshape(full, b)
      positions.append(p)
      ends.append(p[:, -1])  # A batch is emitted when its last member arrives.
      lengths.append(np.full(full, bound, np.int64))
      rest.append(pos[full * b:])
    rest = np.concatenate(rest)  # Remainders, bucket by bucket.
    full = len(rest) // b
    p = rest[:full * b].reshape(full, b)
    positions.append(p)
    ends.append(self.num_examples + np.arange(full))  # Emitted after the stream ends.
    lengths.append(np.asarray(self.bounds, np.int64)[stream_bucket[p[:, -1]]] if full else np.zeros(0, np.int64))
    positions, ends, lengths = (np.concatenate(x) for x in (positions, ends, lengths))
    emit = np.argsort(ends, kind="stable")
    return order[positions[emit]], lengths[emit]


def steps_per_epoch(split: Split, batch_size: int, bounds: Optional[Sequence[int]] = None) -> int:
  """Full training batches per epoch (see :class:`TrainOrder`)."""
  return TrainOrder(split, batch_size, seed=0, bounds=bounds).steps_per_epoch


def make_batch(split: Split, indices: np.ndarray, weight: np.ndarray, length: int) -> Batch:
  tokens = split.tokens[indices, :length].astype(np.int32)
  return {
      "tokens": tokens,
      "mask": (tokens != 0).astype(np.int32),
      "label": split.labels[indices].astype(np.int32),
      "weight": weight.astype(np.float32),
  }


def train_batches(split: Split, batch_size: int, *, seed: int, start_step: int = 0,
                  bounds: Optional[Sequence[int]] = None) -> Iterator[Batch]:
  """Endless shuffled training batches in :class:`TrainOrder` order.

  ``start_step=k`` yields exactly what the k-th ``next()`` of a fresh iterator would
  (0-based), so training resumes without replaying data.
  """
  plan = TrainOrder(split, batch_size, seed=seed, bounds=bounds)
  steps = plan.steps_per_epoch
  if steps == 0:
    raise ValueError(
        f"split has {len(split)} examples, fewer than one batch of {batch_size}")
  if start_step < 0:
    raise ValueError(f"start_step must be >= 0, got {start_step}")
  epoch, step_in_epoch = divmod(start_step, steps)
  ones = np.ones((batch_size,), np.float32)
  while True:
    indices, lengths = plan.epoch(epoch)
    for step in range(step_in_epoch, steps):
      yield make_batch(split, indices[step], ones, int(lengths[step]))
    epoch, step_in_epoch = epoch + 1, 0


def eval_plan(split: Split, batch_size: int,
              bounds: Optional[Sequence[int]] = None) -> list[tuple[np.ndarray, int]]:
  """[(rows (b,) int64 example indices, -1 = padding row; padded length)] covering every example once."""
  if batch_size < 1:
    raise ValueError(f"batch_size must be >= 1, got {batch_size}")
  bounds = resolve_bounds(bounds, split.max_length)
  buckets = bucket_of(example_lengths(split.tokens), bounds)
  plan = []
  for k, bound in enumerate(bounds):
    members = np.flatnonzero(buckets == k)
    for start in range(0, len(members), batch_size):
      rows = members[start:start + batch_size]
      rows = np.concatenate([rows, np.full(batch_size - len(rows), -1, rows.dtype)])
      plan.append((rows, bound))
  return plan


def eval_batches(split: Split, batch_size: int,
                 bounds: Optional[Sequence[int]] = None) -> Iterator[tuple[np.ndarray, Batch]]:
  """One pass over ``split`` as (rows, batch) (see :func:`eval_plan`).

  Padding rows (rows == -1) are all padding with weight 0.
  """
  for rows, length in eval_plan(split, batch_size, bounds):
    real = rows >= 0
    batch = make_batch(split, np.where(real, rows, 0), real.astype(np.float32), length)
    for key in ("tokens", "mask", "label"):
      batch[key][~real] = 0
    yield rows, batch


def num_eval_batches(split: Split, batch_size: int, bounds: Optional[Sequence[int]] = None) -> int:
  return len(eval_plan(split, batch_size, bounds))
