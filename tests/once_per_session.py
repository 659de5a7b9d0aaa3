"""Results made once per test session, however many xdist workers ask for them."""

import contextlib
import fcntl
import pathlib


@contextlib.contextmanager
def first_to_ask(lock: pathlib.Path, done: pathlib.Path):
  """``with first_to_ask(lock, done) as make:`` -- ``make`` is True for the one process that must make ``done``.

  The others wait at the ``with`` (holding ``lock``, a file) until the maker's block has ended,
  then find ``done`` there. The block writes ``done`` last.
  """
  with open(lock, "w", encoding="utf-8") as f:
    fcntl.flock(f, fcntl.LOCK_EX)
    yield not done.exists()
