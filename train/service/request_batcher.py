"""Micro-batching: the texts of concurrent requests scored in one call, and the served model swapped atomically.

``await batcher.classify(texts)`` queues one request's texts and returns (the model that answered,
its answers). One worker thread takes the first queued request, then waits at most ``window_s``
seconds (or until ``max_rows`` texts are queued) for more, and scores all of them in one
``ServedModel.classify`` call; each request gets its own slice back, through its event loop. A request
is never split over two calls.

The model: each call reads ``batcher.model`` once, when it starts, and uses it for the whole batch, so
``swap(new)`` (a plain reference assignment) never changes the model under a batch in flight: batches
started before the swap finish on the old model, later ones run on the new one, no request fails.

Overload: while more than ``max_pending_texts`` texts wait or are being scored, ``classify`` raises
``Overloaded`` at once (the service's 503) instead of queueing without bound.

After scoring, ``on_scored(model, texts, answers)`` runs in the worker thread before the answers are
handed back (the service stores the deferred texts there: a client that has its answer finds its
deferred texts in the review database). An exception in scoring or in ``on_scored`` fails the
requests of that batch only; the worker goes on with the next.
"""

from __future__ import annotations

import asyncio
import dataclasses
import queue
import threading
import time
from typing import Callable, Optional, Sequence

from train.service.served_model import ServedModel

OnScored = Callable[[ServedModel, list, list], None]


class Overloaded(Exception):
  """More texts wait than the batcher takes (``max_pending_texts``)."""


@dataclasses.dataclass
class _Request:
  texts: Sequence[str]
  future: asyncio.Future
  loop: asyncio.AbstractEventLoop


def _resolve(outcomes: list) -> None:
  """In the event loop: sets each (future, result, error) that is still waited for."""
  for future, result, error in outcomes:
    if future.done():  # The client went away (cancelled).
      continue
    if error is not None:
      future.set_exception(error)
    else:
      future.set_result(result)


class RequestBatcher:
  """See the module docstring. ``start()`` starts the worker thread, ``stop()`` ends it."""

  def __init__(self, model: ServedModel, window_s: float = 0.003, max_rows: int = 256,
               on_scored: Optional[OnScored] = None, max_pending_texts: int = 100_000):
    if window_s < 0 or max_rows < 1 or max_pending_texts < 1:
      raise ValueError(f"the batching window must be >= 0 s, max_rows and max_pending_texts >= 1, got "
                       f"{window_s}, {max_rows}, {max_pending_texts}")
    self.model = model
    self.window_s, self.max_rows, self.on_scored = float(window_s), int(max_rows), on_scored
    self.max_pending_texts = int(max_pending_texts)
    self.pending_texts = 0  # Queued or being scored; changed under _pending_lock.
    self._pending_lock = threading.Lock()
    self._queue: queue.SimpleQueue = queue.SimpleQueue()
    self._thread = threading.Thread(target=self._work, name="request-batcher", daemon=True)
    self.batches = 0  # Scoring calls made (tests and logs).
    self.texts_scored = 0

  def start(self) -> "RequestBatcher":
    self._thread.start()
    return self

  def stop(self, timeout: float = 10.0) -> None:
    """Lets the queued requests finish, then ends the worker."""
    self._queue.put(None)
    self._thread.join(timeout)

  def swap(self, model: ServedModel) -> ServedModel:
    """Serves ``model`` from the next batch on; the previous model."""
    previous, self.model = self.model, model
    return previous

  async def classify(self, texts: Sequence[str]) -> tuple[ServedModel, list]:
    """(the model that answered, one answer per text) of ``texts`` (a non-empty sequence of strings)."""
    with self._pending_lock:
      if self.pending_texts + len(texts) > self.max_pending_texts:
        raise Overloaded(f"{self.pending_texts:,} texts are waiting to be scored (at most {self.max_pending_texts:,})")
      self.pending_texts += len(texts)
    loop = asyncio.get_running_loop()
    future = loop.create_future()
    self._queue.put(_Request(texts, future, loop))
    return await future

  def _next_batch(self, first: _Request) -> tuple[list[_Request], bool]:
    """``first`` and the requests that join it within the window; whether a stop was queued meanwhile."""
    batch, rows = [first], len(first.texts)
    deadline = time.monotonic() + self.window_s
    while rows < self.max_rows:
      remaining = deadline - time.monotonic()
      try:
        request = self._queue.get(timeout=remaining) if remaining > 0 else self._queue.get_nowait()
      except queue.Empty:
        break
      if request is None:
        return batch, True
      batch.append(request)
      rows += len(request.texts)
    return batch, False

  def _work(self) -> None:
    stopping = False
    while not stopping:
      first = self._queue.get()
      if first is None:
        return
      batch, stopping = self._next_batch(first)
      model = self.model  # Read once: the whole batch runs on this model.
      texts = [text for request in batch for text in request.texts]
      outcomes: dict[asyncio.AbstractEventLoop, list] = {}
      try:
        answers = model.classify(texts)
        if self.on_scored is not None:
          self.on_scored(model, texts, answers)
        start = 0
        for request in batch:
          end = start + len(request.texts)
          outcomes.setdefault(request.loop, []).append((request.future, (model, answers[start:end]), None))
          start = end
      except Exception as e:  # pylint: disable=broad-except
        for request in batch:
          outcomes.setdefault(request.loop, []).append((request.future, None, e))
      self.batches += 1
      self.texts_scored += len(texts)
      with self._pending_lock:
        self.pending_texts -= len(texts)
      for loop, items in outcomes.items():
        try:
          loop.call_soon_threadsafe(_resolve, items)
        except RuntimeError:  # That event loop is closed: nobody waits for these answers.
          pass
