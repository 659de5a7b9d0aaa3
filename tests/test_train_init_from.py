"""config.init_from: create_train_state starts the classifier from a pretrained backbone."""

import os

import jax
import numpy as np
import pytest

from configs import lstm, tiny
from mamba_jax import load_pretrained
from train.loop import models, pretrained_init
from train.loop import trainer as training

HF_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "fixtures", "hf_mamba_tiny")


def _config():
  config = tiny.get_config()
  config.model.n_layers = 2  # The fixture's architecture: vocab 64, width 16, 2 layers, state 4.
  config.model.scan_method = "sequential"
  return config


def test_init_from_loads_the_backbone_and_keeps_a_fresh_head(capsys):
  config = _config()
  assert config.init_from is None
  model = models.create_model(config, 64)
  scratch = training.create_train_state(config, model, jax.random.key(0), 10)
  state = training.create_train_state(config, model, jax.random.key(0), 10, init_from=HF_DIR)
  assert "loaded 22 tensors" in capsys.readouterr().out
  _, pretrained = load_pretrained(HF_DIR)
  np.testing.assert_array_equal(state.params["embed"]["embedding"], pretrained["embed"]["embedding"])
  np.testing.assert_array_equal(state.params["layers_1"]["mixer"]["A_log"], pretrained["layers_1"]["mixer"]["A_log"])
  np.testing.assert_array_equal(state.params["head"]["kernel"], scratch.params["head"]["kernel"])
  assert not np.array_equal(state.params["embed"]["embedding"], scratch.params["embed"]["embedding"])


def test_init_from_needs_a_mamba_model():
  model = models.create_model(lstm.get_config(), 64)
  with pytest.raises(ValueError, match="needs model_type 'mamba'"):
    pretrained_init.init_from_pretrained(HF_DIR, model, {})
