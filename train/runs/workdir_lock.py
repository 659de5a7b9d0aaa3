"""One training run per workdir at a time: ``<workdir>/run.lock``.

A run holds an exclusive ``flock`` on the file for its whole life and writes into it who
it is (pid, host, start time, command). A second ``train.main`` on the same workdir finds
the lock held and stops before touching anything (``WorkdirInUse``, exit code 2 in
``train.main``), naming the running process. The kernel drops the lock when its holder
exits in any way (kill -9, a crash, a reboot), so a lock file left behind by a process that
no longer exists is simply taken over; the new run says so in one line. A run that ends
normally empties the file. Commands that only read a workdir (predict, evaluate, export)
never take the lock, so they work on a workdir whose run is still going.

``flock`` is advisory and per host unless the file system passes it on: local disks and
NFSv4 do; on a file system that does not, two hosts are not kept apart. With several
processes (``jax.distributed``) process 0 alone takes the lock; when it stops because the
workdir is in use, the others learn it only at their first barrier's timeout
(``train.runs.distributed.BARRIER_TIMEOUT_S``).
"""

from __future__ import annotations

import fcntl
import json
import os
import socket
import sys
from typing import Callable, Optional

from train.runs import provenance

LOCK_FILE = "run.lock"


class WorkdirInUse(RuntimeError):
  """Another process is training in this workdir (the message names it, one line)."""


def _describe(holder: dict) -> str:
  return (f"process {holder.get('pid', '?')} on {holder.get('host', '?')} "
          f"(started {holder.get('started_utc', '?')}: {holder.get('command', '?')})")


class WorkdirLock:
  """The held lock of one workdir; ``release()`` (or leaving the ``with`` block) gives it up."""

  def __init__(self, workdir: str, log: Callable[[str], None] = print):
    """Takes the lock of ``workdir`` (created if missing).

    Raises:
      WorkdirInUse: another live process holds it.
    """
    self.path = os.path.join(workdir, LOCK_FILE)
    os.makedirs(workdir, exist_ok=True)
    self._fd: Optional[int] = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
      fcntl.flock(self._fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
      holder = self._read()
      os.close(self._fd)
      self._fd = None
      raise WorkdirInUse(
          f"{workdir} is in use by another training run: {_describe(holder)}. Wait for it to end, stop "
          "it, or use another --workdir (predict, evaluate and export may read the workdir meanwhile)."
      ) from None
    previous = self._read()
    if previous:
      log(f"WARNING: took over the lock of {workdir} left by {_describe(previous)}, which no longer runs.")
    self._write({"pid": os.getpid(), "host": socket.gethostname(), "started_utc": provenance.utc_now(),
                 "command": " ".join([os.path.basename(sys.executable), *sys.argv])[:500]})

  def _read(self) -> dict:
    os.lseek(self._fd, 0, os.SEEK_SET)
    raw = b""
    while chunk := os.read(self._fd, 1 << 16):
      raw += chunk
    try:
      return json.loads(raw.decode("utf-8")) if raw.strip() else {}
    except (UnicodeDecodeError, json.JSONDecodeError):
      return {"pid": "?", "host": "?", "command": f"unreadable {LOCK_FILE}"}

  def _write(self, holder: Optional[dict]) -> None:
    os.ftruncate(self._fd, 0)
    if holder:
      os.pwrite(self._fd, json.dumps(holder).encode("utf-8"), 0)
    os.fsync(self._fd)

  def release(self) -> None:
    """Empties the file (a clean end) and drops the lock; a no-op the second time."""
    if self._fd is None:
      return
    self._write(None)
    fcntl.flock(self._fd, fcntl.LOCK_UN)
    os.close(self._fd)
    self._fd = None

  def __enter__(self) -> "WorkdirLock":
    return self

  def __exit__(self, *exc_info) -> None:
    self.release()
