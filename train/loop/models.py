"""Builds the model named by ``config.model_type`` and says which task it trains on.

Every model maps tokens (b, l) int32 and mask (b, l) to float32 logits: the classifiers
to (b, c), the language model to (b, l, v). Axes (``mamba_jax.notation``): b, l, c, v.
"""

from __future__ import annotations

import functools
from typing import Any

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
from flax import linen as nn

from mamba_jax import MambaClassifier, MambaConfig, MambaLM
from mamba_jax.baselines import LSTMClassifier, LSTMConfig, PerformerClassifier, PerformerConfig
from mamba_jax.baselines import TransformerClassifier, TransformerConfig
from mamba_jax.two_tower import TwoTowerClassifier, TwoTowerConfig
from train.loop import tasks

# model_type -> (config class, model class, task).
MODELS = {
    "mamba": (MambaConfig, MambaClassifier, tasks.Classification),
    "transformer": (TransformerConfig, TransformerClassifier, tasks.Classification),
    "lstm": (LSTMConfig, LSTMClassifier, tasks.Classification),
    "performer": (PerformerConfig, PerformerClassifier, tasks.Classification),  # FAVOR+ attention.
    "two_tower": (TwoTowerConfig, TwoTowerClassifier, tasks.Classification),  # Pairs: LRA Retrieval.
    "mamba_lm": (MambaConfig, MambaLM, tasks.NextToken),  # configs/sent140_lm.py: pretraining.
}
DTYPES = {"float32": jnp.float32, "bfloat16": jnp.bfloat16}
# Sentiment140's classifiers: negative / positive only ("neutral" from a confidence threshold). A run
# on the user's files has one logit per class of its data (train.data.datasets.Datasets.class_names).
NUM_CLASSES = 2
HEAD = "head"  # The classifiers' output layer (parameters head/kernel (m, c), head/bias (c,)).


def activation_dtype(name: str) -> Any:
  if name not in DTYPES:
    raise ValueError(f"config.dtype must be one of {sorted(DTYPES)}, got {name!r}")
  return DTYPES[name]


def _entry(config: ml_collections.ConfigDict) -> tuple:
  if config.model_type not in MODELS:
    raise ValueError(f"config.model_type must be one of {sorted(MODELS)}, got {config.model_type!r}")
  return MODELS[config.model_type]


def task_of(config: ml_collections.ConfigDict):
  """The task (``train.loop.tasks``) that ``config.model_type`` trains on."""
  return _entry(config)[2]


def create_model(config: ml_collections.ConfigDict, vocab_size: int, num_classes: int = NUM_CLASSES) -> nn.Module:
  """``<Model>(<Model>Config(vocab_size, num_classes, dtype, **config.model))``; a classifier has one
  logit per class of its ``train.runs.classes`` list."""
  config_cls, model_cls, _ = _entry(config)
  fields = config.model.to_dict()
  try:
    model_config = config_cls(
        vocab_size=vocab_size, num_classes=num_classes, dtype=activation_dtype(config.dtype), **fields)
  except TypeError as e:
    raise ValueError(f"config.model does not fit {config_cls.__name__}: {e}") from e
  return model_cls(model_config)


def init_params(config: ml_collections.ConfigDict, model: nn.Module, params_rng: jax.Array) -> Any:
  """Freshly initialized float32 parameters of ``model`` (inputs (1, config.max_length))."""
  dummy = jnp.ones((1, config.max_length), jnp.int32)
  return jax.jit(functools.partial(model.init, train=False))({"params": params_rng}, dummy, dummy)["params"]


def parameter_shapes(config: ml_collections.ConfigDict, model: nn.Module) -> Any:
  """``model``'s parameter tree as shapes and dtypes (``jax.eval_shape``: nothing is computed)."""
  return jax.eval_shape(lambda: init_params(config, model, jax.random.key(0)))


def count_params(params: Any) -> int:
  """Total number of scalars in a parameter pytree."""
  return int(sum(np.prod(np.shape(x)) for x in jax.tree_util.tree_leaves(params)))
