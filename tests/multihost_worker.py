"""One process of a tiny-config run, recording what it fed, wrote, saved and restored.

  JAX_COORDINATOR_ADDRESS=127.0.0.1:PORT JAX_NUM_PROCESSES=2 JAX_PROCESS_ID=0 \
      python -m tests.multihost_worker WORKDIR RECORD.json '{"distributed": true, "num_train_steps": 24}'

tests/test_train_multihost.py starts one per process id (and one, not distributed, for
the 1-process reference); the process settings come from the environment
(``train.runs.distributed``). The record holds, per step, the batch rows whose data live on
this process's devices; the files ``train.loop.trainer``, the metric writer, the workdir claim
and the eval report opened for writing; this process's copy of the parameters at every
latest-checkpoint save and restore; and the step a signal stopped it at (``stopped_at``,
``train.runs.preemption``; None: ran to the end).
"""

from __future__ import annotations

import builtins
import json
import os
import sys
import traceback

import jax
import numpy as np

from tests.train_tiny_run import tiny_config
from train.loop import input_feed, metric_logging, trainer
from train.runs import checkpointing, eval_report, preemption
from train.runs import workdir as workdir_lib


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


def local_params(state) -> list[float]:
  """This process's copy of ``state.params`` (replicated: its first local shard is whole), flattened."""
  leaves = jax.tree_util.tree_leaves(state.params)
  return np.concatenate([np.asarray(leaf.addressable_data(0)).ravel() for leaf in leaves]).tolist()


def record_checkpoints(saved: list, restored: list) -> None:
  """Makes the Checkpointer append {"step", "params"} of every latest-checkpoint save / restore."""
  save, restore = checkpointing.Checkpointer.save_latest, checkpointing.Checkpointer.restore_latest

  def recording_save(self, step, state, progress):
    saved.append({"step": step, "params": local_params(state)})
    return save(self, step, state, progress)

  def recording_restore(self, target, **kwargs):
    state, progress = restore(self, target, **kwargs)
    if progress:
      restored.append({"step": progress["step"], "params": local_params(state)})
    return state, progress

  checkpointing.Checkpointer.save_latest = recording_save
  checkpointing.Checkpointer.restore_latest = recording_restore


def config_overrides(overrides: dict) -> dict:
  """JSON overrides -> config values (JSON lists become the tuples config fields hold)."""
  return {key: tuple(value) if isinstance(value, list) else value for key, value in overrides.items()}


def main(argv: list[str]) -> None:
  workdir, record_path, overrides = argv[1], argv[2], json.loads(argv[3])
  config = tiny_config(**config_overrides(overrides))
  fed, written, saved, restored = [], [], [], []
  record_feed(fed)
  record_writes([trainer, metric_logging, workdir_lib, eval_report], written, workdir)
  record_checkpoints(saved, restored)
  try:
    trainer.train_and_evaluate(config, workdir)
    stopped_at = None
  except preemption.Preempted as stopped:
    stopped_at = stopped.step
  record = {"process_index": jax.process_index(), "process_count": jax.process_count(),
            "local_devices": jax.local_device_count(), "devices": jax.device_count(),
            "fed": fed, "written": written, "saved": saved, "restored": restored, "stopped_at": stopped_at}
  with open(record_path, "w", encoding="utf-8") as f:
    json.dump(record, f)


if __name__ == "__main__":
  try:
    main(sys.argv)
  except BaseException:  # pylint: disable=broad-except
    # Exit at once: at a normal exit JAX waits (minutes) for the other processes, which may
    # be stuck in a collective this one never joins.
    traceback.print_exc()
    sys.stderr.flush()
    os._exit(1)
