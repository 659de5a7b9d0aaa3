r"""The README's own-data fine-tune, timed end to end: one labelled file, the default config, one process.

  python -m benchmarks.own_data_finetune --train_file=mine.csv --text_column=text --label_column=label
  # -> results/own_data_finetune_<device>.{json,md}

Runs ``python -m train.main --config=configs/own_data.py --config.init_from=<--model>`` on ``--train_file``
(its 80/10/10 text-hash split, every other setting the config's default) in a fresh workdir, as a user
would, and reports the whole process's wall time (start-up, data preparation, training, validations and
the final report included), the plan the run printed (rows, steps, epochs), its training rate and its test
accuracy and macro-recall. The file's sha256 is recorded; the file itself is not.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import tempfile
import time

from absl import flags

from benchmarks import command_line
from train.data import sources
from train.runs import eval_report, provenance

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def define_flags(flag_values: flags.FlagValues) -> None:
  flags.DEFINE_string("train_file", None, "The labelled CSV/TSV to fine-tune on.", flag_values=flag_values,
                      required=True)
  flags.DEFINE_string("text_column", "text", "Its text column.", flag_values=flag_values)
  flags.DEFINE_string("label_column", "label", "Its label column.", flag_values=flag_values)
  flags.DEFINE_string("model", os.path.join("models", "sent140_mamba"), "The model fine-tuned (init_from).",
                      flag_values=flag_values)
  flags.DEFINE_string("work_dir", None, "Workdir and prepared data (default: a temporary folder, removed after).",
                      flag_values=flag_values)
  flags.DEFINE_list("overrides", [], "Extra config overrides (key=value; a smoke test's short run), recorded.",
                    flag_values=flag_values)
  flags.DEFINE_string("note", "", "What else ran on the machine (written into the report).", flag_values=flag_values)
  flags.DEFINE_string("output_dir", "results", "Where own_data_finetune_<device>.{json,md} go.",
                      flag_values=flag_values)


def benchmark(settings: flags.FlagValues, command: str) -> dict:
  """Runs the fine-tune once and writes the report; the report."""
  if not os.path.exists(settings.train_file):
    raise ValueError(f"--train_file {settings.train_file}: not found")
  work_dir = settings.work_dir or tempfile.mkdtemp(prefix="own_data_finetune_")
  workdir = os.path.join(work_dir, "workdir")
  if os.path.exists(workdir):
    shutil.rmtree(workdir)  # A fresh run: a resumed one would not be timed end to end.
  run = [sys.executable, "-m", "train.main", "--config=configs/own_data.py", f"--workdir={workdir}",
         f"--config.train_file={os.path.abspath(settings.train_file)}", f"--config.text_column={settings.text_column}",
         f"--config.label_column={settings.label_column}", f"--config.init_from={settings.model}",
         f"--config.prepared_dir={os.path.join(work_dir, 'prepared')}",
         *(f"--config.{item}" for item in settings.overrides)]
  environment = provenance.host_environment(command)
  start = time.perf_counter()
  result = subprocess.run(run, cwd=REPO, capture_output=True, text=True)
  wall_s = time.perf_counter() - start
  if result.returncode != 0:
    raise RuntimeError(f"{' '.join(run)} failed:\n{result.stderr[-3000:]}")
  report = eval_report.read_eval_report(workdir)
  plan = next((line for line in (result.stdout + result.stderr).splitlines() if line.startswith("Plan: ")), "")
  test = report["test"]
  summary = {"wall_time_s": wall_s, "train_time_s": report["train_time_s"], "examples_per_s": report["examples_per_s"],
             "steps": report["steps"], "test_accuracy": test["accuracy"], "test_macro_recall": test["macro_recall"],
             "test_macro_f1": test["macro_f1"], "test_rows": test["num_examples"]}
  match = re.search(r"Plan: ([\d,]+) training rows, [\d,]+ steps of \d+ \(([\d.]+) epochs", plan)
  if match:
    summary["train_rows"], summary["epochs"] = int(match.group(1).replace(",", "")), float(match.group(2))
  output = {"summary": summary, "plan": plan, "command": " ".join(["python"] + run[1:]),
            "train_file": {"path": os.path.abspath(settings.train_file), "sha256": sources.sha256_of(settings.train_file),
                           "bytes": os.path.getsize(settings.train_file)},
            "model": settings.model, "note": settings.note, "environment": environment,
            "class_weighting": report["config"].get("class_weighting")}
  if not settings.work_dir:
    shutil.rmtree(work_dir, ignore_errors=True)
  markdown = "\n".join([
      "# The own-data fine-tune, end to end (`configs/own_data.py`)", "",
      f"`{command}` on {environment['host_cpu']} ({environment['cpu_count']} CPUs), commit "
      f"{environment['commit'][:10]}, {environment['date_utc']} UTC; {settings.note or 'nothing else noted'}.", "",
      f"File `{os.path.basename(settings.train_file)}` (sha256 {output['train_file']['sha256'][:16]}...), fine-tuning "
      f"`{settings.model}`: {plan}", "",
      "| whole process | training | training rate | steps | epochs | test accuracy | test macro-recall |",
      "|---:|---:|---:|---:|---:|---:|---:|",
      f"| {wall_s / 60:.1f} min | {summary['train_time_s'] / 60:.1f} min | {summary['examples_per_s']:,.0f} ex/s | "
      f"{summary['steps']:,} | {summary.get('epochs', float('nan')):.2f} | {100 * summary['test_accuracy']:.2f}% | "
      f"{100 * summary['test_macro_recall']:.2f}% |",
      "", "Target (issue 33): <= 15 minutes for ~50,000 rows on the 2-core CPU.", ""])
  tag = "cpu" if "cpu" in report["device_kind"].lower() else re.sub(r"[^a-z0-9]+", "_", report["device_kind"].lower())
  provenance.write_report(os.path.join(settings.output_dir, f"own_data_finetune_{tag}"), output, markdown)
  return output


if __name__ == "__main__":
  command_line.run_as_program("benchmarks.own_data_finetune", define_flags, benchmark)
