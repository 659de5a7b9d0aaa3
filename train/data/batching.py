"""Batch iterators over an in-memory Split.

Every batch is a dict of numpy arrays (b batch, L max_length):
  tokens int32 (b, L), mask int32 (b, L) (= tokens != 0), label int32 (b,), weight float32 (b,).
Training batches are full and shuffled per (seed, epoch); evaluation batches are in order,
with the last one padded by zero-weight rows so that every example counts exactly once.
"""

from __future__ import annotations

from typing import Iterator

import numpy as np

from train.data.datasets import Split

Batch = dict[str, np.ndarray]


def steps_per_epoch(split: Split, batch_size: int) -> int:
  """Full training batches per epoch (the last partial batch is dropped)."""
  if batch_size < 1:
    raise ValueError(f"batch_size must be >= 1, got {batch_size}")
  return len(split) // batch_size


def epoch_permutation(num_examples: int, seed: int, epoch: int) -> np.ndarray:
  """The example order of one epoch; a pure function of (seed, epoch)."""
  rng = np.random.Generator(np.random.PCG64(np.random.SeedSequence([seed, epoch])))
  return rng.permutation(num_examples)


def _make_batch(split: Split, indices: np.ndarray, weight: np.ndarray) -> Batch:
  tokens = split.tokens[indices].astype(np.int32)
  return {
      "tokens": tokens,
      "mask": (tokens != 0).astype(np.int32),
      "label": split.labels[indices].astype(np.int32),
      "weight": weight.astype(np.float32),
  }


def train_batches(split: Split, batch_size: int, *, seed: int, start_step: int = 0) -> Iterator[Batch]:
  """Endless shuffled training batches.

  Epoch e visits the examples in ``epoch_permutation(N, seed, e)`` order and drops
  the last partial batch. ``start_step=k`` yields exactly what the k-th ``next()``
  of a fresh iterator would (0-based), so training resumes without replaying data.
  """
  steps = steps_per_epoch(split, batch_size)
  if steps == 0:
    raise ValueError(
        f"split has {len(split)} examples, fewer than one batch of {batch_size}")
  if start_step < 0:
    raise ValueError(f"start_step must be >= 0, got {start_step}")
  epoch, step_in_epoch = divmod(start_step, steps)
  ones = np.ones((batch_size,), np.float32)
  while True:
    order = epoch_permutation(len(split), seed, epoch)
    for step in range(step_in_epoch, steps):
      yield _make_batch(split, order[step * batch_size:(step + 1) * batch_size], ones)
    epoch, step_in_epoch = epoch + 1, 0


def eval_batches(split: Split, batch_size: int) -> Iterator[Batch]:
  """One in-order pass; the last batch is padded with zero-weight all-padding rows."""
  if batch_size < 1:
    raise ValueError(f"batch_size must be >= 1, got {batch_size}")
  n = len(split)
  for start in range(0, n, batch_size):
    indices = np.arange(start, min(start + batch_size, n))
    batch = _make_batch(split, indices, np.ones((len(indices),), np.float32))
    pad = batch_size - len(indices)
    if pad:
      batch = {k: np.concatenate([v, np.zeros((pad,) + v.shape[1:], v.dtype)]) for k, v in batch.items()}
    yield batch


def num_eval_batches(split: Split, batch_size: int) -> int:
  return -(-len(split) // batch_size)
