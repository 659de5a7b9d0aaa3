"""Stopping a training run cleanly on SIGTERM or SIGINT: finish the step, save it, exit.

A cloud VM being preempted, a SLURM time limit (``scancel``, ``--signal``) or Ctrl-C sends
SIGTERM or SIGINT. While ``StopOnSignal`` is active the signal only sets a flag; the training
loop asks ``should_stop(step)`` after every step, saves a checkpoint of that step (waiting
for any save in flight) and raises ``Preempted``; ``train.main`` prints one line and exits
with ``PREEMPTED_EXIT_CODE``. The same command resumes from that step with nothing lost.
A second signal while the checkpoint is written changes nothing (the flag is already set),
so it cannot leave a half-written checkpoint.

With several processes (``jax.distributed``), every process must save the same step: JAX's
preemption service (started by ``jax.distributed.initialize``) catches SIGTERM itself and
``jax.experimental.multihost_utils.reached_preemption_sync_point(step)`` becomes true on
every process at the same step (one past the furthest step any process had reached when
the notice came). There SIGTERM is left to JAX and SIGINT is turned into a SIGTERM of this
process, so that Ctrl-C on one host stops all of them at one step too.
"""

from __future__ import annotations

import os
import signal
import threading
from typing import Optional

import jax
from jax.experimental import multihost_utils

# EX_TEMPFAIL of sysexits.h: "a temporary failure; the user is invited to retry" (resubmit the job).
PREEMPTED_EXIT_CODE = 75
SIGNALS = (signal.SIGTERM, signal.SIGINT)


class Preempted(Exception):
  """Training stopped on a signal after saving a checkpoint of ``step`` in ``checkpoint_dir``."""

  def __init__(self, signal_name: str, step: int, checkpoint_dir: str):
    super().__init__(
        f"stopped by {signal_name} after step {step}; saved checkpoint step {step} in {checkpoint_dir}. "
        "Run the same command again to resume from it.")
    self.signal_name, self.step, self.checkpoint_dir = signal_name, step, checkpoint_dir


class StopOnSignal:
  """Context manager: while active, SIGTERM/SIGINT ask the training loop to stop after its step.

  Attributes:
    received: the signals received so far (names, in order).
  """

  def __init__(self):
    self.multi_process = jax.process_count() > 1
    self.received: list[str] = []
    self._previous: dict[int, object] = {}

  def _handle(self, signum: int, frame) -> None:
    del frame
    self.received.append(signal.Signals(signum).name)
    if self.multi_process and signum == signal.SIGINT:
      os.kill(os.getpid(), signal.SIGTERM)  # JAX's preemption service tells the other processes.

  def __enter__(self) -> "StopOnSignal":
    if threading.current_thread() is not threading.main_thread():
      return self  # Python delivers signals to the main thread only; a run in another thread keeps the defaults.
    # With several processes JAX's preemption service owns SIGTERM; ours would replace its handler.
    for signum in (signal.SIGINT,) if self.multi_process else SIGNALS:
      self._previous[signum] = signal.signal(signum, self._handle)
    return self

  def __exit__(self, *exc_info) -> None:
    for signum, handler in self._previous.items():
      signal.signal(signum, handler)
    self._previous.clear()

  def should_stop(self, step: int) -> bool:
    """Whether to save ``step`` and stop; with several processes, true on all of them at one step.

    Call it after every training step, on every process.
    """
    if self.multi_process:
      return multihost_utils.reached_preemption_sync_point(step)
    return bool(self.received)

  def signal_name(self) -> Optional[str]:
    """The first signal received (with several processes JAX saw SIGTERM: "SIGTERM")."""
    return self.received[0] if self.received else ("SIGTERM" if self.multi_process else None)
