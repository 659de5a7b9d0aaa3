"""The study's command line: ``python -m train.study`` (see the package docstring)."""

from __future__ import annotations

import os
import sys
from typing import Sequence

from absl import app
from absl import flags
from absl import logging

from train.study.report import write_summary
from train.study.runs import FULL_SEEDS, QUICK_SEEDS, RUNS_BY_NAME, StudyOptions, parse_overrides
from train.study.training import run_study


def main(argv: Sequence[str]) -> None:
  f = flags.FLAGS
  if len(argv) > 1:
    raise SystemExit(f"Unexpected arguments: {argv[1:]}")
  if not f["verbosity"].present:
    logging.set_verbosity(logging.WARNING)  # Orbax logs every save at INFO.
  options = StudyOptions(
      output_dir=f.output_dir, workdir_root=f.workdir_root, runs=f.runs,
      seeds=[int(s) for s in f.seeds] if f.seeds else None, quick=f.quick, dataset=f.dataset,
      data_dir=f.data_dir, prepared_dir=f.prepared_dir, overrides=parse_overrides(f.set),
      retrain=f.retrain, runtime_results=f.runtime_results, tfidf_results=f.tfidf_results,
      command=" ".join(["python -m train.study"] + sys.argv[1:]),
  )
  try:
    summary = write_summary(options) if f.summarize_only else run_study(options)
  except (ValueError, FileNotFoundError) as e:
    print(f"ERROR: {e}", file=sys.stderr)
    sys.exit(2)
  failed = sum(len(r["failed_seeds"]) for r in summary["rows"])
  print(f"Wrote {os.path.join(options.output_dir, 'study.md')} ({len(summary['rows'])} runs"
        f"{f', {failed} failed seeds' if failed else ''}).")


def _define_flags() -> None:
  """Command-line flags (defined only when run as a program, so importing is side-effect free)."""
  flags.DEFINE_string("output_dir", "results/study", "Run records, summary, table and plots.")
  flags.DEFINE_string("workdir_root", "workdirs/study", "Training workdirs: <root>/<run>/seed<k>.")
  flags.DEFINE_list("runs", ["*"], "Run names or fnmatch patterns: " + ", ".join(RUNS_BY_NAME))
  flags.DEFINE_list("seeds", None, f"Seeds (default {FULL_SEEDS}; --quick: {QUICK_SEEDS}).")
  flags.DEFINE_bool("quick", False, "Small subset and a few steps per run (CPU, minutes).")
  flags.DEFINE_enum("dataset", None, ["sentiment140", "synthetic"], "Override the configs' dataset.")
  flags.DEFINE_string("data_dir", None, "Raw Sentiment140 folder (default: the configs' rule).")
  flags.DEFINE_string("prepared_dir", None, "Prepared-data cache (default: the configs' rule).")
  flags.DEFINE_multi_string("set", [], "key=value config override for every run (repeatable), "
                            "e.g. --set=num_epochs=1 --set=model.dropout=0.1")
  flags.DEFINE_bool("retrain", False, "Retrain runs that already have an eval_report.json.")
  flags.DEFINE_bool("summarize_only", False, "Only re-tabulate the run records already in "
                    "--output_dir (e.g. copied from a GPU machine); train nothing.")
  flags.DEFINE_string("runtime_results", "results/runtime_*.json", "benchmarks.runtime outputs.")
  flags.DEFINE_string("tfidf_results", "results/tfidf_baseline.json", "train.tfidf_baseline output.")


if __name__ == "__main__":
  _define_flags()
  app.run(main)
