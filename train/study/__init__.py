r"""The comparison study: Mamba vs Transformer vs LSTM vs LTI SSM, and Mamba ablations.

  # Full study (GPU; full data, 3 seeds per run, each run as configs/<model>.py):
  python -m train.study --output_dir=results/study --workdir_root=workdirs/study
  # Rerun a subset (other runs' results in --output_dir are kept and re-tabulated):
  python -m train.study --runs=mamba,mamba_d_state_* --retrain
  # Re-tabulate only (after copying runs/*.json or new runtime/TF-IDF results):
  python -m train.study --summarize_only
  # Whole study on a small subset on the CPU in minutes:
  python -m train.study --quick --output_dir=/tmp/study --workdir_root=/tmp/study_wd
  python -m train.study --quick --dataset=synthetic --seeds=0 ...   # no data files needed

Every run is a config file (configs/{sent140,transformer,lstm,ssm}.py) plus
overrides; every run gets the same data, splits, tokenizer, epochs and
optimizer settings. Each (run, seed) trains with ``train.train.train_and_evaluate``
in ``<workdir_root>/<run>/seed<seed>`` (a finished run's eval_report.json is
reused unless ``--retrain``; an interrupted one resumes from its checkpoint).

Writes into ``--output_dir``:
  runs/<run>__seed<seed>.json   the eval report of each run (+ study metadata)
  summary.json                  mean / std / values per metric and run
  study.md                      the table (+ TF-IDF row, runtime figure)
  accuracy.png                  held-out test and manual-test accuracy, mean +- std
  runtime.png                   inference time vs length from results/runtime_*.json

Modules: ``runs`` (the run table, options and each run's config), ``training`` (train or
reuse each (run, seed), write its record) and ``report`` (aggregate the records into the
summary, table and figures); ``__main__`` is the command line.
"""

# The study's API (``from train import study``; the modules hold the rest).
from train.study.report import write_summary
from train.study.runs import (QUICK_OVERRIDES, RUNS_BY_NAME, STUDY_RUNS, StudyOptions, StudyRun,
                              build_config, parse_overrides, select_runs)
from train.study.training import run_study, train_one
