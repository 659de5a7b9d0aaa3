"""The release rule of the transfer benchmark (README "Release rule"): which classifier becomes the release.

Each contestant (the current release and each candidate, a Sentiment140 classifier: an export or a
finished workdir) is scored by the mean of (a) its Sentiment140 validation accuracy and (b) the mean
validation macro-recall of its fine-tuned runs in the transfer benchmark's result folders
(``train.study.domain_adaptation``: method ``finetune`` for the current release, ``finetune_<name>``
for a candidate). Only validation numbers decide. A contestant is ranked only when it has the same
(set, size, seed) runs as every other: scores over different runs are not compared.
"""

from __future__ import annotations

import json
import os
import statistics
from typing import Sequence

from train.runs import eval_report, model_dir
from train.study import domain_adaptation


def sentiment140_validation_accuracy(path: str) -> float:
  """Validation accuracy of a classifier: an export's stored weights (evaluation.json), else a workdir's report."""
  evaluation = os.path.join(path, model_dir.EVALUATION_FILE)
  if os.path.exists(evaluation):
    with open(evaluation, encoding="utf-8") as f:
      return float(json.load(f)["splits"]["validation"]["stored"]["accuracy"])
  try:
    return float(eval_report.read_eval_report(path)["validation"]["accuracy"])
  except FileNotFoundError as e:
    raise ValueError(f"{path}: neither an export ({model_dir.EVALUATION_FILE}) nor a finished workdir "
                     f"({eval_report.EVAL_REPORT_FILE})") from e


def transfer_runs(result_dirs: Sequence[str], method: str) -> dict:
  """(set folder name, size, seed) -> validation macro-recall of ``method``'s runs in ``result_dirs``."""
  found = {}
  for result_dir in result_dirs:
    runs_dir = os.path.join(result_dir, "runs")
    if not os.path.isdir(runs_dir):
      raise ValueError(f"{result_dir}: no runs/ folder (not a transfer benchmark's --output_dir)")
    for run in domain_adaptation.read_runs(runs_dir):
      if run["method"] == method:
        found[(os.path.basename(os.path.normpath(result_dir)), run["size"], run["seed"])] = float(
            run["validation_macro_recall"])
  return found


def rank(contestants: dict, result_dirs: Sequence[str]) -> dict:
  """The rule's table: contestants (method -> classifier path) scored and ranked, best first.

  Returns {"rows": [{method, path, sentiment140_validation_accuracy, transfer_validation_macro_recall,
  transfer_runs, score}], "complete": whether every contestant has the same runs, "release": the best
  method (None when incomplete)}.
  """
  runs = {method: transfer_runs(result_dirs, method) for method in contestants}
  keys = [set(found) for found in runs.values()]
  complete = bool(keys) and all(k == keys[0] for k in keys) and bool(keys[0])
  rows = []
  for method, path in contestants.items():
    accuracy = sentiment140_validation_accuracy(path)
    recall = statistics.fmean(runs[method].values()) if runs[method] else None
    rows.append({"method": method, "path": path, "sentiment140_validation_accuracy": accuracy,
                 "transfer_validation_macro_recall": recall, "transfer_runs": len(runs[method]),
                 "score": None if recall is None else (accuracy + recall) / 2})
  rows.sort(key=lambda r: (r["score"] is None, -(r["score"] or 0.0)))
  return {"rows": rows, "complete": complete, "release": rows[0]["method"] if complete else None,
          "result_dirs": list(result_dirs)}


def markdown(ranking: dict) -> str:
  """The ranking as a table, with the decision (or why there is none yet)."""
  lines = ["| contestant | classifier | Sentiment140 validation accuracy | transfer validation macro-recall (runs) "
           "| score |", "|---|---|---:|---:|---:|"]
  def percent(x):
    return "-" if x is None else f"{100 * x:.2f}"

  for row in ranking["rows"]:
    lines.append(f"| {domain_adaptation.method_label(row['method'])} | `{row['path']}` | "
                 f"{percent(row['sentiment140_validation_accuracy'])} | "
                 f"{percent(row['transfer_validation_macro_recall'])} ({row['transfer_runs']}) | "
                 f"{percent(row['score'])} |")
  if ranking["complete"]:
    lines += ["", f"Release: **{domain_adaptation.method_label(ranking['release'])}** (the highest score)."]
  else:
    lines += ["", "No decision: the contestants do not have the same transfer runs yet."]
  return "\n".join(lines) + "\n"
