"""Training loop: data-parallel AdamW training, periodic validation, checkpoints, final report.

Axes (``mamba_jax.notation``): b, l, c.

``train_and_evaluate(config, workdir)`` trains ``config.model_type`` on
``config.dataset``, resuming from ``<workdir>/checkpoints`` when present, and
writes ``<workdir>/eval_report.json`` (its fields: ``train.runs.eval_report.build_eval_report``;
the workdir's files: ``train.runs.model_dir``); validation and the final evaluation run through
``train.loop.evaluation.Evaluator``. The batch is split over every device (``jax.sharding`` mesh,
parameters replicated).
"""

from __future__ import annotations

import contextlib
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

from train.data import batching, held_out_texts, normalization, pipeline
from train.data.datasets import Split
from train.data import summary as summary_lib
from train.loop import evaluation, input_feed, models, pretrained_init, tasks
from train.loop.metric_logging import MetricWriter
from train.loop.optimizer import create_optimizer, learning_rate_schedule
from train.loop.train_state import TrainState
from train.runs import checkpointing, classes, distributed, eval_report, preemption, provenance, workdir_lock
from train.runs import workdir as workdir_lib
from train.scoring import metrics as metrics_lib
from train.scoring import per_example


class NonFiniteLossError(RuntimeError):
  """The training loss became NaN or inf."""


def total_train_steps(config: ml_collections.ConfigDict, steps_per_epoch: int) -> int:
  """``num_train_steps`` if set, else ``num_epochs`` epochs, capped at ``train_examples_budget`` examples (if > 0)."""
  if config.num_train_steps and config.num_train_steps > 0:
    return int(config.num_train_steps)
  steps = int(config.num_epochs * steps_per_epoch)
  if config.get("train_examples_budget", 0) > 0:
    steps = min(steps, max(1, config.train_examples_budget // config.batch_size))
  return steps


def create_train_state(config: ml_collections.ConfigDict, model, rng: jax.Array,
                       total_steps: int, init_from: Optional[str] = None,
                       class_names=classes.BINARY) -> TrainState:
  """Initializes parameters (float32) and the optimizer for ``total_steps`` steps.

  ``rng``: a key (``jax.random.key``; a legacy uint32 ``PRNGKey`` gives the same values).
  ``init_from``: a classifier (export or workdir) whose weights are loaded, or a pretrained
  Mamba checkpoint folder whose backbone replaces the initial backbone
  (``train.loop.pretrained_init``); None: all freshly initialized. ``class_names``: the run's
  classes (a classifier's head is kept only when they are its own).
  """
  if not jnp.issubdtype(rng.dtype, jax.dtypes.prng_key):
    rng = jax.random.wrap_key_data(rng)
  params_rng, dropout_rng = jax.random.split(rng)
  params = models.init_params(config, model, params_rng)
  if init_from:
    params = jax.tree_util.tree_map(
        jnp.asarray, pretrained_init.init_from_pretrained(init_from, model, params, class_names))
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
    task: what the model is scored on (a ``train.loop.tasks`` task).
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

  def __init__(self, config: ml_collections.ConfigDict, model, total_steps: int, train_split=None,
               class_names=classes.BINARY):
    """``train_split``: what a task may derive from the training data (the LM's sampled softmax);
    ``class_names``: the classes of the data (``config.init_from``'s head is kept only for its own)."""
    self.config = config
    self.task = models.task_of(config).for_run(config, train_split)
    self.mesh = input_feed.make_mesh()
    input_feed.check_batch_size(config.batch_size)
    input_feed.check_batch_size(config.eval_batch_size, "eval_batch_size")
    replicated = input_feed.replicated(self.mesh)
    sharded = input_feed.batch_sharding(self.mesh)
    state = create_train_state(config, model, jax.random.key(config.seed), total_steps,
                               init_from=config.init_from, class_names=class_names)
    distributed.wait_for_all("train_state")  # The processes' first computation together follows.
    self.initial_state = jax.device_put(state, replicated)
    step_fn = functools.partial(train_step, task=self.task, label_smoothing=config.label_smoothing,
                                nan_after_step=config.debug_nan_after_step)
    self.train_step = jax.jit(step_fn, in_shardings=(replicated, sharded),
                              out_shardings=(replicated, replicated), donate_argnums=(0,))
    self.evaluator = evaluation.Evaluator(config, self.task, self.mesh,
                                          evaluation.jit_eval_step(self.task, self.mesh))


class RunClock:
  """The run's one clock: wall time since the run started, and training time.

  Training time runs only while steps are trained: from the end of the first step of this
  process (compilation excluded) on, paused during validation and checkpoint saves.
  """

  def __init__(self):
    self.start = time.perf_counter()
    self._trained_s = 0.0
    self._since: Optional[float] = None  # When training time last resumed; None: paused.

  def wall_s(self) -> float:
    return time.perf_counter() - self.start

  def resume(self) -> None:
    """Starts (or resumes) counting training time."""
    self._since = time.perf_counter()

  def pause(self) -> None:
    """Stops counting training time (validation, saves)."""
    if self._since is not None:
      self._trained_s += time.perf_counter() - self._since
      self._since = None

  def train_s(self) -> float:
    """Training time so far, seconds."""
    running = time.perf_counter() - self._since if self._since is not None else 0.0
    return self._trained_s + running


@dataclasses.dataclass
class MetricsWindow:
  """The step metrics since the last flush: averaged, checked and written at each flush.

  Attributes:
    writer: where the averaged "train" metrics go.
    schedule: step -> learning rate (logged beside the metrics).
    bar: the progress bar whose postfix shows the latest averages.
    checkpoint_dir: named in the error when a step's loss is not finite.
    clock: the run's clock; examples/s is over its training time.
    pending: the device-side metrics dicts of the steps since the last flush.
    start_s: the clock's training time when the window started.
    examples: training examples seen since the window started.
  """

  writer: MetricWriter
  schedule: Callable[[int], float]
  bar: tqdm
  checkpoint_dir: str
  clock: RunClock
  pending: list = dataclasses.field(default_factory=list)
  start_s: float = 0.0
  examples: int = 0

  def add(self, metrics: dict, num_examples: int) -> None:
    """Records one step's metrics (left on the device until the flush) and its batch size."""
    self.pending.append(metrics)
    self.examples += num_examples

  def reset(self) -> None:
    """Starts the window's throughput count afresh (after compilation, after a flush)."""
    self.start_s = self.clock.train_s()
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
    elapsed = max(self.clock.train_s() - self.start_s, 1e-9)
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


@dataclasses.dataclass
class Run:
  """What the steps of ``train_and_evaluate`` hand on to each other.

  Attributes:
    config, workdir: as given (``workdir`` absolute).
    is_chief: this is process 0, which alone writes the workdir's files outside checkpoints.
    datasets: the four splits, tokenized (``train.data.datasets.Datasets``).
    tokenizer_copy: the tokenizer copied into the workdir (None: none, or not the chief).
    trainer: the compiled steps.
    total_steps, steps_per_epoch: of the whole run.
    bounds: the length buckets of the train split.
    num_params: parameters of the model.
    abstract_state: shapes, dtypes and shardings of the state (its buffers get donated).
    checkpointer: the run's checkpoints.
    writer: metrics.jsonl and TensorBoard.
    state: the state to train from (restored or initial), then the trained state.
    start_step: the step ``state`` is at (0: a fresh start).
    best_accuracy: the best validation accuracy so far (None: none yet).
    best_score: the best validation ``config.best_checkpoint_metric`` so far, which picks the best
      checkpoint (None: none yet).
    eval_every, checkpoint_every: the validation and save cadence in steps (``cadence_steps``).
    clock: the run's clock (set by ``train_and_evaluate``).
    spent_before_s: wall time the earlier runs of this workdir spent up to the restored
      checkpoint (its progress' ``wall_time_total_s``; counts against ``config.budget_minutes``).
    final_step: the last step trained (``total_steps``, or less when the budget stopped training).
    stopped_by_budget: training stopped at ``config.budget_minutes``.
  """

  config: ml_collections.ConfigDict
  workdir: str
  is_chief: bool
  datasets: Any = None
  tokenizer_copy: Optional[str] = None
  trainer: Optional[Trainer] = None
  total_steps: int = 0
  steps_per_epoch: int = 0
  bounds: Any = None
  num_params: int = 0
  abstract_state: Any = None
  checkpointer: Optional[checkpointing.Checkpointer] = None
  writer: Optional[MetricWriter] = None
  state: Optional[TrainState] = None
  start_step: int = 0
  best_accuracy: Optional[float] = None
  best_score: Optional[float] = None
  eval_every: int = 0
  checkpoint_every: int = 0
  clock: Optional["RunClock"] = None
  spent_before_s: float = 0.0
  final_step: int = 0
  stopped_by_budget: bool = False

  def wall_time_total_s(self) -> float:
    """Wall time of this workdir's runs up to now (this run's and the earlier ones' up to the restored step)."""
    return self.spent_before_s + (self.clock.wall_s() if self.clock is not None else 0.0)

  def budget_spent(self) -> bool:
    """Whether ``config.budget_minutes`` (> 0) of wall time are used up."""
    budget_s = 60.0 * float(self.config.budget_minutes)
    return budget_s > 0 and self.wall_time_total_s() >= budget_s

  def progress(self, step: int) -> dict:
    """The ``progress`` item of a checkpoint of ``step``."""
    return {"step": step, "best_validation_accuracy": self.best_accuracy,
            "best_validation_score": self.best_score, "total_steps": self.total_steps,
            "examples_seen": step * self.config.batch_size, "wall_time_total_s": self.wall_time_total_s()}


def cadence_steps(every_steps: int, every_epochs: Optional[float], steps_per_epoch: int) -> int:
  """Steps between validations (or saves): ``every_epochs`` of an epoch when set, else ``every_steps``; >= 1."""
  if every_epochs is None:
    return max(int(every_steps), 1)
  if every_epochs <= 0:
    raise ValueError(f"a cadence in epochs must be > 0, got {every_epochs}")
  return max(int(round(every_epochs * steps_per_epoch)), 1)


def print_plan(run: Run) -> None:
  """One line of what the run will do: rows, steps, epochs, validations, saves, batch."""
  config = run.config
  rows = len(run.datasets.splits["train"])
  remaining = run.total_steps - run.start_step
  evaluations = remaining // run.eval_every + (run.total_steps % run.eval_every != 0)
  saves = remaining // run.checkpoint_every + (run.total_steps % run.checkpoint_every != 0)
  print(f"Plan: {rows:,} training rows, {run.total_steps:,} steps of {config.batch_size} "
        f"({run.total_steps / run.steps_per_epoch:.2f} epochs of {run.steps_per_epoch:,} steps), "
        f"{remaining:,} to go; validation every {run.eval_every:,} steps ({evaluations} more, "
        f"{len(run.datasets.splits['validation']):,} rows each), a save every {run.checkpoint_every:,} "
        f"steps; best checkpoint by validation {config.best_checkpoint_metric}.", flush=True)


def claim_workdir(run: Run, start_over: bool, cleanup: contextlib.ExitStack) -> None:
  """Step 1: the workdir's lock (released by ``cleanup``), then its config (``train.runs.workdir``).

  Raises:
    train.runs.workdir_lock.WorkdirInUse: another run is training in the workdir (nothing touched).
  """
  if run.is_chief:
    cleanup.enter_context(workdir_lock.WorkdirLock(run.workdir))
    workdir_lib.claim(run.config, run.workdir, start_over=start_over)


def load_data(run: Run) -> None:
  """Step 2: the datasets (prepared on first use), the unused-row line, the tokenizer copy, classes.json.

  A classifier as ``config.init_from`` is checked against the config first, and its tokenizer
  encodes the data (``train.loop.pretrained_init.classifier_source``).

  Raises:
    ValueError: ``config.init_from`` does not fit (architecture, tokenizer), or the workdir's
      checkpoints were trained on other classes than the data has now.
  """
  config = run.config
  source = pretrained_init.classifier_source(config.init_from)
  if source is not None:
    pretrained_init.check_classifier_source(config, source)
  run.datasets = pipeline.get_datasets(config, given_tokenizer=source.tokenizer_path if source else None)
  if source is not None and source.tokenizer_path and run.is_chief:
    print(f"init_from {source.path}: its tokenizer encodes the data (vocab {run.datasets.vocab_size}; "
          f"config.vocab_size {config.vocab_size} is not used).", flush=True)
  if run.is_chief and run.datasets.summary.get("malformed_by_reason"):
    print(summary_lib.describe_unused_rows(run.datasets.summary), flush=True)
  run.tokenizer_copy = _copy_tokenizer(run.datasets, run.workdir) if run.is_chief else None
  pretrained_init.check_tokenizer(config.init_from, run.datasets.tokenizer_path)
  if run.is_chief:
    _claim_classes(run.workdir, run.datasets.class_names)


def _claim_classes(workdir: str, class_names) -> None:
  """Writes ``<workdir>/classes.json``; refuses when the workdir's checkpoints learned other classes."""
  if os.path.isfile(os.path.join(workdir, classes.CLASSES_FILE)) and workdir_lib.has_checkpoints(workdir):
    earlier = classes.read(workdir)
    if earlier != tuple(class_names):
      raise ValueError(f"{workdir} holds checkpoints of the classes {list(earlier)}, but the data now has "
                       f"{list(class_names)}; resuming would mix two runs: use a new --workdir or --start_over")
  classes.write(workdir, class_names)


def build_state(run: Run, cleanup: contextlib.ExitStack) -> None:
  """Step 3: model, compiled steps, checkpointer and the state to train from (restored if any).

  The checkpointer and the metric writer are closed by ``cleanup``.
  """
  config = run.config
  train_split = run.datasets.splits["train"]
  class_names = run.datasets.class_names
  model = models.create_model(config, run.datasets.tokenizer.vocab_size, len(class_names))
  run.bounds = batching.config_bounds(config, train_split.max_length)
  run.steps_per_epoch = batching.steps_per_epoch(train_split, config.batch_size, run.bounds)
  if run.steps_per_epoch == 0:
    raise ValueError(f"the train split has {len(train_split)} examples, fewer than one batch of "
                     f"{config.batch_size} (config.batch_size); lower it or add rows")
  run.total_steps = total_train_steps(config, run.steps_per_epoch)
  run.eval_every = cadence_steps(config.eval_every_steps, config.eval_every_epochs, run.steps_per_epoch)
  run.checkpoint_every = cadence_steps(config.checkpoint_every_steps, config.checkpoint_every_epochs,
                                       run.steps_per_epoch)
  run.trainer = Trainer(config, model, run.total_steps, train_split, class_names)
  run.num_params = models.count_params(run.trainer.initial_state.params)
  run.abstract_state = checkpointing.abstract_like(run.trainer.initial_state)
  checkpoint_dir = os.path.join(run.workdir, "checkpoints")
  run.checkpointer = checkpointing.Checkpointer(checkpoint_dir, keep=config.keep_checkpoints,
                                                async_save=config.async_checkpointing,
                                                repair=run.is_chief)
  cleanup.callback(run.checkpointer.close)
  run.state, progress = run.checkpointer.restore_latest(run.trainer.initial_state)
  run.start_step = int(progress["step"]) if progress else 0
  run.final_step = run.start_step
  run.best_accuracy = progress.get("best_validation_accuracy") if progress else None
  run.spent_before_s = float(progress.get("wall_time_total_s", 0.0)) if progress else 0.0
  # A checkpoint written before best_validation_score existed was picked by accuracy.
  run.best_score = progress.get("best_validation_score", run.best_accuracy) if progress else None
  if run.start_step:
    print(f"Resuming from step {run.start_step} ({checkpoint_dir}).", flush=True)
  logging.info("%s: %d parameters, %d steps (%d per epoch), %d devices, length buckets %s "
               "(one compiled train and eval step per bucket).", config.model_type, run.num_params,
               run.total_steps, run.steps_per_epoch, jax.device_count(), run.bounds)
  run.writer = MetricWriter(run.workdir, resume_step=run.start_step)
  cleanup.callback(run.writer.close)


def train_loop(run: Run, clock: RunClock) -> None:
  """Step 4: trains from ``run.start_step`` to the last step, validating and saving on the way.

  On SIGTERM/SIGINT (``train.runs.preemption``) the current step is finished and saved. With
  ``config.budget_minutes`` > 0 the step at which the workdir's wall time reaches the budget is the
  last: it is validated and saved like the planned last step (a run whose budget is already spent
  trains no step).

  Raises:
    NonFiniteLossError: the loss became NaN/inf (the latest checkpoint is the last good one).
    train.runs.preemption.Preempted: stopped by a signal after saving the step it had reached.
    train.runs.checkpointing.CheckpointDiskFull: a save ran out of disk space.
  """
  config, trainer, checkpointer = run.config, run.trainer, run.checkpointer
  feed = input_feed.train_feed(config, run.datasets.splits["train"], start_step=run.start_step,
                               mesh=trainer.mesh)
  last_saved = checkpointer.latest_step()
  state = run.state
  with tqdm(total=run.total_steps, initial=run.start_step, desc=f"train {config.model_type}", unit="step",
            mininterval=1.0, disable=not run.is_chief) as bar, preemption.StopOnSignal() as signals:
    window = MetricsWindow(run.writer, learning_rate_schedule(config, run.total_steps), bar,
                           checkpointer.directory, clock)
    steps = range(run.start_step + 1, run.total_steps + 1)
    if run.budget_spent():
      steps = range(0)
      run.stopped_by_budget = run.start_step < run.total_steps
    estimated = False
    for step in steps:
      state, metrics = trainer.train_step(state, next(feed))
      window.add(metrics, config.batch_size)
      bar.update(1)
      _show_first_losses(bar, step, run.start_step, metrics, config.log_every_steps)
      if step == run.start_step + 1:  # Exclude compilation from the training time.
        jax.block_until_ready(metrics)
        clock.resume()
        window.reset()
      run.stopped_by_budget = step < run.total_steps and run.budget_spent()
      is_last = step == run.total_steps or run.stopped_by_budget
      stop = signals.should_stop(step) and not is_last  # Called every step, on every process.
      evaluate = is_last or step % run.eval_every == 0
      save = is_last or stop or step % run.checkpoint_every == 0
      if is_last or evaluate or save or step % config.log_every_steps == 0:
        summary = window.flush(step, last_saved)
        if not estimated and not is_last and summary["examples_per_s"] > 0:
          estimated = True  # The first window's speed, compilation excluded.
          minutes = (run.total_steps - step) * config.batch_size / summary["examples_per_s"] / 60
          bar.write(f"Estimated training time left: {minutes:.1f} min at {summary['examples_per_s']:.0f} "
                    f"examples/s (validations and saves not counted).")
      if evaluate or save:
        clock.pause()
      if evaluate:
        metrics_val = trainer.evaluator.task_metrics(state, run.datasets.splits["validation"], "validation")
        run.writer.write(step, "validation", metrics_val)
        if run.best_accuracy is None or metrics_val["accuracy"] > run.best_accuracy:
          run.best_accuracy = metrics_val["accuracy"]
        score = metrics_val[config.best_checkpoint_metric]
        if run.best_score is None or score > run.best_score:
          run.best_score = score
        checkpointer.save_best(step, state, run.progress(step), score)
        bar.write(f"step {step}: validation accuracy {metrics_val['accuracy']:.4f} "
                  f"loss {metrics_val['loss']:.4f}")
      if save:
        checkpointer.save_latest(step, state, run.progress(step))
        last_saved = step
      if stop:
        checkpointer.wait()  # Complete on disk before the process ends.
        raise preemption.Preempted(signals.signal_name(), step, checkpointer.directory)
      if evaluate or save:
        clock.resume()
      run.final_step = step
      if is_last:
        break
    checkpointer.wait()
  run.state = state


def final_evaluation(run: Run) -> tuple[dict, dict, dict]:
  """Step 5: the split metrics of the best checkpoint (else the newest readable, else the trained state).

  Returns:
    (metrics per split, the evaluated checkpoint's progress, ``eval_report.evaluated_checkpoint``).
  """
  eval_state, eval_progress, eval_kind = run.checkpointer.restore_best_or_latest(run.abstract_state)
  evaluated = eval_report.evaluated_checkpoint(eval_kind, eval_progress, run.checkpointer.problems)
  if eval_progress is None:
    eval_state, eval_progress = run.state, run.progress(run.final_step)
  evaluator = run.trainer.evaluator
  outputs = evaluator.report_outputs(eval_state, run.datasets.splits)
  raw = {}  # The held-out splits' raw texts, for the classifier's slices (hashtags, all-caps words).
  if isinstance(evaluator.task, tasks.Classification):
    raw = held_out_texts.raw_texts(run.config, run.datasets.splits, evaluator.task.reported_splits,
                                   log=logging.info)
    if run.is_chief:
      per_example.write(run.workdir, per_example_record(run, eval_state, outputs))
  return evaluator.report_metrics(outputs, run.datasets.splits, raw), eval_progress, evaluated


def per_example_record(run: Run, eval_state: TrainState, outputs: dict) -> dict:
  """The evaluated classifier's ``train.scoring.per_example`` record: the manual test, the held-out test's
  sample and (Sentiment140) the reference tweets."""
  splits, parts = run.datasets.splits, {}
  for name, part_name in (("manual_test", "manual_test"), ("test", "test_sample")):
    split = splits.get(name)
    if name not in outputs or split is None or split.texts is None:
      continue
    keys = per_example.row_keys(split.texts)
    rows = np.arange(len(keys)) if name == "manual_test" else per_example.sample_rows(keys)
    probs = metrics_lib.softmax(outputs[name])
    parts[part_name] = per_example.part([keys[i] for i in rows], split.labels[rows], probs[rows])
  if run.config.dataset == "sentiment140":
    texts = list(per_example.REFERENCE_TWEETS)
    tokens = np.asarray(run.datasets.tokenizer.encode(texts))
    reference = Split(tokens=tokens, labels=np.full(len(texts), -1, np.int32))
    probs = run.trainer.evaluator.probabilities(eval_state, reference)
    parts["reference"] = per_example.part(per_example.row_keys(normalization.normalize_many(texts)),
                                          reference.labels, probs)
  return per_example.build(run.datasets.class_names, parts)


def write_report(run: Run, clock: RunClock, metrics: dict, eval_progress: dict, evaluated: dict) -> dict:
  """Step 6: ``<workdir>/eval_report.json`` (the chief writes it) and the test row of the metrics.

  The measured figures (training time, examples/s) are this run's, or, for a finished run
  started again, the earlier report's (``eval_report.measured_figures``).
  """
  config = run.config
  trained_steps = run.final_step - run.start_step
  timed_steps = max(trained_steps - 1, 0)  # The first step (compilation) is not timed.
  train_s = clock.train_s()
  examples_per_s = timed_steps * config.batch_size / train_s if train_s > 0 else 0.0
  figures = eval_report.measured_figures(run.workdir, trained_steps, train_s, examples_per_s)
  report = provenance.to_jsonable(eval_report.build_eval_report(config, run={
      "model_type": config.model_type,
      "num_params": run.num_params,
      "steps": run.final_step,
      "planned_steps": run.total_steps,
      "examples_seen": run.final_step * config.batch_size,
      "budget_minutes": float(config.budget_minutes),
      "stopped_by_budget": run.stopped_by_budget,
      "wall_time_total_s": run.wall_time_total_s(),
      "evaluated_step": int(eval_progress["step"]),
      "resumed_from_step": run.start_step,
      "devices": jax.device_count(),
      "device_kind": jax.devices()[0].device_kind,
      "evaluated_checkpoint": evaluated,
      "best_validation_accuracy": run.best_accuracy,
      "best_checkpoint_metric": config.best_checkpoint_metric,
      "best_validation_score": run.best_score,
      "wall_time_s": clock.wall_s(),
      "tokenizer_path": run.tokenizer_copy,
      "data_summary": run.datasets.summary,
  }, figures=figures, metrics=metrics, epoch_examples=run.steps_per_epoch * config.batch_size))
  if run.is_chief:
    eval_report.write_eval_report(run.workdir, report)
    if trained_steps:  # A finished run started again already logged its test row.
      run.writer.write(run.final_step, "test", report["test"])
  return report


def train_and_evaluate(config: ml_collections.ConfigDict, workdir: str, *, start_over: bool = False) -> dict:
  """Trains (resuming if possible), evaluates and writes ``<workdir>/eval_report.json``.

  The steps: claim the workdir, load the data, build the state, train, evaluate, report. One
  clock times the run; one cleanup (the ``ExitStack``) closes whatever was opened, however
  the run ends.

  ``start_over``: delete the workdir's earlier checkpoints, metrics and report first
  (see train.runs.workdir).

  Returns:
    the eval report dict.
  Raises:
    NonFiniteLossError: the loss became NaN/inf (the latest checkpoint is the last good one).
    train.runs.preemption.Preempted: SIGTERM/SIGINT; the step reached was saved.
    train.runs.checkpointing.CheckpointDiskFull: a checkpoint save ran out of disk space.
    train.runs.workdir.WorkdirConfigMismatch: the workdir holds checkpoints of another config.
    train.runs.workdir_lock.WorkdirInUse: another run is training in the workdir.
  """
  clock = RunClock()
  distributed.initialize(config)
  if config.budget_minutes and jax.process_count() > 1:
    raise ValueError("config.budget_minutes is for single-process runs (each process has its own clock)")
  run = Run(config=config, workdir=os.path.abspath(workdir), is_chief=jax.process_index() == 0, clock=clock)
  with contextlib.ExitStack() as cleanup:
    claim_workdir(run, start_over, cleanup)
    load_data(run)
    build_state(run, cleanup)
    print_plan(run)
    train_loop(run, clock)
    metrics, eval_progress, evaluated = final_evaluation(run)
    return write_report(run, clock, metrics, eval_progress, evaluated)
