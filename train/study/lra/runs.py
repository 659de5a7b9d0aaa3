"""Runs of the Long Range Arena study: one (task, model) trained by the project's trainer within a budget.

``run(options)`` trains every selected model on one task in ``<workdir_root>/<task>/<model>``
with ``train.loop.trainer.train_and_evaluate`` (length buckets, checkpoints, resume, preemption, the
eval report) and writes the run's record to ``<output_dir>/runs/<task>__<model>.json``.

With a wall-clock budget (``budget_minutes`` > 0) the learning-rate schedule is fitted to it
first: one training step at the task's typical length is compiled and timed (``probe_step_s``),
and ``num_train_steps`` is set to the steps that fit ``SCHEDULE_SHARE`` of what remains of the
budget (warmup 5% of them, at most the config's), so the cosine schedule ends about when the
budget does; the budget itself (``config.budget_minutes``, what remains after the probe) stops
training wherever the schedule is. A stopped run started again keeps its fitted schedule and
its remaining budget (the workdir's config and checkpoints say both): it resumes, or, when the
budget is spent, only evaluates again.

A (task, model) whose record exists is finished: ``run`` skips it when the record was made with the
same inputs (``run_inputs``: the config before fitting, but where the data lies, and the requested
budget), even where its workdir is gone (another machine), and stops with a one-line error when it
was made with other inputs (``start_over`` runs it again and replaces the record).
"""

from __future__ import annotations

import dataclasses
import json
import os
import statistics
import time
from typing import Callable, Optional, Sequence

import jax
import ml_collections
import numpy as np

from configs import lra as lra_configs
from train.loop import input_feed, models, trainer
from train.runs import eval_report, provenance
from train.runs import workdir as workdir_lib
from train.data import batching, pipeline
from train.data.lra import tasks as lra_tasks

SCHEDULE_SHARE = 0.7  # Of the remaining budget, the share the fitted schedule plans for (the rest: evaluation, saves).
PROBE_STEPS = 3  # Timed steps after the compiling one.
MIN_STEPS = 10  # A fitted schedule has at least this many steps.
FITTED_FIELDS = ("num_train_steps", "warmup_steps", "budget_minutes")  # What fitting sets.
# Where the data lies on this machine: not what a run computes (the cached data's key says that).
LOCATION_FIELDS = ("data_dir", "lra_data_dir", "prepared_dir")


@dataclasses.dataclass
class LraOptions:
  """One invocation of ``python -m train.lra`` (see its flags)."""

  task: Optional[str]
  models: Sequence[str]
  budget_minutes: float = 0.0
  workdir_root: str = "workdirs/lra"
  output_dir: str = "results/lra"
  seed: int = 0
  overrides: dict = dataclasses.field(default_factory=dict)
  start_over: bool = False
  quick: bool = False  # configs/lra.py's quick(): tiny models and data, a few steps (a smoke test).
  command: str = ""


def build_config(task: str, model: str, options: LraOptions) -> ml_collections.ConfigDict:
  """configs/lra.py's "<task>,<model>" (made tiny with ``options.quick``), the overrides (existing fields
  only), the seed.

  Raises:
    ValueError: an unknown task, model or field.
  """
  if task not in lra_tasks.TASKS:
    raise ValueError(f"unknown task {task!r}; one of {', '.join(lra_tasks.TASKS)}")
  config = lra_configs.get_config(f"{task},{model}")
  if options.quick:
    lra_configs.quick(config, model)
  for dotted, value in options.overrides.items():
    *parents, leaf = dotted.split(".")
    node = config
    for part in parents:
      if part not in node or not isinstance(node[part], ml_collections.ConfigDict):
        raise ValueError(f"--set {dotted}: the config has no field {part!r}")
      node = node[part]
    if leaf not in node:  # config.model holds the study model's fields: its others keep their defaults.
      raise ValueError(f"--set {dotted}: the {task},{model} config has no field {leaf!r}")
    try:
      node[leaf] = value
    except (TypeError, ValueError) as e:
      raise ValueError(f"--set {dotted}={value!r}: {e}") from None
  config.seed = int(options.seed)
  return config


def param_counts(task: str) -> dict[str, int]:
  """Parameters of every study model at ``task`` (shapes only; nothing is computed)."""
  counts = {}
  for model in lra_configs.MODELS:
    config = lra_configs.get_config(f"{task},{model}")
    num_classes = len(lra_tasks.TASKS[task].class_names)
    shapes = models.parameter_shapes(config, models.create_model(config, config.vocab_size, num_classes))
    counts[model] = models.count_params(shapes)
  return counts


def typical_length(config, train_split) -> int:
  """The padded length of a typical training batch: the bucket bound holding the median example."""
  bounds = batching.config_bounds(config, train_split.max_length)
  lengths = batching.example_lengths(train_split.tokens)
  return int(bounds[int(np.searchsorted(bounds, int(np.median(lengths)), side="left"))])


def probe_step_s(config, datasets) -> float:
  """Median seconds of one training step (``PROBE_STEPS`` timed after a compiling one) at the typical length.

  Timed through the trainer's own compiled step (``trainer.Trainer``: its donated state and shardings),
  the program the run then executes; a plain ``jax.jit`` of ``train_step`` ran ~1.4x slower on the
  CPU and made the fitted schedule end after about 60% of its budget.
  """
  train_split = datasets.splits["train"]
  length = typical_length(config, train_split)
  model = models.create_model(config, datasets.vocab_size, len(datasets.class_names))
  probe = trainer.Trainer(config, model, total_steps=1000, train_split=train_split,
                          class_names=datasets.class_names)
  rows = np.arange(config.batch_size) % len(train_split)
  batch = batching.make_batch(train_split, rows, np.ones(len(rows), np.float32), length)
  state, metrics = probe.train_step(probe.initial_state, batch)
  jax.block_until_ready(metrics)
  times = []
  for _ in range(PROBE_STEPS):
    start = time.perf_counter()
    state, metrics = probe.train_step(state, batch)
    jax.block_until_ready(metrics)
    times.append(time.perf_counter() - start)
  return float(statistics.median(times))


def _stored_config(workdir: str) -> Optional[dict]:
  """The config of the workdir's checkpoints, if it has any."""
  path = os.path.join(workdir, workdir_lib.CONFIG_FILE)
  if not (os.path.isfile(path) and workdir_lib.has_checkpoints(workdir)):
    return None
  with open(path, encoding="utf-8") as f:
    return json.load(f)


def fit_to_budget(config, budget_minutes: float, workdir: str, log: Callable[[str], None]) -> dict:
  """Sets ``FITTED_FIELDS`` of ``config`` for a run of ``budget_minutes``; returns what was decided.

  A workdir whose checkpoints were made by this config with fitted fields keeps those (resume).
  """
  stored = _stored_config(workdir)
  if stored is not None:
    candidate = {**workdir_lib.as_json_dict(config), **{name: stored.get(name) for name in FITTED_FIELDS}}
    if not workdir_lib.result_differences(stored, candidate):
      for name in FITTED_FIELDS:
        config[name] = stored[name]
      log(f"resuming {workdir}: its fitted schedule ({config.num_train_steps} steps) and budget "
          f"({config.budget_minutes:.2f} min of the run) stay")
      return {"resumed": True, "num_train_steps": config.num_train_steps}
  start = time.perf_counter()
  datasets = pipeline.get_datasets(config, log=log)
  step_s = probe_step_s(config, datasets)
  probe_s = time.perf_counter() - start
  remaining_s = budget_minutes * 60.0 - probe_s
  if remaining_s <= 0:
    raise ValueError(f"the budget of {budget_minutes} min is spent by preparing the data and timing a "
                     f"step ({probe_s:.0f} s); give a larger --budget_minutes")
  steps = max(MIN_STEPS, int(SCHEDULE_SHARE * remaining_s / step_s))
  config.num_train_steps = steps
  config.warmup_steps = max(1, min(int(config.warmup_steps), steps // 20))
  config.budget_minutes = remaining_s / 60.0
  log(f"{config.dataset} {config.model_type}: {step_s * 1e3:.0f} ms per step at length "
      f"{typical_length(config, datasets.splits['train'])}; schedule fitted to {steps} steps "
      f"({remaining_s / 60:.1f} min left of {budget_minutes} after {probe_s:.0f} s of preparation)")
  return {"resumed": False, "probe_step_s": step_s, "probe_s": probe_s, "num_train_steps": steps}


def run_file(output_dir: str, task: str, model: str) -> str:
  return os.path.join(output_dir, "runs", f"{task}__{model}.json")


def run_inputs(config: ml_collections.ConfigDict, options: LraOptions) -> dict:
  """What a record's numbers depend on: ``config`` as built, before fitting (every field but
  ``FITTED_FIELDS`` and ``LOCATION_FIELDS``), and the requested budget."""
  fields = {name: value for name, value in workdir_lib.as_json_dict(config).items()
            if name not in FITTED_FIELDS + LOCATION_FIELDS}
  return {"config": fields, "budget_minutes": float(options.budget_minutes)}


def finished_record(path: str, inputs: dict) -> Optional[dict]:
  """The record at ``path`` if it was made with ``inputs``; None when there is none.

  Raises:
    ValueError: the record was made with other inputs (or predates them).
  """
  return provenance.recorded_run(path, inputs, _first_difference, "move it away or run with --start_over")


def _first_difference(stored: dict, inputs: dict) -> str:
  """The first input that differs, as "name: old, now new" ("" when none)."""
  if "config" not in stored:
    return "none recorded"
  differences = [difference for difference in workdir_lib.result_differences(stored["config"], inputs["config"])
                 if difference[0] not in FITTED_FIELDS + LOCATION_FIELDS]
  if stored["budget_minutes"] != inputs["budget_minutes"]:
    differences.insert(0, ("budget_minutes", stored["budget_minutes"], inputs["budget_minutes"]))
  if not differences:
    return ""
  name, old, new = differences[0]
  return f"{name}: {old!r}, now {new!r}"


def run_one(task: str, model: str, options: LraOptions, log: Callable[[str], None] = print) -> dict:
  """Trains (or resumes, or re-evaluates) one (task, model); writes and returns its record; returns the
  existing record of a finished one (``finished_record``) without training."""
  config = build_config(task, model, options)
  path = run_file(options.output_dir, task, model)
  inputs = run_inputs(config, options)
  if not options.start_over:
    record = finished_record(path, inputs)
    if record is not None:
      log(f"{task} {model}: finished already ({path}); skipped")
      return record
  workdir = os.path.join(options.workdir_root, task, model)
  if options.start_over and os.path.isdir(workdir):
    workdir_lib.clear_run_outputs(workdir)
  fitted = fit_to_budget(config, options.budget_minutes, workdir, log) if options.budget_minutes > 0 else {}
  report = trainer.train_and_evaluate(config, workdir)
  record = {
      "task": task, "model": model, "title": lra_tasks.TASKS[task].title, "command": options.command,
      "workdir": os.path.abspath(workdir), "budget_minutes_requested": options.budget_minutes,
      "fitted_schedule": fitted, "test_accuracy": report["test"]["accuracy"],
      "validation_accuracy": report["validation"]["accuracy"], "examples_seen": report["examples_seen"],
      "steps": report["steps"], "stopped_by_budget": report["stopped_by_budget"],
      "wall_time_total_s": report["wall_time_total_s"], "num_params": report["num_params"],
      "examples_per_s": report["examples_per_s"], "inputs": inputs,
      "environment": provenance.environment(jax.devices()[0], options.command),
      "report": report,
  }
  os.makedirs(os.path.dirname(path), exist_ok=True)
  with open(path, "w", encoding="utf-8") as f:
    json.dump(provenance.to_jsonable(record), f, indent=1)
  log(f"{task} {model}: test accuracy {report['test']['accuracy']:.4f} after {report['examples_seen']:,} "
      f"examples ({report['steps']} steps{', stopped by the budget' if report['stopped_by_budget'] else ''}); "
      f"{eval_report.report_path(os.path.abspath(workdir))}")
  return record


def run(options: LraOptions, log: Callable[[str], None] = print) -> list[dict]:
  """``run_one`` for every model of ``options`` (each config and existing record checked first, before any
  training)."""
  for model in options.models:
    config = build_config(options.task, model, options)
    if not options.start_over:
      finished_record(run_file(options.output_dir, options.task, model), run_inputs(config, options))
  input_feed.check_batch_size(build_config(options.task, options.models[0], options).batch_size)
  return [run_one(options.task, model, options, log) for model in options.models]

