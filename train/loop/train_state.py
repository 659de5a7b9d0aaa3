"""The state a run trains and a loaded model evaluates: parameters, optimizer state, dropout key."""

from __future__ import annotations

import jax
from flax.training import train_state


class TrainState(train_state.TrainState):
  """Flax TrainState plus the base dropout key (per-step keys are folded from the step).

  ``dropout_rng`` holds the raw key data (uint32 (2,), ``jax.random.key_data``), not a typed
  key: checkpoints store it as a plain array, as every checkpoint written so far does, so
  Orbax saves and restores it like any other leaf (a typed key would need its own handling)
  and old checkpoints still restore. ``train.loop.trainer.train_step`` wraps it back into a typed key.
  A loaded model's state (``train.model_files.inference``) has no optimizer state (``optax.identity``).
  """

  dropout_rng: jax.Array
