"""Checks of the fields every sequence classifier config shares (Mamba and the baselines).

``MambaConfig``, ``TransformerConfig`` and ``LSTMConfig`` each call
:func:`check_classifier_fields` in ``__post_init__``; keeping it here lets the
baselines depend on the shared interface rather than on Mamba's config.
"""

from __future__ import annotations

from typing import Any, Sequence

POOLINGS = ("mean", "last")  # See mamba_jax.pooling.pool.


def check_classifier_fields(config: Any, positive: Sequence[str]) -> None:
  """Checks what every classifier config has: pooling, dropout, and these fields >= 1.

  Raises:
    ValueError naming the first offending field.
  """
  if config.pooling not in POOLINGS:
    raise ValueError(f"pooling must be one of {POOLINGS}, got {config.pooling!r}")
  for name in positive:
    if getattr(config, name) < 1:
      raise ValueError(f"{name} must be >= 1, got {getattr(config, name)}")
  if not 0.0 <= config.dropout < 1.0:
    raise ValueError(f"dropout must be in [0, 1), got {config.dropout}")
