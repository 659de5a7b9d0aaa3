"""Prints the fastest scan method of one case of a ``benchmarks.scan`` report.

  python -m benchmarks.fastest_method --report=results/scan_h200.json \
      --case="tweet float32 fwd_bwd" [--exclude=pallas]

A case is "<shape> <dtype> <mode>" as in the report's "fastest" section; only
methods that ran without error count, and ``--exclude`` drops methods known to
be incorrect (scripts/gpu_check.sh excludes "pallas" when the GPU tests fail).
Exit code 2 with one line on stderr when the report or the case is missing.
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Iterable, Optional


def fastest_method(records: Iterable[dict], case: str, exclude: Iterable[str] = ()) -> Optional[str]:
  """The method with the smallest median_ms among the records of ``case``, or None."""
  shape, dtype, mode = case.split()
  timed = [(r["median_ms"], r["method"]) for r in records
           if (r["shape"], r["dtype"], r["mode"]) == (shape, dtype, mode)
           and "median_ms" in r and r["method"] not in set(exclude)]
  return min(timed)[1] if timed else None


def main(argv=None) -> int:
  parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  parser.add_argument("--report", required=True, help="JSON written by python -m benchmarks.scan")
  parser.add_argument("--case", required=True, help='"<shape> <dtype> <mode>", e.g. "tweet float32 fwd_bwd"')
  parser.add_argument("--exclude", default="", help="comma list of methods not to pick")
  args = parser.parse_args(argv)
  if len(args.case.split()) != 3:
    print(f"--case must be '<shape> <dtype> <mode>'; got {args.case!r}", file=sys.stderr)
    return 2
  try:
    with open(args.report, encoding="utf-8") as f:
      records = json.load(f)["results"]
  except (OSError, ValueError, KeyError) as e:
    print(f"cannot read the scan report {args.report}: {e}", file=sys.stderr)
    return 2
  method = fastest_method(records, args.case, [m for m in args.exclude.split(",") if m])
  if method is None:
    print(f"no timed method for case {args.case!r} in {args.report}", file=sys.stderr)
    return 2
  print(method)
  return 0


if __name__ == "__main__":
  sys.exit(main())
