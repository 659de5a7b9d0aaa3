"""A command's bad input as one line on stderr and exit code 2, never a traceback.

What the library raises for bad input (``BAD_INPUT``: ValueError, FileNotFoundError) is turned into
``ERROR: <message>`` on one line and ``USAGE_EXIT_CODE`` by ``one_line_errors``; ``fail`` does it for a
message of the command's own. A message of several lines is joined into one.
"""

from __future__ import annotations

import contextlib
import sys
from typing import Iterator, NoReturn

USAGE_EXIT_CODE = 2  # Bad usage, config or data (README, "What survives what").
BAD_INPUT = (ValueError, FileNotFoundError)


def one_line(message: str) -> str:
  """``message`` with its lines joined by spaces (blank lines dropped)."""
  return " ".join(line.strip() for line in str(message).splitlines() if line.strip())


def fail(message: str, exit_code: int = USAGE_EXIT_CODE, label: str = "ERROR") -> NoReturn:
  """Prints ``<label>: <message>`` as one line on stderr and exits with ``exit_code``."""
  print(f"{label}: {one_line(message)}", file=sys.stderr)
  sys.exit(exit_code)


@contextlib.contextmanager
def one_line_errors(kinds: tuple = BAD_INPUT, *, name_kind: bool = False,
                    exit_code: int = USAGE_EXIT_CODE) -> Iterator[None]:
  """Errors of ``kinds`` raised inside become ``fail`` (``name_kind``: the message starts with the
  error's type, e.g. ``ValueError: ...``)."""
  try:
    yield
  except kinds as error:
    fail(f"{type(error).__name__}: {error}" if name_kind else str(error), exit_code)
