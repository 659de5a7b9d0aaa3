"""Multi-process settings (train.distributed): flags, JAX variables and SLURM, one-line errors.

The end-to-end test of two processes training like one is not here yet: it never completed on
this 2-core machine (see branch ``multihost``, tests/test_train_multihost.py there).
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
