"""Prints the fastest scan method of one case of a ``benchmarks.scan`` report.

  python -m benchmarks.fastest_method --report=results/scan_h200.json \
      --case="tweet float32 fwd_bwd" [--exclude=pallas] [--family=ssd]

A case is "<shape> <dtype> <mode>" as in the report's "fastest" section; only
methods that ran without error count, and ``--exclude`` drops methods known to
be incorrect (scripts/gpu_check.sh excludes "pallas" when the GPU tests fail).
Methods compete only within their family: ``--family=selective_scan`` (the
default) picks among Mamba-1's scans and prints e.g. "pallas" (what
``config.model.scan_method`` of a Mamba-1 config takes); ``--family=ssd`` picks
among the Mamba-2 rows ("ssd:associative", "ssd:sequential") and prints the
recurrence over chunk states without the "ssd:" prefix, e.g. "sequential" (what
``config.model.scan_method`` of a Mamba-2 config takes).
Exit code 2 with one line on stderr when the report or the case is missing.
"""

from __future__ import annotations

import json
import sys
from typing import Iterable, Optional, Sequence

from absl import app
from absl import flags

# The families of scan methods a benchmarks.scan report holds: Mamba-1's selective scan
# ("associative", "sequential", "pallas[:options]") and Mamba-2's SSD ("ssd:<recurrence>").
FAMILIES = ("selective_scan", "ssd")
SSD_PREFIX = "ssd:"


def family_of(method: str) -> str:
  """"ssd:sequential" -> "ssd"; every other method name -> "selective_scan"."""
  return "ssd" if method.startswith(SSD_PREFIX) else "selective_scan"


def fastest_method(records: Iterable[dict], case: str, exclude: Iterable[str] = (),
                   family: str = "selective_scan") -> Optional[str]:
  """The method of ``family`` with the smallest median_ms among the records of ``case``, or None.

  The method is named as in the report (an SSD method keeps its "ssd:" prefix).
  """
  shape, dtype, mode = case.split()
  excluded = set(exclude)
  timed = [(r["median_ms"], r["method"]) for r in records
           if (r["shape"], r["dtype"], r["mode"]) == (shape, dtype, mode)
           and family_of(r["method"]) == family
           and "median_ms" in r and r["method"] not in excluded]
  return min(timed)[1] if timed else None


def main(argv: Sequence[str]) -> int:
  if len(argv) > 1:
    raise app.UsageError(f"Unexpected arguments: {argv[1:]}")
  report, case, family = flags.FLAGS.report, flags.FLAGS.case, flags.FLAGS.family
  if len(case.split()) != 3:
    print(f"--case must be '<shape> <dtype> <mode>'; got {case!r}", file=sys.stderr)
    return 2
  try:
    with open(report, encoding="utf-8") as f:
      records = json.load(f)["results"]
  except (OSError, ValueError, KeyError) as e:
    print(f"cannot read the scan report {report}: {e}", file=sys.stderr)
    return 2
  method = fastest_method(records, case, flags.FLAGS.exclude, family)
  if method is None:
    print(f"no timed {family} method for case {case!r} in {report}", file=sys.stderr)
    return 2
  print(method[len(SSD_PREFIX):] if family == "ssd" else method)
  return 0


def _define_flags() -> None:
  """Command-line flags (defined only when run as a program, so importing is side-effect free)."""
  flags.DEFINE_string("report", None, "JSON written by python -m benchmarks.scan.")
  flags.DEFINE_string("case", None, '"<shape> <dtype> <mode>", e.g. "tweet float32 fwd_bwd".')
  flags.DEFINE_list("exclude", [], "Comma list of methods not to pick (as named in the report).")
  flags.DEFINE_enum("family", "selective_scan", FAMILIES,
                    "Which methods compete: Mamba-1's selective scans, or Mamba-2's SSD (printed "
                    "without the 'ssd:' prefix, as a Mamba-2 config's scan_method takes it).")
  flags.mark_flags_as_required(["report", "case"])


if __name__ == "__main__":
  _define_flags()
  app.run(main)
