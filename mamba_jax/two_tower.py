"""Two-tower (dual encoder) pair classifier: the Long Range Arena's Retrieval setup.

Axes (``mamba_jax.notation``): b, l, m, c (l: one document, half the pair's tokens; m: the encoder's features).

    tokens (b, 2l) = [document 1 (l, right-padded) | document 2 (l, right-padded)]
      -> one encoder (shared weights) over both documents -> masked pooling -> u, v (b, m)
      -> [u, v, u * v, u - v] (b, 4m) -> Dense (mlp_dim) -> GELU -> Dropout -> Dense -> logits (b, c)

The encoder is any classifier of this package (``ENCODERS``: Mamba / Mamba-2, Transformer,
Performer, LSTM) used through its ``encode`` and its config's pooling; its own head is never
called (and never created). Each document is its own right-padded sequence, so padding after
document 1 or 2 changes nothing (the encoders' padding guarantee).
"""

from __future__ import annotations

import dataclasses
from typing import Any, Mapping

import chex
import jax
import jax.numpy as jnp
from flax import linen as nn

from mamba_jax.baselines import (LSTMClassifier, LSTMConfig, PerformerClassifier, PerformerConfig,
                                 TransformerClassifier, TransformerConfig)
from mamba_jax.classifier import MambaClassifier
from mamba_jax.config import MambaConfig
from mamba_jax.pooling import pool

Array = jax.Array

ENCODERS = {
    "mamba": (MambaConfig, MambaClassifier),
    "transformer": (TransformerConfig, TransformerClassifier),
    "performer": (PerformerConfig, PerformerClassifier),
    "lstm": (LSTMConfig, LSTMClassifier),
}


@dataclasses.dataclass(frozen=True)
class TwoTowerConfig:
  """A pair classifier over one shared encoder."""

  vocab_size: int  # Token ids of both documents; 0 is padding.
  num_classes: int = 2
  encoder_type: str = "mamba"  # A key of ENCODERS.
  encoder: Any = ()  # The encoder config's fields (a mapping, or (name, value) pairs), besides vocab, classes, dtype.
  mlp_dim: int = 256  # Hidden width of the head over [u, v, u*v, u-v].
  dropout: float = 0.1  # Before the last Dense.
  dtype: Any = jnp.float32  # Activation dtype, passed to the encoder.

  def __post_init__(self):
    if self.encoder_type not in ENCODERS:
      raise ValueError(f"encoder_type must be one of {sorted(ENCODERS)}, got {self.encoder_type!r}")
    fields = self.encoder.items() if isinstance(self.encoder, Mapping) else self.encoder
    object.__setattr__(self, "encoder", tuple(sorted((str(k), _hashable(v)) for k, v in fields)))
    if self.mlp_dim < 1 or self.num_classes < 1:
      raise ValueError(f"mlp_dim and num_classes must be >= 1, got {self.mlp_dim}, {self.num_classes}")
    if not 0.0 <= self.dropout < 1.0:
      raise ValueError(f"dropout must be in [0, 1), got {self.dropout}")
    self.encoder_config()  # The encoder's own checks, now.

  def encoder_config(self):
    """The encoder's config (its class from ``ENCODERS``)."""
    config_cls, _ = ENCODERS[self.encoder_type]
    try:
      return config_cls(vocab_size=self.vocab_size, num_classes=self.num_classes, dtype=self.dtype,
                        **dict(self.encoder))
    except TypeError as e:
      raise ValueError(f"the encoder fields do not fit {config_cls.__name__}: {e}") from e


def _hashable(value):
  return tuple(value) if isinstance(value, list) else value


class TwoTowerClassifier(nn.Module):
  """``apply(variables, tokens (b, 2l), mask (b, 2l), train=False) -> logits (b, c)`` float32."""

  config: TwoTowerConfig

  def setup(self):
    cfg = self.config
    _, encoder_cls = ENCODERS[cfg.encoder_type]
    self.encoder = encoder_cls(cfg.encoder_config())
    self.hidden = nn.Dense(cfg.mlp_dim, dtype=jnp.float32, param_dtype=jnp.float32)
    self.dropout = nn.Dropout(rate=cfg.dropout)
    self.head = nn.Dense(cfg.num_classes, dtype=jnp.float32, param_dtype=jnp.float32)

  def encode_documents(self, tokens: Array, mask: Array, train: bool = False) -> tuple[Array, Array]:
    """(u, v): the pooled features (b, m) of document 1 and document 2."""
    chex.assert_rank([tokens, mask], [2, 2])
    batch, length = tokens.shape
    if length % 2:
      raise ValueError(f"a pair's tokens hold two documents of equal length; got odd length {length}")
    half = length // 2
    stacked = jnp.concatenate([tokens[:, :half], tokens[:, half:]], axis=0)  # (2b, l)
    stacked_mask = jnp.concatenate([mask[:, :half], mask[:, half:]], axis=0)
    features = self.encoder.encode(stacked, stacked_mask, train=train)
    if isinstance(features, tuple):  # Mamba: (features, cache).
      features = features[0]
    pooled = pool(features.astype(jnp.float32), stacked_mask, self.encoder.config.pooling)
    return pooled[:batch], pooled[batch:]

  def __call__(self, tokens: Array, mask: Array, train: bool = False) -> Array:
    u, v = self.encode_documents(tokens, mask, train=train)
    joint = jnp.concatenate([u, v, u * v, u - v], axis=-1)
    hidden = self.dropout(nn.gelu(self.hidden(joint)), deterministic=not train)
    return self.head(hidden)
