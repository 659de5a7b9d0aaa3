"""Data parallelism (1 vs 4 CPU devices, host and device-resident input feeds), bfloat16 training."""

import json
import os
import subprocess
import sys

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from configs import tiny
from tests import train_tiny_run
from train.data import batching, synthetic
from train.loop import input_feed, models, trainer as training

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
NUM_STEPS = 4


def probe_losses(on_device: bool = False) -> list[float]:
  """Losses of the first NUM_STEPS training steps of the tiny config on all visible devices."""
  config = tiny.get_config()
  assert config.model.dropout > 0  # Dropout masks must not depend on the device count either.
  config.train_data_on_device = on_device
  return train_tiny_run.train_steps(config, NUM_STEPS)[3]


@pytest.mark.slow
def test_four_devices_match_one_device():
  assert jax.device_count() == 1, "run the test suite without forcing several CPU devices"
  one = probe_losses()
  env = {**os.environ, "JAX_PLATFORMS": "cpu", "XLA_FLAGS": f"{os.environ.get('XLA_FLAGS', '')} --xla_force_host_platform_device_count=4"}
  code = ("import json, jax; from tests.test_train_parallel import probe_losses; "
          "print(json.dumps([jax.device_count(), probe_losses(), probe_losses(on_device=True)]))")
  result = subprocess.run([sys.executable, "-c", code], cwd=REPO, env=env, capture_output=True,
                          text=True, timeout=300)
  assert result.returncode == 0, result.stderr[-3000:]
  devices, four, four_device_feed = json.loads(result.stdout.strip().splitlines()[-1])
  assert devices == 4
  np.testing.assert_allclose(four, one, rtol=2e-5, atol=1e-6)
  np.testing.assert_allclose(four_device_feed, one, rtol=2e-5, atol=1e-6)
  assert four[-1] != four[0]  # The parameters moved.


def test_device_feed_yields_the_host_batches():
  config = tiny.get_config()
  split = synthetic.make_datasets(config).splits["train"]
  mesh = input_feed.make_mesh()
  bounds = batching.config_bounds(config, split.max_length)
  assert len(bounds) > 1  # Length buckets.
  start = batching.steps_per_epoch(split, config.batch_size, bounds) - 4  # Crosses an epoch boundary.
  host = input_feed.host_train_feed(split, config.batch_size, seed=3, start_step=start, mesh=mesh, bounds=bounds)
  device = input_feed.device_train_feed(split, config.batch_size, seed=3, start_step=start, mesh=mesh,
                                        bounds=bounds)
  lengths = set()
  for _ in range(8):
    a, b = next(host), next(device)
    lengths.add(a["tokens"].shape[1])
    assert set(a) == set(b)
    for key in a:
      assert a[key].dtype == b[key].dtype, key
      np.testing.assert_array_equal(np.asarray(a[key]), np.asarray(b[key]), err_msg=key)
  assert len(lengths) > 1


def test_batch_size_must_divide_device_count(monkeypatch):
  monkeypatch.setattr(jax, "device_count", lambda: 4)
  with pytest.raises(ValueError, match="divisible by the 4 devices"):
    input_feed.check_batch_size(30)


def test_bfloat16_activations_keep_float32_params():
  config = tiny.get_config()
  config.dtype = "bfloat16"
  datasets = synthetic.make_datasets(config)
  model = models.create_model(config, datasets.tokenizer.vocab_size)
  trainer = training.Trainer(config, model, total_steps=10)
  feed = input_feed.train_feed(config, datasets.splits["train"], start_step=0, mesh=trainer.mesh)
  state = trainer.initial_state
  state, metrics = trainer.train_step(state, next(feed))
  assert np.isfinite(float(metrics["loss"]))
  assert bool(metrics["finite"])
  assert {x.dtype for x in jax.tree_util.tree_leaves(state.params)} == {jnp.dtype(jnp.float32)}
