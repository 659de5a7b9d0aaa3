r"""Runtime vs sequence length of every study model: inference forward and training step, two batch sizes.

  python -m benchmarks.runtime                      # writes results/runtime_<device>.{json,md}
  python -m benchmarks.runtime --lengths=16,64 --batch_sizes=32 --repeats=3 --output_dir=/tmp/rt

For each model (``configs.BY_MODEL``: mamba, mamba2, ssm, transformer, lstm, from
configs/{sent140,sent140_mamba2,ssm,transformer,lstm}.py, vocabulary 32000), batch size
(``--batch_sizes``, default 32 and 512) and length (``--lengths``, 16 to 4096):

* ``forward``: a jitted forward (``train=False``) over a batch of random token ids (no padding);
* ``train``: one jitted training step of the project's own ``train.loop.trainer.train_step``
  (forward, backward and the AdamW update of ``train.loop.trainer.create_train_state``; dropout on),

each compiled and run once before timing (warm-up excluded), then timed ``--repeats`` times
(fewer when a point exceeds ``--seconds_per_point``); the median is reported. A point whose
compiled program needs more than ``--max_memory_gib`` (XLA's own estimate, checked before
running) is recorded as ``skipped_memory``; an allocation failure while compiling or running as
``oom``. On the CPU lengths above ``--cpu_max_length`` are not run. ``--modes`` picks forward
and/or train.

Also, per batch size: the recurrent ``step`` latency per token of Mamba, Mamba-2 and the LTI SSM
(``init_cache`` + ``step``), which does not depend on the prefix length, against the Transformer
re-encoding the whole prefix (one forward at that length) for every new token; the lengths where
the Transformer's forward / re-encoding becomes slower than Mamba's and than Mamba-2's
(crossover); the log-log growth exponent of each model's forward time; and where Mamba-2's
forward and training step are below every other model's (``mamba2_below``).

JSON: the first batch size's numbers at the top level (``batch_size``, ``forward``, ``train``,
``step``, ``summary``: what ``train.study.report`` and notebooks/03_results.py read), the other
batch sizes' under ``other_batches`` (batch size -> the same keys).

Axes (``mamba_jax.notation``): b, l.
"""

from __future__ import annotations

import functools
import math
import os
import statistics
import sys
import time
from typing import Any, Callable, Dict, List, Optional

from absl import app
from absl import flags
import jax
import jax.numpy as jnp
import numpy as np

import configs
from train.loop import models as model_factory
from train.loop import trainer as trainer_lib
from train.runs import provenance

STEP_MODELS = ("mamba", "mamba2", "ssm")  # Models with a recurrent step(token, cache).
# The Mambas whose crossover with the Transformer is reported: name -> (label, key suffix).
CROSSOVER_MODELS = {"mamba": ("Mamba", ""), "mamba2": ("Mamba-2", "_mamba2")}
VOCAB_SIZE = 32000
MODES = ("forward", "train")
MODE_TITLES = {"forward": "Forward time (ms per batch)",
               "train": "Training step time (ms per batch: forward, backward, AdamW update)"}

FLAGS = flags.FLAGS


# ----------------------------------------------------------------------------- environment


def is_out_of_memory(error: BaseException) -> bool:
  text = str(error)
  return any(s in text for s in ("RESOURCE_EXHAUSTED", "Out of memory", "out of memory",
                                 "OOM", "Failed to allocate"))


# ----------------------------------------------------------------------------- models


def build_model(name: str, max_length: int):
  """(config, module, variables) of a study model with random parameters."""
  config = configs.BY_MODEL[name].get_config()
  if config.model.get("positions") == "learned":
    config.model.max_length = max(config.model.max_length, max_length)
  model = model_factory.create_model(config, VOCAB_SIZE)
  tokens = jnp.ones((1, 8), jnp.int32)
  variables = jax.jit(model.init)({"params": jax.random.key(FLAGS.seed)}, tokens, tokens)
  return config, model, variables


def random_batch(batch_size: int, length: int, seed: int):
  tokens = jax.random.randint(jax.random.key(seed), (batch_size, length), 1, VOCAB_SIZE)
  return tokens, jnp.ones_like(tokens)


# ----------------------------------------------------------------------------- timing


def time_calls(run: Callable[[], Any], repeats: int, min_repeats: int,
               seconds_budget: float) -> List[float]:
  """Wall times of up to ``repeats`` calls of ``run`` (each waited for)."""
  times = []
  start = time.perf_counter()
  while len(times) < repeats:
    t0 = time.perf_counter()
    jax.block_until_ready(run())
    times.append(time.perf_counter() - t0)
    if len(times) >= min_repeats and time.perf_counter() - start > seconds_budget:
      break
  return times


def time_program(function: Callable, args: tuple, batch_size: int, length: int,
                 max_memory_bytes: Optional[float]) -> Dict[str, Any]:
  """One point: ``function(*args)`` jitted, checked against the memory limit, warmed up, timed."""
  point: Dict[str, Any] = {"length": length, "batch_size": batch_size}
  try:
    t0 = time.perf_counter()
    compiled = jax.jit(function).lower(*args).compile()
    point["compile_s"] = time.perf_counter() - t0
    stats = compiled.memory_analysis()
    if stats is not None:
      needed = stats.temp_size_in_bytes + stats.argument_size_in_bytes + stats.output_size_in_bytes
      point["memory_estimate_gib"] = needed / 2**30
      if max_memory_bytes is not None and needed > max_memory_bytes:
        point["status"] = "skipped_memory"
        return point
    jax.block_until_ready(compiled(*args))  # Warm-up, not timed.
    times = time_calls(lambda: compiled(*args), FLAGS.repeats, FLAGS.min_repeats, FLAGS.seconds_per_point)
  except Exception as e:  # pylint: disable=broad-except
    if not is_out_of_memory(e):
      point.update(status="error", error=f"{type(e).__name__}: {str(e)[:300]}")
      return point
    point["status"] = "oom"
    return point
  median = statistics.median(times)
  point.update(status="ok", median_s=median, times_s=times, repeats=len(times),
               tokens_per_s=batch_size * length / median)
  return point


def time_forward(model, variables, batch_size: int, length: int,
                 max_memory_bytes: Optional[float]) -> Dict[str, Any]:
  """The forward (no dropout) of one (model, batch, length) point."""
  tokens, mask = random_batch(batch_size, length, FLAGS.seed + length)
  return time_program(lambda v, t, m: model.apply(v, t, m, train=False), (variables, tokens, mask),
                      batch_size, length, max_memory_bytes)


def time_train(config, state, batch_size: int, length: int, max_memory_bytes: Optional[float]) -> Dict[str, Any]:
  """One training step (``train.loop.trainer.train_step``) of one (model, batch, length) point."""
  tokens, mask = random_batch(batch_size, length, FLAGS.seed + length)
  batch = {"tokens": tokens, "mask": mask, "label": (tokens[:, 0] % 2).astype(jnp.int32),
           "weight": jnp.ones((batch_size,), jnp.float32)}
  step = functools.partial(trainer_lib.train_step, label_smoothing=config.label_smoothing)
  return time_program(step, (state, batch), batch_size, length, max_memory_bytes)


def time_step(model, variables, b: int) -> Dict[str, Any]:
  """Median latency of one recurrent step (b tokens, one per sequence)."""
  from mamba_jax import init_cache  # pylint: disable=import-outside-toplevel

  cache = init_cache(model.config, b)
  tokens = jax.random.randint(jax.random.key(FLAGS.seed), (b,), 1, VOCAB_SIZE)
  step = jax.jit(lambda v, t, c: model.apply(v, t, c, method=model.step))
  _, cache = jax.block_until_ready(step(variables, tokens, cache))  # Warm-up.
  times = time_calls(lambda: step(variables, tokens, cache), FLAGS.step_repeats,
                     FLAGS.step_repeats, float("inf"))
  return {"batch_size": b, "median_s": statistics.median(times), "repeats": len(times),
          "p90_s": float(np.percentile(times, 90))}


# ----------------------------------------------------------------------------- analysis


def ok_points(points: List[Dict[str, Any]]) -> Dict[int, float]:
  return {p["length"]: p["median_s"] for p in points if p.get("status") == "ok"}


def growth_exponents(points: List[Dict[str, Any]]) -> Dict[str, Any]:
  """Log-log slopes of time vs length: between neighbours, and fitted over l >= 256."""
  times = ok_points(points)
  lengths = sorted(times)
  local = {
      f"{a}->{b}": math.log(times[b] / times[a]) / math.log(b / a)
      for a, b in zip(lengths, lengths[1:])
  }
  long = [l for l in lengths if l >= 256]
  fitted = None
  if len(long) >= 2:
    fitted = float(np.polyfit(np.log(long), np.log([times[l] for l in long]), 1)[0])
  return {"between_lengths": local, "fit_l_ge_256": fitted}


def crossover(slow_at_long: Dict[int, float], fast_at_long: Callable[[int], Optional[float]]):
  """Smallest length where ``slow_at_long`` takes longer than ``fast_at_long``.

  Interpolated in log-log between the two measured lengths that bracket the sign
  change of log(t_slow / t_fast). Returns {"length", "note"}.
  """
  lengths = [l for l in sorted(slow_at_long) if fast_at_long(l) is not None]
  if not lengths:
    return {"length": None, "note": "no common measured length"}
  ratio = {l: math.log(slow_at_long[l] / fast_at_long(l)) for l in lengths}
  if ratio[lengths[0]] > 0:
    return {"length": None, "at_most": lengths[0],
            "note": f"already at the shortest measured length, {lengths[0]}"}
  for a, b in zip(lengths, lengths[1:]):
    if ratio[a] <= 0 < ratio[b]:
      frac = -ratio[a] / (ratio[b] - ratio[a])
      at = math.exp(math.log(a) + frac * (math.log(b) - math.log(a)))
      return {"length": round(at), "note": f"between {a} and {b} (log-log interpolation)"}
  return {"length": None, "note": f"not reached up to {lengths[-1]}"}


def mamba2_below(points_by_model: Dict[str, List[Dict[str, Any]]]) -> Dict[str, Any]:
  """Other model -> {"below_at": lengths where Mamba-2 takes less time, "not_below_at": where not,
  "ratio": length -> Mamba-2's time / the other's}, over the lengths both measured."""
  if "mamba2" not in points_by_model:
    return {}
  mine = ok_points(points_by_model["mamba2"])
  result = {}
  for name, points in points_by_model.items():
    if name == "mamba2":
      continue
    theirs = ok_points(points)
    common = sorted(set(mine) & set(theirs))
    result[name] = {"below_at": [l for l in common if mine[l] < theirs[l]],
                    "not_below_at": [l for l in common if mine[l] >= theirs[l]],
                    "ratio": {str(l): mine[l] / theirs[l] for l in common}}
  return result


def analyze(results: Dict[str, Any]) -> Dict[str, Any]:
  forward = {name: ok_points(points) for name, points in results["forward"].items()}
  summary: Dict[str, Any] = {
      "growth_exponent": {name: growth_exponents(points)
                          for name, points in results["forward"].items()},
      "crossover": {},
  }
  summary["mamba2_below"] = {mode: mamba2_below(results.get(mode, {})) for mode in MODES if results.get(mode)}
  if "transformer" not in forward:
    return summary
  for name, (label, suffix) in CROSSOVER_MODELS.items():
    if name in forward:
      summary["crossover"]["forward" + suffix] = dict(
          crossover(forward["transformer"], forward[name].get),
          description=f"shortest length at which the Transformer's forward takes longer than {label}'s")
    step = results.get("step", {}).get(name)
    if step:
      summary["crossover"]["step" + suffix] = dict(
          crossover(forward["transformer"], lambda l, step=step: step["median_s"]),
          description="shortest prefix length at which the Transformer re-encoding the prefix "
                      f"takes longer than one {label} recurrent step")
  return summary


# ----------------------------------------------------------------------------- report


def _cell(point: Dict[str, Any], unit: str = "") -> str:
  status = point.get("status")
  if status == "ok":
    return f"{point['median_s'] * 1e3:.1f}{unit}"
  if status == "skipped_memory":
    return f"skipped (needs {point['memory_estimate_gib']:.1f} GiB)"
  if status == "not_run":
    return "not run"
  return status.upper() if status else "?"


def markdown(results: Dict[str, Any]) -> str:
  env = results["environment"]
  lines = [
      f"# Runtime vs sequence length: inference and training step ({env['device']})", "",
      f"- jax {env['jax_version']}, commit `{env['commit']}`, {env['date_utc']} UTC, "
      f"{env['cpu_count']} host CPUs (1-min load average at start "
      f"{env.get('load_average_at_start', float('nan')):.1f}, at end "
      f"{results.get('load_average_at_end', float('nan')):.1f}: other work on a shared host "
      "inflates and scatters CPU times)",
      f"- command: `{env['command']}`",
      "- random token ids, no padding, jitted programs, compile + one warm-up run excluded, median of the "
      "timed runs (repeats per point in the JSON); forward: `train=False`; training step: "
      "`train.loop.trainer.train_step` (forward, backward, AdamW update, dropout on).",
  ]
  batches = [results] + [results["other_batches"][b] for b in sorted(results.get("other_batches", {}), key=int)]
  for batch in batches:
    lines += ["", f"## Batch {batch['batch_size']}"]
    lines += _batch_markdown(batch, results["lengths"], results["num_params"])
  return "\n".join(lines) + "\n"


def _batch_markdown(batch: Dict[str, Any], lengths: List[int], num_params: Dict[str, int]) -> List[str]:
  lines = []
  for mode in MODES:
    if not batch.get(mode):
      continue
    lines += ["", f"### {MODE_TITLES[mode]}", "",
              "| model | params | " + " | ".join(str(l) for l in lengths) + " |",
              "|---|---:|" + "---:|" * len(lengths)]
    for name, points in batch[mode].items():
      by_length = {p["length"]: p for p in points}
      cells = [_cell(by_length[l]) if l in by_length else "" for l in lengths]
      lines.append(f"| {name} | {num_params[name]:,} | " + " | ".join(cells) + " |")
  summary = batch["summary"]
  for mode, comparison in summary.get("mamba2_below", {}).items():
    if comparison:
      lines += ["", f"Mamba-2's {'forward' if mode == 'forward' else 'training step'} against the others "
                "(its time / theirs; below 1: Mamba-2 is faster):", ""]
      for name, c in comparison.items():
        ratios = ", ".join(f"{l}: {r:.2f}" for l, r in c["ratio"].items())
        verdict = ("below at every length measured" if not c["not_below_at"] else
                   f"not below at {', '.join(map(str, c['not_below_at']))}")
        lines.append(f"- {name}: {verdict} ({ratios})")
  if summary.get("growth_exponent"):
    lines += ["", "### Growth exponent of the forward (slope of log time vs log length)", "",
              "| model | fit over l >= 256 | between neighbouring lengths |", "|---|---:|---|"]
    for name, growth in summary["growth_exponent"].items():
      fit = "" if growth["fit_l_ge_256"] is None else f"{growth['fit_l_ge_256']:.2f}"
      local = ", ".join(f"{k}: {v:.2f}" for k, v in growth["between_lengths"].items())
      lines.append(f"| {name} | {fit} | {local} |")
  if batch.get("step"):
    lines += ["", "### Recurrent step vs re-encoding the prefix", "",
              f"Per new token of a batch of {batch['batch_size']} sequences:", ""]
    for name, step in batch["step"].items():
      lines.append(f"- {name} `step`: {step['median_s'] * 1e3:.3f} ms per token "
                   f"(median of {step['repeats']}; independent of the prefix length)")
    transformer = {p["length"]: p for p in batch.get("forward", {}).get("transformer", [])}
    if transformer:
      cells = ", ".join(f"{l}: {_cell(p, ' ms')}" for l, p in sorted(transformer.items()))
      lines.append(f"- transformer re-encoding a prefix of length l (one forward): {cells}")
  if summary.get("crossover"):
    lines += ["", "### Crossover", ""]
    for value in summary["crossover"].values():
      if value["length"] is not None:
        shown = f"~{value['length']} tokens"
      elif value.get("at_most") is not None:
        shown = f"<= {value['at_most']} tokens"
      else:
        shown = "none measured"
      lines.append(f"- {value['description']}: {shown} ({value['note']})")
  return lines


# ----------------------------------------------------------------------------- main


def run_benchmark() -> Dict[str, Any]:
  device = jax.devices()[0]
  on_cpu = device.platform == "cpu"
  lengths = sorted(int(l) for l in FLAGS.lengths)
  batch_sizes = [int(b) for b in FLAGS.batch_sizes]
  unknown = [m for m in FLAGS.models if m not in configs.BY_MODEL]
  if unknown:
    raise app.UsageError(f"Unknown --models {unknown}; choose from {sorted(configs.BY_MODEL)}.")
  if not batch_sizes or not set(FLAGS.modes) <= set(MODES):
    raise app.UsageError(f"--batch_sizes needs one size at least; --modes is a subset of {MODES}.")
  max_gib = FLAGS.max_memory_gib if FLAGS.max_memory_gib is not None else (6.0 if on_cpu else None)
  max_bytes = None if max_gib is None else max_gib * 2**30
  results: Dict[str, Any] = {
      "environment": provenance.environment(device, " ".join(["python -m benchmarks.runtime"] + sys.argv[1:])),
      "lengths": lengths, "batch_sizes": batch_sizes, "modes": list(FLAGS.modes),
      "max_memory_gib": max_gib, "cpu_max_length": FLAGS.cpu_max_length if on_cpu else None, "num_params": {},
  }
  by_batch = {b: {"batch_size": b, "forward": {}, "train": {}, "step": {}} for b in batch_sizes}
  for name in FLAGS.models:
    config, model, variables = build_model(name, max(lengths))
    results["num_params"][name] = model_factory.count_params(variables["params"])
    state = (trainer_lib.create_train_state(config, model, jax.random.key(FLAGS.seed), total_steps=10_000)
             if "train" in FLAGS.modes else None)
    for b in batch_sizes:
      for mode in FLAGS.modes:
        points = []
        for length in lengths:
          if on_cpu and length > FLAGS.cpu_max_length:
            points.append({"length": length, "batch_size": b, "status": "not_run",
                           "reason": f"CPU capped at {FLAGS.cpu_max_length}"})
            continue
          point = (time_forward(model, variables, b, length, max_bytes) if mode == "forward" else
                   time_train(config, state, b, length, max_bytes))
          print(f"{name:12s} b={b:4d} {mode:8s} l={length:6d} {_cell(point):>24s} ms", flush=True)
          points.append(point)
        by_batch[b][mode][name] = points
      if name in STEP_MODELS:
        by_batch[b]["step"][name] = time_step(model, variables, b)
        print(f"{name:12s} b={b:4d} step {by_batch[b]['step'][name]['median_s'] * 1e3:.3f} ms", flush=True)
  for entry in by_batch.values():
    entry["summary"] = analyze(entry)
  results.update(by_batch[batch_sizes[0]])
  results["other_batches"] = {str(b): by_batch[b] for b in batch_sizes[1:]}
  results["load_average_at_end"] = os.getloadavg()[0]
  return results


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f"Unexpected arguments: {argv[1:]}")
  results = run_benchmark()
  tag = FLAGS.device_tag or provenance.device_tag(jax.devices()[0])
  provenance.write_report(os.path.join(FLAGS.output_dir, f"runtime_{tag}"), results, markdown(results))


def _define_flags() -> None:
  """Command-line flags (defined only when run as a program, so importing is side-effect free)."""
  flags.DEFINE_list("models", list(configs.BY_MODEL), "Models to time.")
  flags.DEFINE_list("lengths", ["16", "64", "256", "1024", "4096"], "Sequence lengths.")
  flags.DEFINE_list("batch_sizes", ["32", "512"], "Sequences per batch (the first one's numbers at the JSON's top level).")
  flags.DEFINE_list("modes", list(MODES), "What to time: forward (inference) and/or train (one training step).")
  flags.DEFINE_integer("repeats", 10, "Timed runs per point (after the warm-up).")
  flags.DEFINE_integer("min_repeats", 3, "Timed runs per point at least ...")
  flags.DEFINE_float(
      "seconds_per_point", 20.0, "... but stop adding runs once a point has taken this long.")
  flags.DEFINE_integer("step_repeats", 200, "Timed recurrent steps.")
  flags.DEFINE_integer("cpu_max_length", 4096, "Longest length run on the CPU.")
  flags.DEFINE_float(
      "max_memory_gib", None,
      "Skip points whose compiled program needs more (XLA estimate); default 6 on the CPU "
      "(a host OOM kills the process instead of raising), unlimited on accelerators.")
  flags.DEFINE_string("output_dir", "results", "Where runtime_<device>.{json,md} go.")
  flags.DEFINE_string(
      "device_tag", None, "File name tag; default 'cpu' or the accelerator kind (e.g. 'h100').")
  flags.DEFINE_integer("seed", 0, "Parameter init and token ids.")


if __name__ == "__main__":
  _define_flags()
  app.run(main)
