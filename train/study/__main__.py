r"""The comparison study's command line: Mamba vs Transformer vs LSTM vs LTI SSM, and Mamba ablations.

  # Full study (GPU; full data, 3 seeds per run, each run as configs/<model>.py):
  python -m train.study --output_dir=results/study --workdir_root=workdirs/study
  # Rerun a subset (other runs' results in --output_dir are kept and re-tabulated):
  python -m train.study --runs=mamba,mamba_d_state_* --retrain
  # Re-tabulate only (after copying runs/*.json or new runtime/TF-IDF results):
  python -m train.study --summarize_only
  # Each model's answer on the same tweets, disagreements, McNemar tests (qualitative.md):
  python -m train.study --qualitative
  # ... after training the runs whose records predate the per-example files (resumable):
  python -m train.study --runs=mamba,mamba2,ssm,transformer,lstm --seeds=0 --retrain_without_answers
  # Whole study on a small subset on the CPU in minutes:
  python -m train.study --quick --output_dir=/tmp/study --workdir_root=/tmp/study_wd
  python -m train.study --quick --dataset=synthetic --seeds=0 ...   # no data files needed

Every run is a config file (configs/{sent140,transformer,lstm,ssm}.py) plus
overrides; every run gets the same data, splits, tokenizer, epochs and
optimizer settings. Each (run, seed) trains with ``train.loop.trainer.train_and_evaluate``
in ``<workdir_root>/<run>/seed<seed>`` (a finished run's eval_report.json is
reused unless ``--retrain``; an interrupted one resumes from its checkpoint).

Writes into ``--output_dir``:
  runs/<run>__seed<seed>.json   the eval report of each run (+ study metadata)
  summary.json                  mean / std / values per metric and run
  study.md                      the table (+ TF-IDF row, runtime figure)
  accuracy.png                  held-out test and manual-test accuracy, mean +- std
  runtime.png                   inference time vs length from results/runtime_*.json
  per_example/<run>__seed<seed>.json   each run's answers on the same tweets
  qualitative.{md,json}         with --qualitative (train.study.qualitative)
"""

from __future__ import annotations

import os
import sys
from typing import Sequence

from absl import flags

from train.command_line import errors, program
from train.runs import preemption
from train.study.qualitative import DEFAULT_RUNS, write_qualitative
from train.study.report import write_summary
from train.study.runs import FULL_SEEDS, QUICK_SEEDS, RUNS_BY_NAME, StudyOptions, parse_overrides
from train.study.training import run_study


def main(argv: Sequence[str]) -> None:
  f = flags.FLAGS
  program.no_arguments(argv)
  program.quiet_logging()
  options = StudyOptions(
      output_dir=f.output_dir, workdir_root=f.workdir_root, runs=f.runs,
      seeds=[int(s) for s in f.seeds] if f.seeds else None, quick=f.quick, dataset=f.dataset,
      data_dir=f.data_dir, prepared_dir=f.prepared_dir, overrides=parse_overrides(f.set),
      retrain=f.retrain, retrain_without_answers=f.retrain_without_answers,
      runtime_results=f.runtime_results, tfidf_results=f.tfidf_results,
      command=" ".join(["python -m train.study"] + sys.argv[1:]),
  )
  with errors.one_line_errors():
    if f.qualitative:
      report = write_qualitative(options, f.runs if f.runs != ["*"] else DEFAULT_RUNS)
      print(f"Wrote {os.path.join(options.output_dir, 'qualitative.md')} ({len(report['runs'])} models, "
            f"{len(report['pairwise'])} paired tests).")
      return
    try:
      summary = write_summary(options) if f.summarize_only else run_study(options)
    except preemption.Preempted as e:
      errors.fail(str(e), preemption.PREEMPTED_EXIT_CODE, label="STOPPED")
  failed = sum(len(r["failed_seeds"]) for r in summary["rows"])
  print(f"Wrote {os.path.join(options.output_dir, 'study.md')} ({len(summary['rows'])} runs"
        f"{f', {failed} failed seeds' if failed else ''}).")


def define_flags() -> None:
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
  flags.DEFINE_bool("retrain_without_answers", False, "Retrain only the selected runs whose record has no "
                    "per-example answers in --output_dir/per_example (made before they were kept); an "
                    "interrupted one resumes from its checkpoint.")
  flags.DEFINE_bool("qualitative", False, "Only write qualitative.md: each model's answer on the same tweets "
                    f"(--runs, default {','.join(DEFAULT_RUNS)}), from the per-example files in --output_dir.")
  flags.DEFINE_bool("summarize_only", False, "Only re-tabulate the run records already in "
                    "--output_dir (e.g. copied from a GPU machine); train nothing.")
  flags.DEFINE_string("runtime_results", "results/runtime_*.json", "benchmarks.runtime outputs.")
  flags.DEFINE_string("tfidf_results", "results/tfidf_baseline.json", "train.tfidf_baseline output.")


if __name__ == "__main__":
  program.run(main, define_flags)
