"""A run's final report, ``<workdir>/eval_report.json``: built, written and read back here.

``train.loop.trainer.train_and_evaluate`` writes it once the evaluated checkpoint is scored
(``train.scoring.metrics``); ``train.export``, the study and a finished run started again read it.
Besides the metrics it says which checkpoint was evaluated (``evaluated_checkpoint``) and,
when a run only evaluates, keeps the speed measured by the run that trained
(``measured_figures``).
"""

from __future__ import annotations

import json
import os
from typing import Optional

import ml_collections

EVAL_REPORT_FILE = "eval_report.json"  # In the workdir.
PER_EXAMPLE_FILE = "per_example.json"  # Beside it: each example's answer (train.scoring.per_example).


def report_path(workdir: str) -> str:
  """``<workdir>/eval_report.json``."""
  return os.path.join(workdir, EVAL_REPORT_FILE)


def read_eval_report(workdir: str) -> dict:
  """The report of ``workdir`` (FileNotFoundError if the run has not finished)."""
  with open(report_path(workdir), encoding="utf-8") as f:
    return json.load(f)


def measured_figures(workdir: str, trained_steps: int, train_seconds: float, examples_per_s: float) -> dict:
  """train_time_s / examples_per_s of this run, or those of the earlier report when nothing was trained.

  Starting a finished run again only evaluates; its measured speed stays the one measured.
  """
  figures = {"train_time_s": train_seconds, "examples_per_s": examples_per_s}
  if trained_steps == 0 and os.path.exists(report_path(workdir)):
    try:
      earlier = read_eval_report(workdir)
      figures = {name: earlier[name] for name in figures}
    except (OSError, ValueError, KeyError):
      pass  # An unreadable earlier report: this run's (zero) figures it is.
  return figures


def evaluated_checkpoint(kind: Optional[str], progress: Optional[dict], problems: list) -> dict:
  """Which checkpoint the final evaluation used and why, for the eval report.

  ``kind``, ``progress``: what ``train.runs.checkpointing.Checkpointer.restore_best_or_latest`` returned
  ("best" | "latest", the checkpoint's progress; None, None: no checkpoint could be restored and
  the final state was evaluated). ``problems``: the run's ``Checkpointer.problems``.

  {"intended": "best", "used": "best" | "latest" | "final_state", "step", "is_intended",
   "problems": [unreadable checkpoints met in this run: kind, step, error, moved_to]}.
  """
  used = kind if progress is not None else "final_state"
  return {"intended": "best", "used": used or "final_state",
          "step": int(progress["step"]) if progress else None, "is_intended": used == "best",
          "problems": list(problems)}


def build_eval_report(config: ml_collections.ConfigDict, run: dict, figures: dict, metrics: dict,
                      epoch_examples: int) -> dict:
  """The eval report of a run: ``run``, ``figures``, epoch_time_s, ``metrics`` and the config.

  Args:
    config: the run's config (stored as ``config``).
    run: what the run was and did: model_type, num_params, steps, evaluated_step,
      resumed_from_step, devices, device_kind, evaluated_checkpoint (see ``evaluated_checkpoint``),
      best_validation_accuracy, wall_time_s, tokenizer_path, data_summary.
    figures: ``measured_figures``: train_time_s, examples_per_s.
    metrics: split name -> metrics of the evaluated state (``train.loop.evaluation.Evaluator.report_metrics``).
    epoch_examples: training examples per epoch (steps per epoch x batch size).
  """
  return {
      **run,
      **figures,
      "epoch_time_s": epoch_examples / figures["examples_per_s"] if figures["examples_per_s"] else None,
      **metrics,
      "config": config.to_dict(),
  }


def write_eval_report(workdir: str, report: dict) -> None:
  """Writes ``report`` (JSON-ready) to ``<workdir>/eval_report.json``."""
  with open(report_path(workdir), "w", encoding="utf-8") as f:
    json.dump(report, f, indent=2)
