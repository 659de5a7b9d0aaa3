"""Multi-process training: two CPU processes through ``jax.distributed`` train like one process.

Two workers (tests/multihost_worker.py) on localhost, connected by JAX's own runtime (a
loopback coordinator on a free port, gloo CPU collectives), train the tiny config in
length buckets; the in-process 1-process run with the same global batch is the reference
for the loss curve, the final train state, the checkpoints and the eval report. Then the
2-process run resumes from one of its own checkpoints, and 2 processes x 2 local devices
train with the device-resident feed. Every worker is killed when any fails or time runs out.
"""

import json
import os
import shutil
import socket
import subprocess
import sys
import time

import jax
import numpy as np
import pytest

from tests import multihost_worker
from tests.train_tiny_run import tiny_config
from train import checkpointing, distributed, input_feed, models, train
from train.data import synthetic

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PROCESSES = 2
STEPS = 24
RESUME_FROM = 16  # A checkpoint of the 2-process run (every 8 steps).
# Two length buckets (8, 16): batch shapes change from step to step. One validation mid-run.
OVERRIDES = dict(num_train_steps=STEPS, log_every_steps=1, checkpoint_every_steps=8, eval_every_steps=12,
                 keep_checkpoints=2, length_bucket_bounds=[8])
WORKER_TIMEOUT_S = 400
# Fields of the eval report that measure time or the device layout, not the model.
LAYOUT_FIELDS = ("devices", "train_time_s", "examples_per_s", "epoch_time_s", "wall_time_s",
                 "resumed_from_step", "config")


def config_of(**overrides):
  """The tiny config with OVERRIDES (lists -> tuples, as the worker does)."""
  return tiny_config(**multihost_worker.config_overrides({**OVERRIDES, **overrides}))


def one_process_run(workdir):
  """(workdir, fed rows per step, report) of the 1-process reference run, in this process."""
  assert jax.process_count() == 1 and jax.device_count() == 1
  fed = []
  original = multihost_worker.record_feed(fed)
  try:
    report = train.train_and_evaluate(config_of(), workdir)
  finally:
    input_feed.train_feed = original
  return workdir, fed, report


@pytest.fixture(scope="module")
def one_process(tmp_path_factory):
  return one_process_run(str(tmp_path_factory.mktemp("one_process")))


@pytest.fixture(scope="module")
def compilation_cache(tmp_path_factory):
  """A persistent XLA cache shared by the workers: the resumed run reuses the first run's programs."""
  return str(tmp_path_factory.mktemp("xla_cache"))


def free_port() -> int:
  with socket.socket() as s:
    s.bind(("127.0.0.1", 0))
    return s.getsockname()[1]


def run_processes(workdir, logdir, cache, overrides, local_devices=1):
  """Runs PROCESSES workers to completion -> (records, logs); kills them all if one fails or hangs."""
  os.makedirs(workdir, exist_ok=True)
  port = free_port()
  processes, log_paths, record_paths = [], [], []
  try:
    for index in range(PROCESSES):
      env = {**os.environ, "JAX_PLATFORMS": "cpu",
             "XLA_FLAGS": f"--xla_force_host_platform_device_count={local_devices}",
             "JAX_COORDINATOR_ADDRESS": f"127.0.0.1:{port}", "JAX_NUM_PROCESSES": str(PROCESSES),
             "JAX_PROCESS_ID": str(index), "JAX_COMPILATION_CACHE_DIR": cache,
             "JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS": "0"}
      log_paths.append(os.path.join(logdir, f"process{index}.log"))
      record_paths.append(os.path.join(logdir, f"process{index}.json"))
      with open(log_paths[-1], "w", encoding="utf-8") as log:
        processes.append(subprocess.Popen(
            [sys.executable, "-m", "tests.multihost_worker", workdir, record_paths[-1], json.dumps(overrides)],
            cwd=REPO, env=env, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT))
    deadline = time.monotonic() + WORKER_TIMEOUT_S
    while (any(p.poll() is None for p in processes) and not any(p.poll() for p in processes)
           and time.monotonic() < deadline):
      time.sleep(0.2)
  finally:
    for process in processes:
      if process.poll() is None:
        process.kill()
      process.wait()
  logs = []
  for path in log_paths:
    with open(path, encoding="utf-8") as f:
      logs.append(f.read())
  for index, process in enumerate(processes):
    assert process.returncode == 0, (f"process {index} exited with {process.returncode}:\n" +
                                     "\n".join(f"--- process {i}\n{log[-3000:]}" for i, log in enumerate(logs)))
  records = []
  for path in record_paths:
    with open(path, encoding="utf-8") as f:
      records.append(json.load(f))
  return records, logs


def train_losses(workdir) -> list[float]:
  with open(os.path.join(workdir, "metrics.jsonl"), encoding="utf-8") as f:
    rows = [json.loads(line) for line in f]
  steps = [r["step"] for r in rows if r["split"] == "train"]
  assert steps == list(range(1, STEPS + 1))
  return [r["loss"] for r in rows if r["split"] == "train"]


def restored_state(workdir):
  """The latest checkpoint of ``workdir`` restored into this (1-device) process, as numpy."""
  config = config_of()
  model = models.create_model(config, synthetic.make_datasets(config).tokenizer.vocab_size)
  target = train.create_train_state(config, model, jax.random.PRNGKey(1), STEPS)
  checkpointer = checkpointing.Checkpointer(os.path.join(workdir, "checkpoints"), keep=2, async_save=False)
  state, progress = checkpointer.restore_latest(target)
  checkpointer.close()
  assert progress["step"] == STEPS
  return jax.tree_util.tree_map(np.asarray, state)


def checkpoint_steps(workdir) -> dict:
  root = os.path.join(workdir, "checkpoints")
  return {kind: sorted(os.listdir(os.path.join(root, kind))) for kind in ("latest", "best")}


def assert_reports_match(got, want, path="report"):
  """Equal structure; numbers within float tolerance."""
  if isinstance(want, dict):
    assert set(got) == set(want), path
    for key in want:
      assert_reports_match(got[key], want[key], f"{path}.{key}")
  elif isinstance(want, list):
    assert len(got) == len(want), path
    for i, (g, w) in enumerate(zip(got, want)):
      assert_reports_match(g, w, f"{path}[{i}]")
  elif isinstance(want, float):
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-6, err_msg=path)
  else:
    assert got == want, path


def check_fed_slices(records, reference_fed, first_step=0):
  """Each process fed exactly its contiguous 1/PROCESSES of every reference batch, nothing else."""
  rows = len(reference_fed[0]["label"]) // PROCESSES
  for index, record in enumerate(records):
    assert record["process_index"] == index and record["process_count"] == PROCESSES
    assert len(record["fed"]) == len(reference_fed) - first_step
    for step, (fed, whole) in enumerate(zip(record["fed"], reference_fed[first_step:]), first_step + 1):
      assert (fed["start"], fed["stop"]) == (index * rows, (index + 1) * rows), f"process {index} step {step}"
      assert fed["tokens"] == whole["tokens"][fed["start"]:fed["stop"]], f"process {index} step {step}"
      assert fed["label"] == whole["label"][fed["start"]:fed["stop"]], f"process {index} step {step}"


def check_like_one_process(workdir, records, one_process, first_step=0):
  """Loss curve, final state, checkpoints, report and its writer match the 1-process run."""
  reference_dir, reference_fed, reference_report = one_process
  check_fed_slices(records, reference_fed, first_step)
  assert records[1]["written"] == []  # Process 1 writes no report, config or metrics.
  assert {"config.json", "metrics.jsonl", "eval_report.json"} <= set(records[0]["written"])
  np.testing.assert_allclose(train_losses(workdir), train_losses(reference_dir), rtol=2e-5, atol=1e-6)
  assert checkpoint_steps(workdir) == checkpoint_steps(reference_dir)  # One checkpoint per step.
  got, want = restored_state(workdir), restored_state(reference_dir)
  jax.tree_util.tree_map(lambda g, w: np.testing.assert_allclose(g, w, rtol=1e-4, atol=1e-6), got, want)
  assert got.step == STEPS
  with open(os.path.join(workdir, "eval_report.json"), encoding="utf-8") as f:
    report = json.load(f)
  assert report["devices"] == records[0]["devices"]
  assert_reports_match({k: v for k, v in report.items() if k not in LAYOUT_FIELDS},
                       {k: v for k, v in json.loads(json.dumps(reference_report)).items() if k not in LAYOUT_FIELDS})


def test_two_processes_train_and_resume_like_one(one_process, compilation_cache, tmp_path):
  workdir = str(tmp_path / "two_processes")
  records, _ = run_processes(workdir, str(tmp_path), compilation_cache, OVERRIDES)
  assert [r["devices"] for r in records] == [PROCESSES] * PROCESSES
  check_like_one_process(workdir, records, one_process)
  assert len({len(fed["tokens"][0]) for fed in records[0]["fed"]}) > 1  # Length buckets.

  # A crash after step RESUME_FROM: drop what came later; both processes restore that checkpoint.
  for kind, steps in checkpoint_steps(workdir).items():
    for step in steps:
      if int(step) > RESUME_FROM:
        shutil.rmtree(os.path.join(workdir, "checkpoints", kind, step))
  os.remove(os.path.join(workdir, "eval_report.json"))
  records, logs = run_processes(workdir, str(tmp_path), compilation_cache, OVERRIDES)
  for log in logs:
    assert f"Resuming from step {RESUME_FROM}" in log
  check_like_one_process(workdir, records, one_process, first_step=RESUME_FROM)


def test_two_processes_of_two_devices_train_like_one(one_process, compilation_cache, tmp_path):
  workdir = str(tmp_path / "two_by_two")
  overrides = {**OVERRIDES, "train_data_on_device": True}
  records, _ = run_processes(workdir, str(tmp_path), compilation_cache, overrides, local_devices=2)
  assert [(r["local_devices"], r["devices"]) for r in records] == [(2, 4)] * PROCESSES
  check_like_one_process(workdir, records, one_process)
  assert len({len(fed["tokens"][0]) for fed in records[0]["fed"]}) > 1  # Length buckets.


def settings(environ=None, **fields):
  config = config_of(**fields)
  return distributed.resolve_process_settings(config, environ or {})


def test_process_settings_come_from_flags_or_environment():
  assert settings() is None
  assert settings({"SLURM_NTASKS": "1", "SLURM_PROCID": "0"}) is None
  assert settings(distributed=True) == distributed.ProcessSettings(None, None, None)  # JAX detects (TPU pod).
  flags = dict(distributed=True, coordinator_address="10.0.0.1:1234", num_processes=4, process_id=3)
  assert settings(**flags) == distributed.ProcessSettings("10.0.0.1:1234", 4, 3)
  jax_env = {"JAX_COORDINATOR_ADDRESS": "10.0.0.1:1234", "JAX_NUM_PROCESSES": "4", "JAX_PROCESS_ID": "3"}
  assert settings(jax_env, distributed=True) == distributed.ProcessSettings("10.0.0.1:1234", 4, 3)
  slurm = {"SLURM_NTASKS": "4", "SLURM_PROCID": "3"}
  assert settings(slurm, distributed=True) == distributed.ProcessSettings(None, 4, 3)
  assert settings({**slurm, **jax_env}, **flags) == distributed.ProcessSettings("10.0.0.1:1234", 4, 3)


@pytest.mark.parametrize("environ, fields, message", [
    ({"SLURM_NTASKS": "4"}, dict(num_processes=2),
     "num_processes is 2 from --config.num_processes but 4 from SLURM_NTASKS"),
    ({"JAX_PROCESS_ID": "1", "SLURM_PROCID": "0"}, {}, "process_id is 1 from JAX_PROCESS_ID but 0 from SLURM_PROCID"),
    ({}, dict(num_processes=2, process_id=2), "process_id is 2; it must be in 0..1"),
    ({}, dict(num_processes=0), "num_processes is 0"),
    ({"JAX_NUM_PROCESSES": "two"}, {}, "JAX_NUM_PROCESSES='two' is not an integer"),
    ({}, dict(coordinator_address="10.0.0.1"), "is not a host:port coordinator address"),
])
def test_contradictory_process_settings_are_one_line_errors(environ, fields, message):
  with pytest.raises(distributed.DistributedSettingsError, match=message) as error:
    settings(environ, distributed=True, **fields)
  assert "\n" not in str(error.value)


@pytest.mark.parametrize("environ, fields", [({"SLURM_NTASKS": "4"}, {}), ({}, dict(num_processes=2))])
def test_several_processes_need_distributed_on(environ, fields):
  with pytest.raises(distributed.DistributedSettingsError, match="config.distributed is False"):
    settings(environ, **fields)


def test_cli_reports_disagreeing_settings_in_one_line(tmp_path):
  command = [sys.executable, "-m", "train.main", "--config=configs/tiny.py", f"--workdir={tmp_path}",
             "--config.distributed=True", "--config.num_processes=2"]
  env = {**os.environ, "JAX_PLATFORMS": "cpu", "SLURM_NTASKS": "4", "SLURM_PROCID": "0"}
  result = subprocess.run(command, cwd=REPO, env=env, capture_output=True, text=True, timeout=120)
  assert result.returncode == 2, result.stderr[-2000:]
  assert "Traceback" not in result.stderr
  assert result.stderr.strip().splitlines()[-1] == (
      "ERROR: DistributedSettingsError: the process settings disagree: num_processes is 2 from "
      "--config.num_processes but 4 from SLURM_NTASKS")
