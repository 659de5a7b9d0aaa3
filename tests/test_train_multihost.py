"""Multi-process training: CPU processes through ``jax.distributed`` train like one process.

Workers (tests/multihost_worker.py) on localhost, connected by JAX's own runtime (a
loopback coordinator on a free port, gloo CPU collectives), train the tiny config for 24
steps in length buckets, side by side: 1 process (the reference, same global batch),
2 processes x 1 device (host feed) and 2 processes x 2 devices (device-resident feed; the
mesh spans processes and devices). Each multi-process run matches the reference: every
process fed only its own rows of each batch, the loss curve, the parameters both processes
saved at every checkpoint, one checkpoint per step, and the eval report, written by process
0 alone. Then the 2-process run resumes from one of its checkpoints, both processes
restoring it, and matches again. A SIGTERM to process 1 alone stops both processes at one
step, which both save; resumed, they end where the reference does. Every worker is killed when one fails or time runs out.
The runs use the session's persistent compilation cache (tests/conftest.py), storing every
program; on CPU JAX keys it per process and only process 0 writes it, so in the resumed run
process 0 compiles nothing and process 1 everything (``train.runs.distributed.wait_for_all`` keeps them together). Last, the process
settings (``train.runs.distributed``): flags, JAX variables and SLURM, one-line errors.
"""

import collections
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time

import numpy as np
import pytest

from tests import multihost_worker
from tests.once_per_session import first_to_ask
from tests.train_tiny_run import tiny_config
from train.runs import distributed

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PROCESSES = 2
STEPS = 24
RESUME_FROM = 16  # A checkpoint of the 2-process run (every 8 steps).
# Two length buckets (8, 16): batch shapes change from step to step. One validation mid-run.
OVERRIDES = dict(num_train_steps=STEPS, log_every_steps=1, checkpoint_every_steps=8, eval_every_steps=12,
                 keep_checkpoints=2, length_bucket_bounds=[8])
RUN_TIMEOUT_S = 600  # A guard against hangs, not a speed limit.
# Fields of the eval report that measure time or the device layout, not the model.
LAYOUT_FIELDS = ("devices", "train_time_s", "examples_per_s", "epoch_time_s", "wall_time_s", "wall_time_total_s",
                 "resumed_from_step", "config")


Worker = collections.namedtuple("Worker", ["process", "log", "record"])


def config_of(**overrides):
  """The tiny config with OVERRIDES (lists -> tuples, as the worker does)."""
  return tiny_config(**multihost_worker.config_overrides({**OVERRIDES, **overrides}))


def free_port() -> int:
  with socket.socket() as s:
    s.bind(("127.0.0.1", 0))
    return s.getsockname()[1]


def start_workers(workdir, overrides, processes, local_devices) -> list[Worker]:
  """Starts the workers of one run; one process is an ordinary run, several connect through JAX.

  Their output goes to ``<workdir>.process<i>.log``, their records to ``<workdir>.process<i>.json``.
  """
  os.makedirs(workdir, exist_ok=True)
  env = {**os.environ, "JAX_PLATFORMS": "cpu", "JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS": "0",
         "XLA_FLAGS": f"{os.environ.get('XLA_FLAGS', '')} --xla_force_host_platform_device_count={local_devices}"}
  if processes > 1:
    env.update(JAX_COORDINATOR_ADDRESS=f"127.0.0.1:{free_port()}", JAX_NUM_PROCESSES=str(processes))
  overrides = json.dumps({**overrides, "distributed": processes > 1})
  workers = []
  for index in range(processes):
    log, record = f"{workdir}.process{index}.log", f"{workdir}.process{index}.json"
    with open(log, "w", encoding="utf-8") as f:
      workers.append(Worker(subprocess.Popen(
          [sys.executable, "-m", "tests.multihost_worker", workdir, record, overrides], cwd=REPO,
          env={**env, "JAX_PROCESS_ID": str(index)}, stdin=subprocess.DEVNULL, stdout=f,
          stderr=subprocess.STDOUT), log, record))
  return workers


def read(path: str) -> str:
  with open(path, encoding="utf-8") as f:
    return f.read()


def run_side_by_side(*runs):
  """Runs the workers of all ``runs`` at once -> (records, logs) of each run.

  ``runs``: (workdir, overrides, processes, local_devices) each. Every worker is killed when
  one fails or time runs out.
  """
  started = []
  try:
    for run in runs:
      started.append(start_workers(*run))
    workers = [worker for run in started for worker in run]
    deadline = time.monotonic() + RUN_TIMEOUT_S
    while (any(w.process.poll() is None for w in workers) and not any(w.process.poll() for w in workers)
           and time.monotonic() < deadline):
      time.sleep(0.2)
  finally:
    for worker in (worker for run in started for worker in run):
      if worker.process.poll() is None:
        worker.process.kill()
      worker.process.wait()
  for worker in workers:
    assert worker.process.returncode == 0, f"{worker.log} exited with {worker.process.returncode}:\n" + (
        "\n".join(f"--- {w.log}\n{read(w.log)[-3000:]}" for w in workers))
  return [([json.loads(read(w.record)) for w in run], [read(w.log) for w in run]) for run in started]


@pytest.fixture(scope="module")
def runs(shared_tmp_path):
  """{name: (workdir, records, logs)}: the 1-process reference, 2 processes, 2 processes x 2 devices.

  The three run side by side: their five processes keep the cores busy while some wait. Once
  per session: the first xdist worker to ask runs them, another waits for it and reads their
  results (the workdirs are shared: read them, copy them before changing them).
  """
  root = shared_tmp_path / "multihost_runs"
  done = shared_tmp_path / "multihost_runs.json"
  with first_to_ask(shared_tmp_path / "multihost_runs.lock", done) as make:
    if make:
      kinds = {"one_process": (OVERRIDES, 1, 1), "two_processes": (OVERRIDES, PROCESSES, 1),
               "two_by_two": ({**OVERRIDES, "train_data_on_device": True}, PROCESSES, 2)}
      results = run_side_by_side(*[(str(root / name), *kind) for name, kind in kinds.items()])
      done.write_text(json.dumps(dict(zip(kinds, results))), encoding="utf-8")
  results = json.loads(done.read_text(encoding="utf-8"))
  (record,), _ = results["one_process"]
  assert (record["process_count"], record["devices"]) == (1, 1)
  return {name: (str(root / name), *result) for name, result in results.items()}


def train_losses(workdir) -> list[float]:
  with open(os.path.join(workdir, "metrics.jsonl"), encoding="utf-8") as f:
    rows = [json.loads(line) for line in f]
  steps = [r["step"] for r in rows if r["split"] == "train"]
  assert steps == list(range(1, STEPS + 1))
  return [r["loss"] for r in rows if r["split"] == "train"]


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


def check_like_one_process(workdir, records, reference, first_step=0):
  """Fed rows, loss curve, parameters, checkpoints, report and its writer match the 1-process run."""
  reference_dir, (one,), _ = reference
  check_fed_slices(records, one["fed"], first_step)
  assert records[1]["written"] == []  # Process 1 writes no report, config or metrics.
  assert {"config.json.partial", "metrics.jsonl", "eval_report.json"} <= set(records[0]["written"])
  np.testing.assert_allclose(train_losses(workdir), train_losses(reference_dir), rtol=2e-5, atol=1e-6)
  # Both processes saved the same parameters at every checkpoint, those of the 1-process run.
  want = [s for s in one["saved"] if s["step"] > first_step]
  for record in records:
    assert [s["step"] for s in record["saved"]] == [s["step"] for s in want]
  for mine, theirs, alone in zip(records[0]["saved"], records[1]["saved"], want):
    assert mine["params"] == theirs["params"], f"step {alone['step']}: the processes' parameters differ"
    np.testing.assert_allclose(mine["params"], alone["params"], rtol=1e-4, atol=1e-6,
                               err_msg=f"step {alone['step']}")
  assert checkpoint_steps(workdir) == checkpoint_steps(reference_dir)  # One checkpoint per step.
  with open(os.path.join(workdir, "eval_report.json"), encoding="utf-8") as f:
    report = json.load(f)
  with open(os.path.join(reference_dir, "eval_report.json"), encoding="utf-8") as f:
    reference_report = json.load(f)
  assert report["devices"] == records[0]["devices"]
  assert_reports_match({k: v for k, v in report.items() if k not in LAYOUT_FIELDS},
                       {k: v for k, v in reference_report.items() if k not in LAYOUT_FIELDS})


@pytest.mark.slow
def test_two_processes_train_and_resume_like_one(runs, tmp_path):
  shared_workdir, records, _ = runs["two_processes"]
  workdir = str(shutil.copytree(shared_workdir, tmp_path / "two_processes"))  # Resumed below: a copy.
  assert [(r["local_devices"], r["devices"]) for r in records] == [(1, PROCESSES)] * PROCESSES
  check_like_one_process(workdir, records, runs["one_process"])
  assert len({len(fed["tokens"][0]) for fed in records[0]["fed"]}) > 1  # Length buckets.
  saved = {s["step"]: s["params"] for s in records[0]["saved"]}

  # A crash after step RESUME_FROM: drop what came later; both processes restore that checkpoint.
  for kind, steps in checkpoint_steps(workdir).items():
    for step in steps:
      if int(step) > RESUME_FROM:
        shutil.rmtree(os.path.join(workdir, "checkpoints", kind, step))
  os.remove(os.path.join(workdir, "eval_report.json"))
  [(records, logs)] = run_side_by_side((workdir, OVERRIDES, PROCESSES, 1))
  for log, record in zip(logs, records):
    assert f"Resuming from step {RESUME_FROM}" in log
    assert record["restored"] == [{"step": RESUME_FROM, "params": saved[RESUME_FROM]}]
  check_like_one_process(workdir, records, runs["one_process"], first_step=RESUME_FROM)


@pytest.mark.slow
def test_sigterm_to_one_process_stops_every_process_at_one_saved_step(runs, tmp_path):
  reference_dir, (one,), _ = runs["one_process"]
  workdir = str(tmp_path / "preempted")
  workers = start_workers(workdir, OVERRIDES, PROCESSES, 1)
  metrics = os.path.join(workdir, "metrics.jsonl")
  try:
    deadline = time.monotonic() + RUN_TIMEOUT_S
    while not (os.path.exists(metrics) and read(metrics).strip()):  # Training has begun.
      assert all(w.process.poll() is None for w in workers) and time.monotonic() < deadline, "ended first"
      time.sleep(0.005)
    workers[1].process.send_signal(signal.SIGTERM)
    for worker in workers:
      worker.process.wait(timeout=RUN_TIMEOUT_S)
  finally:
    for worker in workers:
      if worker.process.poll() is None:
        worker.process.kill()
  assert [w.process.returncode for w in workers] == [0] * PROCESSES, "\n".join(read(w.log)[-3000:] for w in workers)
  records = [json.loads(read(w.record)) for w in workers]
  stopped = records[0]["stopped_at"]
  assert stopped is not None and stopped < STEPS and records[1]["stopped_at"] == stopped
  assert [r["saved"][-1]["step"] for r in records] == [stopped] * PROCESSES  # The same step, by both.
  assert records[0]["saved"][-1]["params"] == records[1]["saved"][-1]["params"]
  assert str(stopped) in checkpoint_steps(workdir)["latest"]

  [(records, logs)] = run_side_by_side((workdir, OVERRIDES, PROCESSES, 1))
  for log, record in zip(logs, records):
    assert f"Resuming from step {stopped} " in log and record["restored"][0]["step"] == stopped
    assert record["saved"][-1]["step"] == STEPS
    np.testing.assert_allclose(record["saved"][-1]["params"], one["saved"][-1]["params"], rtol=1e-4, atol=1e-6)
  assert records[0]["saved"][-1]["params"] == records[1]["saved"][-1]["params"]
  np.testing.assert_allclose(train_losses(workdir), train_losses(reference_dir), rtol=2e-5, atol=1e-6)


def test_two_processes_of_two_devices_train_like_one(runs):
  workdir, records, _ = runs["two_by_two"]
  assert [(r["local_devices"], r["devices"]) for r in records] == [(2, 2 * PROCESSES)] * PROCESSES
  check_like_one_process(workdir, records, runs["one_process"])
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
