"""Running a trained model: the eval step, outputs and probabilities of whole splits, loaded models.

Glossary: b batch, l length, c classes, N examples.

* ``eval_step`` is jitted by ``jit_eval_step`` only: ``EVAL_STEP`` for every loaded model
  (one compilation cache), and one sharded step per training run (``train.train.Trainer``).
* ``Evaluator`` scores states of one model on whole splits in length buckets
  (``train.data.batching.eval_batches``): the trainer's validation and final report, and
  ``LoadedModel.probabilities``.
* ``LoadedModel`` is a classifier read from a training workdir (``load_workdir``) or an
  exported model directory (``load_exported``; its files: ``train.model_dir``): the
  probabilities of a split, or of a batch of encoded texts (``train.predict``).
"""

from __future__ import annotations

import dataclasses
import functools
import os
from typing import Any, Callable, Optional

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax
from tqdm import tqdm

from train import checkpointing, classes, input_feed, metrics, model_dir, models, tasks
from train.data import batching
from train.data.datasets import Split
from train.train_state import TrainState


def eval_step(state: TrainState, batch: dict, *, task=tasks.CLASSIFICATION) -> jax.Array:
  """``task.eval_outputs`` of ``batch`` without dropout: the classifiers' logits (b, c) float32."""
  logits = state.apply_fn({"params": state.params}, batch["tokens"], batch["mask"], train=False)
  return task.eval_outputs(logits, batch)


def jit_eval_step(task=tasks.CLASSIFICATION, mesh=None) -> Callable[[TrainState, dict], jax.Array]:
  """``eval_step`` of ``task`` jitted; with a ``mesh``: the state replicated and the batch split over it."""
  step = functools.partial(eval_step, task=task)
  if mesh is None:
    return jax.jit(step)
  replicated = input_feed.replicated(mesh)
  return jax.jit(step, in_shardings=(replicated, input_feed.batch_sharding(mesh)), out_shardings=replicated)


EVAL_STEP = jit_eval_step()  # Every loaded classifier's: they share its compilation cache.


def split_outputs(eval_step_fn, state: TrainState, split: Split, batch_size: int, mesh,
                  bounds=None, progress_desc: Optional[str] = None) -> np.ndarray:
  """The eval step's rows (N, ...) for every example of ``split``, in the split's order.

  Batches are bucketed by length (``bounds``, see ``train.data.batching.eval_batches``);
  each row's output is put back at its example's index. ``progress_desc``: show a
  progress bar with this title. An empty split gives (0, 2).
  """
  sharding = input_feed.batch_sharding(mesh)
  outputs = None
  batches = batching.eval_batches(split, batch_size, bounds)
  if progress_desc:
    batches = tqdm(batches, desc=progress_desc, unit="batch", leave=False, mininterval=1.0,
                   disable=jax.process_index() != 0)
  for rows, batch in batches:
    out = np.asarray(jax.device_get(eval_step_fn(state, input_feed.shard_batch(batch, sharding))))
    if outputs is None:
      outputs = np.zeros((len(split),) + out.shape[1:], out.dtype)
    keep = rows >= 0
    outputs[rows[keep]] = out[keep]
  return np.zeros((0, 2)) if outputs is None else outputs


class Evaluator:
  """Scores states of one model on whole splits, in the length buckets of its config.

  Attributes:
    config: the run's config (eval_batch_size, the buckets, neutral_threshold, ece_bins).
    task: what the model is scored on (a ``train.tasks`` task).
    mesh: the devices a batch is split over.
    eval_step: the jitted ``eval_step`` of ``task`` (``jit_eval_step``).
  """

  def __init__(self, config: ml_collections.ConfigDict, task, mesh, eval_step_fn):
    self.config, self.task, self.mesh, self.eval_step = config, task, mesh, eval_step_fn

  def outputs(self, state: TrainState, split: Split, name: str = "",
              batch_size: Optional[int] = None) -> np.ndarray:
    """The eval step's rows (N, ...) of ``split`` in its order.

    ``name`` titles the progress bar ("evaluate <name>"; none without a name);
    ``batch_size``: default the config's eval_batch_size.
    """
    return split_outputs(self.eval_step, state, split, batch_size or self.config.eval_batch_size, self.mesh,
                         batching.config_bounds(self.config, split.max_length),
                         progress_desc=f"evaluate {name}" if name else None)

  def probabilities(self, state: TrainState, split: Split, name: str = "",
                    batch_size: Optional[int] = None) -> np.ndarray:
    """A classifier's softmax probabilities (N, c) of ``split`` in its order."""
    return metrics.softmax(self.outputs(state, split, name, batch_size))

  def task_metrics(self, state: TrainState, split: Split, name: str = "") -> dict:
    """The task's metrics of ``split`` (``accuracy`` and ``loss`` among them)."""
    return self.task.metrics(self.outputs(state, split, name), split, self.config.ece_bins)

  def report_metrics(self, state: TrainState, splits: dict, raw_texts: Optional[dict] = None) -> dict:
    """The final report's metrics: split name -> the task's report metrics, for ``task.reported_splits``.

    ``raw_texts``: split name -> its raw texts where known (``train.data.held_out_texts``; slices).
    """
    return {name: self.task.report_metrics(name, self.outputs(state, splits[name], name), splits[name],
                                           self.config, raw_texts=(raw_texts or {}).get(name))
            for name in self.task.reported_splits}


@dataclasses.dataclass
class LoadedModel:
  """A classifier ready to evaluate.

  Attributes:
    config: the training config.
    tokenizer: encodes raw text as in training.
    state: TrainState holding the model's ``params`` only (no optimizer state, for both kinds).
    source: the directory it came from.
    step: the training step of the parameters (None if unknown).
    class_names: the name of each logit (``train.classes.read`` of the directory; label id i is
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
  def evaluator(self) -> Evaluator:
    """Scores ``state`` on splits with ``EVAL_STEP``, each batch split over every device."""
    return Evaluator(self.config, tasks.CLASSIFICATION, input_feed.make_mesh(), EVAL_STEP)

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


def load_workdir(workdir: str, checkpoint: str = "best") -> LoadedModel:
  """The parameters of the ``checkpoint`` ("best" | "latest") of a training workdir.

  Only the parameters are read from the checkpoint (not the optimizer state).
  """
  config = model_dir.read_config(workdir, "--workdir must be a training workdir (python -m train.main --workdir=...).")
  class_names = classes.read(workdir)
  tokenizer = model_dir.load_run_tokenizer(config, workdir)
  model = models.create_model(config, tokenizer.vocab_size, len(class_names))
  params, step = checkpointing.restore_params(os.path.join(workdir, "checkpoints"),
                                              models.parameter_shapes(config, model), checkpoint)
  return LoadedModel(config, tokenizer, inference_state(model, params), os.path.abspath(workdir), step,
                     class_names)


def load_exported(directory: str) -> LoadedModel:
  """An exported model directory (its files: ``train.model_dir``)."""
  config = model_dir.read_config(directory, "--model must be a directory written by python -m train.export.")
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
