"""What ``python -m train.lra`` prints or writes besides training: parameter counts, data statistics, the table.

Each function is one call of the command line (``train/lra.py``); errors are ValueError /
FileNotFoundError with a one-line message.
"""

from __future__ import annotations

from typing import Optional, Sequence

from configs import lra as lra_configs
from train.data import pipeline
from train.data.lra import data_stats as data_stats_lib
from train.data.lra import tasks as lra_tasks
from train.study.lra import runs, table as table_lib


def param_count_table() -> str:
  """Markdown: parameters of every model (columns) at every task (rows)."""
  lines = ["| task | " + " | ".join(lra_configs.MODELS) + " |", "|---|" + "---:|" * len(lra_configs.MODELS)]
  for task in lra_tasks.TASKS:
    counts = runs.param_counts(task)
    lines.append(f"| {task} | " + " | ".join(f"{counts[m]:,}" for m in lra_configs.MODELS) + " |")
  return "\n".join(lines)


def parse_sizes(items: Sequence[str]) -> dict[str, tuple[int, int, int]]:
  """["pathfinder32:16000,2000,2000"] -> {"pathfinder32": (16000, 2000, 2000)}."""
  sizes = {}
  for item in items:
    task, sep, numbers = item.partition(":")
    try:
      values = tuple(int(n) for n in numbers.split(","))
    except ValueError:
      values = ()
    if not sep or task not in lra_tasks.TASKS or len(values) != 3:
      raise ValueError(f"--sizes expects TASK:TRAIN,VALIDATION,TEST with a generated task, got {item!r}")
    sizes[task] = values
  return sizes


def data_stats(path: str, task_names: Sequence[str], size_items: Sequence[str], overrides: dict,
               command: str) -> str:
  """Prepares each generated task (published sizes unless ``size_items`` say otherwise) and writes the
  label balance and lengths next to the published figures to ``path``; returns the report."""
  sizes = parse_sizes(size_items)
  summaries = []
  for name in task_names:
    if name not in lra_tasks.TASKS or not lra_tasks.TASKS[name].generated:
      raise ValueError(f"--tasks: {name!r} is not a generated task "
                       f"({', '.join(t for t, task in lra_tasks.TASKS.items() if task.generated)})")
    options = runs.LraOptions(task=name, models=["mamba2"], overrides=overrides)
    config = runs.build_config(name, "mamba2", options)
    if name in sizes:
      config.lra_sizes = sizes[name]
    summaries.append(pipeline.get_datasets(config).summary)
  return data_stats_lib.write_data_stats(path, summaries, command)


def table(output_dir: str) -> str:
  """Rewrites ``<output_dir>/table.md`` from the run records; returns it."""
  return table_lib.write_table(output_dir)


def run_and_tabulate(options: runs.LraOptions) -> list[dict]:
  """Trains the models of ``options`` (``runs.run``), then rewrites the table."""
  records = runs.run(options)
  table_lib.write_table(options.output_dir)
  return records


def command(options: runs.LraOptions, *, param_counts: bool = False, data_stats_path: Optional[str] = None,
            stats_tasks: Sequence[str] = (), stats_sizes: Sequence[str] = (), table_only: bool = False) -> str:
  """What ``python -m train.lra`` does with its flags; returns what it prints.

  One of: the parameter counts; the data statistics (written to ``data_stats_path``); the table
  (rewritten from ``options.output_dir``'s records); else the runs of ``options`` (task and models
  needed) and the table.

  Raises:
    ValueError: no task or model for a run, or a bad option.
  """
  if param_counts:
    return param_count_table()
  if data_stats_path:
    return data_stats(data_stats_path, stats_tasks, stats_sizes, options.overrides, options.command)
  if table_only:
    return table(options.output_dir)
  if not options.task or not options.models:
    raise ValueError("--task and --model are required (or --param_counts / --data_stats / --table)")
  records = run_and_tabulate(options)
  return "\n".join(f"{r['task']} {r['model']}: test accuracy {r['test_accuracy']:.4f}, {r['examples_seen']:,} "
                   f"examples; record {runs.run_file(options.output_dir, r['task'], r['model'])}" for r in records)
