r"""Input feed throughput: the trainer's host and device feeds against grain loaders.

  python -m benchmarks.input_feed                      # writes results/input_feed_<device>.{json,md}
  python -m benchmarks.input_feed --synthetic_lengths  # no prepared data needed
  python -m benchmarks.input_feed --quick              # a few seconds (smoke test)

Examples/s that each feed delivers to a consumer that takes batches as fast as it can
(no model step), with the reference config's length buckets and batch size
(configs/sent140.py), interleaved in ``--rounds`` rounds in one process (the machine is
shared and noisy; the feeds' order rotates each round). A round creates each feed at a new
start step (as a resumed run does), pulls ``--warmup`` batches, then times ``--steps``
consecutive batches to completion (``jax.block_until_ready``):

* ``host``: ``train.loop.input_feed.host_train_feed`` (numpy batches of
  ``train.data.batching.train_batches``, a prefetch thread, copied to the devices).
* ``device``: ``train.loop.input_feed.device_train_feed`` (the train split on the devices, one
  jitted gather per step; the default, ``config.train_data_on_device``).
* ``grain_steps``: grain (``grain.MapDataset``) over the global step index: element k is
  batch k of the trainer's order (``batching.TrainOrder``), read ahead by grain's thread
  pool (``grain.ReadOptions``), copied to the devices. The same batches in the same order
  as ``host``, so resuming is indexing (checked: ``same_batches_as_host``).
* ``grain_examples``: grain's own per-example pipeline: a global shuffle per epoch
  (``MapDataset.shuffle``, ``repeat``), threads, then length buckets filled from the
  shuffled stream (as TrainOrder does within an epoch). A different order from the
  trainer's (grain has no length bucketing; ``TrainOrder``'s end-of-epoch pooling is left
  out), so switching to it would change every trained result.

The consumer rates come from ``results/train_throughput_<device>.json`` (bucketed
examples/s of each study model). Data: the prepared Sentiment140 train split
(``train.data.pipeline.get_datasets``), or with ``--synthetic_lengths`` random token ids
with the real length histogram (``benchmarks/sent140_train_lengths.json``).
Axes (``mamba_jax.notation``): b, l.
"""

from __future__ import annotations

import functools
import importlib.util
import json
import os
import statistics
import sys
import threading
import time
from typing import Any, Callable, Dict, Iterator, List, Sequence

from absl import flags
import jax
import numpy as np

import configs
from benchmarks import command_line, train_throughput
from train.data import batching, pipeline
from train.data.datasets import Split
from train.loop import input_feed
from train.runs import provenance

FEEDS = ("host", "device", "grain_steps", "grain_examples")


def grain_steps_feed(split: Split, batch_size: int, *, seed: int, start_step: int, mesh, bounds,
                     num_threads: int, prefetch: int) -> Iterator[Dict[str, jax.Array]]:
  """The trainer's batches, batch k = element k of a grain MapDataset (see the module docstring)."""
  import grain  # pylint: disable=import-outside-toplevel
  plan = batching.TrainOrder(split, batch_size, seed=seed, bounds=bounds)
  steps = plan.steps_per_epoch
  ones = np.ones((batch_size,), np.float32)
  lock = threading.Lock()

  @functools.lru_cache(maxsize=2)
  def epoch_plan(epoch):
    return plan.epoch(epoch)

  def make(step: int) -> Dict[str, np.ndarray]:
    epoch, step_in_epoch = divmod(step, steps)
    with lock:  # One thread computes an epoch's order; the others wait for it.
      indices, lengths = epoch_plan(epoch)
    return batching.make_batch(split, indices[step_in_epoch], ones, int(lengths[step_in_epoch]))

  dataset = grain.MapDataset.range(start_step, start_step + 1_000 * steps).map(make)
  options = grain.ReadOptions(num_threads=num_threads, prefetch_buffer_size=prefetch)
  sharding = input_feed.batch_sharding(mesh)
  return (input_feed.shard_batch(b, sharding) for b in dataset.to_iter_dataset(options))


def grain_examples_feed(split: Split, batch_size: int, *, seed: int, mesh, bounds, num_threads: int,
                        prefetch: int) -> Iterator[Dict[str, jax.Array]]:
  """grain's per-example shuffle, then length buckets filled from the stream (a different order).

  ``prefetch`` is in examples here.
  """
  import grain  # pylint: disable=import-outside-toplevel
  bounds = batching.resolve_bounds(bounds, split.max_length)
  bucket = batching.bucket_of(batching.example_lengths(split.tokens), bounds)
  dataset = (grain.MapDataset.range(len(split)).seed(seed).shuffle().repeat()
             .map(lambda i: (int(bucket[i]), i)))
  options = grain.ReadOptions(num_threads=num_threads, prefetch_buffer_size=prefetch)
  sharding = input_feed.batch_sharding(mesh)
  ones = np.ones((batch_size,), np.float32)
  buffers: List[List[int]] = [[] for _ in bounds]
  for k, index in dataset.to_iter_dataset(options):
    buffers[k].append(index)
    if len(buffers[k]) == batch_size:
      batch = batching.make_batch(split, np.asarray(buffers[k]), ones, bounds[k])
      buffers[k] = []
      yield input_feed.shard_batch(batch, sharding)


def _time_feed(make_feed: Callable[[int], Iterator], start_step: int, warmup: int, steps: int,
               batch_size: int) -> float:
  """Examples/s over ``steps`` consecutive batches after ``warmup`` batches."""
  feed = make_feed(start_step)
  for _ in range(warmup):
    jax.block_until_ready(next(feed))
  start = time.perf_counter()
  for _ in range(steps):
    jax.block_until_ready(next(feed))
  return steps * batch_size / (time.perf_counter() - start)


def _compile_device_gathers(make_feed, split: Split, batch_size: int, *, seed: int, bounds) -> None:
  """Pulls one batch of every bound from the device feed, so no timed step compiles a gather."""
  _, lengths = batching.TrainOrder(split, batch_size, seed=seed, bounds=bounds).epoch(0)
  for bound in np.unique(lengths):
    jax.block_until_ready(next(make_feed(int(np.flatnonzero(lengths == bound)[0]))))


def _same_batches(a: Iterator, b: Iterator, count: int) -> bool:
  for _ in range(count):
    x, y = next(a), next(b)
    if any(not np.array_equal(np.asarray(x[k]), np.asarray(y[k])) for k in x):
      return False
  return True


def _consumer_rates(device_tag: str) -> Dict[str, float]:
  path = os.path.join(provenance.REPO_ROOT, "results", f"train_throughput_{device_tag}.json")
  if not os.path.isfile(path):
    return {}
  with open(path, encoding="utf-8") as f:
    report = json.load(f)
  return {name: entry["bucketed"]["examples_per_s"] for name, entry in report["models"].items()}


def benchmark(settings: flags.FlagValues, command: str) -> Dict[str, Any]:
  """Runs the benchmark and writes the report (see the module docstring)."""
  if importlib.util.find_spec("grain") is None:
    sys.exit("benchmarks.input_feed: needs the grain package, which the project does not install "
             "(./run.sh pip install grain)")
  device = jax.devices()[0]
  config = configs.BY_MODEL["mamba"].get_config()
  batch_size = settings.batch_size or config.batch_size
  if settings.synthetic_lengths or settings.quick:
    histogram = np.asarray(json.load(open(train_throughput.HISTOGRAM_PATH, encoding="utf-8"))["counts"], np.float64)
    num_examples = 20_000 if settings.quick else settings.num_examples
    split = train_throughput.synthetic_split(histogram, num_examples, config.vocab_size, seed=config.seed)
    data = f"synthetic tokens, {len(split):,} examples, real train length histogram"
  else:
    split = pipeline.get_datasets(config).splits["train"]
    data = f"prepared Sentiment140 train split, {len(split):,} examples"
  bounds = batching.config_bounds(config, split.max_length)
  mesh = input_feed.make_mesh()
  steps_per_epoch = batching.steps_per_epoch(split, batch_size, bounds)
  grain_options = dict(num_threads=settings.grain_threads, prefetch=settings.grain_prefetch)
  makers = {
      "host": lambda s: input_feed.host_train_feed(split, batch_size, seed=config.seed, start_step=s, mesh=mesh,
                                                   bounds=bounds, prefetch=config.prefetch_batches),
      "device": lambda s: input_feed.device_train_feed(split, batch_size, seed=config.seed, start_step=s,
                                                       mesh=mesh, bounds=bounds),
      "grain_steps": lambda s: grain_steps_feed(split, batch_size, seed=config.seed, start_step=s, mesh=mesh,
                                                bounds=bounds, **grain_options),
      "grain_examples": lambda s: grain_examples_feed(
          split, batch_size, seed=config.seed + s, mesh=mesh, bounds=bounds,
          num_threads=settings.grain_example_threads, prefetch=settings.grain_example_prefetch),
  }
  _compile_device_gathers(makers["device"], split, batch_size, seed=config.seed, bounds=bounds)
  rounds = 1 if settings.quick else settings.rounds
  steps = 5 if settings.quick else settings.steps
  rng = np.random.default_rng(0)
  rates: Dict[str, List[float]] = {name: [] for name in FEEDS}
  loads: List[float] = []
  for r in range(rounds):
    start_step = int(rng.integers(0, 2 * steps_per_epoch))
    loads.append(os.getloadavg()[0])
    for name in FEEDS[r % len(FEEDS):] + FEEDS[:r % len(FEEDS)]:
      rates[name].append(_time_feed(makers[name], start_step, settings.warmup, steps, batch_size))
      print(f"round {r}: {name} {rates[name][-1]:,.0f} ex/s (load {os.getloadavg()[0]:.2f})", flush=True)
  resume_step = steps_per_epoch - 2  # Crosses an epoch boundary.
  checks = {
      "same_batches_as_host": _same_batches(makers["grain_steps"](resume_step), makers["host"](resume_step), 4),
      "grain_steps_resume_equal": _same_batches(
          makers["grain_steps"](resume_step + 1),
          (b for i, b in enumerate(makers["grain_steps"](resume_step)) if i > 0), 3),
  }
  tag = settings.device_tag or provenance.device_tag(device)
  report: Dict[str, Any] = {
      "environment": provenance.environment(device, command),
      "data": data, "batch_size": batch_size, "bounds": list(bounds), "steps_per_epoch": steps_per_epoch,
      "rounds": rounds, "steps": steps, "warmup": settings.warmup,
      "grain_version": _grain_version(), "grain_threads": settings.grain_threads,
      "grain_prefetch": settings.grain_prefetch, "grain_example_threads": settings.grain_example_threads,
      "grain_example_prefetch": settings.grain_example_prefetch,
      "examples_per_s": {name: {"median": statistics.median(v), "per_round": v} for name, v in rates.items()},
      "load_average_1min_per_round": loads, "load_average_at_end": os.getloadavg()[0],
      "consumer_examples_per_s": _consumer_rates(tag),
      "checks": checks,
  }
  provenance.write_report(os.path.join(settings.output_dir, f"input_feed_{tag}"), report, markdown(report))
  return report


def _grain_version() -> str:
  import grain  # pylint: disable=import-outside-toplevel
  return getattr(grain, "__version__", "unknown")


def markdown(report: Dict[str, Any]) -> str:
  env = report["environment"]
  consumers = report["consumer_examples_per_s"]
  fastest_consumer = max(consumers.values()) if consumers else None
  lines = [
      f"# Input feed throughput: trainer feeds vs grain ({env['device']})",
      "",
      f"- command: `{env['command']}`",
      f"- commit: `{env['commit']}`, {env['date_utc']} UTC, jax {env['jax_version']}, grain "
      f"{report['grain_version']}, {env['cpu_count']} CPU cores",
      f"- 1-minute load average per round: {', '.join(f'{x:.2f}' for x in report['load_average_1min_per_round'])}; "
      f"at end {report['load_average_at_end']:.2f}",
      f"- data: {report['data']}; batch {report['batch_size']}; buckets {report['bounds']}; "
      f"{report['rounds']} interleaved rounds of {report['steps']} timed batches after {report['warmup']} warm-up",
      f"- grain ReadOptions: grain_steps num_threads={report['grain_threads']}, prefetch_buffer_size="
      f"{report['grain_prefetch']} batches; grain_examples num_threads={report['grain_example_threads']}, "
      f"prefetch_buffer_size={report['grain_example_prefetch']} examples",
      "",
      "| feed | ex/s (median) | per round | x fastest consumer |",
      "|---|---:|---|---:|",
  ]
  for name, entry in report["examples_per_s"].items():
    ratio = f"{entry['median'] / fastest_consumer:.1f}x" if fastest_consumer else "-"
    rounds = ", ".join(f"{x:,.0f}" for x in entry["per_round"])
    lines.append(f"| {name} | {entry['median']:,.0f} | {rounds} | {ratio} |")
  lines.append("")
  if consumers:
    lines.append("Consumers (training steps, bucketed, results/train_throughput): "
                 + ", ".join(f"{k} {v:,.0f} ex/s" for k, v in consumers.items()) + ".")
  checks = report["checks"]
  lines.append(f"grain_steps yields the host feed's batches: {checks['same_batches_as_host']}; "
               f"resumes exactly: {checks['grain_steps_resume_equal']}. grain_examples has its own order.")
  return "\n".join(lines) + "\n"


def run(args: Sequence[str]) -> Dict[str, Any]:
  """The benchmark with these command-line flags (e.g. ``["--quick"]``) inside this process."""
  return command_line.run_in_process("benchmarks.input_feed", _define_flags, benchmark, args)


def _define_flags(flag_values: flags.FlagValues = flags.FLAGS) -> None:
  """Command-line flags (defined only when run as a program, so importing is side-effect free)."""
  flags.DEFINE_integer("rounds", 4, "Interleaved rounds (the feeds' order rotates).", flag_values=flag_values)
  flags.DEFINE_integer("steps", 60, "Timed consecutive batches per feed and round.", flag_values=flag_values)
  flags.DEFINE_integer("warmup", 3, "Batches pulled before timing (compiles the device gathers).",
                       flag_values=flag_values)
  flags.DEFINE_integer("batch_size", None, "Default: configs/sent140.py's.", flag_values=flag_values)
  flags.DEFINE_integer("grain_threads", 2, "grain.ReadOptions num_threads.", flag_values=flag_values)
  flags.DEFINE_integer("grain_prefetch", 4, "grain.ReadOptions prefetch_buffer_size in batches.",
                       flag_values=flag_values)
  flags.DEFINE_integer("grain_example_threads", 0, "grain_examples: ReadOptions num_threads (per-example "
                       "work is a few microseconds; a thread pool only adds overhead).", flag_values=flag_values)
  flags.DEFINE_integer("grain_example_prefetch", 0, "grain_examples: ReadOptions prefetch_buffer_size.",
                       flag_values=flag_values)
  flags.DEFINE_bool("synthetic_lengths", False, "Random tokens with the real length histogram instead of "
                    "the prepared data.", flag_values=flag_values)
  flags.DEFINE_integer("num_examples", 200_000, "Examples of the synthetic split (--synthetic_lengths).",
                       flag_values=flag_values)
  flags.DEFINE_bool("quick", False, "20,000 synthetic examples, one short round (a smoke test).",
                    flag_values=flag_values)
  flags.DEFINE_string("output_dir", "results", "Where input_feed_<device>.{json,md} go.", flag_values=flag_values)
  flags.DEFINE_string("device_tag", None, "File name tag (default cpu / the accelerator).",
                      flag_values=flag_values)


if __name__ == "__main__":
  command_line.run_as_program("benchmarks.input_feed", _define_flags, benchmark)
