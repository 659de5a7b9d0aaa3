"""One clear line for a training config value the trainer cannot run with (types and ranges).

``check_training_config`` checks the ranges ``train.loop.trainer`` relies on; ``python -m train.main``
calls it before training (a bad value: one line, exit code 2).
"""

from __future__ import annotations

import ml_collections

# Loop fields that must be >= 1 (a cadence of 0 would divide by zero, a batch of 0 trains nothing).
POSITIVE_INT_FIELDS = ("batch_size", "eval_batch_size", "log_every_steps", "eval_every_steps",
                       "checkpoint_every_steps", "keep_checkpoints", "max_length", "vocab_size")


def check_training_config(config: ml_collections.ConfigDict) -> None:
  """Raises ValueError (one line) for a field value ``train.loop.trainer`` cannot run with."""
  for name in POSITIVE_INT_FIELDS:
    value = config[name]
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
      raise ValueError(f"config.{name} must be an integer >= 1, got {value!r}")
  if config.num_train_steps <= 0 and config.num_epochs <= 0:
    raise ValueError(f"config.num_train_steps ({config.num_train_steps}) or config.num_epochs "
                     f"({config.num_epochs}) must be > 0")
  if not config.learning_rate > 0:
    raise ValueError(f"config.learning_rate must be > 0, got {config.learning_rate!r}")
  for name in ("eval_every_epochs", "checkpoint_every_epochs"):
    if config[name] is not None and not config[name] > 0:
      raise ValueError(f"config.{name} must be > 0 (a fraction of an epoch) or None, got {config[name]!r}")
  if config.best_checkpoint_metric not in ("accuracy", "macro_recall"):
    raise ValueError(f"config.best_checkpoint_metric must be 'accuracy' or 'macro_recall', "
                     f"got {config.best_checkpoint_metric!r}")
  if not 0.0 <= config.label_smoothing < 1.0:
    raise ValueError(f"config.label_smoothing must be in [0, 1), got {config.label_smoothing!r}")
  if not config.budget_minutes >= 0:
    raise ValueError(f"config.budget_minutes must be >= 0 (0: no budget), got {config.budget_minutes!r}")
