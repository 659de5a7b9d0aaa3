r"""Does length bucketing bias training? Bucketed vs fixed padding, same data, same budget.

  python -m benchmarks.bucketing_accuracy            # 2 seeds x {fixed, bucketed}, 200k tweets, 1 epoch
  python -m benchmarks.bucketing_accuracy --seeds=0 --max_train_examples=20000   # smaller

Trains ``configs/sent140.py`` with ``bucket_by_length`` False and True on the same
deterministic subset of the train split (``max_train_examples``), one epoch, for each
seed (the seed sets the initialization, dropout and the data order), through the
project's own ``train.trainer.train_and_evaluate``. Each run lives in
``<workdir_root>/<mode>_seed<seed>``; a run whose ``eval_report.json`` exists is not
trained again (an interrupted one resumes from its checkpoint), so the tool can be
stopped and started again. Writes ``<output>.json`` and ``<output>.md``: held-out test
accuracy, validation accuracy and manual-test (binary) accuracy per run, mean +- std per
mode, the difference of the means against the seed spread, and examples/s.
"""

from __future__ import annotations

import os
import statistics
import sys
from typing import Any, Dict, List, Sequence

from absl import app
from absl import flags
import jax

from configs import sent140
from train.loop import trainer
from train.runs import eval_report, provenance

MODES = {"fixed": False, "bucketed": True}
METRICS = {
    "test_accuracy": ("test", "accuracy"),
    "validation_accuracy": ("validation", "accuracy"),
    "manual_binary_accuracy": ("manual_test", "binary", "accuracy"),
}


def run_config(mode: str, seed: int, settings) -> Any:
  """configs/sent140.py with bucketing per ``mode`` and the budget of ``settings`` (the flags)."""
  config = sent140.get_config()
  config.bucket_by_length = MODES[mode]
  config.seed = seed
  config.max_train_examples = settings.max_train_examples
  config.num_epochs = settings.num_epochs
  config.warmup_steps = settings.warmup_steps
  config.eval_every_steps = settings.eval_every_steps
  config.checkpoint_every_steps = settings.eval_every_steps
  return config


def _get(report: Dict[str, Any], path) -> float:
  for key in path:
    report = report[key]
  return float(report)


def summarize(reports: Dict[str, List[Dict[str, Any]]]) -> Dict[str, Any]:
  summary: Dict[str, Any] = {}
  for mode, runs in reports.items():
    entry = {}
    for name, path in METRICS.items():
      values = [_get(r, path) for r in runs]
      entry[name] = {"values": values, "mean": statistics.mean(values),
                     "std": statistics.stdev(values) if len(values) > 1 else 0.0}
    entry["examples_per_s"] = [r["examples_per_s"] for r in runs]
    entry["train_time_s"] = [r["train_time_s"] for r in runs]
    summary[mode] = entry
  if set(reports) == set(MODES) and all(reports.values()):
    summary["bucketed_minus_fixed"] = {
        name: summary["bucketed"][name]["mean"] - summary["fixed"][name]["mean"] for name in METRICS}
  return summary


def markdown(result: Dict[str, Any]) -> str:
  env, s = result["environment"], result["summary"]
  lines = [f"# Bucketed vs fixed padding: held-out accuracy ({env['device']})", "",
           f"- command: `{env['command']}`", f"- commit: `{env['commit']}`, {env['date_utc']} UTC",
           f"- budget: {result['max_train_examples']:,} train tweets, {result['num_epochs']} epoch(s), "
           f"configs/sent140.py otherwise (warmup {result['warmup_steps']} steps); seeds {result['seeds']}",
           f"- other load on the machine while it ran: {result['other_load']}", "",
           "| mode | test acc (%) | validation acc (%) | manual binary acc (%) | train ex/s | per-seed test acc (%) |",
           "|---|---:|---:|---:|---:|---|"]
  for mode in MODES:
    if mode not in s:
      continue
    e = s[mode]
    cell = lambda m: f"{100 * e[m]['mean']:.2f} +- {100 * e[m]['std']:.2f}"  # noqa: E731
    lines.append(f"| {mode} | {cell('test_accuracy')} | {cell('validation_accuracy')} | "
                 f"{cell('manual_binary_accuracy')} | {statistics.mean(e['examples_per_s']):.0f} | "
                 f"{', '.join(f'{100 * v:.2f}' for v in e['test_accuracy']['values'])} |")
  if "bucketed_minus_fixed" in s:
    d = s["bucketed_minus_fixed"]
    lines += ["", "Bucketed minus fixed (points): " + ", ".join(f"{k} {100 * v:+.2f}" for k, v in d.items())]
  return "\n".join(lines) + "\n"


def main(argv: Sequence[str]) -> None:
  if len(argv) > 1:
    raise app.UsageError(f"Unexpected arguments: {argv[1:]}")
  settings = flags.FLAGS
  seeds = [int(s) for s in settings.seeds if s]
  reports: Dict[str, List[Dict[str, Any]]] = {mode: [] for mode in MODES}
  for seed in seeds:
    for mode in MODES:
      workdir = os.path.join(settings.workdir_root, f"{mode}_seed{seed}")
      path = eval_report.report_path(workdir)
      if os.path.exists(path):
        print(f"{mode} seed {seed}: finished earlier ({path})", flush=True)
      else:
        print(f"{mode} seed {seed}: training in {workdir}", flush=True)
        trainer.train_and_evaluate(run_config(mode, seed, settings), workdir)
      reports[mode].append(eval_report.read_eval_report(workdir))
  command = " ".join(["python -m benchmarks.bucketing_accuracy"] + sys.argv[1:])
  result = {"environment": provenance.environment(jax.devices()[0], command),
            "max_train_examples": settings.max_train_examples, "num_epochs": settings.num_epochs,
            "warmup_steps": settings.warmup_steps, "seeds": seeds, "other_load": settings.other_load,
            "summary": summarize(reports),
            "runs": {mode: [{"seed": s, "steps": r["steps"],
                             **{m: _get(r, p) for m, p in METRICS.items()}}
                            for s, r in zip(seeds, runs)] for mode, runs in reports.items()}}
  provenance.write_report(settings.output, result, markdown(result))


def _define_flags() -> None:
  """Command-line flags (defined only when run as a program, so importing is side-effect free)."""
  flags.DEFINE_list("seeds", ["0", "1"], "Seeds; each trains both modes.")
  flags.DEFINE_integer("max_train_examples", 200_000, "Train tweets (a deterministic subset).")
  flags.DEFINE_integer("num_epochs", 1, "Epochs of each run.")
  flags.DEFINE_integer("warmup_steps", 100, "Of the ~390 steps of 200k tweets.")
  flags.DEFINE_integer("eval_every_steps", 200, "Evaluation (and checkpoint) cadence.")
  flags.DEFINE_string("workdir_root", "workdirs/bucketing_accuracy", "Runs: <root>/<mode>_seed<seed>.")
  flags.DEFINE_string("output", "results/bucketing_accuracy_cpu", "Path stem of .json/.md.")
  flags.DEFINE_string("other_load", "none", "What else ran on the machine (for the record).")


if __name__ == "__main__":
  _define_flags()
  app.run(main)
