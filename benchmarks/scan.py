"""Benchmark of the selective-scan methods: time, memory, and the memory floor.

Axes (``mamba_jax.notation``): b, l, d, n; for the SSD h, p.

For every shape x dtype x mode (fwd, fwd_bwd) x method it measures the median
wall time of the jitted computation, its speed-up over the associative scan,
the device memory the compiled program needs (arguments + outputs + temporaries,
from XLA's memory analysis; a (b, l, d, n) float32 temporary shows up there) and
the process-wide peak from ``device.memory_stats()`` where the backend has one,
and the memory floor: the bytes a fused kernel must move (fwd: read u, delta, A,
B, C, D and write y; fwd_bwd: read those and dy, write every gradient) divided by
the measured device-to-device copy bandwidth, with the ratio time / floor.

Mamba-2's SSD (``ssm.ssd_scan``) is timed at every shape too, as the methods
``ssd:associative`` and ``ssd:sequential`` (the recurrence over chunk states). A
Mamba-1 shape (b, l, d, n) becomes SSD inputs of h = d / ``--ssd_head_dim`` heads of
p = ``--ssd_head_dim`` channels, one group and the same n, in chunks of
``--ssd_chunk_size``, built from the same random inputs: x = u as (b, l, h, p), dt and
D from the first channel of each head (so (b, l, h) and (h,)), A per head (h,)
negative, B and C as (b, l, 1, n). Their floor bytes are those of the SSD inputs.
Every record says its ``family`` ("selective_scan" or "ssd"); the speed-up column of
every row, SSD rows included, is over Mamba-1's associative scan; the fastest method
of a case is reported per family (an SSD row never competes with Mamba-1's scans:
``python -m benchmarks.fastest_method --family=ssd`` picks a Mamba-2 config's
``scan_method``).

Usage (from the repository root)::

    # GPU, everything (writes results/scan_<device>.json and .md; several
    # minutes, dominated by compiling and running the associative and
    # sequential scans at long32k):
    python -m benchmarks.scan
    # CPU, the measurement behind ssm.AUTO_METHOD["cpu"]:
    JAX_PLATFORMS=cpu python -m benchmarks.scan --shapes=cpu_batch,cpu_mid,cpu_long \
        --methods=associative,sequential --out=results/scan_cpu.json
    # Custom shapes are written b x l x d x n: --shapes=4x100x64x16
    # Kernel settings sweep (one column per setting):
    python -m benchmarks.scan --shapes=long32k --dtypes=float32 \
        --methods=associative,pallas,pallas:block_d=32,pallas:num_segments=1,pallas:num_warps=2
    # Mamba-2's SSD only, heads of 32 channels, chunks of 128:
    python -m benchmarks.scan --methods=ssd:associative,ssd:sequential \
        --ssd_head_dim=32 --ssd_chunk_size=128

The Pallas method runs only on GPUs; elsewhere it would run in interpret mode,
which is not a real method, so it is skipped unless --pallas_interpret is given
(useful to smoke-test this script on CPU at tiny sizes).
"""

from __future__ import annotations

import json
import os
import re
import statistics
import sys
import time
from typing import Callable, Dict, List, Optional, Sequence, Tuple

from absl import app
from absl import flags
import jax
import jax.numpy as jnp

from benchmarks.fastest_method import FAMILIES, SSD_PREFIX, family_of, fastest_method
from mamba_jax import ssm
from mamba_jax.scan import pallas
from train.runs import provenance

NAMED_SHAPES: Dict[str, Tuple[int, int, int, int]] = {
    # The shapes of issue 6 (GPU).
    "tweet": (512, 64, 256, 16),
    "tweet_big": (2048, 64, 256, 16),
    "long4k": (8, 4096, 1536, 16),
    "long32k": (1, 32768, 1536, 16),
    # CPU-sized shapes.
    "cpu_batch": (64, 64, 128, 16),
    "cpu_mid": (8, 256, 128, 16),
    "cpu_long": (1, 1024, 128, 16),
}
GPU_SHAPES = ("tweet", "tweet_big", "long4k", "long32k")
# Kernel settings a pallas method may name, as in "pallas:block_d=32:chunk_size=8".
PALLAS_OPTIONS = ("chunk_size", "block_d", "num_segments", "num_warps", "num_stages")
DTYPES = {"float32": jnp.float32, "bfloat16": jnp.bfloat16}
MODES = ("fwd", "fwd_bwd")
# The recurrences over chunk states an "ssd:<recurrence>" method may name ("auto" is not a method).
SSD_RECURRENCES = ("associative", "sequential")


def usage_error(message: str):
  """Exits with code 2 and one line on stderr."""
  print(message, file=sys.stderr)
  raise SystemExit(2)


def parse_shape(name: str) -> Tuple[str, Tuple[int, int, int, int]]:
  if name in NAMED_SHAPES:
    return name, NAMED_SHAPES[name]
  match = re.fullmatch(r"(\d+)x(\d+)x(\d+)x(\d+)", name)
  if not match:
    usage_error(f"Unknown shape {name!r}: use one of {sorted(NAMED_SHAPES)} "
                "or b x l x d x n like 4x100x64x16.")
  return name, tuple(int(g) for g in match.groups())


def make_inputs(shape, dtype, seed=0):
  """Random scan inputs on the device, in the ranges a trained Mamba sees."""
  b, l, d, n = shape

  @jax.jit
  def build(key):
    ks = jax.random.split(key, 6)
    u = jax.random.normal(ks[0], (b, l, d))
    delta = jax.nn.softplus(jax.random.normal(ks[1], (b, l, d)) - 1.0)
    A = -jnp.exp(0.5 * jax.random.normal(ks[2], (d, n)))
    B = jax.random.normal(ks[3], (b, l, n))
    C = jax.random.normal(ks[4], (b, l, n))
    D = jax.random.normal(ks[5], (d,))
    return u.astype(dtype), delta.astype(dtype), A, B.astype(dtype), C.astype(dtype), D

  return jax.block_until_ready(build(jax.random.key(seed)))


def make_ssd_inputs(inputs, head_dim: int):
  """The SSD inputs (x, dt, A, B, C, D) of one Mamba-1 shape, from its scan inputs.

  u, delta (b, l, d), A (d, n), B, C (b, l, n), D (d,) -> x (b, l, h, p) = u, dt (b, l, h) and
  D (h,) from the first channel of each head, A (h,) = A[first channel of each head, 0] (< 0),
  B, C (b, l, 1, n): one group. h = d / head_dim heads of p = head_dim channels.
  """
  u, delta, A, B, C, D = inputs
  b, l, d = u.shape
  if d % head_dim:
    raise ValueError(f"--ssd_head_dim {head_dim} does not divide d = {d}")
  h = d // head_dim

  @jax.jit
  def build(u, delta, A, B, C, D):
    return (u.reshape(b, l, h, head_dim), delta.reshape(b, l, h, head_dim)[..., 0],
            A.reshape(h, head_dim, -1)[:, 0, 0], B[:, :, None, :], C[:, :, None, :],
            D.reshape(h, head_dim)[:, 0])

  return jax.block_until_ready(build(u, delta, A, B, C, D))


def parse_method(method: str) -> Tuple[str, Dict[str, int]]:
  """"pallas:block_d=32:num_warps=2" -> ("pallas", {"block_d": 32, "num_warps": 2});
  "ssd:sequential" -> ("ssd:sequential", {})."""
  if family_of(method) == "ssd":
    if method[len(SSD_PREFIX):] not in SSD_RECURRENCES:
      usage_error(f"Unknown SSD method {method!r}; expected {SSD_PREFIX}<one of {SSD_RECURRENCES}>.")
    return method, {}
  name, *options = method.split(":")
  if name not in ssm.SCAN_METHODS:
    usage_error(f"Unknown method {name!r}; expected some of {ssm.SCAN_METHODS} or "
                f"{SSD_PREFIX}<one of {SSD_RECURRENCES}>.")
  kwargs = {}
  for option in options:
    key, _, value = option.partition("=")
    if name != "pallas" or key not in PALLAS_OPTIONS or not value.isdigit():
      usage_error(f"Bad option {option!r} of method {method!r}: only pallas takes options, "
                  f"integers among {PALLAS_OPTIONS}.")
    kwargs[key] = int(value)
  return name, kwargs


def scan_fn(method: str, ssd_chunk_size: int = 64) -> Callable:
  """y = scan(*inputs) by one method, from its natural entry point.

  Mamba-1 methods take (u, delta, A, B, C, D) of :func:`make_inputs`; SSD methods take
  (x, dt, A, B, C, D) of :func:`make_ssd_inputs` and run in chunks of ``ssd_chunk_size``.
  """
  name, kwargs = parse_method(method)
  if family_of(name) == "ssd":
    recurrence = name[len(SSD_PREFIX):]
    return lambda x, dt, A, B, C, D: ssm.ssd_scan(x, dt, A, B, C, D, chunk_size=ssd_chunk_size,
                                                  method=recurrence)
  if name == "pallas":
    return lambda u, delta, A, B, C, D: pallas.selective_scan_pallas(
        u, delta, A, B, C, D, **kwargs)
  return lambda u, delta, A, B, C, D: ssm.selective_scan(u, delta, A, B, C, D, method=name)


def benchmark_fn(method: str, mode: str, ssd_chunk_size: int = 64) -> Callable:
  scan = scan_fn(method, ssd_chunk_size)
  if mode == "fwd":
    return jax.jit(scan)

  def loss(*args):
    return jnp.sum(scan(*args).astype(jnp.float32))

  return jax.jit(jax.grad(loss, argnums=tuple(range(6))))


def nbytes(*xs) -> int:
  return sum(x.size * x.dtype.itemsize for x in xs)


def floor_bytes(inputs, mode: str) -> int:
  """Bytes a single fused kernel must read and write (the output has the first input's shape)."""
  u = inputs[0]
  out_bytes = u.size * u.dtype.itemsize  # y (fwd) or dy (bwd), in u's dtype
  if mode == "fwd":
    return nbytes(*inputs) + out_bytes
  return 2 * nbytes(*inputs) + out_bytes  # inputs and dy in, one gradient per input out


def time_call(fn, args, repeats: int, max_seconds: float) -> List[float]:
  jax.block_until_ready(fn(*args))  # warm-up (compile + first run)
  times, start = [], time.perf_counter()
  for _ in range(repeats):
    t0 = time.perf_counter()
    jax.block_until_ready(fn(*args))
    times.append((time.perf_counter() - t0) * 1e3)
    if len(times) >= 3 and time.perf_counter() - start > max_seconds:
      break
  return times


def copy_bandwidth(device_bytes: int, repeats: int) -> float:
  """Device-to-device bandwidth (bytes/s) of a jitted elementwise copy (read + write)."""
  x = jax.block_until_ready(jnp.ones((device_bytes // 4,), jnp.float32))
  negate = jax.jit(lambda x: -x)
  times = time_call(negate, (x,), max(repeats, 5), max_seconds=10.0)
  return 2 * x.size * 4 / (statistics.median(times) / 1e3)


def peak_memory() -> Optional[int]:
  stats = jax.devices()[0].memory_stats()
  return None if not stats else stats.get("peak_bytes_in_use")


def jaxlib_version() -> Optional[str]:
  try:
    import jaxlib

    return jaxlib.__version__
  except (ImportError, AttributeError):
    return None


def run_case(shape_name, shape, dtype_name, mode, method, inputs, bandwidth, settings) -> dict:
  """Times one method on ``inputs`` (the SSD inputs for an SSD method) and returns its record."""
  b, l, d, n = shape
  family = family_of(method)
  record = dict(shape=shape_name, b=b, l=l, d=d, n=n, dtype=dtype_name, mode=mode, method=method,
                family=family)
  if family == "ssd":
    x, _, _, B = inputs[:4]
    record.update(ssd_heads=x.shape[2], ssd_head_dim=x.shape[3], ssd_groups=B.shape[2],
                  ssd_chunk_size=settings.ssd_chunk_size)
  try:
    fn = benchmark_fn(method, mode, settings.ssd_chunk_size)
    t0 = time.perf_counter()
    compiled = fn.lower(*inputs).compile()
    record["compile_s"] = round(time.perf_counter() - t0, 3)
    analysis = compiled.memory_analysis()
    if analysis is not None:
      record["program_bytes"] = int(analysis.argument_size_in_bytes + analysis.output_size_in_bytes
                                    + analysis.temp_size_in_bytes)
      record["temp_bytes"] = int(analysis.temp_size_in_bytes)
      record["materializes_bldn"] = analysis.temp_size_in_bytes >= b * l * d * n * 4
    times = time_call(compiled, inputs, settings.repeats, settings.max_seconds_per_case)
    record["median_ms"] = statistics.median(times)
    record["runs"] = len(times)
    record["peak_bytes_in_use"] = peak_memory()
    floor = floor_bytes(inputs, mode)
    record["floor_bytes"] = floor
    record["floor_ms"] = floor / bandwidth * 1e3
    record["ratio_to_floor"] = record["median_ms"] / record["floor_ms"]
  except Exception as e:  # An OOM or lowering failure is a result too; keep going.
    record["error"] = f"{type(e).__name__}: {str(e).splitlines()[0][:300]}"
  return record


def add_speedups(records: List[dict]) -> None:
  """speedup_vs_associative of every record (SSD rows too): over Mamba-1's associative scan."""
  base = {(r["shape"], r["dtype"], r["mode"]): r.get("median_ms")
          for r in records if r["method"] == "associative"}
  for r in records:
    ref = base.get((r["shape"], r["dtype"], r["mode"]))
    if ref and r.get("median_ms"):
      r["speedup_vs_associative"] = ref / r["median_ms"]


def check_targets(records: List[dict]) -> List[dict]:
  """The H100 targets of issue 6, evaluated on whatever was measured."""
  def find(shape, mode, method, dtype="float32"):
    for r in records:
      if (r["shape"], r["mode"], r["method"], r["dtype"]) == (shape, mode, method, dtype):
        return r
    return None

  checks = []
  for shape, need in (("tweet", 6.0), ("long32k", 13.0)):
    r = find(shape, "fwd_bwd", "pallas")
    if r and "speedup_vs_associative" in r:
      speedup = r["speedup_vs_associative"]
      checks.append(dict(target=f"fwd_bwd speed-up at {shape} >= {need}x",
                         value=speedup, met=speedup >= need))
  for shape in ("long4k", "long32k"):
    r = find(shape, "fwd", "pallas")
    if r and "ratio_to_floor" in r:
      checks.append(dict(target=f"fwd at {shape} within 4x of the memory floor",
                         value=r["ratio_to_floor"], met=r["ratio_to_floor"] <= 4.0))
  # Only at the issue's shapes: at tiny shapes any temporary is as big as (b, l, d, n).
  pallas = [r for r in records if r["method"].startswith("pallas") and "materializes_bldn" in r
            and r["shape"] in GPU_SHAPES]
  if pallas:
    checks.append(dict(target="no (b, l, d, n) buffer in the pallas programs",
                       value=sum(r["materializes_bldn"] for r in pallas),
                       met=not any(r["materializes_bldn"] for r in pallas)))
  return checks


def fmt(x, spec):
  return "" if x is None else format(x, spec)


def to_markdown(report: dict) -> str:
  meta = report["meta"]
  lines = [
      f"# Selective scan benchmark on {meta['device_kind']} ({meta['backend']})",
      "",
      f"- command: `{meta['command']}`",
      f"- jax {meta['jax_version']}, jaxlib {meta['jaxlib_version']}, commit {meta['commit']}, "
      f"{meta['date_utc']} UTC",
      f"- host {meta['host_cpu']} with {meta['cpu_count']} CPUs, load average at the end "
      f"{meta['load_average_at_end']}",
      f"- copy bandwidth {meta['copy_bandwidth_gb_s']:.1f} GB/s "
      "(memory floor = floor bytes / this)",
      "",
  ]
  if any(r.get("family") == "ssd" for r in report["results"]):
    lines += [
        "SSD rows (method ssd:<recurrence>): Mamba-2's SSD on the same random inputs in heads of "
        f"{meta['ssd_head_dim']} channels, one group, chunks of {meta['ssd_chunk_size']} tokens; "
        "their speed-up is over Mamba-1's associative scan too. The fastest method of a case is "
        "picked per family (Mamba-1's scans; the SSD's recurrences).",
        "",
    ]
  lines += [
      "| shape (b,l,d,n) | dtype | mode | method | median ms | speed-up vs Mamba-1 assoc | floor ms | "
      "x floor | program MiB | (b,l,d,n) temp | note |",
      "|---|---|---|---|---:|---:|---:|---:|---:|---|---|",
  ]
  for r in report["results"]:
    mib = r.get("program_bytes")
    lines.append(
        f"| {r['shape']} ({r['b']},{r['l']},{r['d']},{r['n']}) | {r['dtype']} | {r['mode']} | "
        f"{r['method']} | {fmt(r.get('median_ms'), '.3f')} | "
        f"{fmt(r.get('speedup_vs_associative'), '.2f')} | {fmt(r.get('floor_ms'), '.3f')} | "
        f"{fmt(r.get('ratio_to_floor'), '.1f')} | {'' if mib is None else f'{mib / 2**20:.1f}'} | "
        f"{'' if 'materializes_bldn' not in r else ('yes' if r['materializes_bldn'] else 'no')} | "
        f"{r.get('error', '')} |")
  if report["targets"]:
    lines += ["", "## Targets of issue 6", ""]
    for c in report["targets"]:
      verdict = "MET" if c["met"] else "NOT MET"
      lines.append(f"- {verdict}: {c['target']} (measured {c['value']:.2f})")
  for family, fastest in report.get("fastest", {}).items():
    lines += ["", f"## Fastest {family} method per case", ""]
    for key, method in fastest.items():
      lines.append(f"- {key}: {method}")
  return "\n".join(lines) + "\n"


def fastest_methods(records: List[dict]) -> Dict[str, Dict[str, str]]:
  """{family: {"<shape> <dtype> <mode>": fastest timed method}}: methods compete within a family."""
  cases = list(dict.fromkeys(f"{r['shape']} {r['dtype']} {r['mode']}" for r in records))
  result: Dict[str, Dict[str, str]] = {}
  for family in FAMILIES:
    fastest = {case: fastest_method(records, case, family=family) for case in cases}
    fastest = {case: method for case, method in fastest.items() if method is not None}
    if fastest:
      result[family] = fastest
  return result


def main(argv: Sequence[str]) -> None:
  if len(argv) > 1:
    raise app.UsageError(f"Unexpected arguments: {argv[1:]}")
  settings = flags.FLAGS
  backend = jax.default_backend()
  device = jax.devices()[0]
  shapes = [parse_shape(s) for s in settings.shapes if s]
  methods = [m for m in settings.methods if m]
  for m in methods:
    parse_method(m)
  ssd_methods = [m for m in methods if family_of(m) == "ssd"]
  if settings.ssd_chunk_size < 1 or settings.ssd_head_dim < 1:
    usage_error("--ssd_head_dim and --ssd_chunk_size must be >= 1.")
  for shape_name, (_, _, d, _) in shapes:
    if ssd_methods and d % settings.ssd_head_dim:
      usage_error(f"--ssd_head_dim {settings.ssd_head_dim} does not divide d = {d} of shape "
                  f"{shape_name} (methods {ssd_methods}).")
  if backend != "gpu" and not settings.pallas_interpret:
    skipped = [m for m in methods if parse_method(m)[0] == "pallas"]
    if skipped:
      print(f"Skipping {skipped} on backend {backend!r} (interpret mode is not a real method; "
            "pass --pallas_interpret to run it anyway).")
    methods = [m for m in methods if m not in skipped]
  dtypes = [t for t in settings.dtypes if t]
  modes = [m for m in settings.modes if m]
  for t in dtypes:
    if t not in DTYPES:
      usage_error(f"Unknown dtype {t!r}; expected some of {sorted(DTYPES)}.")
  for m in modes:
    if m not in MODES:
      usage_error(f"Unknown mode {m!r}; expected some of {MODES}.")

  copy_bytes = settings.copy_bytes or (2**30 if backend == "gpu" else 2**28)
  bandwidth = copy_bandwidth(copy_bytes, settings.repeats)
  print(f"{device.device_kind}: copy bandwidth {bandwidth / 1e9:.1f} GB/s")

  records = []
  for shape_name, shape in shapes:
    for dtype_name in dtypes:
      inputs = make_inputs(shape, DTYPES[dtype_name])
      ssd_inputs = make_ssd_inputs(inputs, settings.ssd_head_dim) if ssd_methods else None
      for mode in modes:
        for method in methods:
          case_inputs = ssd_inputs if family_of(method) == "ssd" else inputs
          record = run_case(shape_name, shape, dtype_name, mode, method, case_inputs, bandwidth,
                            settings)
          records.append(record)
          print(json.dumps(record), flush=True)
      del inputs, ssd_inputs
  add_speedups(records)

  report = dict(
      meta=dict(
          **provenance.environment(device, "python -m benchmarks.scan " + " ".join(sys.argv[1:]),
                                   commit_paths=("mamba_jax", "benchmarks")),
          device_kind=device.device_kind, backend=backend, jaxlib_version=jaxlib_version(),
          load_average_at_end=os.getloadavg() if hasattr(os, "getloadavg") else None,
          copy_bandwidth_gb_s=bandwidth / 1e9, copy_bytes=copy_bytes,
          repeats=settings.repeats, max_seconds_per_case=settings.max_seconds_per_case,
          ssd_head_dim=settings.ssd_head_dim, ssd_chunk_size=settings.ssd_chunk_size),
      results=records,
      targets=check_targets(records),
      fastest=fastest_methods(records),
  )
  out = settings.out or os.path.join("results", f"scan_{provenance.device_tag(device)}.json")
  provenance.write_report(os.path.splitext(out)[0], report, to_markdown(report))


def _define_flags() -> None:
  """Command-line flags (defined only when run as a program, so importing is side-effect free)."""
  flags.DEFINE_list("shapes", list(GPU_SHAPES), f"Comma list of {sorted(NAMED_SHAPES)} or bxlxdxn.")
  flags.DEFINE_list("methods", ["pallas", "associative", "sequential", "ssd:associative",
                                "ssd:sequential"],
                    "Comma list; pallas may carry kernel settings, e.g. pallas:block_d=32:num_warps=2; "
                    "ssd:<recurrence> is Mamba-2's SSD (ssm.ssd_scan) with that chunk recurrence.")
  flags.DEFINE_list("dtypes", ["float32", "bfloat16"], f"Comma list of {sorted(DTYPES)}.")
  flags.DEFINE_list("modes", ["fwd", "fwd_bwd"], f"Comma list of {list(MODES)}.")
  flags.DEFINE_integer("repeats", 10, "Timed runs per case.")
  flags.DEFINE_float("max_seconds_per_case", 10.0,
                     "Stop repeating a case after this long (at least 3 runs).")
  flags.DEFINE_integer("copy_bytes", None,
                       "Bytes of the bandwidth measurement (default 1 GiB GPU, 256 MiB else).")
  flags.DEFINE_bool("pallas_interpret", False,
                    "Allow the pallas method off-GPU (interpret mode; for smoke tests).")
  flags.DEFINE_integer("ssd_head_dim", 64, "SSD methods: channels per head (must divide every d).")
  flags.DEFINE_integer("ssd_chunk_size", 64, "SSD methods: tokens per chunk.")
  flags.DEFINE_string("out", None, "JSON path (default results/scan_<device>.json).")


if __name__ == "__main__":
  _define_flags()
  app.run(main)
