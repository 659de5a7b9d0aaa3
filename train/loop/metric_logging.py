"""Scalar metrics to ``<workdir>/metrics.jsonl`` and TensorBoard event files.

Each JSON line is ``{"step": int, "split": "train"|"validation"|..., <name>: float, ...}``;
TensorBoard tags are ``<split>/<name>`` (tensorboardX, no TensorFlow needed).
Only process 0 writes.
"""

from __future__ import annotations

import json
import os
import sys
from numbers import Number

import jax


def drop_rows_after(path: str, step: int) -> None:
  """Removes the rows logged after ``step`` (by a run that was killed and is now resumed from it)."""
  if not os.path.exists(path):
    return
  with open(path, encoding="utf-8") as f:
    lines = f.readlines()
  kept = []
  for line in lines:
    try:
      if int(json.loads(line)["step"]) <= step:
        kept.append(line if line.endswith("\n") else line + "\n")
    except (ValueError, KeyError, TypeError):
      continue  # A line cut short by the kill.
  if len(kept) != len(lines):
    with open(path + ".tmp", "w", encoding="utf-8") as f:
      f.writelines(kept)
    os.replace(path + ".tmp", path)


class MetricWriter:
  """Appends metrics; a run resumed from ``resume_step`` first drops the rows logged after it."""

  def __init__(self, workdir: str, resume_step: int = 0):
    self._active = jax.process_index() == 0
    self._jsonl = None
    self._tensorboard = None
    if self._active:
      path = os.path.join(workdir, "metrics.jsonl")
      drop_rows_after(path, resume_step)
      self._jsonl = open(path, "a", encoding="utf-8")
      try:
        from tensorboardX import SummaryWriter  # pylint: disable=import-outside-toplevel
        self._tensorboard = SummaryWriter(os.path.join(workdir, "tensorboard"))
      except ImportError:
        print("tensorboardX is not installed: TensorBoard events are skipped (metrics.jsonl still written).")

  def write(self, step: int, split: str, metrics: dict) -> None:
    if not self._active:
      return
    scalars = {k: float(v) for k, v in metrics.items() if isinstance(v, Number)}
    self._jsonl.write(json.dumps({"step": int(step), "split": split, **scalars}) + "\n")
    self._jsonl.flush()
    if self._tensorboard is not None:
      for name, value in scalars.items():
        self._tensorboard.add_scalar(f"{split}/{name}", value, int(step))

  def close(self) -> None:
    """Closes both files. A TensorBoard flush that fails (a full disk) is one line, not a traceback:
    metrics.jsonl, flushed at every row, already holds every metric."""
    if self._jsonl is not None:
      self._jsonl.close()
    if self._tensorboard is not None:
      try:
        self._tensorboard.close()
      except OSError as e:
        print(f"WARNING: TensorBoard events after the last flush were not written ({e}); "
              "metrics.jsonl has them", file=sys.stderr)
        # The failed close stopped before tensorboardX's writer thread and its "closed" mark: stop the
        # thread here, or it and the atexit cleanup (which retries the same flush) print tracebacks.
        file_writer = getattr(self._tensorboard, "file_writer", None)
        if file_writer is not None:
          events = file_writer.event_writer
          if events._worker is not None:  # pylint: disable=protected-access
            events._worker.stop()  # pylint: disable=protected-access
          events._closed = True  # pylint: disable=protected-access
