"""Length buckets in training and evaluation: same predictions, same order, every model padding-invariant."""

import copy

import jax
import numpy as np
import pytest

from configs import tiny
from train.data import batching, synthetic
from train.loop import input_feed, models
from train.scoring import metrics

from tests import train_tiny_run


def _trained_trainer(config, steps=12):
  trainer, state, datasets, _ = train_tiny_run.train_steps(config, steps)
  return trainer, state, datasets


def test_bucketed_evaluation_returns_the_fixed_padding_predictions_in_order():
  config = tiny.get_config()
  assert config.bucket_by_length and len(batching.config_bounds(config, config.max_length)) > 1
  trainer, state, datasets = _trained_trainer(config)
  fixed_config = copy.deepcopy(config)
  fixed_config.bucket_by_length = False
  for name in ("validation", "manual_test"):
    split = datasets.splits[name]
    bucketed = trainer.evaluator.probabilities(state, split)
    trainer.evaluator.config = fixed_config
    fixed = trainer.evaluator.probabilities(state, split)
    trainer.evaluator.config = config
    assert bucketed.shape == fixed.shape == (len(split), 2)
    np.testing.assert_allclose(bucketed, fixed, rtol=1e-5, atol=1e-6)
    assert not np.allclose(fixed[:, 0], fixed[0, 0])  # Rows differ, so an order mix-up would show.
  split = datasets.splits["manual_test"]
  trainer.evaluator.config = fixed_config
  fixed_report = metrics.manual_test_report(trainer.evaluator.probabilities(state, split), split.labels, 0.7)
  trainer.evaluator.config = config
  bucketed_report = metrics.manual_test_report(trainer.evaluator.probabilities(state, split), split.labels, 0.7)
  assert bucketed_report["binary"]["confusion_matrix"] == fixed_report["binary"]["confusion_matrix"]
  np.testing.assert_allclose(np.asarray(bucketed_report["three_way"]["curve"]),
                             np.asarray(fixed_report["three_way"]["curve"]), atol=1e-9)
  assert bucketed_report["binary"]["loss"] == pytest.approx(fixed_report["binary"]["loss"], rel=1e-5)


@pytest.mark.parametrize("model_type", ["mamba", "ssm", "transformer", "lstm"])
def test_every_model_gives_the_same_logits_at_any_padded_length(model_type):
  config = tiny.get_config()
  if model_type == "ssm":
    config.model.select_delta = config.model.select_bc = False
  elif model_type == "transformer":
    config.model_type = "transformer"
    config.model = type(config.model)(dict(d_model=16, n_layers=1, num_heads=2, d_ff=32, dropout=0.0,
                                           positions="sinusoidal", max_length=64, pooling="mean"))
  elif model_type == "lstm":
    config.model_type = "lstm"
    config.model = type(config.model)(dict(embed_dim=16, hidden_size=16, n_layers=1, dropout=0.0,
                                           pooling="mean"))
  datasets = synthetic.make_datasets(config)
  model = models.create_model(config, datasets.tokenizer.vocab_size)
  split = datasets.splits["validation"]
  tokens = split.tokens[:64].astype(np.int32)
  lengths = batching.example_lengths(tokens)
  short = tokens[lengths <= 10][:, :10]
  assert len(short) > 8
  params = model.init(jax.random.key(1), short, (short != 0).astype(np.int32), train=False)
  padded = np.pad(short, [(0, 0), (0, 6)])
  logits_short = model.apply(params, short, (short != 0).astype(np.int32), train=False)
  logits_padded = model.apply(params, padded, (padded != 0).astype(np.int32), train=False)
  np.testing.assert_allclose(np.asarray(logits_short), np.asarray(logits_padded), rtol=1e-5, atol=1e-5)
