"""The summary table of scripts/gpu_check.sh: one row per stage, with its key result.

  python scripts/gpu_check_summary.py --run_dir=results/gpu_check --scan_report=results/scan_x.json

Reads ``<run_dir>/stages.tsv`` (stage, rc, seconds, limit_s, log, note: one line per
stage, written by gpu_check.sh), the stage logs, the scan report and the training runs'
``<run_dir>/<stage>/eval_report.json``; prints markdown. Exit code 0 when every stage
passed, 1 otherwise.
"""

from __future__ import annotations

import argparse
import csv
import glob
import json
import os
import re
import sys
from typing import Optional

TIMEOUT_CODES = ("124", "137")


def status(rc: str) -> str:
  if rc == "0":
    return "ok"
  if rc == "skipped":
    return "SKIPPED"
  if rc in TIMEOUT_CODES:
    return "TIMEOUT"
  return f"FAILED (rc {rc})"


def _read_json(path: str) -> Optional[dict]:
  try:
    with open(path, encoding="utf-8") as f:
      return json.load(f)
  except (OSError, ValueError):
    return None


def pytest_result(log: str) -> str:
  """pytest's last summary line ("3 passed, 2 skipped in 4.1s"), or ""."""
  try:
    with open(log, encoding="utf-8", errors="replace") as f:
      lines = [line.strip().strip("=").strip() for line in f if re.search(r"\d+ (passed|failed|skipped|error)", line)]
  except OSError:
    return ""
  return lines[-1] if lines else ""


def scan_result(report_path: str) -> str:
  report = _read_json(report_path) if report_path else None
  if report is None:
    return "no report"
  records = report["results"]
  errors = sum("error" in r for r in records)
  parts = [f"{len(records)} cases, {errors} errors", os.path.basename(report_path)]
  for r in records:
    if r["method"] == "pallas" and r["mode"] == "fwd_bwd" and "speedup_vs_associative" in r \
        and r["shape"] in ("tweet", "long32k") and r["dtype"] == "float32":
      parts.append(f"pallas fwd_bwd {r['shape']} {r['speedup_vs_associative']:.1f}x assoc")
  # Mamba-2: the fastest SSD recurrence at the tweet shape (speed-up over Mamba-1's associative scan).
  ssd = report.get("fastest", {}).get("ssd", {}).get("tweet float32 fwd_bwd")
  for r in records:
    if (r["shape"], r["dtype"], r["mode"], r["method"]) == ("tweet", "float32", "fwd_bwd", ssd) \
        and "speedup_vs_associative" in r:
      parts.append(f"{ssd} fwd_bwd tweet {r['speedup_vs_associative']:.1f}x assoc")
  targets = report.get("targets", [])
  if targets:
    parts.append(f"targets met {sum(t['met'] for t in targets)}/{len(targets)}")
  return "; ".join(parts)


def throughput_result(log: str) -> str:
  try:
    with open(log, encoding="utf-8", errors="replace") as f:
      text = f.read()
  except OSError:
    return ""
  match = re.findall(r"^Wrote (\S+\.json) and", text, re.M)
  report = _read_json(match[-1]) if match else None
  if report is None:
    return "no report"
  rates = [f"{name} {entry['bucketed']['examples_per_s']:.0f} ex/s"
           for name, entry in report["models"].items()]
  return "bucketed: " + ", ".join(rates)


def training_result(run_dir: str, stage: str) -> str:
  report = _read_json(os.path.join(run_dir, stage, "eval_report.json"))
  if report is None:
    return "no eval report"
  manual = report.get("manual_test", {}).get("binary", {}).get("accuracy")
  parts = [f"{report['steps']} steps", f"{report['examples_per_s']:.0f} ex/s",
           f"test {100 * report['test']['accuracy']:.2f}%"]
  if manual is not None:
    parts.append(f"manual {100 * manual:.2f}%")
  return ", ".join(parts)


def lra_result(lra_dir: str) -> str:
  """Per LRA run record (python -m train.lra): task, model, examples/s and test accuracy."""
  parts = []
  for path in sorted(glob.glob(os.path.join(lra_dir, "runs", "*.json"))):
    record = _read_json(path)
    if record is not None:
      parts.append(f"{record['task']} {record['model']} {record['examples_per_s']:.0f} ex/s "
                   f"(test {100 * record['test_accuracy']:.1f}%)")
  return ", ".join(parts) if parts else "no run records"


def main(argv=None) -> int:
  parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  parser.add_argument("--run_dir", required=True)
  parser.add_argument("--scan_report", default="")
  parser.add_argument("--lra_dir", default="", help="train.lra's records (default: <run_dir>/../lra_gpu)")
  args = parser.parse_args(argv)
  with open(os.path.join(args.run_dir, "stages.tsv"), encoding="utf-8") as f:
    stages = list(csv.DictReader(f, delimiter="\t"))
  lines = ["## scripts/gpu_check.sh summary", "",
           "| stage | status | s / limit | result |", "|---|---|---:|---|"]
  all_ok = True
  skipped = 0
  total = 0
  for s in stages:
    name, log = s["stage"], s["log"]
    all_ok &= s["rc"] in ("0", "skipped")
    skipped += s["rc"] == "skipped"
    total += int(s["seconds"])
    if name == "gpu_tests":
      result = pytest_result(log)
    elif name == "scan_benchmark":
      result = scan_result(args.scan_report)
    elif name == "train_throughput":
      result = throughput_result(log)
    elif name.startswith("train_"):
      result = training_result(args.run_dir, name)
    elif name == "lra" and s["rc"] != "skipped":
      result = lra_result(args.lra_dir or os.path.join(args.run_dir, os.pardir, "lra_gpu"))
    else:
      result = ""
    note = s["note"]
    result = "; ".join(x for x in (note, result) if x)
    lines.append(f"| {name} | {status(s['rc'])} | {s['seconds']} / {s['limit_s']} | {result} |")
  verdict = ("NOT every stage passed" if not all_ok else
             f"every stage that ran passed ({skipped} skipped)" if skipped else "every stage passed")
  lines += ["", f"total {total} s; {verdict}; "
                f"logs in {os.path.join(args.run_dir, 'logs')}"]
  print("\n".join(lines))
  return 0 if all_ok else 1


if __name__ == "__main__":
  sys.exit(main())
