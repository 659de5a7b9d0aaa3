r"""Training throughput: fixed padding vs length-bucketed batches, every study model.

  python -m benchmarks.train_throughput                # writes results/train_throughput_<device>.{json,md}
  python -m benchmarks.train_throughput --synthetic_lengths   # no prepared data needed
  python -m benchmarks.train_throughput --quick        # small models, < 1 minute (smoke test)

For each config (``configs.BY_MODEL``: configs/{sent140,sent140_mamba2,transformer,lstm,ssm}.py)
two trainers are built
with the project's own ``train.training.Trainer`` (the jitted ``train_step`` the real runs
use) and ``train.loop.input_feed.train_feed`` (the config's feed, device-resident by default):
one with ``bucket_by_length=False`` (every batch padded to max_length) and one bucketed.
Every step shape is compiled before timing. Then, in ``--rounds`` rounds that alternate
the order of the two modes (the machine is shared and noisy, so they are interleaved in
one process):

* ``--steps`` consecutive training steps of each mode from its real training order
  (each step timed to completion), and
* ``--steps_per_bound`` steps of every bucket bound, on real batches of that bound (short
  or rare buckets may not appear in a short window).

Examples/s of a mode = b / (mean step time over one epoch's mix of shapes), where each
shape's step time is the median of its timed steps and the mix is the epoch's count of
batches per bound (``train.data.batching.TrainOrder``); the rate over the consecutive
window is reported too. ``speedup`` = bucketed / fixed examples/s. The estimate of the
full run is ``num_epochs`` x the real train split (1.568M tweets) at that rate (training
steps only, no evaluation). The two modes of a config share one jitted step (so a shape
compiles once), each with its own copy of the initial state.

Batches come from the real prepared train split (``train.data.pipeline.get_datasets``),
or with ``--synthetic_lengths`` from random token ids whose lengths follow the real train
split's histogram (``benchmarks/sent140_train_lengths.json``, written by
``--write_length_histogram`` from the real data).
Axes (``mamba_jax.notation``): b, l.
"""

from __future__ import annotations

import json
import os
import statistics
import time
from typing import Any, Dict, List, Sequence

from absl import app
from absl import flags
import jax
import jax.numpy as jnp
import numpy as np

import configs
from benchmarks import command_line
from train.data import batching, pipeline
from train.data.datasets import Split
from train.loop import input_feed, models, trainer as training
from train.runs import provenance

HISTOGRAM_PATH = os.path.join(os.path.dirname(os.path.abspath(__file__)), "sent140_train_lengths.json")
MODES = ("fixed", "bucketed")
# --quick: small models and batches, a short window; still every config, both modes, every bound.
# An override applies to the configs that have the field: head_dim 16 gives Mamba-2 d_inner 32 / 16 = 2
# heads (its config's 64 would not divide d_inner).
QUICK = {"batch_size": 64, "model_overrides": {"d_model": 16, "n_layers": 1, "d_state": 4, "num_heads": 2,
                                              "head_dim": 16, "d_ff": 32, "embed_dim": 16,
                                              "hidden_size": 16},
         "num_examples": 4096, "rounds": 1, "steps": 3, "steps_per_bound": 1, "max_length": 32,
         "bucket_bounds": (16,), "configs": "mamba,mamba2,transformer"}


def load_histogram(path: str = HISTOGRAM_PATH) -> np.ndarray:
  """counts[t] = train tweets with t real tokens (t = 0..max_length)."""
  with open(path, encoding="utf-8") as f:
    return np.asarray(json.load(f)["counts"], np.int64)


def synthetic_split(histogram: np.ndarray, num_examples: int, vocab_size: int, seed: int = 0) -> Split:
  """Random token ids (N, L) with real lengths drawn from ``histogram`` (L = len(histogram) - 1)."""
  rng = np.random.default_rng(seed)
  max_length = len(histogram) - 1
  lengths = rng.choice(max_length + 1, size=num_examples, p=histogram / histogram.sum())
  tokens = rng.integers(1, vocab_size, size=(num_examples, max_length)).astype(np.uint16)
  tokens[np.arange(max_length)[None, :] >= lengths[:, None]] = 0
  return Split(tokens=tokens, labels=rng.integers(0, 2, num_examples).astype(np.int32))


def make_config(name: str, *, bucketed: bool, batch_size: int | None, model_overrides: Dict[str, Any],
                max_length: int | None = None, bucket_bounds=None):
  config = configs.BY_MODEL[name].get_config()
  config.bucket_by_length = bucketed
  if max_length:
    config.max_length = max_length
  if bucket_bounds is not None:
    config.length_bucket_bounds = tuple(bucket_bounds)
    config.train_data_on_device = False  # --quick: the host feed (no gather programs to compile).
  if batch_size:
    config.batch_size = batch_size
  for key, value in model_overrides.items():
    if key in config.model:
      config.model[key] = value
  return config


class Mode:
  """One (config, mode): its own training state, feed and timings; the compiled step is shared."""

  def __init__(self, config, split: Split, trainer: training.Trainer):
    self.config = config
    self.trainer = trainer
    # Each mode trains its own copy of the initial parameters (train_step donates the state).
    self.state = jax.tree_util.tree_map(jnp.copy, trainer.initial_state)
    self.order = batching.TrainOrder(split, config.batch_size, seed=config.seed,
                                     bounds=batching.config_bounds(config, split.max_length))
    self.feed = input_feed.train_feed(config, split, start_step=0, mesh=trainer.mesh)
    self.split = split
    self._epoch0 = self.order.epoch(0)
    lengths = self._epoch0[1]
    self.epoch_counts = {int(b): int(np.sum(lengths == b)) for b in self.order.bounds}
    self.step_times: Dict[int, List[float]] = {int(b): [] for b in self.order.bounds}
    self.window_rates: List[float] = []
    self.num_params = models.count_params(self.state.params)
    self.compile_s = 0.0

  def _batch_of_bound(self, bound: int, which: int) -> dict:
    indices, lengths = self._epoch0
    rows = np.flatnonzero(lengths == bound)
    row = rows[which % len(rows)]
    host = batching.make_batch(self.split, indices[row], np.ones(self.config.batch_size, np.float32), bound)
    return input_feed.shard_batch(host, input_feed.batch_sharding(self.trainer.mesh))

  def _step(self, batch) -> float:
    start = time.perf_counter()
    self.state, metrics = self.trainer.train_step(self.state, batch)
    jax.block_until_ready(metrics)
    return time.perf_counter() - start

  def compile_all(self):
    start = time.perf_counter()
    for bound, count in self.epoch_counts.items():
      if count:
        self._step(self._batch_of_bound(bound, 0))
    self.compile_s = time.perf_counter() - start

  def time_window(self, steps: int):
    total = 0.0
    for _ in range(steps):
      batch = next(self.feed)
      start = time.perf_counter()
      self.state, metrics = self.trainer.train_step(self.state, batch)
      jax.block_until_ready(metrics)
      elapsed = time.perf_counter() - start
      total += elapsed
      self.step_times[int(batch["tokens"].shape[1])].append(elapsed)
    self.window_rates.append(steps * self.config.batch_size / total)

  def time_bounds(self, steps_per_bound: int, round_index: int):
    for bound, count in self.epoch_counts.items():
      if count:
        for i in range(steps_per_bound):
          self.step_times[bound].append(self._step(self._batch_of_bound(bound, 1 + round_index * steps_per_bound + i)))

  def summary(self) -> Dict[str, Any]:
    medians = {b: statistics.median(t) for b, t in self.step_times.items() if t}
    epoch_s = sum(count * medians[b] for b, count in self.epoch_counts.items() if count)
    steps = sum(self.epoch_counts.values())
    return {
        "bounds": list(self.order.bounds),
        "batches_per_epoch_by_bound": {str(b): c for b, c in self.epoch_counts.items()},
        "median_step_s_by_bound": {str(b): m for b, m in medians.items()},
        "timed_steps_by_bound": {str(b): len(t) for b, t in self.step_times.items()},
        "epoch_s": epoch_s,
        "examples_per_s": steps * self.config.batch_size / epoch_s,
        "window_examples_per_s": self.window_rates,
        "compile_s": self.compile_s,
        "compiled_train_programs": sum(1 for c in self.epoch_counts.values() if c),
    }


def markdown(report: Dict[str, Any]) -> str:
  env = report["environment"]
  lines = [
      f"# Training throughput: fixed padding vs length buckets ({env['device']})", "",
      f"- command: `{env['command']}`",
      f"- commit: `{env['commit']}`, {env['date_utc']} UTC, jax {env['jax_version']}, {env['cpu_count']} CPU cores",
      f"- load average at start / end: {env['load_average_at_start']:.2f} / {report['load_average_at_end']:.2f}",
      f"- data: {report['data']}; batch {report['batch_size']}; {report['rounds']} interleaved rounds of "
      f"{report['steps']} consecutive steps per mode + {report['steps_per_bound']} steps per bound",
      f"- buckets: {report['bounds']} (bucketed) vs ({report['max_length']},) (fixed)", "",
      "| model | params | fixed ex/s | bucketed ex/s | speedup | window ex/s fixed / bucketed | programs | "
      "full run (est.) fixed / bucketed |",
      "|---|---:|---:|---:|---:|---:|---:|---:|",
  ]
  for name, entry in report["models"].items():
    fixed, bucketed = entry["fixed"], entry["bucketed"]
    lines.append(
        f"| {name} | {entry['num_params']:,} | {fixed['examples_per_s']:.0f} | {bucketed['examples_per_s']:.0f} | "
        f"{report['speedup'][name]:.2f}x | {statistics.median(fixed['window_examples_per_s']):.0f} / "
        f"{statistics.median(bucketed['window_examples_per_s']):.0f} | {bucketed['compiled_train_programs']} | "
        f"{fixed['full_run_estimate_min']:.0f} / {bucketed['full_run_estimate_min']:.0f} min |")
  lines += ["", "ex/s: batch / mean step time over one epoch's mix of batch shapes (median per shape). "
            "Full run: num_epochs x one epoch of training steps, no evaluation.", ""]
  for name in ("mamba", "mamba2"):
    if name in report["models"]:
      entry = report["models"][name]
      lines.append(f"Estimated full `{entry['config'].replace('.', '/')}.py` run (bucketed): "
                   f"{entry['bucketed']['full_run_estimate_min']:.0f} min of training steps.")
  return "\n".join(lines) + "\n"


def write_length_histogram(split: Split, path: str = HISTOGRAM_PATH) -> None:
  lengths = batching.example_lengths(split.tokens)
  counts = np.bincount(lengths, minlength=split.max_length + 1)
  with open(path, "w", encoding="utf-8") as f:
    json.dump({"description": "Sentiment140 train split (configs/sent140.py tokenizer): counts[t] = tweets "
                              "with t real tokens; written by python -m benchmarks.train_throughput "
                              "--write_length_histogram", "counts": counts.tolist()}, f)
    f.write("\n")
  print(f"Wrote {path}")


def benchmark(settings: flags.FlagValues, command: str) -> Dict[str, Any]:
  """Builds, compiles and times every config in both modes; writes and returns the report.

  Args:
    settings: the parsed flags (``flags.FLAGS`` when run as a program).
    command: the command line, recorded in the report.
  """
  names = [n for n in (settings.configs or (QUICK["configs"] if settings.quick else ",".join(configs.BY_MODEL))).split(",")
           if n]
  unknown = sorted(set(names) - set(configs.BY_MODEL))
  if unknown:
    raise app.UsageError(f"Unknown --configs {unknown}; choose from {sorted(configs.BY_MODEL)}.")
  rounds, steps, steps_per_bound = settings.rounds, settings.steps, settings.steps_per_bound
  batch_size, num_examples = settings.batch_size, settings.num_examples
  overrides: Dict[str, Any] = {}
  max_length, bucket_bounds = None, None
  if settings.quick:
    max_length, bucket_bounds = QUICK["max_length"], QUICK["bucket_bounds"]
    rounds, steps, steps_per_bound = QUICK["rounds"], QUICK["steps"], QUICK["steps_per_bound"]
    batch_size = batch_size or QUICK["batch_size"]
    num_examples = min(num_examples, QUICK["num_examples"])
    overrides = QUICK["model_overrides"]

  reference = make_config(names[0], bucketed=True, batch_size=batch_size, model_overrides=overrides,
                          max_length=max_length, bucket_bounds=bucket_bounds)
  histogram = load_histogram()
  full_train_examples = int(histogram.sum())  # The real train split, for the full-run estimate.
  if settings.synthetic_lengths or settings.quick:
    vocab_size = reference.vocab_size
    if max_length:  # Longer tweets are truncated, as the tokenizer would.
      histogram = np.concatenate([histogram[:max_length], [histogram[max_length:].sum()]])
    split = synthetic_split(histogram, num_examples, vocab_size, seed=reference.seed)
    data = f"synthetic tokens, {len(split):,} examples, real train length histogram"
  else:
    datasets = pipeline.get_datasets(reference)
    split, vocab_size = datasets.splits["train"], datasets.tokenizer.vocab_size
    data = f"prepared Sentiment140 train split, {len(split):,} examples"
    if settings.write_length_histogram:
      write_length_histogram(split)
      return {}

  device = jax.devices()[0]
  report: Dict[str, Any] = {"environment": provenance.environment(device, command), "data": data,
                            "rounds": rounds, "steps": steps, "steps_per_bound": steps_per_bound,
                            "batch_size": reference.batch_size, "max_length": split.max_length,
                            "bounds": list(batching.config_bounds(reference, split.max_length)),
                            "model_overrides": overrides, "models": {}, "speedup": {}}
  runs = {}
  for name in names:
    mode_configs = {mode: make_config(name, bucketed=mode == "bucketed", batch_size=batch_size,
                                      model_overrides=overrides, max_length=max_length,
                                      bucket_bounds=bucket_bounds)
                    for mode in MODES}
    trainer = training.Trainer(mode_configs["fixed"], models.create_model(mode_configs["fixed"], vocab_size), 10**6)
    runs[name] = {mode: Mode(mode_configs[mode], split, trainer) for mode in MODES}
    for mode in MODES:
      runs[name][mode].compile_all()
      print(f"{name:12s} {mode:9s} compiled {runs[name][mode].compile_s:.1f} s", flush=True)
  for r in range(rounds):
    for name in names:
      for mode in (MODES if r % 2 == 0 else MODES[::-1]):
        runs[name][mode].time_window(steps)
        runs[name][mode].time_bounds(steps_per_bound, r)
        print(f"round {r} {name:12s} {mode:9s} window {runs[name][mode].window_rates[-1]:.0f} ex/s", flush=True)

  for name in names:
    entry = {"num_params": runs[name]["fixed"].num_params, "config": configs.BY_MODEL[name].__name__}
    for mode in MODES:
      summary = runs[name][mode].summary()
      summary["full_run_estimate_min"] = (runs[name][mode].config.num_epochs * full_train_examples
                                          / summary["examples_per_s"] / 60)
      entry[mode] = summary
    report["models"][name] = entry
    report["speedup"][name] = entry["bucketed"]["examples_per_s"] / entry["fixed"]["examples_per_s"]
  report["load_average_at_end"] = os.getloadavg()[0]

  tag = settings.device_tag or provenance.device_tag(device)
  provenance.write_report(os.path.join(settings.output_dir, f"train_throughput_{tag}"), report, markdown(report))
  return report


def run(args: Sequence[str]) -> Dict[str, Any]:
  """The benchmark with these command-line flags (e.g. ``["--quick"]``) inside this process."""
  return command_line.run_in_process("benchmarks.train_throughput", _define_flags, benchmark, args)


def _define_flags(flag_values: flags.FlagValues = flags.FLAGS) -> None:
  """Command-line flags (defined only when run as a program, so importing is side-effect free)."""
  flags.DEFINE_string("configs", None, f"Comma list of {sorted(configs.BY_MODEL)} (default: all; --quick: "
                      f"{QUICK['configs']}).", flag_values=flag_values)
  flags.DEFINE_integer("rounds", 3, "Interleaved rounds (modes alternate order).", flag_values=flag_values)
  flags.DEFINE_integer("steps", 12, "Consecutive timed steps per mode and round.", flag_values=flag_values)
  flags.DEFINE_integer("steps_per_bound", 2, "Timed steps per bound and round.", flag_values=flag_values)
  flags.DEFINE_integer("batch_size", None, "Default: each config's.", flag_values=flag_values)
  flags.DEFINE_bool("synthetic_lengths", False, "Random tokens with the real length histogram instead of "
                    "the prepared data.", flag_values=flag_values)
  flags.DEFINE_integer("num_examples", 200_000, "Examples of the synthetic split (--synthetic_lengths).",
                       flag_values=flag_values)
  flags.DEFINE_bool("quick", False, "Small models, max_length 32, one short round (< 1 minute; a smoke "
                    "test).", flag_values=flag_values)
  flags.DEFINE_bool("write_length_histogram", False, f"Write {os.path.relpath(HISTOGRAM_PATH)} from the "
                    "real train split and exit.", flag_values=flag_values)
  flags.DEFINE_string("output_dir", "results", "Where train_throughput_<device>.{json,md} go.",
                      flag_values=flag_values)
  flags.DEFINE_string("device_tag", None, "File name tag (default cpu / the accelerator).",
                      flag_values=flag_values)


if __name__ == "__main__":
  command_line.run_as_program("benchmarks.train_throughput", _define_flags, benchmark)
