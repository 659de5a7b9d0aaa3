"""Training loop: data-parallel AdamW training, periodic validation, checkpoints, final report.

Glossary: b batch, l length, c classes.

``train_and_evaluate(config, workdir)`` trains ``config.model_type`` on
``config.dataset``, resuming from ``<workdir>/checkpoints`` when present, and
writes ``<workdir>/eval_report.json`` (its fields: ``train.eval_report.build_eval_report``;
the workdir's files: ``train.model_dir``); validation and the final evaluation run through
``train.inference.Evaluator``. The batch is split over every device (``jax.sharding`` mesh,
parameters replicated).
"""

from __future__ import annotations

import dataclasses
import functools
import os
import shutil
import time
from typing import Any, Callable, Optional

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax
from absl import logging
from tqdm import tqdm

from train import checkpointing, distributed, eval_report, inference, input_feed, models, pretrained_init, provenance
from train import tasks
from train import workdir as workdir_lib
from train.data import batching, pipeline
from train.data import summary as summary_lib
from train.metric_logging import MetricWriter
from train.optimizer import create_optimizer, learning_rate_schedule
from train.train_state import TrainState


class NonFiniteLossError(RuntimeError):
  """The training loss became NaN or inf."""


def total_train_steps(config: ml_collections.ConfigDict, steps_per_epoch: int) -> int:
  if config.num_train_steps and config.num_train_steps > 0:
    return int(config.num_train_steps)
  return int(config.num_epochs * steps_per_epoch)


def create_train_state(config: ml_collections.ConfigDict, model, rng: jax.Array,
                       total_steps: int, init_from: Optional[str] = None) -> TrainState:
  """Initializes parameters (float32) and the optimizer for ``total_steps`` steps.

  ``rng``: a key (``jax.random.key``; a legacy uint32 ``PRNGKey`` gives the same values).
  ``init_from``: a pretrained Mamba checkpoint folder whose backbone replaces the
  initial backbone (``train.pretrained_init``); None: all freshly initialized.
  """
  if not jnp.issubdtype(rng.dtype, jax.dtypes.prng_key):
    rng = jax.random.wrap_key_data(rng)
  params_rng, dropout_rng = jax.random.split(rng)
  params = models.init_params(config, model, params_rng)
  if init_from:
    params = pretrained_init.init_from_pretrained(init_from, model, params)
  tx = create_optimizer(config, total_steps, params)
  state = TrainState.create(apply_fn=model.apply, params=params, tx=tx,
                            dropout_rng=jax.random.key_data(dropout_rng))
  # A strongly typed step, as a checkpoint restores it: the jitted steps compiled for this state
  # serve a restored one too (a weakly typed 0 made the final evaluation compile again).
  return state.replace(step=jnp.asarray(0, jnp.int32))


def train_step(state: TrainState, batch: dict, *, task=tasks.CLASSIFICATION, label_smoothing: float = 0.0,
               nan_after_step: int = -1) -> tuple[TrainState, dict]:
  """One AdamW step on ``batch``; a step whose loss or gradient is not finite leaves the state unchanged.

  The step's dropout key is ``fold_in(state.dropout_rng, state.step)``: the key lives in the
  state only, so a resumed run draws the same dropout masks as an uninterrupted one.

  Args:
    state: the TrainState.
    batch: tokens (b, l), mask (b, l), label (b,), weight (b,).
    task: what the model is scored on (a ``train.tasks`` task).
    label_smoothing: epsilon of ``optax.smooth_labels``.
    nan_after_step: test hook; from this step on the loss is multiplied by NaN (-1: off).

  Returns:
    (new state, metrics: loss, accuracy, grad_norm, finite (bool)).
  """
  dropout_rng = jax.random.fold_in(jax.random.wrap_key_data(state.dropout_rng), state.step)

  def loss_fn(params):
    loss, accuracy = task.loss(state.apply_fn, params, batch, dropout_rng, label_smoothing)
    if nan_after_step >= 0:
      loss = loss * jnp.where(state.step >= nan_after_step, jnp.nan, 1.0)
    return loss, accuracy

  (loss, accuracy), grads = jax.value_and_grad(loss_fn, has_aux=True)(state.params)
  grad_norm = optax.global_norm(grads)
  finite = jnp.isfinite(loss) & jnp.isfinite(grad_norm)
  updated = state.apply_gradients(grads=grads)
  new_state = jax.tree_util.tree_map(lambda new, old: jnp.where(finite, new, old), updated, state)
  metrics = {"loss": loss, "accuracy": accuracy, "grad_norm": grad_norm, "finite": finite}
  return new_state, metrics


class Trainer:
  """Holds the compiled steps, the task and the device layout of one run (``evaluator``: its evaluation)."""

  def __init__(self, config: ml_collections.ConfigDict, model, total_steps: int, train_split=None):
    """``train_split``: what a task may derive from the training data (the LM's sampled softmax)."""
    self.config = config
    self.task = models.task_of(config).for_run(config, train_split)
    self.mesh = input_feed.make_mesh()
    input_feed.check_batch_size(config.batch_size)
    input_feed.check_batch_size(config.eval_batch_size, "eval_batch_size")
    replicated = input_feed.replicated(self.mesh)
    sharded = input_feed.batch_sharding(self.mesh)
    state = create_train_state(config, model, jax.random.key(config.seed), total_steps,
                               init_from=config.init_from)
    distributed.wait_for_all("train_state")  # The processes' first computation together follows.
    self.initial_state = jax.device_put(state, replicated)
    step_fn = functools.partial(train_step, task=self.task, label_smoothing=config.label_smoothing,
                                nan_after_step=config.debug_nan_after_step)
    self.train_step = jax.jit(step_fn, in_shardings=(replicated, sharded),
                              out_shardings=(replicated, replicated), donate_argnums=(0,))
    self.evaluator = inference.Evaluator(config, self.task, self.mesh,
                                         inference.jit_eval_step(self.task, self.mesh))


@dataclasses.dataclass
class MetricsWindow:
  """The step metrics since the last flush: averaged, checked and written at each flush.

  Attributes:
    writer: where the averaged "train" metrics go.
    schedule: step -> learning rate (logged beside the metrics).
    bar: the progress bar whose postfix shows the latest averages.
    checkpoint_dir: named in the error when a step's loss is not finite.
    pending: the device-side metrics dicts of the steps since the last flush.
    start_time: ``time.perf_counter()`` when the window's clock started.
    examples: training examples seen since the window's clock started.
  """

  writer: MetricWriter
  schedule: Callable[[int], float]
  bar: tqdm
  checkpoint_dir: str
  pending: list = dataclasses.field(default_factory=list)
  start_time: float = dataclasses.field(default_factory=time.perf_counter)
  examples: int = 0

  def add(self, metrics: dict, num_examples: int) -> None:
    """Records one step's metrics (left on the device until the flush) and its batch size."""
    self.pending.append(metrics)
    self.examples += num_examples

  def restart_clock(self) -> None:
    """Restarts the throughput clock, e.g. after a validation or a save (their time is not training)."""
    self.start_time = time.perf_counter()

  def reset(self) -> None:
    """Restarts the throughput clock and the example count (after compilation, after a flush)."""
    self.restart_clock()
    self.examples = 0

  def flush(self, step: int, last_saved: Optional[int]) -> dict:
    """Averages the pending metrics on the host, writes them and restarts the window.

    ``step`` is the last pending step; ``last_saved`` the latest checkpoint's step (None: none yet).

    Returns:
      {loss, accuracy, grad_norm, learning_rate, examples_per_s}.
    Raises:
      NonFiniteLossError: a pending step's loss or gradient norm is NaN/inf.
    """
    host = jax.device_get(self.pending)
    self.pending.clear()
    first_step = step - len(host) + 1
    for offset, m in enumerate(host):
      if not bool(m["finite"]):
        bad = first_step + offset
        where = (f"the last good checkpoint is step {last_saved} in {self.checkpoint_dir}"
                 if last_saved is not None else "no checkpoint was written before it")
        raise NonFiniteLossError(
            f"training loss became {float(m['loss'])} (gradient norm {float(m['grad_norm'])}) at step {bad} "
            f"(learning rate {float(self.schedule(bad - 1)):.3g}); stopping. The update was not applied; "
            f"{where}. Try a lower learning_rate, a smaller grad_clip_norm or dtype='float32'.")
    summary = {name: float(np.mean([m[name] for m in host])) for name in ("loss", "accuracy", "grad_norm")}
    summary["learning_rate"] = float(self.schedule(step - 1))
    elapsed = max(time.perf_counter() - self.start_time, 1e-9)
    summary["examples_per_s"] = self.examples / elapsed
    self.writer.write(step, "train", summary)
    self.bar.set_postfix(loss=f"{summary['loss']:.4f}", acc=f"{summary['accuracy']:.3f}",
                         ex_s=f"{summary['examples_per_s']:.0f}")
    self.reset()
    return summary


def _show_first_losses(bar: tqdm, step: int, start_step: int, metrics: dict, log_every_steps: int) -> None:
  """Shows the loss on the bar at steps 1, 2, 4, 8, ... of this run until the first logged step.

  A handful of host syncs, so that a short run shows a loss before ``log_every_steps``.
  """
  done = step - start_step
  if done < log_every_steps and done & (done - 1) == 0:
    bar.set_postfix(loss=f"{float(jax.device_get(metrics['loss'])):.4f}")


def _copy_tokenizer(datasets, workdir: str) -> Optional[str]:
  path = getattr(datasets, "tokenizer_path", None)
  if not path or not os.path.exists(path):
    return None
  target = os.path.join(workdir, "tokenizer" + os.path.splitext(path)[1])
  if os.path.abspath(path) != os.path.abspath(target):
    shutil.copyfile(path, target)
  return target


def train_and_evaluate(config: ml_collections.ConfigDict, workdir: str, *, start_over: bool = False) -> dict:
  """Trains (resuming if possible), evaluates and writes ``<workdir>/eval_report.json``.

  ``start_over``: delete the workdir's earlier checkpoints, metrics and report first
  (see train.workdir).

  Returns:
    the eval report dict.
  Raises:
    NonFiniteLossError: the loss became NaN/inf (the latest checkpoint is the last good one).
    train.workdir.WorkdirConfigMismatch: the workdir holds checkpoints of another config.
  """
  run_start = time.perf_counter()
  distributed.initialize(config)
  workdir = os.path.abspath(workdir)
  os.makedirs(workdir, exist_ok=True)
  is_chief = jax.process_index() == 0
  if is_chief:
    workdir_lib.claim(config, workdir, start_over=start_over)

  datasets = pipeline.get_datasets(config)
  if is_chief and datasets.summary.get("malformed_by_reason"):
    print(summary_lib.describe_unused_rows(datasets.summary), flush=True)
  tokenizer_copy = _copy_tokenizer(datasets, workdir) if is_chief else None
  pretrained_init.check_tokenizer(config.init_from, datasets.tokenizer_path)
  splits = datasets.splits
  train_split = splits["train"]
  model = models.create_model(config, datasets.tokenizer.vocab_size)
  bounds = batching.config_bounds(config, train_split.max_length)
  steps_per_epoch = batching.steps_per_epoch(train_split, config.batch_size, bounds)
  if steps_per_epoch == 0:
    raise ValueError(f"the train split has {len(train_split)} examples, fewer than one batch of "
                     f"{config.batch_size}")
  total_steps = total_train_steps(config, steps_per_epoch)
  schedule = learning_rate_schedule(config, total_steps)

  trainer = Trainer(config, model, total_steps, train_split)
  num_params = models.count_params(trainer.initial_state.params)
  # Shapes, dtypes and shardings to restore into later (the initial state's buffers get donated).
  abstract_state = checkpointing.abstract_like(trainer.initial_state)
  checkpoint_dir = os.path.join(workdir, "checkpoints")
  checkpointer = checkpointing.Checkpointer(checkpoint_dir, keep=config.keep_checkpoints,
                                            async_save=config.async_checkpointing,
                                            repair=is_chief)
  state, progress = checkpointer.restore_latest(trainer.initial_state)
  start_step = int(progress["step"]) if progress else 0
  best_accuracy = progress.get("best_validation_accuracy") if progress else None
  if start_step:
    print(f"Resuming from step {start_step} ({checkpoint_dir}).", flush=True)
  logging.info("%s: %d parameters, %d steps (%d per epoch), %d devices, length buckets %s "
               "(one compiled train and eval step per bucket).", config.model_type, num_params,
               total_steps, steps_per_epoch, jax.device_count(), bounds)

  writer = MetricWriter(workdir, resume_step=start_step)
  feed = input_feed.train_feed(config, train_split, start_step=start_step, mesh=trainer.mesh)
  last_saved = checkpointer.latest_step()
  train_seconds = 0.0
  bar = tqdm(total=total_steps, initial=start_step, desc=f"train {config.model_type}", unit="step",
             mininterval=1.0, disable=not is_chief)
  window = MetricsWindow(writer, schedule, bar, checkpoint_dir)

  def progress_dict(step):
    return {"step": step, "best_validation_accuracy": best_accuracy, "total_steps": total_steps,
            "examples_seen": step * config.batch_size}

  try:
    segment_start = time.perf_counter()
    for step in range(start_step + 1, total_steps + 1):
      state, metrics = trainer.train_step(state, next(feed))
      window.add(metrics, config.batch_size)
      bar.update(1)
      _show_first_losses(bar, step, start_step, metrics, config.log_every_steps)
      if step == start_step + 1:  # Exclude compilation from the throughput.
        jax.block_until_ready(metrics)
        window.reset()
        segment_start = window.start_time
      is_last = step == total_steps
      evaluate = is_last or step % config.eval_every_steps == 0
      save = is_last or step % config.checkpoint_every_steps == 0
      if is_last or evaluate or save or step % config.log_every_steps == 0:
        window.flush(step, last_saved)
      if evaluate or save:
        train_seconds += time.perf_counter() - segment_start
      if evaluate:
        metrics_val = trainer.evaluator.task_metrics(state, splits["validation"], "validation")
        writer.write(step, "validation", metrics_val)
        if best_accuracy is None or metrics_val["accuracy"] > best_accuracy:
          best_accuracy = metrics_val["accuracy"]
        checkpointer.save_best(step, state, progress_dict(step), metrics_val["accuracy"])
        bar.write(f"step {step}: validation accuracy {metrics_val['accuracy']:.4f} "
                  f"loss {metrics_val['loss']:.4f}")
      if save:
        checkpointer.save_latest(step, state, progress_dict(step))
        last_saved = step
      if evaluate or save:
        window.restart_clock()
        segment_start = window.start_time
    bar.close()
    checkpointer.wait()
  except NonFiniteLossError:
    checkpointer.wait()
    checkpointer.close()
    writer.close()
    bar.close()
    raise
  bar.close()
  trained_steps = total_steps - start_step
  timed_steps = max(trained_steps - 1, 0)  # The first step (compilation) is not timed.
  examples_per_s = timed_steps * config.batch_size / train_seconds if train_seconds > 0 else 0.0

  figures = eval_report.measured_figures(workdir, trained_steps, train_seconds, examples_per_s)
  eval_state, eval_progress, eval_kind = checkpointer.restore_best_or_latest(abstract_state)
  evaluated = eval_report.evaluated_checkpoint(eval_kind, eval_progress, checkpointer.problems)
  if eval_progress is None:
    eval_state, eval_progress = state, progress_dict(total_steps)
  metrics = trainer.evaluator.report_metrics(eval_state, splits)
  report = provenance.to_jsonable(eval_report.build_eval_report(config, run={
      "model_type": config.model_type,
      "num_params": num_params,
      "steps": total_steps,
      "evaluated_step": int(eval_progress["step"]),
      "resumed_from_step": start_step,
      "devices": jax.device_count(),
      "device_kind": jax.devices()[0].device_kind,
      "evaluated_checkpoint": evaluated,
      "best_validation_accuracy": best_accuracy,
      "wall_time_s": time.perf_counter() - run_start,
      "tokenizer_path": tokenizer_copy,
      "data_summary": datasets.summary,
  }, figures=figures, metrics=metrics, epoch_examples=steps_per_epoch * config.batch_size))
  if is_chief:
    eval_report.write_eval_report(workdir, report)
    if trained_steps:  # A finished run started again already logged its test row.
      writer.write(total_steps, "test", report["test"])
  checkpointer.close()
  writer.close()
  return report
