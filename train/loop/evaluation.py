"""The evaluation a run makes: the eval step, and the outputs and probabilities of whole splits.

* ``eval_step`` is jitted by ``jit_eval_step`` only: one sharded step per training run
  (``train.loop.trainer.Trainer``), and ``train.model_files.inference.EVAL_STEP`` for every loaded model
  (one compilation cache).
* ``Evaluator`` scores states of one model on whole splits in length buckets
  (``train.data.batching.eval_batches``): the trainer's validation and final report, and
  ``train.model_files.inference.LoadedModel.probabilities``.

Axes (``mamba_jax.notation``): b, c, N.
"""

from __future__ import annotations

import functools
from typing import Callable, Optional

import jax
import ml_collections
import numpy as np
from tqdm import tqdm

from train.data import batching
from train.data.datasets import Split
from train.loop import input_feed, tasks
from train.loop.train_state import TrainState
from train.scoring import metrics


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
    task: what the model is scored on (a ``train.loop.tasks`` task).
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

  def report_outputs(self, state: TrainState, splits: dict) -> dict:
    """Split name -> the eval step's rows (N, ...) of ``splits[name]``, for ``task.reported_splits``."""
    return {name: self.outputs(state, splits[name], name) for name in self.task.reported_splits}

  def report_metrics(self, outputs: dict, splits: dict, raw_texts: Optional[dict] = None) -> dict:
    """The final report's metrics: split name -> the task's report metrics of ``outputs[name]``
    (``report_outputs``).

    ``raw_texts``: split name -> its raw texts where known (``train.data.held_out_texts``; slices).
    """
    return {name: self.task.report_metrics(name, outputs[name], splits[name], self.config,
                                           raw_texts=(raw_texts or {}).get(name))
            for name in self.task.reported_splits}
