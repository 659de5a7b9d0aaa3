"""scripts/gpu_check.sh --dry-run: every stage of the GPU session runs on the CPU (tiny sizes).

The dry run is the script's only exercise between GPU sessions, so it must keep
working: install check (pip --dry-run), imports, the GPU test selection (skipped
on a CPU), the scan benchmark (interpret-mode pallas), the throughput benchmark
(--quick, Mamba and Mamba-2), two configs/tiny.py trainings and a configs/tiny_mamba2.py one
with the picked methods, the LRA stage (ListOps at --quick sizes, Mamba-2 and the Transformer + RoPE);
then the summary table and the copy to $OUT.
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
          "train_mamba2", "train_large", "lra")
TRAINING_STAGES = ("train_sent140", "train_mamba2", "train_large")


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


def test_fastest_method_competes_within_a_family(tmp_path):
  records = [
      dict(shape="tweet", dtype="float32", mode="fwd_bwd", method="sequential", median_ms=2.0),
      dict(shape="tweet", dtype="float32", mode="fwd_bwd", method="ssd:associative", median_ms=1.5),
      dict(shape="tweet", dtype="float32", mode="fwd_bwd", method="ssd:sequential", median_ms=1.0),
  ]
  assert fastest_method.fastest_method(records, "tweet float32 fwd_bwd") == "sequential"
  assert fastest_method.fastest_method(records, "tweet float32 fwd_bwd", family="ssd") == "ssd:sequential"
  assert fastest_method.fastest_method(records, "tweet float32 fwd_bwd", ["ssd:sequential"],
                                       family="ssd") == "ssd:associative"
  report = tmp_path / "scan.json"
  report.write_text(json.dumps({"results": records}))
  command = [sys.executable, "-m", "benchmarks.fastest_method", f"--report={report}",
             "--case=tweet float32 fwd_bwd"]
  for family, printed in (("selective_scan", "sequential"), ("ssd", "sequential")):
    result = subprocess.run(command + [f"--family={family}"], cwd=REPO_ROOT, capture_output=True,
                            text=True)
    assert result.returncode == 0 and result.stdout.strip() == printed, result.stderr
  result = subprocess.run(command + ["--family=ssd", "--exclude=ssd:sequential"], cwd=REPO_ROOT,
                          capture_output=True, text=True)
  assert result.stdout.strip() == "associative"  # A Mamba-2 config's scan_method: no "ssd:" prefix.


def test_bad_command_line_is_usage_error():
  result = subprocess.run([str(SCRIPT), "--gpu"], cwd=REPO_ROOT, capture_output=True, text=True)
  assert result.returncode == 2 and "usage" in result.stderr


@pytest.mark.slow
def test_dry_run_runs_every_stage(tmp_path):
  env = dict(os.environ, GPU_CHECK_DRY_RUN_DIR=str(tmp_path / "run"), OUT=str(tmp_path / "out"),
             PYTHON=sys.executable, JAX_PLATFORMS="cpu")
  result = subprocess.run([str(SCRIPT), "--dry-run"], cwd=REPO_ROOT, env=env,
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
  assert {r["method"] for r in scan["results"]} == {"pallas", "associative", "sequential",
                                                    "ssd:associative", "ssd:sequential"}
  assert not any("error" in r for r in scan["results"])
  assert {r["family"] for r in scan["results"]} == {"selective_scan", "ssd"}
  assert set(scan["fastest"]) == {"selective_scan", "ssd"}
  throughput = json.loads((results / "train_throughput_dry_run.json").read_text())
  assert set(throughput["models"]) == {"mamba", "mamba2"}
  mamba2_row = next(line for line in summary.splitlines() if line.startswith("| train_mamba2 |"))
  assert "method=associative" in mamba2_row or "method=sequential" in mamba2_row, mamba2_row
  for stage in TRAINING_STAGES:
    report = json.loads((results / "gpu_check" / stage / "eval_report.json").read_text())
    assert report["steps"] == 4 and 0.0 <= report["test"]["accuracy"] <= 1.0
  assert (results / "gpu_check" / "summary.md").read_text().strip() == summary.strip()
  lra_row = next(line for line in summary.splitlines() if line.startswith("| lra |"))
  for model in ("mamba2", "transformer_rope"):  # The dry run's two LRA models, ListOps at --quick sizes.
    record = json.loads((results / "lra_gpu" / "runs" / f"listops__{model}.json").read_text())
    assert record["steps"] == 4 and f"listops {model}" in lra_row
