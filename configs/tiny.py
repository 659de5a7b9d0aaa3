"""Tiny Mamba on the synthetic toy task: trains in seconds on a CPU (tests, demos)."""

import ml_collections

from configs import sent140


def get_config() -> ml_collections.ConfigDict:
  """A few hundred parameters' worth of everything."""
  config = sent140.get_config()
  config.dataset = "synthetic"  # train.data.synthetic: learnable, deterministic, no files needed.
  config.vocab_size = 54  # Informational: the synthetic tokenizer fixes its own vocabulary (54).
  config.max_length = 16  # Short sequences.
  config.synthetic_train_size = 1024  # Synthetic train examples.
  config.synthetic_eval_size = 256  # Synthetic validation / test examples each.
  config.model.d_model = 16  # Tiny width.
  config.model.n_layers = 1  # One block.
  config.model.d_state = 4  # Small state.
  config.model.dropout = 0.1  # Some dropout, so tests exercise the dropout RNG (resume, devices).
  config.model.scan_method = "auto"  # Whatever the platform picks.
  config.batch_size = 32  # Divisible by 1, 2 and 4 devices.
  config.eval_batch_size = 64  # Divisible by 1, 2 and 4 devices.
  config.num_epochs = 2  # 64 steps.
  config.learning_rate = 1e-2  # Fast learning on the toy task.
  config.warmup_steps = 5  # Short warmup.
  config.train_data_on_device = False  # Exercise the host input path (the device path has its own test).
  config.length_bucket_bounds = (6, 10)  # Synthetic lengths are 3..14: three buckets (6, 10, 16).
  config.log_every_steps = 8  # Frequent logs.
  config.eval_every_steps = 32  # Two validations per run.
  config.checkpoint_every_steps = 8  # Frequent checkpoints (resume test).
  config.keep_checkpoints = 2  # Keep two.
  config.async_checkpointing = False  # Synchronous writes: deterministic tests.
  return config
