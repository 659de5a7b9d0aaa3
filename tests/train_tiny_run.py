"""The tiny config of the training run shared by the training and prediction tests (tests/conftest.py trains it)."""

from configs import tiny
from train.loop import trainer as training

STEPS = 96
# Checkpoints every 8 steps (the resume test kills a run after one exists), two validations.
OVERRIDES = dict(num_train_steps=STEPS, checkpoint_every_steps=8, eval_every_steps=48, log_every_steps=8)


def tiny_config(**overrides):
  config = tiny.get_config()
  for key, value in {**OVERRIDES, **overrides}.items():
    setattr(config, key, value)
  return config


def cli_overrides(**overrides) -> list[str]:
  return [f"--config.{k}={v}" for k, v in {**OVERRIDES, **overrides}.items()]


def train_steps(config, steps: int):
  """(trainer, state, datasets, losses) after ``steps`` training steps of ``config`` on the synthetic task."""
  from train.data import synthetic  # pylint: disable=import-outside-toplevel
  from train.loop import input_feed, models  # pylint: disable=import-outside-toplevel

  datasets = synthetic.make_datasets(config)
  model = models.create_model(config, datasets.tokenizer.vocab_size)
  trainer = training.Trainer(config, model, total_steps=100)
  feed = input_feed.train_feed(config, datasets.splits["train"], start_step=0, mesh=trainer.mesh)
  state = trainer.initial_state
  losses = []
  for _ in range(steps):
    state, metrics = trainer.train_step(state, next(feed))
    losses.append(float(metrics["loss"]))
  return trainer, state, datasets, losses
