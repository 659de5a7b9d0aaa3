"""Language-model training with the project's trainer (model_type "mamba_lm") and fine-tuning from it."""

import json
import os
import shutil

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from configs import sent140_lm
from tests.train_tiny_run import tiny_config
from train.loop import models, pretrained_init, tasks
from train.loop import trainer as training
from train.model_files import inference
from train.runs import checkpointing

STEPS = 24
VOCAB = 54  # The synthetic tokenizer's vocabulary.


def lm_config(**overrides):
  """The tiny config as a language model (what configs/sent140_lm.py changes in configs/sent140.py)."""
  config = tiny_config(num_train_steps=STEPS, eval_every_steps=12, checkpoint_every_steps=12,
                       learning_rate=0.03, **overrides)
  config.model_type = "mamba_lm"
  config.label_smoothing = 0.0
  config.lm_sampled_softmax = 0  # The toy vocabulary (54) is smaller than any useful sample.
  return config


def test_sent140_lm_config_is_the_classifier_backbone():
  lm, classifier = sent140_lm.get_config(), sent140_lm.sent140.get_config()
  assert lm.model_type == "mamba_lm" and models.task_of(lm) is tasks.NextToken
  for field in ("d_model", "n_layers", "d_state", "d_conv", "expand"):
    assert lm.model[field] == classifier.model[field], field
  assert (lm.vocab_size, lm.max_length) == (classifier.vocab_size, classifier.max_length)


def test_next_token_loss_scores_real_targets_of_real_rows_only():
  rng = np.random.default_rng(0)
  logits = jnp.asarray(rng.normal(size=(3, 4, 6)), jnp.float32)
  tokens = np.array([[3, 1, 4, 0], [2, 5, 5, 1], [2, 2, 0, 0]], np.int32)
  batch = {"tokens": jnp.asarray(tokens), "mask": jnp.asarray((tokens != 0).astype(np.int32)),
           "label": jnp.zeros(3, jnp.int32), "weight": jnp.asarray([1.0, 1.0, 0.0])}
  # Targets: row 0 predicts 1, 4 (the padding after 4 is no target); row 1 predicts 5, 5, 1; row 2 is padding.
  log_probs = np.asarray(jax.nn.log_softmax(logits))
  targets = [(0, 0, 1), (0, 1, 4), (1, 0, 5), (1, 1, 5), (1, 2, 1)]
  nll = [-log_probs[b, t, v] for b, t, v in targets]
  correct = [np.argmax(log_probs[b, t]) == v for b, t, v in targets]
  task = tasks.NextToken()
  loss, accuracy = task.loss(lambda *args, **kwargs: logits, None, batch, None, 0.0)
  np.testing.assert_allclose(loss, np.mean(nll), rtol=1e-6)
  np.testing.assert_allclose(accuracy, np.mean(correct))
  rows = np.asarray(task.eval_outputs(logits, batch))
  np.testing.assert_allclose(rows[:, 2], [2, 3, 0])
  metrics = task.metrics(rows, None, 15)
  np.testing.assert_allclose(metrics["loss"], np.mean(nll), rtol=1e-6)
  assert metrics["num_tokens"] == 5 and np.isclose(metrics["perplexity"], np.exp(np.mean(nll)))


@pytest.fixture(scope="module")
def lm_run(tmp_path_factory):
  workdir = str(tmp_path_factory.mktemp("lm"))
  return workdir, training.train_and_evaluate(lm_config(), workdir)


def test_lm_trains_and_reports_perplexity(lm_run):
  workdir, report = lm_run
  assert "manual_test" not in report and report["model_type"] == "mamba_lm"
  for split in ("validation", "test"):
    assert report[split]["num_tokens"] > 1000
    # Better than guessing uniformly over the vocabulary (where the untrained model is).
    assert report[split]["perplexity"] < VOCAB, report[split]
  # What python -m train.main prints for it.
  assert models.task_of(lm_config()).summary(report) == (
      f"test perplexity {report['test']['perplexity']:.2f}, next-token accuracy {report['test']['accuracy']:.4f}")
  with open(os.path.join(workdir, "metrics.jsonl"), encoding="utf-8") as f:
    rows = [json.loads(line) for line in f]
  validation = [r for r in rows if r["split"] == "validation"]
  assert [r["step"] for r in validation] == [12, 24]
  assert validation[1]["loss"] < validation[0]["loss"] and "perplexity" in validation[1]
  train_losses = [r["loss"] for r in rows if r["split"] == "train"]
  assert train_losses[-1] < train_losses[0]


def test_lm_resumes_to_the_uninterrupted_parameters(lm_run, tmp_path):
  workdir, _ = lm_run
  interrupted = str(tmp_path / "interrupted")
  shutil.copytree(workdir, interrupted)
  for kind in ("latest", "best"):  # A crash after the step-12 checkpoint: drop what came later.
    for step in os.listdir(os.path.join(interrupted, "checkpoints", kind)):
      if step.isdigit() and int(step) > 12:
        shutil.rmtree(os.path.join(interrupted, "checkpoints", kind, step))
  os.remove(os.path.join(interrupted, "eval_report.json"))
  report = training.train_and_evaluate(lm_config(), interrupted)
  assert report["resumed_from_step"] == 12

  def latest(folder):
    config = lm_config()
    model = models.create_model(config, VOCAB)
    shapes = jax.eval_shape(lambda: models.init_params(config, model, jax.random.key(0)))
    checkpointer = checkpointing.Checkpointer(os.path.join(folder, "checkpoints"), keep=2, async_save=False)
    params, progress = checkpointer.restore_latest(shapes, params_only=True)
    checkpointer.close()
    assert progress["step"] == STEPS
    return params

  jax.tree_util.tree_map(np.testing.assert_array_equal, latest(interrupted), latest(workdir))


def test_a_classifier_starts_from_the_lm_workdir_backbone(lm_run, capsys):
  workdir, _ = lm_run
  config = tiny_config()
  model = models.create_model(config, VOCAB)
  scratch = training.create_train_state(config, model, jax.random.key(0), 10)
  state = training.create_train_state(config, model, jax.random.key(0), 10, init_from=workdir)
  assert "(LM workdir, step 24): loaded" in capsys.readouterr().out
  lm_model = models.create_model(lm_config(), VOCAB)
  shapes = jax.eval_shape(lambda: models.init_params(lm_config(), lm_model, jax.random.key(0)))
  checkpointer = checkpointing.Checkpointer(os.path.join(workdir, "checkpoints"), keep=2, async_save=False)
  lm_params, _ = checkpointer.restore_best(shapes, params_only=True)
  checkpointer.close()
  for name in ("embed", "layers_0", "norm_f"):
    jax.tree_util.tree_map(np.testing.assert_array_equal, state.params[name], lm_params[name])
  jax.tree_util.tree_map(np.testing.assert_array_equal, state.params["head"], scratch.params["head"])


def test_lm_workdir_mistakes_are_clear_errors(lm_run, tmp_path):
  workdir, _ = lm_run
  with pytest.raises(ValueError, match="not a classifier"):
    inference.load_workdir(workdir)
  with pytest.raises(ValueError, match="has no tokenizer"):  # The toy task's tokenizer lives in code.
    pretrained_init.check_tokenizer(workdir, str(tmp_path / "tokenizer.model"))
  mine, theirs = tmp_path / "mine", tmp_path / "theirs"
  for folder, content in ((mine, b"spm a"), (theirs, b"spm b")):
    os.makedirs(folder / "checkpoints")
    (folder / "config.json").write_text(json.dumps({"model_type": "mamba_lm"}))
    (folder / "tokenizer.model").write_bytes(content)
  pretrained_init.check_tokenizer(str(mine), str(mine / "tokenizer.model"))  # The same file: fine.
  with pytest.raises(ValueError, match="another tokenizer"):
    pretrained_init.check_tokenizer(str(theirs), str(mine / "tokenizer.model"))
  classifier_dir = str(tmp_path / "classifier")
  os.makedirs(os.path.join(classifier_dir, "checkpoints"))
  with open(os.path.join(classifier_dir, "config.json"), "w", encoding="utf-8") as f:
    json.dump(tiny_config().to_dict(), f)
  model = models.create_model(tiny_config(), VOCAB)
  # A classifier workdir is a source of all its weights (tests/test_train_own_data.py); one
  # without a checkpoint is a clear error.
  with pytest.raises(ValueError, match="config.init_from .*classifier: no readable checkpoint"):
    pretrained_init.init_from_pretrained(classifier_dir, model, {})


def _small_lm(tie_embeddings=True):
  from mamba_jax import MambaConfig, MambaLM  # pylint: disable=import-outside-toplevel
  model = MambaLM(MambaConfig(vocab_size=20, d_model=8, n_layers=1, d_state=2, dropout=0.0,
                              tie_embeddings=tie_embeddings))
  tokens = np.array([[3, 1, 4, 1, 5, 9, 2, 6], [5, 3, 5, 8, 9, 7, 0, 0]], np.int32)
  params = model.init({"params": jax.random.key(0)}, jnp.asarray(tokens))["params"]
  batch = {"tokens": jnp.asarray(tokens), "mask": jnp.asarray((tokens != 0).astype(np.int32)),
           "label": jnp.zeros(2, jnp.int32), "weight": jnp.ones(2)}
  return model, params, batch


@pytest.mark.parametrize("tie_embeddings", [True, False])
def test_logits_of_some_ids_equal_those_columns_of_the_full_logits(tie_embeddings):
  model, params, batch = _small_lm(tie_embeddings)
  full = model.apply({"params": params}, batch["tokens"], batch["mask"])
  features, _ = model.apply({"params": params}, batch["tokens"], batch["mask"], method="encode")
  shared = jnp.array([7, 0, 19, 7])
  np.testing.assert_allclose(model.apply({"params": params}, features, shared, method="logits_of"),
                             full[..., shared], rtol=1e-5, atol=1e-6)
  per_position = batch["tokens"][..., None]
  np.testing.assert_allclose(model.apply({"params": params}, features, per_position, method="logits_of"),
                             jnp.take_along_axis(full, per_position, -1), rtol=1e-5, atol=1e-6)


def test_sampled_softmax_gradient_approaches_the_full_softmax_gradient():
  model, params, batch = _small_lm()
  counts = np.bincount(np.asarray(batch["tokens"]).ravel(), minlength=20) + 1

  def grads(task):
    return jax.grad(lambda p: task.loss(model.apply, p, batch, jax.random.key(3), 0.0)[0])(params)

  full = ravel(grads(tasks.NextToken()))
  few, many = (ravel(grads(tasks.NextToken(k, counts))) for k in (4, 20000))
  cosine = lambda a, b: float(a @ b / np.linalg.norm(a) / np.linalg.norm(b))  # noqa: E731
  assert cosine(many, full) > 0.99  # A large sample estimates the full softmax's gradient.
  assert cosine(many, full) > cosine(few, full)


def ravel(tree) -> np.ndarray:
  return np.concatenate([np.ravel(x) for x in jax.tree_util.tree_leaves(tree)])


def test_sampled_softmax_needs_its_config_field_and_the_data():
  config = lm_config()
  del config["lm_sampled_softmax"]
  with pytest.raises(ValueError, match="needs the field lm_sampled_softmax"):
    tasks.NextToken.for_run(config)
  config.lm_sampled_softmax = 8
  with pytest.raises(ValueError, match="needs the train split"):
    tasks.NextToken.for_run(config)
