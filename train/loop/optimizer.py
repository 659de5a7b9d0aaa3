"""AdamW with linear warmup, cosine decay, gradient clipping and a weight-decay mask."""

from __future__ import annotations

import re
from typing import Any

import jax
import ml_collections
import optax


def learning_rate_schedule(config: ml_collections.ConfigDict, total_steps: int) -> optax.Schedule:
  """0 -> peak linearly over warmup_steps, then cosine to end_learning_rate_factor * peak."""
  warmup = max(0, min(config.warmup_steps, total_steps - 1))
  return optax.warmup_cosine_decay_schedule(
      init_value=0.0,
      peak_value=config.learning_rate,
      warmup_steps=warmup,
      decay_steps=max(total_steps, warmup + 1),
      end_value=config.learning_rate * config.end_learning_rate_factor,
  )


def param_path(path) -> str:
  """A pytree key path as 'layers_0/mixer/A_log'."""
  parts = []
  for key in path:
    for attr in ("key", "name", "idx"):
      if hasattr(key, attr):
        parts.append(str(getattr(key, attr)))
        break
    else:
      parts.append(str(key))
  return "/".join(parts)


def weight_decay_mask(params: Any, no_decay_regex: str) -> Any:
  """True where weight decay applies: every leaf whose path does NOT match the regex."""
  pattern = re.compile(no_decay_regex)
  return jax.tree_util.tree_map_with_path(
      lambda path, _: pattern.search(param_path(path)) is None, params)


def create_optimizer(
    config: ml_collections.ConfigDict, total_steps: int, params: Any
) -> optax.GradientTransformation:
  """clip_by_global_norm (if grad_clip_norm > 0) then masked AdamW on the schedule."""
  schedule = learning_rate_schedule(config, total_steps)
  adamw = optax.adamw(
      learning_rate=schedule,
      b1=config.adam_b1,
      b2=config.adam_b2,
      eps=config.adam_eps,
      weight_decay=config.weight_decay,
      mask=weight_decay_mask(params, config.no_decay_regex),
  )
  if config.grad_clip_norm and config.grad_clip_norm > 0:
    return optax.chain(optax.clip_by_global_norm(config.grad_clip_norm), adamw)
  return adamw
