"""Baseline sequence classifiers with the Mamba classifier's interface.

``apply(variables, tokens (b, l), mask (b, l), train=bool, rngs={"dropout": key})``
returns logits (b, c) float32, with the same masked pooling
(:mod:`mamba_jax.pooling`). The non-selective (LTI) SSM baseline is
``MambaConfig(select_delta=False, select_bc=False)``. The Transformer takes sinusoidal,
learned or rotary positions (``positions="rope"``); the Performer is the Transformer
with FAVOR+ random-feature attention (linear in length).
"""

from mamba_jax.baselines.lstm import LSTMClassifier, LSTMConfig
from mamba_jax.baselines.performer import PerformerClassifier, PerformerConfig
from mamba_jax.baselines.transformer import (
    TransformerClassifier,
    TransformerConfig,
    rotary_embedding,
    sinusoidal_positions,
)

__all__ = [
    "LSTMClassifier",
    "LSTMConfig",
    "PerformerClassifier",
    "PerformerConfig",
    "TransformerClassifier",
    "TransformerConfig",
    "rotary_embedding",
    "sinusoidal_positions",
]
