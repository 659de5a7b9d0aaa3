"""A workdir belongs to one training configuration: refuse to mix runs, or start over on request.

``<workdir>/config.json`` is the config that made the workdir's checkpoints. A new run in
the same workdir compares its config with it field by field; fields that change the trained
result (model, data, vocab, max_length, optimizer, schedule, batch size, seed, steps, ...)
must be equal, or the run stops before training (``WorkdirConfigMismatch``, exit code 2 in
``train.main``) and says how to proceed: a new ``--workdir``, or ``--start_over``, which
moves nothing aside but deletes the old checkpoints, metrics and report.

Only the fields of ``RESULT_INDEPENDENT_FIELDS`` may differ; that tuple is the one list of
them (dotted names, e.g. ``"model.scan_method"`` would name a nested field).
"""

from __future__ import annotations

import json
import os
import shutil
from typing import Any

import ml_collections

from train.runs.classes import CLASSES_FILE
from train.runs.eval_report import EVAL_REPORT_FILE, PER_EXAMPLE_FILE

CONFIG_FILE = "config.json"
# Fields that may change between runs of one workdir: they do not change the trained parameters.
RESULT_INDEPENDENT_FIELDS = (
    "log_every_steps",  # Progress bar / metrics.jsonl cadence.
    "eval_every_steps",  # Validation cadence (which step becomes best/ may differ; the training does not).
    "checkpoint_every_steps",  # Save cadence (resume is bit-identical from any saved step).
    "eval_every_epochs",  # Validation cadence in epochs (as eval_every_steps).
    "checkpoint_every_epochs",  # Save cadence in epochs (as checkpoint_every_steps).
    "best_checkpoint_metric",  # Which validated step becomes best/; the training does not change.
    "keep_checkpoints",  # How many latest checkpoints are kept.
    "async_checkpointing",  # Background or foreground writes.
    "prefetch_batches",  # Host input path read-ahead.
    "train_data_on_device",  # Where batches are gathered; the same batches either way.
    "eval_batch_size",  # Evaluation only (the final report is recomputed).
    "neutral_threshold",  # manual_test three-way threshold (the final report is recomputed).
    "ece_bins",  # Calibration bins (the final report is recomputed).
    "distributed",  # Process layout (jax.distributed), not the computation.
    "coordinator_address",  # Where the processes meet (multi-host).
    "num_processes",  # Process layout; the global batch and its order are the same.
    "process_id",  # Which process this is.
    "cpu_collectives",  # CPU collectives implementation of a multi-process run.
    "download",  # Whether missing raw files may be downloaded; the same files either way.
)
# Fields that no longer exist (stored configs and old command lines may still name them): ignored.
RETIRED_FIELDS = (
    "write_tfds",  # The TFDS dataset is always written now (train.data.pipeline); same token ids.
)
# Fields added after configs were first stored, whose defaults (configs/sent140.py) do what a config
# without them did (the own-files fields: unused unless dataset is "labelled_files"; the synthetic
# task's sizes: what train.data.synthetic used when a config had none; class_weighting "none": every
# row weighed 1; train_examples_budget 0: no cap on the epochs). A stored config that lacks one is completed with its default, in a workdir and an
# export alike.
FIELDS_WITH_PAST_DEFAULTS = ("train_file", "validation_file", "test_file", "text_column", "label_column",
                             "label_scheme", "encoding", "delimiter", "synthetic_train_size", "synthetic_eval_size",
                             "budget_minutes", "class_weighting", "train_examples_budget")
# Outputs of a run that --start_over deletes (checkpoints hold the trained state; the rest describe it).
RUN_OUTPUTS = ("checkpoints", "metrics.jsonl", "tensorboard", EVAL_REPORT_FILE, PER_EXAMPLE_FILE, CONFIG_FILE,
               CLASSES_FILE)


class WorkdirConfigMismatch(ValueError):
  """The workdir's checkpoints were made by a config that differs in fields that change the result."""


def flatten(tree: Any, prefix: str = "") -> dict[str, Any]:
  """Nested dicts -> {"a.b": leaf}; tuples become lists (as they are in JSON)."""
  if isinstance(tree, dict):
    out = {}
    for key, value in tree.items():
      out.update(flatten(value, f"{prefix}{key}."))
    return out
  if isinstance(tree, tuple):
    tree = list(tree)
  return {prefix[:-1]: tree}


def as_json_dict(config: ml_collections.ConfigDict) -> dict:
  """The config as the plain dict that ``config.json`` stores."""
  return json.loads(config.to_json_best_effort())


def result_differences(stored: dict, current: dict) -> list[tuple[str, Any, Any]]:
  """(field, stored value, current value) of every result-changing field that differs, sorted.

  A ``FIELDS_WITH_PAST_DEFAULTS`` field that ``stored`` lacks counts as its default (configs/sent140.py).
  """
  from configs import sent140  # pylint: disable=import-outside-toplevel
  defaults = as_json_dict(sent140.get_config())
  stored = {**{name: defaults[name] for name in FIELDS_WITH_PAST_DEFAULTS}, **stored}
  old, new = flatten(stored), flatten(current)
  missing = object()
  differences = []
  for name in sorted(set(old) | set(new)):
    if name in RESULT_INDEPENDENT_FIELDS or name in RETIRED_FIELDS:
      continue
    a, b = old.get(name, missing), new.get(name, missing)
    if a != b:
      differences.append((name, "(absent)" if a is missing else a, "(absent)" if b is missing else b))
  return differences


def complete_stored_config(stored: dict, reference: ml_collections.ConfigDict,
                           source: str) -> ml_collections.ConfigDict:
  """A stored ``config.json`` (of ``source``) as a ConfigDict with every field of today's configs.

  A config written before a field existed lacks it. Result-independent top-level fields
  (``RESULT_INDEPENDENT_FIELDS``, e.g. ``download``) take ``reference``'s value: they cannot
  change what the stored parameters compute; so do ``FIELDS_WITH_PAST_DEFAULTS``. A missing result-changing field is an error,
  never a silent default. Retired fields (``RETIRED_FIELDS``) are dropped. (``model.*`` fields are completed by the model config classes'
  own defaults, as for a config file that leaves them out.)

  Raises:
    ValueError: a top-level field outside ``RESULT_INDEPENDENT_FIELDS`` is missing.
  """
  config = ml_collections.ConfigDict({k: v for k, v in stored.items() if k not in RETIRED_FIELDS})
  missing = [name for name in reference if name not in config]
  result_changing = [name for name in missing
                     if name not in RESULT_INDEPENDENT_FIELDS and name not in FIELDS_WITH_PAST_DEFAULTS]
  if result_changing:
    raise ValueError(f"{source} lacks the config fields {', '.join(result_changing)}: it was written by "
                     "an incompatible version of mamba-jax; retrain or export again")
  for name in missing:
    config[name] = reference[name]
  return config


def has_checkpoints(workdir: str) -> bool:
  """Whether ``<workdir>/checkpoints`` holds any saved step (latest or best)."""
  for kind in ("latest", "best"):
    folder = os.path.join(workdir, "checkpoints", kind)
    if os.path.isdir(folder) and any(name.isdigit() for name in os.listdir(folder)):
      return True
  return False


def clear_run_outputs(workdir: str) -> list[str]:
  """Deletes the outputs of an earlier run (``RUN_OUTPUTS``); returns the names deleted."""
  deleted = []
  for name in RUN_OUTPUTS:
    path = os.path.join(workdir, name)
    if os.path.isdir(path):
      shutil.rmtree(path)
    elif os.path.exists(path):
      os.remove(path)
    else:
      continue
    deleted.append(name)
  return deleted


def mismatch_message(workdir: str, differences: list[tuple[str, Any, Any]]) -> str:
  fields = "; ".join(f"{name}: {old!r} in the workdir, {new!r} now" for name, old, new in differences)
  return (f"{workdir} holds checkpoints of a different configuration ({fields}). Resuming would mix "
          f"two runs. Use a new --workdir, or add --start_over to delete the old checkpoints, metrics "
          f"and report and train from step 0.")


def claim(config: ml_collections.ConfigDict, workdir: str, *, start_over: bool = False) -> None:
  """Makes ``workdir`` this config's: checks the stored config (or clears it) and stores this one.

  Raises:
    WorkdirConfigMismatch: the workdir has checkpoints of a config that differs in a field
      outside ``RESULT_INDEPENDENT_FIELDS`` and ``start_over`` is False.
  """
  os.makedirs(workdir, exist_ok=True)
  path = os.path.join(workdir, CONFIG_FILE)
  current = as_json_dict(config)
  if start_over:
    deleted = clear_run_outputs(workdir)
    if deleted:
      print(f"Starting over in {workdir}: deleted {', '.join(deleted)}.", flush=True)
  elif os.path.exists(path) and has_checkpoints(workdir):
    with open(path, encoding="utf-8") as f:
      stored = json.load(f)
    differences = result_differences(stored, current)
    if differences:
      raise WorkdirConfigMismatch(mismatch_message(workdir, differences))
  partial = path + ".partial"
  with open(partial, "w", encoding="utf-8") as f:
    json.dump(current, f, indent=2)
  os.replace(partial, path)
