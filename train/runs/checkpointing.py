"""Orbax checkpoints of the train state: the latest k, plus the best by validation accuracy.

Layout under ``<workdir>/checkpoints``::

    latest/<step>/{state, progress}   every checkpoint_every_steps and at the end (keep_checkpoints kept)
    best/<step>/{state, progress}     the state with the highest validation accuracy (one kept)

``progress`` is a small JSON dict (step, best validation accuracy, ...). Orbax
writes each checkpoint into a temporary directory and renames it when complete,
so a process killed mid-write leaves no half checkpoint in ``all_steps()``.
A checkpoint that is present but unreadable (truncated or deleted files) is reported in
one line and the previous one is tried; with ``repair=True`` (training) the unreadable
step is first moved aside to ``unreadable/<kind>-<step>`` (renamed, nothing deleted), so
the run continues from the previous good step and saves that step again later. Every
such event is kept in ``Checkpointer.problems`` (for the eval report).

A save that lacks disk space raises ``CheckpointDiskFull`` (one line: which step, which folder,
how much space was needed and free): in a single process before writing anything when the
free space is less than the state's size, else when a write fails for lack of space, after
removing the half-written temporary directory. The steps saved before it stay restorable.
Orbax's own error logs of a failed save (background-thread tracebacks) are dropped: the error
reaches the caller as an exception. (A write that fails mid-way may still let TensorStore
print "Event loop is closed" tracebacks from its own threads, which no logger carries.)
"""

from __future__ import annotations

import contextlib
import errno
import logging as py_logging
import os
import shutil
import sys
import traceback
from typing import Any, Iterator, Optional, Tuple

import jax
import orbax.checkpoint as ocp
from absl import logging

UNREADABLE_DIR = "unreadable"
TEMPORARY_MARKER = ".orbax-checkpoint-tmp"  # Orbax writes <step><marker>[-<time>] and renames it when complete.
# Loggers that print whole tracebacks of a failed restore (Orbax via absl, asyncio tasks).
_NOISY_LOGGERS = ("absl", "asyncio", "orbax")


def abstract_like(tree: Any) -> Any:
  """Shape/dtype/sharding skeleton of ``tree`` for restoring into the same layout."""
  return jax.tree_util.tree_map(ocp.utils.to_shape_dtype_struct, tree)


@contextlib.contextmanager
def quiet_restore_logs() -> Iterator[None]:
  """Silences the tracebacks Orbax/TensorStore log while a restore fails (the caller reports one line)."""
  loggers = [py_logging.getLogger(name) for name in _NOISY_LOGGERS]
  levels = [logger.level for logger in loggers]
  for logger in loggers:
    logger.setLevel(py_logging.CRITICAL)
  try:
    yield
  finally:
    for logger, level in zip(loggers, levels):
      logger.setLevel(level)


class CheckpointDiskFull(RuntimeError):
  """A checkpoint save failed for lack of disk space (the message is one line)."""


class _DropOrbaxErrors(py_logging.Filter):
  """Drops the error records of Orbax's save threads and of its asyncio tasks and futures (the error
  is raised to the caller as an exception too): logged from Orbax, naming it, or with a traceback
  through it (asyncio's "Future exception was never retrieved"). Installed once per process: the
  tasks' records come when they are garbage-collected, which may be after the checkpointer is closed."""

  def filter(self, record: py_logging.LogRecord) -> bool:
    if record.levelno < py_logging.ERROR:
      return True
    orbax_dir = f"{os.sep}orbax{os.sep}"
    frames = traceback.extract_tb(record.exc_info[2]) if record.exc_info and record.exc_info[2] else []
    return not (orbax_dir in record.pathname or "orbax" in record.getMessage()
                or any(orbax_dir in frame.filename for frame in frames))


_ORBAX_ERRORS = _DropOrbaxErrors()


def _drop_orbax_error_logs() -> None:
  for name in ("absl", "asyncio"):
    logger = py_logging.getLogger(name)
    if _ORBAX_ERRORS not in logger.filters:
      logger.addFilter(_ORBAX_ERRORS)


def is_disk_full(error: BaseException) -> bool:
  """Whether ``error`` or an error it was raised from says the disk is full (ENOSPC)."""
  seen = set()
  while error is not None and id(error) not in seen:
    seen.add(id(error))
    if getattr(error, "errno", None) == errno.ENOSPC or "No space left on device" in str(error):
      return True
    error = error.__cause__ or error.__context__
  return False


def tree_bytes(tree: Any) -> int:
  """Bytes of the arrays of ``tree`` (what a checkpoint of it holds, before compression)."""
  return sum(int(getattr(leaf, "nbytes", 0)) for leaf in jax.tree_util.tree_leaves(tree))


def readable_size(num_bytes: float) -> str:
  """``num_bytes`` as "12.3 KiB", "4.5 MiB" or "1.2 GiB"."""
  for unit in ("KiB", "MiB"):
    num_bytes /= 1024
    if num_bytes < 1024:
      return f"{num_bytes:.1f} {unit}"
  return f"{num_bytes / 1024:.1f} GiB"


def one_line(error: BaseException) -> str:
  """``Type: first line of the message`` (at most 300 characters)."""
  message = str(error).strip().splitlines()[0][:300] if str(error).strip() else ""
  return f"{type(error).__name__}: {message}" if message else type(error).__name__


class Checkpointer:
  """Saves and restores ``(state, progress)`` pairs; see the module docstring."""

  def __init__(self, directory: str, *, keep: int, async_save: bool = True, repair: bool = False):
    self.directory = os.path.abspath(directory)
    self.repair = repair
    self.problems: list[dict] = []  # {"kind", "step", "error", "moved_to"} of every unreadable checkpoint.
    self._in_flight: dict[str, Tuple[int, int]] = {}  # kind -> (step, bytes) of a save not known complete.
    _drop_orbax_error_logs()
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

  def _managers(self) -> dict[str, ocp.CheckpointManager]:
    return {"latest": self._latest, "best": self._best}

  def _disk_full(self, kind: str, step: int, needed: int) -> CheckpointDiskFull:
    """The one-line error of a ``kind`` save of ``step`` that lacks space, after removing what it wrote."""
    manager = self._managers()[kind]
    self.remove_partial_saves()
    free = shutil.disk_usage(self.directory).free
    return CheckpointDiskFull(
        f"no space left on the device to save {kind} checkpoint step {step} in {manager.directory} "
        f"(about {readable_size(needed)} needed, {readable_size(free)} free); nothing of step {step} is left "
        f"on disk and the latest complete checkpoint is step {manager.latest_step()}: free some space and "
        "run the same command again to resume from it")

  @contextlib.contextmanager
  def _disk_full_as_one_line(self, kind: str) -> Iterator[None]:
    """Turns a failed save of ``kind`` (the one in flight) for lack of space into ``CheckpointDiskFull``."""
    try:
      yield
    except CheckpointDiskFull:
      raise
    except Exception as e:  # pylint: disable=broad-except
      if not is_disk_full(e) or kind not in self._in_flight:
        raise
      step, needed = self._in_flight.pop(kind)
      raise self._disk_full(kind, step, needed) from None

  def _save(self, kind: str, step: int, state: Any, progress: dict, **kwargs) -> None:
    """Saves unless ``step`` is saved already; first checks the space (one process: with several, all
    of them would have to agree, so there only a failed write tells)."""
    manager = self._managers()[kind]
    with self._disk_full_as_one_line(kind):  # The previous async save of this kind may fail here.
      manager.wait_until_finished()
    self._in_flight.pop(kind, None)
    if step in manager.all_steps():
      return
    needed = tree_bytes(state)  # Uncompressed: an upper bound of what the save writes.
    if jax.process_count() == 1 and shutil.disk_usage(self.directory).free < needed:
      raise self._disk_full(kind, step, needed)
    self._in_flight[kind] = (step, needed)
    with self._disk_full_as_one_line(kind):
      manager.save(step, args=self._args(state, progress), force=True, **kwargs)

  def save_latest(self, step: int, state: Any, progress: dict) -> None:
    """Saves ``(state, progress)`` as latest step ``step`` (in the background with async saves).

    Raises:
      CheckpointDiskFull: this save, or the previous one still in flight, ran out of space.
    """
    self._save("latest", step, state, progress)

  def save_best(self, step: int, state: Any, progress: dict, accuracy: float) -> None:
    """Offers the state to the best-by-validation slot (kept only if it beats the current best).

    Raises:
      CheckpointDiskFull: as ``save_latest``.
    """
    self._save("best", step, state, progress, metrics={"accuracy": float(accuracy)})

  def remove_partial_saves(self) -> list[str]:
    """Deletes the temporary directories of unfinished saves (ours, never a complete step); returns them."""
    removed = []
    for manager in self._managers().values():
      folder = os.fspath(manager.directory)
      for name in sorted(os.listdir(folder)) if os.path.isdir(folder) else []:
        if TEMPORARY_MARKER in name:
          shutil.rmtree(os.path.join(folder, name), ignore_errors=True)
          removed.append(os.path.join(folder, name))
      manager.reload()
    return removed

  def latest_step(self) -> Optional[int]:
    return self._latest.latest_step()

  def _set_aside(self, manager: ocp.CheckpointManager, kind: str, step: int) -> Optional[str]:
    """Renames the unreadable ``<kind>/<step>`` to ``unreadable/<kind>-<step>[-n]``; returns the new path."""
    source = os.path.join(manager.directory, str(step))
    if not os.path.isdir(source):
      return None
    os.makedirs(os.path.join(self.directory, UNREADABLE_DIR), exist_ok=True)
    target = os.path.join(self.directory, UNREADABLE_DIR, f"{kind}-{step}")
    suffix = 1
    while os.path.exists(target):
      suffix += 1
      target = os.path.join(self.directory, UNREADABLE_DIR, f"{kind}-{step}-{suffix}")
    os.rename(source, target)
    manager.reload()
    return target

  def _restore(self, manager: ocp.CheckpointManager, target: Any, kind: str,
               params_only: bool) -> Tuple[Any, Optional[dict]]:
    """Newest readable checkpoint of ``manager`` -> (state, progress); (target, None) if none.

    ``params_only``: ``target`` is the parameter tree and only ``state.params`` is read from
    disk (an Orbax partial restore: the optimizer state is never loaded).
    """
    if params_only:
      item = {"params": abstract_like(target)}
      state_args = ocp.args.PyTreeRestore(
          item=item, restore_args=ocp.checkpoint_utils.construct_restore_args(item),
          partial_restore=True)
    else:
      state_args = ocp.args.StandardRestore(abstract_like(target))
    for step in sorted(manager.all_steps(), reverse=True):
      try:
        with quiet_restore_logs():
          restored = manager.restore(step, args=ocp.args.Composite(
              state=state_args, progress=ocp.args.JsonRestore()))
        progress = dict(restored["progress"])
        if int(progress.get("step", -1)) != step:
          raise ValueError(f"progress says step {progress.get('step')}, directory says {step}")
        return (restored["state"]["params"] if params_only else restored["state"]), progress
      except Exception as e:  # pylint: disable=broad-except
        moved_to = self._set_aside(manager, kind, step) if self.repair else None
        self.problems.append({"kind": kind, "step": step, "error": one_line(e), "moved_to": moved_to})
        where = f"moved to {moved_to}" if moved_to else "left in place"
        logging.info("%s checkpoint at step %d in %s is unreadable: %s", kind, step, manager.directory,
                     one_line(e))
        print(f"WARNING: {kind} checkpoint step {step} unreadable ({one_line(e)}); {where}; "
              "falling back to the previous one.", file=sys.stderr, flush=True)
    return target, None

  def restore_latest(self, target: Any, *, params_only: bool = False) -> Tuple[Any, Optional[dict]]:
    """The newest readable latest-checkpoint, restored with ``target``'s shapes and shardings.

    ``params_only``: ``target`` is a parameter tree and only the parameters are read.
    """
    return self._restore(self._latest, target, "latest", params_only)

  def restore_best(self, target: Any, *, params_only: bool = False) -> Tuple[Any, Optional[dict]]:
    """The best-by-validation checkpoint if readable, else the newest readable latest one.

    ``params_only``: ``target`` is a parameter tree and only the parameters are read.
    """
    state, progress, _ = self.restore_best_or_latest(target, params_only=params_only)
    return state, progress

  def restore_best_or_latest(self, target: Any, *,
                             params_only: bool = False) -> Tuple[Any, Optional[dict], Optional[str]]:
    """``restore_best`` and which checkpoint it restored: "best" | "latest" (None: none readable)."""
    state, progress = self._restore(self._best, target, "best", params_only)
    if progress is not None:
      return state, progress, "best"
    state, progress = self._restore(self._latest, target, "latest", params_only)
    return state, progress, "latest" if progress is not None else None

  def wait(self) -> None:
    """Waits for the saves in flight.

    Raises:
      CheckpointDiskFull: one of them ran out of space.
    """
    for kind, manager in self._managers().items():
      with self._disk_full_as_one_line(kind):
        manager.wait_until_finished()
      self._in_flight.pop(kind, None)

  def close(self) -> None:
    """Waits for the saves in flight and releases Orbax's threads.

    Raises:
      CheckpointDiskFull: a save still in flight ran out of space (one that did so earlier was
        reported then and is not raised again; its half-written directory is removed either way).
    """
    errors = []
    for kind, manager in self._managers().items():
      try:
        with self._disk_full_as_one_line(kind):
          manager.close()
      except CheckpointDiskFull as e:
        errors.append(e)
      except Exception as e:  # pylint: disable=broad-except
        if not is_disk_full(e):
          errors.append(e)
        else:
          self.remove_partial_saves()
    if errors:
      raise errors[0]


def restore_params(checkpoint_dir: str, shapes: Any, checkpoint: str = "best") -> Tuple[Any, int]:
  """The parameters only (no optimizer state) of a finished or running training workdir.

  Args:
    checkpoint_dir: ``<workdir>/checkpoints``.
    shapes: the parameter tree (shapes and dtypes, e.g. ``train.loop.models.parameter_shapes``).
    checkpoint: "best" (the best-by-validation one, else the newest latest one) or "latest".

  Returns:
    (params, step of the checkpoint).

  Raises:
    FileNotFoundError: no readable checkpoint under ``checkpoint_dir``.
  """
  checkpointer = Checkpointer(checkpoint_dir, keep=1, async_save=False)
  try:
    if checkpoint == "best":
      params, progress = checkpointer.restore_best(shapes, params_only=True)
    else:
      params, progress = checkpointer.restore_latest(shapes, params_only=True)
  finally:
    checkpointer.close()
  if progress is None:
    raise FileNotFoundError(f"no readable checkpoint under {checkpoint_dir}")
  return params, int(progress["step"])
