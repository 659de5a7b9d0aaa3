"""Prints the fastest scan method of one case of a ``benchmarks.scan`` report.

  python -m benchmarks.fastest_method --report=results/scan_h200.json \
      --case="tweet float32 fwd_bwd" [--exclude=pallas]

A case is "<shape> <dtype> <mode>" as in the report's "fastest" section; only
methods that ran without error count, and ``--exclude`` drops methods known to
be incorrect (scripts/gpu_check.sh excludes "pallas" when the GPU tests fail).
Exit code 2 with one line on stderr when the report or the case is missing.
"""

from __future__ import annotations

import json
import sys
from typing import Iterable, Optional, Sequence

from absl import app
from absl import flags


def fastest_method(records: Iterable[dict], case: str, exclude: Iterable[str] = ()) -> Optional[str]:
  """The method with the smallest median_ms among the records of ``case``, or None."""
  shape, dtype, mode = case.split()
  timed = [(r["median_ms"], r["method"]) for r in records
           if (r["shape"], r["dtype"], r["mode"]) == (shape, dtype, mode)
           and "median_ms" in r and r["method"] not in set(exclude)]
  return min(timed)[1] if timed else None


def main(argv: Sequence[str]) -> int:
  if len(argv) > 1:
    raise app.UsageError(f"Unexpected arguments: {argv[1:]}")
  report, case = flags.FLAGS.report, flags.FLAGS.case
  if len(case.split()) != 3:
    print(f"--case must be '<shape> <dtype> <mode>'; got {case!r}", file=sys.stderr)
    return 2
  try:
    with open(report, encoding="utf-8") as f:
      records = json.load(f)["results"]
  except (OSError, ValueError, KeyError) as e:
    print(f"cannot read the scan report {report}: {e}", file=sys.stderr)
    return 2
  method = fastest_method(records, case, flags.FLAGS.exclude)
  if method is None:
    print(f"no timed method for case {case!r} in {report}", file=sys.stderr)
    return 2
  print(method)
  return 0


def _define_flags() -> None:
  """Command-line flags (defined only when run as a program, so importing is side-effect free)."""
  flags.DEFINE_string("report", None, "JSON written by python -m benchmarks.scan.")
  flags.DEFINE_string("case", None, '"<shape> <dtype> <mode>", e.g. "tweet float32 fwd_bwd".')
  flags.DEFINE_list("exclude", [], "Comma list of methods not to pick.")
  flags.mark_flags_as_required(["report", "case"])


if __name__ == "__main__":
  _define_flags()
  app.run(main)
