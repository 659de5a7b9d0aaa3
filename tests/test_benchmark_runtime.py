"""benchmarks.runtime: every model's forward and training step at two batch sizes, Mamba-2 against the others."""

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


def test_forward_train_and_step_at_two_batch_sizes(tmp_path):
  subprocess.run(
      [sys.executable, "-m", "benchmarks.runtime", "--models=mamba2,transformer", "--lengths=8",
       "--repeats=1", "--min_repeats=1", "--step_repeats=2", "--batch_sizes=2,4", "--modes=forward,train",
       f"--output_dir={tmp_path}"],
      cwd=REPO, env=dict(os.environ, JAX_PLATFORMS="cpu"), check=True, capture_output=True, timeout=600)
  result = json.loads((tmp_path / "runtime_cpu.json").read_text())
  assert result["batch_size"] == 2 and set(result["other_batches"]) == {"4"}
  for batch in (result, result["other_batches"]["4"]):
    for mode in ("forward", "train"):
      assert [p["status"] for p in batch[mode]["mamba2"]] == ["ok"]
      assert [p["batch_size"] for p in batch[mode]["transformer"]] == [batch["batch_size"]]
    assert set(batch["step"]) == {"mamba2"} and batch["step"]["mamba2"]["median_s"] > 0
    assert {"forward_mamba2", "step_mamba2"} <= set(batch["summary"]["crossover"])
    below = batch["summary"]["mamba2_below"]["train"]["transformer"]
    assert below["below_at"] + below["not_below_at"] == [8]
  text = (tmp_path / "runtime_cpu.md").read_text()
  assert "## Batch 2" in text and "## Batch 4" in text and "### Training step time" in text
  assert "| mamba2 |" in text and "mamba2 `step`" in text and "Mamba-2's training step against the others" in text


def test_mamba2_below_lists_the_lengths_of_each_model():
  points = {"mamba2": _points({16: 1.0, 64: 3.0}), "transformer": _points({16: 2.0, 64: 2.0}),
            "lstm": _points({16: 4.0})}
  below = runtime.mamba2_below(points)
  assert below["transformer"] == {"below_at": [16], "not_below_at": [64], "ratio": {"16": 0.5, "64": 1.5}}
  assert below["lstm"]["below_at"] == [16] and runtime.mamba2_below({"lstm": points["lstm"]}) == {}
