"""End-to-end training on the synthetic task: loss falls, report, resume after SIGKILL, NaN stop.

The uninterrupted run is trained once per test process (tests/train_tiny_run.py) and reused.
"""

import json
import os
import signal
import subprocess
import sys
import time

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from train import checkpointing, models, train
from train.data import batching, synthetic

from tests import train_tiny_run

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
STEPS = train_tiny_run.STEPS
_config = train_tiny_run.tiny_config
_cli_overrides = train_tiny_run.cli_overrides


def _final_params(workdir, config):
  """Params of the latest checkpoint in ``workdir`` as numpy arrays, and its step."""
  datasets = synthetic.make_datasets(config)
  model = models.create_model(config, datasets.tokenizer.vocab_size)
  target = train.create_train_state(config, model, jax.random.key(0), STEPS)
  checkpointer = checkpointing.Checkpointer(os.path.join(workdir, "checkpoints"), keep=5, async_save=False)
  state, progress = checkpointer.restore_latest(target)
  checkpointer.close()
  return jax.tree_util.tree_map(np.asarray, state.params), progress


@pytest.fixture(scope="module")
def trained():
  return train_tiny_run.trained_tiny_run()


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


def _wait_for_checkpoint(process, workdir, min_step, timeout=120):
  latest = os.path.join(workdir, "checkpoints", "latest")
  deadline = time.time() + timeout
  while time.time() < deadline:
    if process.poll() is not None:
      return None
    if os.path.isdir(latest):
      steps = [int(s) for s in os.listdir(latest) if s.isdigit()]
      if steps and max(steps) >= min_step:
        return max(steps)
    time.sleep(0.02)
  return None


def test_resume_after_sigkill_gives_identical_parameters(trained, tmp_path):
  reference_dir, config, _ = trained
  assert len(batching.config_bounds(config, config.max_length)) > 1  # Length-bucketed batches.
  workdir = str(tmp_path / "killed")
  command = [sys.executable, "-m", "train.main", "--config=configs/tiny.py", f"--workdir={workdir}",
             *_cli_overrides()]
  env = {**os.environ, "JAX_PLATFORMS": "cpu"}
  process = subprocess.Popen(command, cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
  try:
    seen = _wait_for_checkpoint(process, workdir, min_step=16)
    assert seen is not None, "no checkpoint appeared before the run ended"
    process.send_signal(signal.SIGKILL)
    process.wait(timeout=30)
  finally:
    if process.poll() is None:
      process.kill()
  assert not os.path.exists(os.path.join(workdir, "eval_report.json")), "killed too late: run finished"
  killed_at = max(int(s) for s in os.listdir(os.path.join(workdir, "checkpoints", "latest")) if s.isdigit())
  assert killed_at < STEPS

  resumed = subprocess.run(command, cwd=REPO, env=env, capture_output=True, text=True, timeout=300)
  assert resumed.returncode == 0, resumed.stdout[-2000:] + resumed.stderr[-3000:]
  assert "Resuming from step" in resumed.stdout
  report = json.load(open(os.path.join(workdir, "eval_report.json")))
  assert report["resumed_from_step"] >= 16
  with open(os.path.join(workdir, "metrics.jsonl")) as f:
    train_steps = [json.loads(line)["step"] for line in f if '"train"' in line]
  assert train_steps == list(range(8, STEPS + 1, 8))  # Rows logged after the checkpoint were dropped.

  expected, expected_progress = _final_params(reference_dir, config)
  got, got_progress = _final_params(workdir, config)
  assert expected_progress["step"] == got_progress["step"] == STEPS
  for (path, a), b in zip(jax.tree_util.tree_flatten_with_path(expected)[0], jax.tree_util.tree_leaves(got)):
    np.testing.assert_array_equal(a, b, err_msg=jax.tree_util.keystr(path))


def test_nan_loss_stops_with_clear_message_and_keeps_last_good_checkpoint(tmp_path):
  """The CLI prints one clear line (no traceback), exits non-zero, and step 16 stays the latest."""
  workdir = str(tmp_path / "nan")
  overrides = dict(num_train_steps=24, debug_nan_after_step=20, eval_every_steps=100)
  command = [sys.executable, "-m", "train.main", "--config=configs/tiny.py", f"--workdir={workdir}",
             *_cli_overrides(**overrides)]
  result = subprocess.run(command, cwd=REPO, env={**os.environ, "JAX_PLATFORMS": "cpu"},
                          capture_output=True, text=True, timeout=300)
  assert result.returncode == 3, result.stderr[-3000:]
  assert "ERROR: training loss became nan" in result.stderr
  assert "at step 21 " in result.stderr
  assert "last good checkpoint is step 16" in result.stderr
  assert "Traceback" not in result.stderr
  assert not os.path.exists(os.path.join(workdir, "eval_report.json"))
  latest = sorted(int(s) for s in os.listdir(os.path.join(workdir, "checkpoints", "latest")))
  assert latest[-1] == 16
  params, progress = _final_params(workdir, _config(**overrides))
  assert progress["step"] == 16
  assert all(np.isfinite(p).all() for p in jax.tree_util.tree_leaves(params))


def test_corrupted_latest_checkpoint_falls_back_to_previous(tmp_path, capsys):
  checkpointer = checkpointing.Checkpointer(str(tmp_path), keep=3, async_save=False)
  for step in (1, 2, 3):
    checkpointer.save_latest(step, {"w": jnp.full((4,), float(step))}, {"step": step})
  checkpointer.wait()
  checkpointer.close()
  # Truncate every file of the newest checkpoint's state, as a crash of the disk would.
  for root, _, files in os.walk(tmp_path / "latest" / "3" / "state"):
    for name in files:
      open(os.path.join(root, name), "wb").close()
  # A partial write (killed before the rename) is ignored altogether.
  os.makedirs(tmp_path / "latest" / "4.orbax-checkpoint-tmp-1234" / "state")
  checkpointer = checkpointing.Checkpointer(str(tmp_path), keep=3, async_save=False)
  state, progress = checkpointer.restore_latest({"w": jnp.zeros((4,))})
  checkpointer.close()
  assert progress == {"step": 2}
  np.testing.assert_array_equal(state["w"], 2.0)
  assert "latest checkpoint step 3 unreadable" in capsys.readouterr().err
