"""One process of a multi-process tiny-config run, recording what it fed and wrote.

  JAX_COORDINATOR_ADDRESS=127.0.0.1:PORT JAX_NUM_PROCESSES=2 JAX_PROCESS_ID=0 \
      python -m tests.multihost_worker WORKDIR RECORD.json '{"num_train_steps": 24}'

tests/test_train_multihost.py starts one per process id; the process settings come from
the environment (``train.distributed``). The record holds, per step, the batch rows whose
data live on this process's devices, and the files ``train.train`` and the metric writer
opened for writing.
"""

from __future__ import annotations

import builtins
import json
import os
import sys

import jax
import numpy as np

from tests.train_tiny_run import tiny_config
from train import input_feed, metric_logging, train


def local_rows(batch: dict) -> dict:
  """The rows of ``batch`` held by this process: {"start", "stop", "tokens", "label"} (contiguous).

  Raises:
    AssertionError: this process holds rows outside one contiguous block.
  """
  shards = sorted(batch["tokens"].addressable_shards, key=lambda s: s.index[0].start or 0)
  starts = [s.index[0].start or 0 for s in shards]
  stops = [s.index[0].stop if s.index[0].stop is not None else batch["tokens"].shape[0] for s in shards]
  assert starts[1:] == stops[:-1], f"this process's rows are not contiguous: {list(zip(starts, stops))}"
  labels = {s.index[0].start or 0: s.data for s in batch["label"].addressable_shards}
  return {"start": starts[0], "stop": stops[-1],
          "tokens": np.concatenate([np.asarray(s.data) for s in shards]).tolist(),
          "label": np.concatenate([np.asarray(labels[start]) for start in starts]).tolist()}


def record_feed(fed: list):
  """Wraps ``input_feed.train_feed`` so every batch's local rows are appended to ``fed``; returns the original."""
  original = input_feed.train_feed

  def recording_feed(*args, **kwargs):
    for batch in original(*args, **kwargs):
      fed.append(local_rows(batch))
      yield batch

  input_feed.train_feed = recording_feed
  return original


def record_writes(modules, written: list, base: str) -> None:
  """Makes ``open`` in ``modules`` append the path (relative to ``base``) of every file opened for writing."""

  def recording_open(file, mode="r", *args, **kwargs):
    if any(flag in mode for flag in "wax+"):
      written.append(os.path.relpath(os.path.abspath(file), base))
    return builtins.open(file, mode, *args, **kwargs)

  for module in modules:
    module.open = recording_open


def config_overrides(overrides: dict) -> dict:
  """JSON overrides -> config values (JSON lists become the tuples config fields hold)."""
  return {key: tuple(value) if isinstance(value, list) else value for key, value in overrides.items()}


def main(argv: list[str]) -> None:
  workdir, record_path, overrides = argv[1], argv[2], json.loads(argv[3])
  config = tiny_config(distributed=True, **config_overrides(overrides))
  fed, written = [], []
  record_feed(fed)
  record_writes([train, metric_logging], written, workdir)
  train.train_and_evaluate(config, workdir)
  record = {"process_index": jax.process_index(), "process_count": jax.process_count(),
            "local_devices": jax.local_device_count(), "devices": jax.device_count(),
            "fed": fed, "written": written}
  with open(record_path, "w", encoding="utf-8") as f:
    json.dump(record, f)


if __name__ == "__main__":
  main(sys.argv)
