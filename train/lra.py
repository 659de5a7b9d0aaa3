r"""The Long Range Arena study: train a model on a task within a wall-clock budget, or report.

  python -m train.lra --task=listops --model=mamba2 --budget_minutes=45
  python -m train.lra --task=image --model=all --budget_minutes=45          # every model, one after another
  python -m train.lra --param_counts                                        # parameters per task and model
  python -m train.lra --data_stats=results/lra/data_stats.md [--tasks=listops,pathfinder32]
                      [--sizes=pathfinder32:16000,2000,2000]                # generated data vs published
  python -m train.lra --table                                               # results/lra/table.md from the runs
  python -m train.lra --task=listops --model=all --quick                    # smoke test: tiny, seconds

Tasks: listops, text, retrieval, image, pathfinder32, pathfinder64 (train/data/lra/tasks.py);
models: mamba, mamba2, mamba2_bidirectional, transformer_rope, performer (configs/lra.py). A run
trains in <workdir_root>/<task>/<model> (run the same command again to resume), writes its record
to <output_dir>/runs/<task>__<model>.json and rewrites <output_dir>/table.md; a (task, model) with a
record of the same config and budget is skipped (another config: a one-line error; --start_over runs
it again). --set key=value
changes a config field (e.g. --set=lra_sizes=(2000,200,200) --set=model.n_layers=2). Errors are one
line, exit code 2; a run stopped by SIGTERM/SIGINT exits 75 after saving (run it again).
"""

import sys

from absl import flags

from configs import lra as lra_configs
from train.command_line import errors, program
from train.data.lra import tasks as lra_tasks
from train.runs import preemption
from train.study import runs as study_runs
from train.study.lra import reports, runs


def main(argv):
  f = flags.FLAGS
  program.no_arguments(argv)
  program.quiet_logging()
  try:
    with errors.one_line_errors(name_kind=True):
      options = runs.LraOptions(
          task=f.task, models=list(lra_configs.MODELS) if f.model == ["all"] else (f.model or []),
          budget_minutes=f.budget_minutes, workdir_root=f.workdir_root, output_dir=f.output_dir, seed=f.seed,
          overrides=study_runs.parse_overrides(f.set), start_over=f.start_over, quick=f.quick,
          command=" ".join(["python -m train.lra"] + sys.argv[1:]))
      print(reports.command(options, param_counts=f.param_counts, data_stats_path=f.data_stats,
                            stats_tasks=f.tasks, stats_sizes=f.sizes, table_only=f.table))
  except preemption.Preempted as e:
    errors.fail(str(e), preemption.PREEMPTED_EXIT_CODE, label="STOPPED")


def define_flags() -> None:
  """Command-line flags (defined only when run as a program, so importing is side-effect free)."""
  flags.DEFINE_enum("task", None, list(lra_tasks.TASKS), "The LRA task.")
  flags.DEFINE_list("model", None, f"Models (comma-separated) or 'all': {', '.join(lra_configs.MODELS)}.")
  flags.DEFINE_float("budget_minutes", 0.0, "Wall-clock budget per model; the schedule is fitted to it and "
                     "training stops at it (0: the config's steps).", lower_bound=0.0)
  flags.DEFINE_integer("seed", 0, "Training seed (init, dropout, data order); the data's seed is lra_data_seed.")
  flags.DEFINE_string("workdir_root", "workdirs/lra", "Workdirs: <root>/<task>/<model>.")
  flags.DEFINE_string("output_dir", "results/lra", "Run records (runs/) and table.md.")
  flags.DEFINE_multi_string("set", [], "key=value config override (repeatable).")
  flags.DEFINE_bool("start_over", False, "Delete the workdir's earlier checkpoints, metrics and report first, "
                    "and replace the run's record.")
  flags.DEFINE_bool("quick", False, "Tiny models, a few generated examples, max_length 128, 4 steps: a smoke "
                    "test of the whole command in seconds (configs/lra.py quick()).")
  flags.DEFINE_bool("param_counts", False, "Print every model's parameters at every task.")
  flags.DEFINE_string("data_stats", None, "Write the generated tasks' label balance and lengths to this file.")
  flags.DEFINE_list("tasks", ["listops", "pathfinder32", "pathfinder64"], "--data_stats: the generated tasks.")
  flags.DEFINE_multi_string("sizes", [], "--data_stats: TASK:TRAIN,VALIDATION,TEST (default: published sizes).")
  flags.DEFINE_bool("table", False, "Rewrite <output_dir>/table.md from the run records.")


if __name__ == "__main__":
  program.run(main, define_flags)
