"""End-to-end training on the synthetic task: the loss falls and the report holds every figure.

The uninterrupted run is trained once per test session (the ``trained`` fixture of
tests/conftest.py) and reused.
What survives a signal, kill -9, a full disk, damaged files or a NaN loss: tests/test_faults.py.
"""

import json
import os

from tests import train_tiny_run

STEPS = train_tiny_run.STEPS


def test_tiny_trains_loss_falls_and_writes_report(trained):
  workdir, _, report = trained
  with open(os.path.join(workdir, "metrics.jsonl")) as f:
    rows = [json.loads(line) for line in f]
  train_losses = [r["loss"] for r in rows if r["split"] == "train"]
  assert len(train_losses) == STEPS // 8
  assert train_losses[-1] < 0.8 * train_losses[0], train_losses
  assert report["validation"]["accuracy"] > 0.8
  assert report["test"]["accuracy"] > 0.8
  on_disk = json.load(open(os.path.join(workdir, "eval_report.json")))
  for key in ("model_type", "num_params", "steps", "train_time_s", "examples_per_s", "epoch_time_s",
              "validation", "test", "manual_test", "best_validation_accuracy", "config"):
    assert key in on_disk, key
  for key in ("accuracy", "loss", "macro_f1", "ece", "confusion_matrix", "num_examples"):
    assert key in on_disk["test"], key
  manual = on_disk["manual_test"]
  assert manual["binary"]["num_examples"] + manual["three_way"]["num_neutral"] == manual["three_way"]["num_examples"]
  assert len(manual["three_way"]["curve"]) > 5
  assert on_disk["best_validation_accuracy"] == max(
      r["accuracy"] for r in rows if r["split"] == "validation")
  assert any(name.startswith("events.out.tfevents") for name in os.listdir(os.path.join(workdir, "tensorboard")))
  assert os.listdir(os.path.join(workdir, "checkpoints", "best"))
  latest = sorted(int(s) for s in os.listdir(os.path.join(workdir, "checkpoints", "latest")))
  assert latest == [STEPS - 8, STEPS]  # keep_checkpoints = 2.
