"""Builds the classifier named by ``config.model_type``.

Every model maps tokens (b, l) int32 and mask (b, l) to logits (b, c) float32
(glossary: b batch, l length, c classes).
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
from flax import linen as nn

from mamba_jax import MambaClassifier, MambaConfig
from mamba_jax.baselines import LSTMClassifier, LSTMConfig, TransformerClassifier, TransformerConfig

# model_type -> (config class, classifier class).
MODELS = {
    "mamba": (MambaConfig, MambaClassifier),
    "transformer": (TransformerConfig, TransformerClassifier),
    "lstm": (LSTMConfig, LSTMClassifier),
}
DTYPES = {"float32": jnp.float32, "bfloat16": jnp.bfloat16}
NUM_CLASSES = 2  # Trained on negative / positive only; "neutral" comes from a confidence threshold.


def activation_dtype(name: str) -> Any:
  if name not in DTYPES:
    raise ValueError(f"config.dtype must be one of {sorted(DTYPES)}, got {name!r}")
  return DTYPES[name]


def create_model(config: ml_collections.ConfigDict, vocab_size: int) -> nn.Module:
  """``<Model>Classifier(<Model>Config(vocab_size, num_classes=2, dtype, **config.model))``."""
  if config.model_type not in MODELS:
    raise ValueError(f"config.model_type must be one of {sorted(MODELS)}, got {config.model_type!r}")
  config_cls, model_cls = MODELS[config.model_type]
  fields = config.model.to_dict()
  try:
    model_config = config_cls(
        vocab_size=vocab_size, num_classes=NUM_CLASSES, dtype=activation_dtype(config.dtype), **fields)
  except TypeError as e:
    raise ValueError(f"config.model does not fit {config_cls.__name__}: {e}") from e
  return model_cls(model_config)


def count_params(params: Any) -> int:
  """Total number of scalars in a parameter pytree."""
  return int(sum(np.prod(np.shape(x)) for x in jax.tree_util.tree_leaves(params)))
