"""What the study runs: the run table, the options of one invocation, and each run's config.

Every run is a base config (``configs.BY_MODEL``) plus dotted-key overrides; ``build_config``
adds the study-wide settings (``--quick``, ``--dataset``, ``--set``) and the seed.
"""

from __future__ import annotations

import ast
import dataclasses
import fnmatch
from typing import Any, Dict, List, Optional, Sequence

import ml_collections

import configs
from train.runs import workdir


@dataclasses.dataclass(frozen=True)
class StudyRun:
  """One row of the study: a base config plus dotted-key overrides."""

  name: str
  base: str  # Key of configs.BY_MODEL.
  description: str
  overrides: Dict[str, Any] = dataclasses.field(default_factory=dict)


# The study. Reference Mamba: selective delta and B/C, d_state 16, expand 2, conv.
STUDY_RUNS = (
    StudyRun("mamba", "mamba", "Mamba (configs/sent140.py)"),
    StudyRun("mamba2", "mamba2", "Mamba-2: SSD mixer, A per head (configs/sent140_mamba2.py)"),
    StudyRun("transformer", "transformer", "Transformer encoder, 2 x (4 heads, d 64, ff 128)"),
    StudyRun("lstm", "lstm", "LSTM, 2 x 128 units"),
    StudyRun("ssm", "ssm", "Non-selective LTI SSM (= Mamba with no selection)"),
    StudyRun("mamba_no_delta_selection", "mamba", "Mamba, delta not selective (B, C are)",
             {"model.select_delta": False}),
    StudyRun("mamba_no_bc_selection", "mamba", "Mamba, B and C not selective (delta is)",
             {"model.select_bc": False}),
    StudyRun("mamba_d_state_1", "mamba", "Mamba, d_state 1", {"model.d_state": 1}),
    StudyRun("mamba_d_state_4", "mamba", "Mamba, d_state 4", {"model.d_state": 4}),
    StudyRun("mamba_d_state_64", "mamba", "Mamba, d_state 64", {"model.d_state": 64}),
    StudyRun("mamba_expand_1", "mamba", "Mamba, expand 1", {"model.expand": 1}),
    StudyRun("mamba_no_conv", "mamba", "Mamba without the causal conv", {"model.use_conv": False}),
    # Candidates for the best Mamba within 2 hours of the CPU (width, depth, both directions),
    # screened on the study's budget before one of them gets the full data.
    StudyRun("mamba_bidirectional", "mamba", "Mamba, bidirectional (a second scan over the reversed tweet)",
             {"model.bidirectional": True}),
    StudyRun("mamba_d_model_128", "mamba", "Mamba, d_model 128 (twice the width)", {"model.d_model": 128}),
    StudyRun("mamba_4_layers", "mamba", "Mamba, 4 layers (twice the depth)", {"model.n_layers": 4}),
)
RUNS_BY_NAME = {run.name: run for run in STUDY_RUNS}

# What --quick changes in every run: a small subset, a few steps, no real timing.
QUICK_OVERRIDES = {
    "num_train_steps": 12,
    "batch_size": 32,
    "eval_batch_size": 256,
    "warmup_steps": 2,
    "log_every_steps": 12,
    "eval_every_steps": 12,
    "checkpoint_every_steps": 12,
    "keep_checkpoints": 1,
    "async_checkpointing": False,
    "train_data_on_device": False,
    "max_train_examples": 2048,
}
# What --dataset=synthetic changes (the toy task of train.data.synthetic).
SYNTHETIC_OVERRIDES = {
    "dataset": "synthetic",
    "vocab_size": 54,
    "max_length": 16,
    "synthetic_train_size": 1024,
    "synthetic_eval_size": 256,
}
QUICK_SEEDS = (0, 1)
FULL_SEEDS = (0, 1, 2)


@dataclasses.dataclass
class StudyOptions:
  """Everything one invocation needs (the CLI flags)."""

  output_dir: str = "results/study"
  workdir_root: str = "workdirs/study"
  runs: Sequence[str] = ("*",)  # Names or fnmatch patterns of STUDY_RUNS.
  seeds: Optional[Sequence[int]] = None  # None: FULL_SEEDS, or QUICK_SEEDS with quick.
  quick: bool = False
  dataset: Optional[str] = None  # None: the configs' ("sentiment140"); or "synthetic".
  data_dir: Optional[str] = None
  prepared_dir: Optional[str] = None
  overrides: Dict[str, Any] = dataclasses.field(default_factory=dict)  # Applied to every run.
  retrain: bool = False  # Train again even where an eval_report.json exists.
  # Train again only the (run, seed)s without per-example answers in output_dir/per_example (records
  # made before they were kept); a workdir's finished run that has them is reused, an interrupted one resumes.
  retrain_without_answers: bool = False
  runtime_results: str = "results/runtime_*.json"  # Glob of benchmarks.runtime outputs.
  tfidf_results: str = "results/tfidf_baseline.json"
  command: str = ""


def select_runs(patterns: Sequence[str]) -> List[StudyRun]:
  """The study runs whose name matches any pattern (order of STUDY_RUNS)."""
  unmatched = [p for p in patterns if not any(fnmatch.fnmatchcase(r.name, p) for r in STUDY_RUNS)]
  if unmatched:
    raise ValueError(f"--runs {unmatched} match no run; runs are: {', '.join(RUNS_BY_NAME)}")
  return [r for r in STUDY_RUNS if any(fnmatch.fnmatchcase(r.name, p) for p in patterns)]


def set_field(config: ml_collections.ConfigDict, dotted_key: str, value: Any) -> None:
  """config.<a>.<b> = value; the parent must exist."""
  *parents, leaf = dotted_key.split(".")
  node = config
  for part in parents:
    if part not in node:
      raise ValueError(f"Override {dotted_key!r}: the config has no field {part!r}.")
    node = node[part]
  try:
    node[leaf] = value
  except TypeError as e:
    raise ValueError(f"Override {dotted_key}={value!r}: {e}") from e


def build_config(run: StudyRun, seed: int, options: StudyOptions) -> ml_collections.ConfigDict:
  """The config of one (run, seed): base config, run overrides, study-wide settings, seed."""
  config = configs.BY_MODEL[run.base].get_config()
  settings: Dict[str, Any] = {}
  if options.quick:
    settings.update(QUICK_OVERRIDES)
  if options.dataset == "synthetic":
    settings.update(SYNTHETIC_OVERRIDES)
  elif options.dataset is not None:
    settings["dataset"] = options.dataset
  if options.data_dir is not None:
    settings["data_dir"] = options.data_dir
  if options.prepared_dir is not None:
    settings["prepared_dir"] = options.prepared_dir
  settings.update({k: v for k, v in options.overrides.items() if k not in workdir.RETIRED_FIELDS})
  # The run's own overrides win: a study-wide --set must not undo an ablation.
  for key, value in {**settings, **run.overrides}.items():
    set_field(config, key, value)
  config.seed = seed
  return config


def parse_overrides(items: Sequence[str]) -> Dict[str, Any]:
  """["a.b=1", "c=foo"] -> {"a.b": 1, "c": "foo"} (values read as Python literals if possible)."""
  out = {}
  for item in items:
    key, sep, raw = item.partition("=")
    if not sep or not key:
      raise ValueError(f"--set expects key=value, got {item!r}")
    try:
      out[key.strip()] = ast.literal_eval(raw)
    except (ValueError, SyntaxError):
      out[key.strip()] = raw
  return out

