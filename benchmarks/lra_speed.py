r"""Training-step and forward time of the LRA study's models at the LRA lengths, batch 32.

  python -m benchmarks.lra_speed                      # results/lra_speed_<device>.{json,md}
  python -m benchmarks.lra_speed --lengths=1024,4096 --models=mamba2,transformer_rope --repeats=3
  python -m benchmarks.lra_speed --tiny --lengths=32,64 --batch_size=2 --output_dir=/tmp/s   # smoke test

The models are configs/lra.py's at the pixel tasks' vocabulary (257 ids: the Pathfinder of the
seeds' speed comparison), ~0.63M parameters each. For each (model, length): random token ids
without padding; the jitted forward (``train=False``) and the trainer's jitted training step
(``train.train.train_step``: AdamW, gradient clipping, dropout) are each compiled and run once
before timing (excluded), then timed ``--repeats`` times (fewer once a point has taken
``--seconds_per_point``); the median is reported, and examples per second. A point whose compiled
step XLA estimates above ``--max_memory_gib`` is recorded as ``skipped_memory`` (not run: on a
CPU an allocation failure kills the process), an allocation failure as ``oom``. ``--tiny``:
every model at d_model 16, one layer (tests). The report records the command, commit, device and
the load average at start and end: timings taken while other work runs are marked by it.
"""

from __future__ import annotations

import os
import statistics
import time
from typing import Any, Dict, Optional, Sequence

from absl import flags
import jax
import jax.numpy as jnp
import ml_collections
import numpy as np

from benchmarks import command_line
from benchmarks.runtime import is_out_of_memory, time_calls
from configs import lra as lra_configs
from train.loop import models, trainer
from train.runs import provenance

TASK = "pathfinder32"  # The models' vocabulary: 257 pixel ids.
NUM_CLASSES = 2
def model_config(name: str, length: int, batch_size: int, tiny: bool) -> ml_collections.ConfigDict:
  config = lra_configs.get_config(f"{TASK},{name}")
  config.max_length = length
  config.batch_size = batch_size
  if tiny:
    config.model.update(lra_configs.QUICK_MODEL_FIELDS[name])
  return config


def _memory_gib(compiled) -> Optional[float]:
  stats = compiled.memory_analysis()
  if stats is None:
    return None
  return (stats.temp_size_in_bytes + stats.argument_size_in_bytes + stats.output_size_in_bytes) / 2**30


def time_point(name: str, length: int, settings) -> Dict[str, Any]:
  """Forward and training step of one (model, length): status, median seconds, examples/s, memory."""
  config = model_config(name, length, settings.batch_size, settings.tiny)
  model = models.create_model(config, config.vocab_size, NUM_CLASSES)
  state = trainer.create_train_state(config, model, jax.random.key(settings.seed), total_steps=1000)
  tokens = jax.random.randint(jax.random.key(settings.seed + length), (settings.batch_size, length), 1,
                              config.vocab_size)
  batch = {"tokens": tokens, "mask": jnp.ones_like(tokens), "label": jnp.zeros((settings.batch_size,), jnp.int32),
           "weight": jnp.ones((settings.batch_size,), jnp.float32)}
  point: Dict[str, Any] = {"length": length, "batch_size": settings.batch_size}
  forward = jax.jit(lambda params, t, m: model.apply({"params": params}, t, m, train=False))
  step = jax.jit(trainer.train_step)
  for kind, fn, args in (("forward", forward, (state.params, batch["tokens"], batch["mask"])),
                         ("train_step", step, (state, batch))):
    try:
      start = time.perf_counter()
      compiled = fn.lower(*args).compile()
      entry: Dict[str, Any] = {"compile_s": time.perf_counter() - start}
      needed = _memory_gib(compiled)
      entry["memory_estimate_gib"] = needed
      if needed is not None and settings.max_memory_gib is not None and needed > settings.max_memory_gib:
        entry["status"] = "skipped_memory"
      else:
        jax.block_until_ready(compiled(*args))  # Warm-up, not timed.
        times = time_calls(lambda: compiled(*args), settings.repeats, settings.min_repeats,
                           settings.seconds_per_point)
        median = statistics.median(times)
        entry.update(status="ok", median_s=median, times_s=times, examples_per_s=settings.batch_size / median)
    except Exception as e:  # pylint: disable=broad-except
      entry = {"status": "oom" if is_out_of_memory(e) else "error", "error": f"{type(e).__name__}: {str(e)[:300]}"}
    point[kind] = entry
  return point


def _cell(entry: Dict[str, Any]) -> str:
  status = entry.get("status")
  if status == "ok":
    return f"{entry['median_s'] * 1e3:,.1f}"
  if status == "skipped_memory":
    return f"skipped ({entry['memory_estimate_gib']:.0f} GiB)"
  return (status or "?").upper()


def markdown(report: Dict[str, Any]) -> str:
  env, lengths = report["environment"], report["lengths"]
  lines = [f"# LRA speed: training step and forward time ({env['device']})", "",
           f"- command: `{env['command']}`, commit `{env['commit']}`, {env['date_utc']} UTC, jax {env['jax_version']}",
           f"- {env['cpu_count']} host CPUs; 1-minute load average {env['load_average_at_start']:.1f} at start, "
           f"{report['load_average_at_end']:.1f} at end (above the core count: other work shared the machine)",
           f"- batch {report['batch_size']}, random ids, no padding; median of the timed runs (compile and "
           "one warm-up run excluded); models of configs/lra.py at 257 ids" + (" (--tiny)" if report["tiny"] else ""),
           ""]
  for kind, title in (("train_step", "Training step (ms)"), ("forward", "Forward (ms)")):
    lines += [f"## {title}", "", "| model | params | " + " | ".join(f"{l:,}" for l in lengths) + " |",
              "|---|---:|" + "---:|" * len(lengths)]
    for name, points in report["models"].items():
      cells = [_cell(p[kind]) for p in points]
      lines.append(f"| {name} | {report['num_params'][name]:,} | " + " | ".join(cells) + " |")
    lines.append("")
  if report["speedup"]:
    lines += ["## Speed-up over the Transformer + RoPE (training step time ratio)", ""]
    for key, value in report["speedup"].items():
      lines.append(f"- {key}: {value:.2f}x")
  return "\n".join(lines) + "\n"


def speedups(report: Dict[str, Any]) -> Dict[str, float]:
  """Transformer step time / model step time, per (model, length) where both ran."""
  reference = {p["length"]: p["train_step"] for p in report["models"].get("transformer_rope", [])}
  out = {}
  for name, points in report["models"].items():
    if name == "transformer_rope":
      continue
    for point in points:
      ref = reference.get(point["length"], {})
      if ref.get("status") == "ok" and point["train_step"].get("status") == "ok":
        out[f"{name} at {point['length']:,}"] = ref["median_s"] / point["train_step"]["median_s"]
  return out


def benchmark(settings: flags.FlagValues, command: str) -> Dict[str, Any]:
  device = jax.devices()[0]
  unknown = [m for m in settings.models if m not in lra_configs.MODELS]
  if unknown:
    raise ValueError(f"unknown --models {unknown}; choose from {', '.join(lra_configs.MODELS)}")
  lengths = sorted(int(l) for l in settings.lengths)
  report: Dict[str, Any] = {"environment": provenance.environment(device, command), "lengths": lengths,
                            "batch_size": settings.batch_size, "tiny": bool(settings.tiny), "models": {},
                            "num_params": {}}
  for name in settings.models:
    config = model_config(name, lengths[0], settings.batch_size, settings.tiny)
    model = models.create_model(config, config.vocab_size, NUM_CLASSES)
    report["num_params"][name] = models.count_params(models.parameter_shapes(config, model))
    points = []
    for length in lengths:
      point = time_point(name, length, settings)
      print(f"{name:22s} l={length:6,d} step {_cell(point['train_step']):>18s} ms, forward "
            f"{_cell(point['forward']):>18s} ms", flush=True)
      points.append(point)
    report["models"][name] = points
  report["speedup"] = speedups(report)
  report["load_average_at_end"] = os.getloadavg()[0]
  tag = settings.device_tag or provenance.device_tag(device)
  provenance.write_report(os.path.join(settings.output_dir, f"lra_speed_{tag}"), report, markdown(report))
  return report


def run(args: Sequence[str]) -> Dict[str, Any]:
  """The benchmark with these command-line flags inside this process."""
  return command_line.run_in_process("benchmarks.lra_speed", _define_flags, benchmark, args)


def _define_flags(flag_values: flags.FlagValues = flags.FLAGS) -> None:
  flags.DEFINE_list("models", list(lra_configs.MODELS), "Models (configs/lra.py).", flag_values=flag_values)
  flags.DEFINE_list("lengths", ["1024", "2048", "4096", "16384"], "Sequence lengths.", flag_values=flag_values)
  flags.DEFINE_integer("batch_size", 32, "Sequences per step.", flag_values=flag_values)
  flags.DEFINE_integer("repeats", 5, "Timed runs per point (after the warm-up) ...", flag_values=flag_values)
  flags.DEFINE_integer("min_repeats", 2, "... at least this many ...", flag_values=flag_values)
  flags.DEFINE_float("seconds_per_point", 60.0, "... adding none once a point has taken this long.",
                     flag_values=flag_values)
  flags.DEFINE_float("max_memory_gib", 12.0, "Skip a point whose compiled program XLA estimates above this "
                     "(the 24 GiB CPU machine; raise it on a GPU).", flag_values=flag_values)
  flags.DEFINE_bool("tiny", False, "Every model at d_model 16, one layer (tests).", flag_values=flag_values)
  flags.DEFINE_integer("seed", 0, "Parameters and token ids.", flag_values=flag_values)
  flags.DEFINE_string("output_dir", "results", "Where lra_speed_<device>.{json,md} go.", flag_values=flag_values)
  flags.DEFINE_string("device_tag", None, "File name tag (default cpu / the accelerator).", flag_values=flag_values)


if __name__ == "__main__":
  command_line.run_as_program("benchmarks.lra_speed", _define_flags, benchmark)
