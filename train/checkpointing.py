"""Orbax checkpoints of the train state: the latest k, plus the best by validation accuracy.

Layout under ``<workdir>/checkpoints``::

    latest/<step>/{state, progress}   every checkpoint_every_steps and at the end (keep_checkpoints kept)
    best/<step>/{state, progress}     the state with the highest validation accuracy (one kept)

``progress`` is a small JSON dict (step, best validation accuracy, ...). Orbax
writes each checkpoint into a temporary directory and renames it when complete,
so a process killed mid-write leaves no half checkpoint in ``all_steps()``.
A checkpoint that is present but unreadable (truncated or deleted files) is
reported and the previous one is tried.
"""

from __future__ import annotations

import os
from typing import Any, Optional, Tuple

import jax
import orbax.checkpoint as ocp
from absl import logging


def abstract_like(tree: Any) -> Any:
  """Shape/dtype/sharding skeleton of ``tree`` for restoring into the same layout."""
  return jax.tree_util.tree_map(ocp.utils.to_shape_dtype_struct, tree)


class Checkpointer:
  """Saves and restores ``(state, progress)`` pairs; see the module docstring."""

  def __init__(self, directory: str, *, keep: int, async_save: bool = True):
    self.directory = os.path.abspath(directory)
    self._latest = ocp.CheckpointManager(
        os.path.join(self.directory, "latest"),
        item_names=("state", "progress"),
        options=ocp.CheckpointManagerOptions(
            max_to_keep=keep, create=True, enable_async_checkpointing=async_save),
    )
    self._best = ocp.CheckpointManager(
        os.path.join(self.directory, "best"),
        item_names=("state", "progress"),
        options=ocp.CheckpointManagerOptions(
            max_to_keep=1, create=True, enable_async_checkpointing=async_save,
            best_fn=lambda metrics: metrics["accuracy"], best_mode="max"),
    )

  @staticmethod
  def _args(state: Any, progress: dict) -> ocp.args.Composite:
    return ocp.args.Composite(
        state=ocp.args.StandardSave(state), progress=ocp.args.JsonSave(progress))

  def save_latest(self, step: int, state: Any, progress: dict) -> None:
    if step in self._latest.all_steps():
      return
    self._latest.save(step, args=self._args(state, progress), force=True)

  def save_best(self, step: int, state: Any, progress: dict, accuracy: float) -> None:
    """Offers the state to the best-by-validation slot (kept only if it beats the current best)."""
    if step in self._best.all_steps():
      return
    self._best.save(step, args=self._args(state, progress), metrics={"accuracy": float(accuracy)},
                    force=True)

  def latest_step(self) -> Optional[int]:
    return self._latest.latest_step()

  def _restore(self, manager: ocp.CheckpointManager, target: Any, kind: str) -> Tuple[Any, Optional[dict]]:
    """Newest readable checkpoint of ``manager`` -> (state, progress); (target, None) if none."""
    steps = sorted(manager.all_steps(), reverse=True)
    abstract = abstract_like(target)
    for step in steps:
      try:
        restored = manager.restore(step, args=ocp.args.Composite(
            state=ocp.args.StandardRestore(abstract), progress=ocp.args.JsonRestore()))
        progress = dict(restored["progress"])
        if int(progress.get("step", -1)) != step:
          raise ValueError(f"progress says step {progress.get('step')}, directory says {step}")
        return restored["state"], progress
      except Exception as e:  # pylint: disable=broad-except
        message = str(e).splitlines()[0][:300] if str(e) else type(e).__name__
        logging.warning("%s checkpoint at step %d in %s is unreadable (%s: %s); trying the previous one.",
                        kind, step, manager.directory, type(e).__name__, message)
        print(f"WARNING: {kind} checkpoint step {step} unreadable ({type(e).__name__}: {message}); "
              "falling back to the previous one.", flush=True)
    return target, None

  def restore_latest(self, target: Any) -> Tuple[Any, Optional[dict]]:
    """The newest readable latest-checkpoint, restored with ``target``'s shapes and shardings."""
    return self._restore(self._latest, target, "latest")

  def restore_best(self, target: Any) -> Tuple[Any, Optional[dict]]:
    """The best-by-validation checkpoint if readable, else the newest readable latest one."""
    state, progress = self._restore(self._best, target, "best")
    if progress is None:
      state, progress = self._restore(self._latest, target, "latest")
    return state, progress

  def wait(self) -> None:
    self._latest.wait_until_finished()
    self._best.wait_until_finished()

  def close(self) -> None:
    self._latest.close()
    self._best.close()
