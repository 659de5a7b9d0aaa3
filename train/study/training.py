"""Training the study: each (run, seed) trained or reused, its record written, then the summary.

A (run, seed) trains with ``train.loop.trainer.train_and_evaluate`` in
``<workdir_root>/<run>/seed<seed>`` and its record goes to
``<output_dir>/runs/<run>__seed<seed>.json``, its per-example answers (``train.scoring.per_example``)
to ``<output_dir>/per_example/<run>__seed<seed>.json``. A finished run is reused (see ``train_one``)
unless ``--retrain``; an interrupted one resumes from its checkpoint. A failed (run, seed) is recorded
and the study goes on; SIGTERM/SIGINT stop the study (``train.runs.preemption.Preempted``, its record
left as it was): the same command resumes it.
"""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
import time
import traceback
from typing import Any, Dict, Optional

import configs
from train.loop import models, trainer
from train.runs import eval_report, preemption
from train.runs import workdir as workdir_lib
from train.scoring import per_example
from train.study.report import write_summary
from train.study.runs import FULL_SEEDS, QUICK_SEEDS, StudyOptions, StudyRun, build_config, select_runs


def run_file(output_dir: str, run: StudyRun, seed: int) -> str:
  """The path of the record of one (run, seed): <output_dir>/runs/<run>__seed<seed>.json."""
  return os.path.join(output_dir, "runs", f"{run.name}__seed{seed}.json")


def reusable_record(run: StudyRun, seed: int, options: StudyOptions) -> Optional[Dict[str, Any]]:
  """The committed record of (run, seed) in the output dir (``reused`` set True), if it finished
  (and, with ``retrain_without_answers``, has its per-example answers); else None.

  Raises:
    ValueError: a finished record made with a config that differs from this one in a result-changing
      field (e.g. other ``--set`` overrides), unless ``retrain``: the study's table must not mix budgets.
  """
  path = run_file(options.output_dir, run, seed)
  if options.retrain or not os.path.exists(path):
    return None
  with open(path, encoding="utf-8") as f:
    saved = json.load(f)
  if saved.get("status") != "ok":
    return None
  differences = workdir_lib.result_differences(saved.get("report", {}).get("config", {}),
                                               workdir_lib.as_json_dict(build_config(run, seed, options)))
  if differences:
    shown = ", ".join(f"{name} {before!r} there, {after!r} here" for name, before, after in differences[:3])
    raise ValueError(f"{path} was trained with another config ({shown}); give the --set overrides of its "
                     "study (the command in study.md) or --retrain to replace it")
  if options.retrain_without_answers and not os.path.exists(per_example_file(options.output_dir, run, seed)):
    return None
  return {**saved, "reused": True}


def per_example_file(output_dir: str, run: StudyRun, seed: int) -> str:
  """The path of the per-example answers of one (run, seed): <output_dir>/per_example/<run>__seed<seed>.json."""
  return os.path.join(output_dir, "per_example", f"{run.name}__seed{seed}.json")


def train_one(run: StudyRun, seed: int, options: StudyOptions) -> Dict[str, Any]:
  """Trains (or reuses) one (run, seed), writes its record unless the output dir holds it already, returns it.

  A finished run is reused from its record in the output dir (committed with the results,
  so a study continues on another machine and another day; that record stays as it was written)
  or from its workdir, if it was made by a config that differs from this one in no field that
  changes the trained result (train.runs.workdir.RESULT_INDEPENDENT_FIELDS may differ, e.g. the
  log and eval cadences).
  """
  return _train_unless_reusable(run, seed, options, reusable_record(run, seed, options))


def _train_unless_reusable(run: StudyRun, seed: int, options: StudyOptions,
                           record: Optional[Dict[str, Any]]) -> Dict[str, Any]:
  """``train_one`` given ``reusable_record`` of (run, seed) (None: train or reuse its workdir)."""
  if record is None:
    record = _train_or_reuse_workdir(run, seed, options)
    os.makedirs(os.path.join(options.output_dir, "runs"), exist_ok=True)
    with open(run_file(options.output_dir, run, seed), "w", encoding="utf-8") as f:
      json.dump(record, f, indent=1)
  answers = os.path.join(record.get("workdir", ""), per_example.FILE_NAME)
  if record["status"] == "ok" and os.path.exists(answers):  # A workdir of before the per-example files has none.
    os.makedirs(os.path.dirname(per_example_file(options.output_dir, run, seed)), exist_ok=True)
    shutil.copyfile(answers, per_example_file(options.output_dir, run, seed))
  return record


def _train_or_reuse_workdir(run: StudyRun, seed: int, options: StudyOptions) -> Dict[str, Any]:
  """The record of (run, seed) from its workdir's eval report if that is reusable, else from training."""

  workdir = os.path.join(options.workdir_root, run.name, f"seed{seed}")
  report_path = eval_report.report_path(workdir)
  config = build_config(run, seed, options)
  record: Dict[str, Any] = {"run": run.name, "seed": seed, "description": run.description,
                            "base_config": configs.BY_MODEL[run.base].__name__, "overrides": run.overrides,
                            "quick": options.quick, "dataset": config.dataset,
                            "workdir": os.path.abspath(workdir)}
  wanted = workdir_lib.as_json_dict(config)
  if os.path.exists(report_path) and not options.retrain:
    report = eval_report.read_eval_report(workdir)
    differences = workdir_lib.result_differences(report.get("config", {}), wanted)
    if differences:
      print(f"[study] {run.name} seed {seed}: config changed since {report_path} "
            f"({', '.join(name for name, _, _ in differences[:5])}); retraining.", flush=True)
    elif options.retrain_without_answers and not os.path.exists(os.path.join(workdir, per_example.FILE_NAME)):
      print(f"[study] {run.name} seed {seed}: {workdir} has no per-example answers; retraining.", flush=True)
    else:
      record.update(status="ok", reused=True, report=report)
      return record
    options = dataclasses.replace(options, retrain=True)
  if options.retrain and os.path.isdir(workdir):
    shutil.rmtree(workdir)  # A stale checkpoint of another config must not be resumed.
  start = time.perf_counter()
  try:
    report = trainer.train_and_evaluate(config, workdir)
  except preemption.Preempted:
    raise  # SIGTERM/SIGINT stop the whole study (the step reached is saved); no record is written.
  except Exception as e:  # pylint: disable=broad-except
    # One failed run (e.g. a NaN loss) must not lose the rest of the study.
    record.update(status="failed", error=f"{type(e).__name__}: {e}",
                  traceback=traceback.format_exc(limit=5))
    print(f"[study] {run.name} seed {seed} FAILED: {record['error']}", flush=True)
    return record
  record.update(status="ok", reused=False, wall_time_s=time.perf_counter() - start, report=report)
  return record


def run_study(options: StudyOptions) -> Dict[str, Any]:
  """Trains every selected (run, seed), then rewrites the summary, table and plots."""
  runs = select_runs(options.runs)
  seeds = list(options.seeds) if options.seeds is not None else list(
      QUICK_SEEDS if options.quick else FULL_SEEDS)
  committed = {}
  for run in runs:  # Fail fast on a bad override or a record of another config, before hours of training.
    models.create_model(build_config(run, seeds[0], options), vocab_size=2)
    for seed in seeds:
      committed[run.name, seed] = reusable_record(run, seed, options)
  os.makedirs(os.path.join(options.output_dir, "runs"), exist_ok=True)
  for run in runs:
    for seed in seeds:
      print(f"[study] {run.name} seed {seed}", flush=True)
      record = _train_unless_reusable(run, seed, options, committed[run.name, seed])
      if record["status"] == "ok":
        report = record["report"]
        print(f"[study] {run.name} seed {seed}: test acc {report['test']['accuracy']:.4f}, "
              f"manual {report['manual_test']['binary']['accuracy']:.4f}"
              f"{' (reused)' if record['reused'] else ''}", flush=True)
  return write_summary(options)

