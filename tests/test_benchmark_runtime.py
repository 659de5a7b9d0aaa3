"""benchmarks.runtime: Mamba-2 timed like Mamba (forward vs length, recurrent step, crossovers)."""

import json
import os
import subprocess
import sys

from benchmarks import runtime

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _points(times_by_length):
  return [{"length": l, "status": "ok", "median_s": t} for l, t in times_by_length.items()]


def test_crossovers_of_both_mambas():
  results = {
      "forward": {"transformer": _points({16: 1.0, 64: 4.0}), "mamba": _points({16: 2.0, 64: 2.0}),
                  "mamba2": _points({16: 0.5, 64: 1.0})},
      "step": {"mamba": {"median_s": 2.0}, "mamba2": {"median_s": 0.1}},
  }
  crossover = runtime.analyze(results)["crossover"]
  assert set(crossover) == {"forward", "step", "forward_mamba2", "step_mamba2"}
  assert crossover["forward"]["length"] == 32 and "than Mamba's" in crossover["forward"]["description"]
  assert crossover["forward_mamba2"]["at_most"] == 16
  assert "Mamba-2" in crossover["forward_mamba2"]["description"]
  assert "one Mamba-2 recurrent step" in crossover["step_mamba2"]["description"]


def test_mamba2_forward_and_step(tmp_path):
  subprocess.run(
      [sys.executable, "-m", "benchmarks.runtime", "--models=mamba2,transformer", "--lengths=8,32",
       "--repeats=2", "--min_repeats=1", "--step_repeats=3", "--batch_size=4",
       f"--output_dir={tmp_path}"],
      cwd=REPO, env=dict(os.environ, JAX_PLATFORMS="cpu"), check=True, capture_output=True, timeout=600)
  result = json.loads((tmp_path / "runtime_cpu.json").read_text())
  assert [p["status"] for p in result["forward"]["mamba2"]] == ["ok", "ok"]
  assert set(result["step"]) == {"mamba2"} and result["step"]["mamba2"]["median_s"] > 0
  assert {"forward_mamba2", "step_mamba2"} <= set(result["summary"]["crossover"])
  text = (tmp_path / "runtime_cpu.md").read_text()
  assert "| mamba2 |" in text and "mamba2 `step`" in text
