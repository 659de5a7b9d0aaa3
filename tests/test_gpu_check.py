"""scripts/gpu_check.sh --dry-run: every stage of the GPU session runs on the CPU (tiny sizes).

The dry run is the script's only exercise between GPU sessions, so it must keep
working: install check (pip --dry-run), imports, the GPU test selection (skipped
on a CPU), the scan benchmark (interpret-mode pallas), the throughput benchmark
(--quick), and two configs/tiny.py trainings with the picked method; then the
summary table and the copy to $OUT.
"""

import json
import os
import pathlib
import subprocess
import sys

import pytest

from benchmarks import fastest_method

REPO_ROOT = pathlib.Path(__file__).resolve().parents[1]
SCRIPT = REPO_ROOT / "scripts" / "gpu_check.sh"
STAGES = ("install", "imports", "gpu_tests", "scan_benchmark", "train_throughput", "train_sent140",
          "train_large")


def test_fastest_method_skips_errors_and_excluded_methods():
  records = [
      dict(shape="tweet", dtype="float32", mode="fwd_bwd", method="pallas", median_ms=1.0),
      dict(shape="tweet", dtype="float32", mode="fwd_bwd", method="associative", median_ms=3.0),
      dict(shape="tweet", dtype="float32", mode="fwd_bwd", method="sequential", error="OOM"),
      dict(shape="tweet", dtype="bfloat16", mode="fwd_bwd", method="sequential", median_ms=0.1),
  ]
  assert fastest_method.fastest_method(records, "tweet float32 fwd_bwd") == "pallas"
  assert fastest_method.fastest_method(records, "tweet float32 fwd_bwd", ["pallas"]) == "associative"
  assert fastest_method.fastest_method(records, "long4k float32 fwd_bwd") is None


def test_bad_command_line_is_usage_error():
  result = subprocess.run([str(SCRIPT), "--gpu"], cwd=REPO_ROOT, capture_output=True, text=True)
  assert result.returncode == 2 and "usage" in result.stderr


@pytest.mark.slow
def test_dry_run_runs_every_stage(tmp_path):
  env = dict(os.environ, GPU_CHECK_DRY_RUN_DIR=str(tmp_path / "run"), OUT=str(tmp_path / "out"),
             PYTHON=sys.executable, JAX_PLATFORMS="cpu")
  result = subprocess.run(["nice", "-n", "19", str(SCRIPT), "--dry-run"], cwd=REPO_ROOT, env=env,
                          capture_output=True, text=True, timeout=3600)
  summary = result.stdout[result.stdout.index("## scripts/gpu_check.sh summary"):]
  assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]
  wheels = any((REPO_ROOT / ".whl").glob("*.whl"))
  for stage in STAGES:
    if stage == "install" and not wheels:  # A fresh clone: .whl/ is filled only before a GPU session.
      assert "| install | SKIPPED |" in summary, summary
    else:
      assert f"| {stage} | ok |" in summary, summary
  assert ("every stage passed" if wheels else "every stage that ran passed (1 skipped)") in summary
  results = tmp_path / "out" / "results"  # Everything copied to $OUT.
  scan = json.loads((results / "scan_dry_run.json").read_text())
  assert {r["method"] for r in scan["results"]} == {"pallas", "associative", "sequential"}
  assert not any("error" in r for r in scan["results"])
  assert (results / "train_throughput_dry_run.json").is_file()
  for stage in ("train_sent140", "train_large"):
    report = json.loads((results / "gpu_check" / stage / "eval_report.json").read_text())
    assert report["steps"] == 4 and 0.0 <= report["test"]["accuracy"] <= 1.0
  assert (results / "gpu_check" / "summary.md").read_text().strip() == summary.strip()
