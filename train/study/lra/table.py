"""The LRA table: the seeds' accuracies (the slides) and the project's runs, task by task.

``SEED_ROWS`` is the table of the seed document (accuracy %, input length in the column titles);
``write_table(output_dir)`` adds one row per model that has run records in
``<output_dir>/runs/`` (test accuracy, and below the table each run's budget, examples seen,
steps and device) and writes ``<output_dir>/table.md``. A task without a run is "-".
"""

from __future__ import annotations

import glob
import json
import os

from configs import lra as lra_configs
from train.data.lra import tasks as lra_tasks

COLUMNS = ("listops", "text", "retrieval", "image", "pathfinder32", "pathfinder64")
# The seed document's table (accuracy %); None: no number there.
SEED_ROWS = {
    "Mamba (seeds)": (44.86, 81.27, 86.51, 68.74, 74.17, 76.28),
    "MHFA + RoPE (seeds)": (38.86, 65.79, 74.30, 67.70, 68.44, None),
    "Transformer (published)": (36.37, 64.27, 57.46, 42.44, 71.40, None),
    "Performer (published)": (18.01, 65.40, 53.82, 42.77, 77.05, None),
    "S5 (published)": (62.15, 89.31, 91.40, 88.00, 95.33, None),
}
MODEL_TITLES = {"mamba": "Mamba", "mamba2": "Mamba-2", "mamba2_bidirectional": "Mamba-2 bidirectional",
                "transformer_rope": "Transformer + RoPE", "performer": "Performer"}


def read_records(output_dir: str) -> list[dict]:
  """Every run record in ``<output_dir>/runs/`` (sorted by file name)."""
  records = []
  for path in sorted(glob.glob(os.path.join(output_dir, "runs", "*.json"))):
    with open(path, encoding="utf-8") as f:
      records.append(json.load(f))
  return records


def _cell(value) -> str:
  return "-" if value is None else f"{value:.2f}"


def markdown(records: list[dict]) -> str:
  """The table (seeds' rows, then one row per study model) and the runs' details."""
  header = "| model | " + " | ".join(lra_tasks.TASKS[c].title for c in COLUMNS) + " |"
  lines = ["# Long Range Arena: test accuracy (%)", "", header, "|---|" + "---:|" * len(COLUMNS)]
  for name, values in SEED_ROWS.items():
    lines.append(f"| {name} | " + " | ".join(_cell(v) for v in values) + " |")
  by_model = {}
  for record in records:
    by_model.setdefault(record["model"], {})[record["task"]] = record
  for model in lra_configs.MODELS:
    runs = by_model.get(model, {})
    cells = [_cell(100.0 * runs[c]["test_accuracy"]) if c in runs else "-" for c in COLUMNS]
    lines.append(f"| {MODEL_TITLES[model]} (this project) | " + " | ".join(cells) + " |")
  lines += ["", "Runs (budget, examples seen, steps, parameters, device):", ""]
  if not records:
    lines.append("none yet: `python -m train.lra --task=<task> --model=all --budget_minutes=45` makes them.")
  for record in records:
    env = record.get("environment", {})
    lines.append(f"- {record['title']}, {MODEL_TITLES.get(record['model'], record['model'])}: "
                 f"{100.0 * record['test_accuracy']:.2f}% after {record['examples_seen']:,} examples "
                 f"({record['steps']:,} steps, {record['wall_time_total_s'] / 60:.1f} min of "
                 f"{record['budget_minutes_requested']} budgeted), {record['num_params']:,} parameters, "
                 f"{env.get('device', '?')}; `{record['command']}`")
  return "\n".join(lines) + "\n"


def write_table(output_dir: str) -> str:
  """Writes ``<output_dir>/table.md`` from the run records there; returns its text."""
  text = markdown(read_records(output_dir))
  os.makedirs(output_dir, exist_ok=True)
  with open(os.path.join(output_dir, "table.md"), "w", encoding="utf-8") as f:
    f.write(text)
  return text
