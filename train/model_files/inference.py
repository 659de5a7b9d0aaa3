"""A trained classifier loaded to run: from a training workdir or an exported model directory.

``LoadedModel`` is a classifier read from a training workdir (``load_workdir``) or an exported model
directory (``load_exported``; its files: ``train.runs.model_dir``): the probabilities of a split
(``train.loop.evaluation.Evaluator``, in length buckets), or of a batch of encoded texts
(``train.model_files.predictions``). ``EVAL_STEP`` is the one jitted eval step every loaded model
shares (one compilation cache).

Axes (``mamba_jax.notation``): c, N.
"""

from __future__ import annotations

import dataclasses
import functools
import os
from typing import Any, Optional

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax

from train.data.datasets import Split
from train.loop import evaluation, input_feed, models, tasks
from train.loop.train_state import TrainState
from train.runs import checkpointing, classes, model_dir
from train.scoring import metrics


EVAL_STEP = evaluation.jit_eval_step()  # Every loaded classifier's: they share its compilation cache.


@dataclasses.dataclass
class LoadedModel:
  """A classifier ready to evaluate.

  Attributes:
    config: the training config.
    tokenizer: encodes raw text as in training.
    state: TrainState holding the model's ``params`` only (no optimizer state, for both kinds).
    source: the directory it came from.
    step: the training step of the parameters (None if unknown).
    class_names: the name of each logit (``train.runs.classes.read`` of the directory; label id i is
      ``class_names[i]``).
  """

  config: ml_collections.ConfigDict
  tokenizer: Any
  state: TrainState
  source: str
  step: Optional[int]
  class_names: tuple[str, ...] = classes.BINARY

  @property
  def is_binary_sentiment(self) -> bool:
    """Whether it is a negative/positive model (neutral then comes from abstention: the threshold)."""
    return tuple(self.class_names) == classes.BINARY

  @property
  def max_length(self) -> int:
    """Tokens per text; longer texts are cut."""
    return int(self.config.max_length)

  @functools.cached_property
  def evaluator(self) -> evaluation.Evaluator:
    """Scores ``state`` on splits with ``EVAL_STEP``, each batch split over every device."""
    return evaluation.Evaluator(self.config, tasks.CLASSIFICATION, input_feed.make_mesh(), EVAL_STEP)

  def probabilities(self, split: Split, batch_size: Optional[int] = None) -> np.ndarray:
    """Softmax probabilities (N, c) of every example of ``split``, evaluated in length buckets."""
    batch_size = int(batch_size or self.config.eval_batch_size)
    input_feed.check_batch_size(batch_size, "eval batch size")
    return self.evaluator.probabilities(self.state, split, batch_size=batch_size)

  def encode(self, texts: list[str]) -> np.ndarray:
    """Token ids (N, max_length) int32 of ``texts`` (0: padding), as in training."""
    return np.asarray(self.tokenizer.encode(texts)).astype(np.int32)

  def batch_probabilities(self, tokens: np.ndarray) -> np.ndarray:
    """Softmax probabilities (N, c) of the rows of ``tokens`` (N, l) as one batch (no length buckets)."""
    logits = EVAL_STEP(self.state, {"tokens": tokens, "mask": (tokens != 0).astype(np.int32)})
    return metrics.softmax(np.asarray(logits))


def inference_state(model, params: Any) -> TrainState:
  """A TrainState holding ``params`` only: no optimizer state (``optax.identity``)."""
  return TrainState.create(apply_fn=model.apply, params=jax.tree_util.tree_map(jnp.asarray, params),
                           tx=optax.identity(), dropout_rng=jax.random.key_data(jax.random.key(0)))


def classifier_config(directory: str, what: str) -> ml_collections.ConfigDict:
  """The completed config of a workdir or export (``train.runs.model_dir.read_config``) that holds a classifier.

  Raises:
    FileNotFoundError: no config.json (``what`` says what the directory must be).
    ValueError: a language model's directory (it is the ``config.init_from`` of a classifier run).
  """
  config = model_dir.read_config(directory, what)
  if models.task_of(config) is not tasks.Classification:
    raise ValueError(f"{directory} holds a {config.model_type!r} model, not a classifier; a language model "
                     "workdir is used as --config.init_from of a classifier run")
  return config


def load_workdir(workdir: str, checkpoint: str = "best") -> LoadedModel:
  """The parameters of the ``checkpoint`` ("best" | "latest") of a training workdir.

  Only the parameters are read from the checkpoint (not the optimizer state).
  """
  config = classifier_config(workdir, "--workdir must be a training workdir (python -m train.main --workdir=...).")
  class_names = classes.read(workdir)
  tokenizer = model_dir.load_run_tokenizer(config, workdir)
  model = models.create_model(config, tokenizer.vocab_size, len(class_names))
  params, step = checkpointing.restore_params(os.path.join(workdir, "checkpoints"),
                                              models.parameter_shapes(config, model), checkpoint)
  return LoadedModel(config, tokenizer, inference_state(model, params), os.path.abspath(workdir), step,
                     class_names)


def load_exported(directory: str) -> LoadedModel:
  """An exported model directory (its files: ``train.runs.model_dir``)."""
  config = classifier_config(directory, "--model must be a directory written by python -m train.export.")
  params_path = os.path.join(directory, model_dir.PARAMS_FILE)
  if not os.path.exists(params_path):
    raise FileNotFoundError(f"{params_path} not found: --model must be a directory written by "
                            "python -m train.export.")
  class_names = classes.read(directory)
  tokenizer = model_dir.load_run_tokenizer(config, directory)
  model = models.create_model(config, tokenizer.vocab_size, len(class_names))
  params, metadata = model_dir.load_params(params_path)
  expected = models.parameter_shapes(config, model)
  if jax.tree_util.tree_structure(expected) != jax.tree_util.tree_structure(params) or any(
      e.shape != p.shape for e, p in zip(jax.tree_util.tree_leaves(expected), jax.tree_util.tree_leaves(params))):
    raise ValueError(f"{params_path} does not match the model of {os.path.join(directory, model_dir.CONFIG_FILE)} "
                     f"with {len(class_names)} classes {list(class_names)}")
  step = int(metadata["step"]) if metadata.get("step", "").isdigit() else None
  return LoadedModel(config, tokenizer, inference_state(model, params), os.path.abspath(directory), step,
                     class_names)


def load(workdir: Optional[str], exported: Optional[str], checkpoint: str = "best") -> LoadedModel:
  """Exactly one of ``workdir`` (a training run) or ``exported`` (an exported model directory)."""
  if bool(workdir) == bool(exported):
    raise ValueError("give exactly one of --workdir (a training run) or --model (an exported model directory)")
  return load_workdir(workdir, checkpoint) if workdir else load_exported(exported)
