"""How a benchmark with absl flags runs: as a program, or inside its caller's process (a test).

A benchmark module defines its flags in ``define_flags(flag_values)`` and its work in
``benchmark(settings, command)``, where ``command`` is the command line recorded in its report.
"""

from __future__ import annotations

import sys
from typing import Any, Callable, Sequence

from absl import app, flags

DefineFlags = Callable[[flags.FlagValues], None]
Benchmark = Callable[[flags.FlagValues, str], Any]


def command(module: str, args: Sequence[str]) -> str:
  """The command line as a report records it, e.g. ``python -m benchmarks.scan --quick``."""
  return " ".join([f"python -m {module}", *args])


def run_in_process(module: str, define_flags: DefineFlags, benchmark: Benchmark, args: Sequence[str]) -> Any:
  """``benchmark`` with these command-line flags, parsed into a FlagValues of their own (so they do
  not clash with the calling program's flags)."""
  settings = flags.FlagValues()
  define_flags(settings)
  settings([module, *args])
  return benchmark(settings, command(module, args))


def run_as_program(module: str, define_flags: DefineFlags, benchmark: Benchmark) -> None:
  """``python -m <module> [flags]``: absl's flags and app, then ``benchmark``."""
  define_flags(flags.FLAGS)

  def main(argv: Sequence[str]) -> None:
    if len(argv) > 1:
      raise app.UsageError(f"Unexpected arguments: {argv[1:]}")
    benchmark(flags.FLAGS, command(module, sys.argv[1:]))

  app.run(main)
