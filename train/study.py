r"""The comparison study: Mamba vs Transformer vs LSTM vs LTI SSM, and Mamba ablations.

  # Full study (GPU; full data, 3 seeds per run, each run as configs/<model>.py):
  python -m train.study --output_dir=results/study --workdir_root=workdirs/study
  # Rerun a subset (other runs' results in --output_dir are kept and re-tabulated):
  python -m train.study --runs=mamba,mamba_d_state_* --retrain
  # Re-tabulate only (after copying runs/*.json or new runtime/TF-IDF results):
  python -m train.study --summarize_only
  # Whole study on a small subset on the CPU in minutes:
  python -m train.study --quick --output_dir=/tmp/study --workdir_root=/tmp/study_wd
  python -m train.study --quick --dataset=synthetic --seeds=0 ...   # no data files needed

Every run is a config file (configs/{sent140,transformer,lstm,ssm}.py) plus
overrides; every run gets the same data, splits, tokenizer, epochs and
optimizer settings. Each (run, seed) trains with ``train.train.train_and_evaluate``
in ``<workdir_root>/<run>/seed<seed>`` (a finished run's eval_report.json is
reused unless ``--retrain``; an interrupted one resumes from its checkpoint).

Writes into ``--output_dir``:
  runs/<run>__seed<seed>.json   the eval report of each run (+ study metadata)
  summary.json                  mean / std / values per metric and run
  study.md                      the table (+ TF-IDF row, runtime figure)
  accuracy.png                  held-out test and manual-test accuracy, mean +- std
  runtime.png                   inference time vs length from results/runtime_*.json
"""

from __future__ import annotations

import ast
import dataclasses
import fnmatch
import glob
import importlib
import json
import os
import statistics
import sys
import time
import traceback
from typing import Any, Dict, List, Optional, Sequence

import ml_collections

from train import provenance
from train import workdir as workdir_lib

# Short names of the config modules the runs start from.
BASE_CONFIGS = {
    "mamba": "configs.sent140",
    "transformer": "configs.transformer",
    "lstm": "configs.lstm",
    "ssm": "configs.ssm",
}


@dataclasses.dataclass(frozen=True)
class StudyRun:
  """One row of the study: a base config plus dotted-key overrides."""

  name: str
  base: str  # Key of BASE_CONFIGS.
  description: str
  overrides: Dict[str, Any] = dataclasses.field(default_factory=dict)


# The study. Reference Mamba: selective delta and B/C, d_state 16, expand 2, conv.
STUDY_RUNS = (
    StudyRun("mamba", "mamba", "Mamba (configs/sent140.py)"),
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
    "write_tfds": False,  # The trainer reads the token cache only.
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

# Metric name -> (path in the eval report, table header, format).
METRICS = {
    "test_accuracy": (("test", "accuracy"), "test acc (%)", "pct"),
    "manual_binary_accuracy": (("manual_test", "binary", "accuracy"), "manual acc (%)", "pct"),
    "test_macro_f1": (("test", "macro_f1"), "macro-F1", "f4"),
    "test_ece": (("test", "ece"), "ECE", "f4"),
    "manual_three_way_accuracy": (("manual_test", "three_way", "accuracy"), "manual 3-way (%)",
                                  "pct"),
    "num_params": (("num_params",), "params", "int"),
    "epoch_time_s": (("epoch_time_s",), "s / epoch", "f1"),
    "examples_per_s": (("examples_per_s",), "train ex/s", "int"),
}


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
  runtime_results: str = "results/runtime_*.json"  # Glob of benchmarks.runtime outputs.
  tfidf_results: str = "results/tfidf_baseline.json"
  command: str = ""


# ----------------------------------------------------------------------------- configs


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
  config = importlib.import_module(BASE_CONFIGS[run.base]).get_config()
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
  settings.update(options.overrides)
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


# ----------------------------------------------------------------------------- running


def run_file(output_dir: str, run: StudyRun, seed: int) -> str:
  return os.path.join(output_dir, "runs", f"{run.name}__seed{seed}.json")


def train_one(run: StudyRun, seed: int, options: StudyOptions) -> Dict[str, Any]:
  """Trains (or reuses) one (run, seed) and returns its study record."""
  from train import train as trainer  # pylint: disable=import-outside-toplevel

  workdir = os.path.join(options.workdir_root, run.name, f"seed{seed}")
  report_path = os.path.join(workdir, "eval_report.json")
  config = build_config(run, seed, options)
  record: Dict[str, Any] = {"run": run.name, "seed": seed, "description": run.description,
                            "base_config": BASE_CONFIGS[run.base], "overrides": run.overrides,
                            "quick": options.quick, "dataset": config.dataset,
                            "workdir": os.path.abspath(workdir)}
  wanted = workdir_lib.as_json_dict(config)
  # A finished run is reused from its record in the output dir (committed with the results,
  # so a study continues on another machine and another day) or from its workdir, if it was
  # made by a config that differs from this one in no field that changes the trained result
  # (train.workdir.RESULT_INDEPENDENT_FIELDS may differ, e.g. the log and eval cadences).
  saved_record = run_file(options.output_dir, run, seed)
  if os.path.exists(saved_record) and not options.retrain:
    with open(saved_record, encoding="utf-8") as f:
      saved = json.load(f)
    if (saved.get("status") == "ok"
        and not workdir_lib.result_differences(saved.get("report", {}).get("config", {}), wanted)):
      saved["reused"] = True
      return saved
  if os.path.exists(report_path) and not options.retrain:
    with open(report_path, encoding="utf-8") as f:
      report = json.load(f)
    differences = workdir_lib.result_differences(report.get("config", {}), wanted)
    if not differences:
      record.update(status="ok", reused=True, report=report)
      return record
    print(f"[study] {run.name} seed {seed}: config changed since {report_path} "
          f"({', '.join(name for name, _, _ in differences[:5])}); retraining.", flush=True)
    options = dataclasses.replace(options, retrain=True)
  if options.retrain and os.path.isdir(workdir):
    # A stale checkpoint of another config must not be resumed.
    import shutil  # pylint: disable=import-outside-toplevel
    shutil.rmtree(workdir)
  start = time.perf_counter()
  try:
    report = trainer.train_and_evaluate(config, workdir)
  except Exception as e:  # pylint: disable=broad-except
    # One failed run (e.g. a NaN loss) must not lose the rest of the study.
    record.update(status="failed", error=f"{type(e).__name__}: {e}",
                  traceback=traceback.format_exc(limit=5))
    print(f"[study] {run.name} seed {seed} FAILED: {record['error']}", flush=True)
    return record
  record.update(status="ok", reused=False, wall_time_s=time.perf_counter() - start, report=report)
  return record


# ----------------------------------------------------------------------------- aggregation


def metric_value(report: Dict[str, Any], path: Sequence[str]) -> Optional[float]:
  node: Any = report
  for key in path:
    if not isinstance(node, dict) or key not in node:
      return None
    node = node[key]
  return None if node is None else float(node)


def mean_std(values: List[float]) -> Dict[str, Any]:
  """Mean, sample standard deviation (None for a single value) and the values."""
  return {"mean": statistics.fmean(values) if values else None,
          "std": statistics.stdev(values) if len(values) > 1 else None,
          "n": len(values), "values": values}


def load_records(output_dir: str) -> List[Dict[str, Any]]:
  """Every runs/*.json in the output dir (this invocation's and earlier ones)."""
  records = []
  for path in sorted(glob.glob(os.path.join(output_dir, "runs", "*.json"))):
    with open(path, encoding="utf-8") as f:
      records.append(json.load(f))
  return records


def aggregate(records: List[Dict[str, Any]]) -> List[Dict[str, Any]]:
  """One row per run name (study order): seeds, failures and mean/std of each metric."""
  by_run: Dict[str, List[Dict[str, Any]]] = {}
  for record in records:
    by_run.setdefault(record["run"], []).append(record)
  order = [r.name for r in STUDY_RUNS] + sorted(set(by_run) - set(RUNS_BY_NAME))
  rows = []
  for name in order:
    if name not in by_run:
      continue
    group = sorted(by_run[name], key=lambda r: r["seed"])
    ok = [r for r in group if r["status"] == "ok"]
    metrics = {}
    for metric, (path, _, _) in METRICS.items():
      values = [metric_value(r["report"], path) for r in ok]
      metrics[metric] = mean_std([v for v in values if v is not None])
    rows.append({
        "run": name,
        "description": group[0]["description"],
        "overrides": group[0]["overrides"],
        "seeds": [r["seed"] for r in ok],
        "failed_seeds": [r["seed"] for r in group if r["status"] != "ok"],
        "device_kind": ok[0]["report"].get("device_kind") if ok else None,
        "steps": ok[0]["report"].get("steps") if ok else None,
        "metrics": metrics,
    })
  return rows


def load_tfidf(path: str) -> Optional[Dict[str, Any]]:
  if not path or not os.path.exists(path):
    return None
  with open(path, encoding="utf-8") as f:
    return json.load(f)


# ----------------------------------------------------------------------------- report


def format_stat(stat: Dict[str, Any], kind: str) -> str:
  """'81.23 ± 0.15' (percentages), '0.8123 ± 0.0015', '2,113,602'; '' when missing."""
  if stat["mean"] is None:
    return ""
  scale, fmt = {"pct": (100.0, "{:.2f}"), "f4": (1.0, "{:.4f}"), "f1": (1.0, "{:.1f}"),
                "int": (1.0, "{:,.0f}")}[kind]
  text = fmt.format(stat["mean"] * scale)
  if stat["std"] is not None and not (kind == "int" and stat["std"] == 0):
    text += " ± " + fmt.format(stat["std"] * scale)
  return text


def tfidf_row(tfidf: Dict[str, Any]) -> List[str]:
  """The TF-IDF baseline in the study table's columns (one run, no seeds)."""
  cells = {
      "test_accuracy": format_stat(mean_std([tfidf["test"]["accuracy"]]), "pct"),
      "manual_binary_accuracy": format_stat(
          mean_std([tfidf["manual_test"]["binary"]["accuracy"]]), "pct"),
      "test_macro_f1": format_stat(mean_std([tfidf["test"]["macro_f1"]]), "f4"),
      "test_ece": format_stat(mean_std([tfidf["test"]["ece"]]), "f4"),
      "manual_three_way_accuracy": format_stat(
          mean_std([tfidf["manual_test"]["three_way"]["accuracy"]]), "pct"),
      "num_params": f"{tfidf['num_parameters']:,}" if "num_parameters" in tfidf else "",
  }
  return [cells.get(metric, "") for metric in METRICS]


def markdown(summary: Dict[str, Any], figures: Dict[str, str]) -> str:
  env = summary["environment"]
  lines = [
      "# Comparison study", "",
      f"- command: `{env['command']}`",
      f"- commit `{env['commit']}`, jax {env['jax_version']}, {env['date_utc']} UTC",
      f"- training device(s): {', '.join(sorted(set(filter(None, (r['device_kind'] for r in summary['rows']))))) or 'n/a'}",
      f"- mode: {'QUICK (small subset, few steps: numbers are a smoke test, not results)' if summary['quick'] else 'full'}"
      f"; dataset: {summary['dataset']}",
      "- mean ± sample std over seeds; test = held-out test split; manual = binary accuracy on "
      "the positive/negative rows of the manual test set (359 tweets for Sentiment140), "
      "3-way = with neutral below the confidence threshold; macro-F1 and ECE on the test split; "
      "s / epoch and train ex/s exclude compilation and evaluation.",
      "",
      "| run | seeds | " + " | ".join(header for _, header, _ in METRICS.values()) + " |",
      "|---|---|" + "---:|" * len(METRICS),
  ]
  for row in summary["rows"]:
    seeds = ",".join(map(str, row["seeds"])) or "-"
    if row["failed_seeds"]:
      seeds += f" (failed: {','.join(map(str, row['failed_seeds']))})"
    cells = [format_stat(row["metrics"][m], kind) for m, (_, _, kind) in METRICS.items()]
    lines.append(f"| {row['run']} | {seeds} | " + " | ".join(cells) + " |")
  if summary.get("tfidf"):
    lines.append("| tfidf_logreg | - | " + " | ".join(tfidf_row(summary["tfidf"])) + " |")
  lines += ["", "Runs:", ""]
  for row in summary["rows"]:
    overrides = ", ".join(f"{k}={v}" for k, v in row["overrides"].items()) or "as configured"
    lines.append(f"- **{row['run']}**: {row['description']} ({overrides}); {row['steps']} steps")
  if summary.get("tfidf"):
    t = summary["tfidf"]
    lines.append(f"- **tfidf_logreg**: TF-IDF (word 1-2 grams) + logistic regression "
                 f"(train.tfidf_baseline; {t.get('num_features', '?'):,} features)"
                 if isinstance(t.get("num_features"), int) else
                 "- **tfidf_logreg**: TF-IDF + logistic regression (train.tfidf_baseline)")
  for title, name in figures.items():
    lines += ["", f"## {title}", "", f"![{title}]({name})"]
  return "\n".join(lines) + "\n"


def plot_accuracy(summary: Dict[str, Any], path: str) -> None:
  """Grouped bars: test and manual-test accuracy per run, error bars = std over seeds."""
  import matplotlib  # pylint: disable=import-outside-toplevel
  matplotlib.use("Agg")
  import matplotlib.pyplot as plt  # pylint: disable=import-outside-toplevel

  rows = [r for r in summary["rows"] if r["metrics"]["test_accuracy"]["mean"] is not None]
  names = [r["run"] for r in rows]
  series = {"held-out test": "test_accuracy", "manual test (binary)": "manual_binary_accuracy"}
  fig, ax = plt.subplots(figsize=(max(6.0, 0.8 * len(names) + 2), 4.5))
  width = 0.38
  for i, (label, metric) in enumerate(series.items()):
    means = [100 * (r["metrics"][metric]["mean"] or 0.0) for r in rows]
    stds = [100 * (r["metrics"][metric]["std"] or 0.0) for r in rows]
    xs = [j + (i - 0.5) * width for j in range(len(rows))]
    ax.bar(xs, means, width, yerr=stds, capsize=3, label=label)
  tfidf = summary.get("tfidf")
  if tfidf:
    ax.axhline(100 * tfidf["test"]["accuracy"], color="gray", linestyle="--", linewidth=1,
               label="TF-IDF + logreg (test)")
  lows = [100 * r["metrics"]["test_accuracy"]["mean"] for r in rows]
  ax.set_ylim(max(0.0, min(lows + [100.0]) - 10), 100)
  ax.set_xticks(range(len(names)))
  ax.set_xticklabels(names, rotation=35, ha="right")
  ax.set_ylabel("accuracy (%)")
  ax.set_title("Sentiment accuracy, mean ± std over seeds" + (" (QUICK)" if summary["quick"] else ""))
  ax.legend(loc="lower right", fontsize=8)
  fig.tight_layout()
  fig.savefig(path, dpi=120)
  plt.close(fig)


def plot_runtime(runtime_files: List[str], path: str) -> List[str]:
  """Log-log forward time vs length, one panel per benchmarks.runtime result file.

  Returns the files plotted (those with at least one measured point).
  """
  import matplotlib  # pylint: disable=import-outside-toplevel
  matplotlib.use("Agg")
  import matplotlib.pyplot as plt  # pylint: disable=import-outside-toplevel

  loaded = []
  for file in runtime_files:
    with open(file, encoding="utf-8") as f:
      result = json.load(f)
    if any(p.get("status") == "ok" for points in result["forward"].values() for p in points):
      loaded.append((file, result))
  if not loaded:
    return []
  fig, axes = plt.subplots(1, len(loaded), figsize=(5.5 * len(loaded), 4.2), squeeze=False)
  for ax, (file, result) in zip(axes[0], loaded):
    colors, not_measured = {}, []
    for name, points in result["forward"].items():
      ok = [p for p in points if p.get("status") == "ok"]
      if ok:
        line, = ax.plot([p["length"] for p in ok], [1e3 * p["median_s"] for p in ok], "o-",
                        label=name)
        colors[name] = line.get_color()
      not_measured += [f"{name} @ {p['length']}: {p['status']}" for p in points
                       if p.get("status") in ("oom", "skipped_memory", "error")]
    for name, step in result.get("step", {}).items():
      ax.axhline(1e3 * step["median_s"], linestyle=":", linewidth=1, color=colors.get(name),
                 label=f"{name} step (one token)")
    if not_measured:
      ax.text(0.98, 0.02, "\n".join(not_measured), transform=ax.transAxes, fontsize=7,
              ha="right", va="bottom", color="dimgray")
    ax.set_xscale("log", base=2)
    ax.set_yscale("log")
    ax.set_xlabel("sequence length")
    ax.set_ylabel(f"ms per forward (batch {result['batch_size']})")
    ax.set_title(result["environment"]["device"][:60], fontsize=9)
    ax.legend(fontsize=7)
  fig.tight_layout()
  fig.savefig(path, dpi=120)
  plt.close(fig)
  return [file for file, _ in loaded]


# ----------------------------------------------------------------------------- main


def environment(command: str) -> Dict[str, Any]:
  import jax  # pylint: disable=import-outside-toplevel

  return {"command": command, "commit": provenance.git_commit(), "jax_version": jax.__version__,
          "device": f"{jax.devices()[0].platform}: {jax.devices()[0].device_kind}",
          "date_utc": provenance.utc_now()}


def write_summary(options: StudyOptions) -> Dict[str, Any]:
  """Aggregates every run record in the output dir into summary.json, study.md and plots."""
  records = load_records(options.output_dir)
  datasets = sorted({r.get("dataset", "?") for r in records}) or [options.dataset or "sentiment140"]
  summary = {
      "environment": environment(options.command),
      "quick": options.quick or any(r.get("quick", False) for r in records),
      "dataset": ", ".join(datasets),
      "rows": aggregate(records),
      "tfidf": load_tfidf(options.tfidf_results),
  }
  figures = {}
  if summary["rows"]:
    plot_accuracy(summary, os.path.join(options.output_dir, "accuracy.png"))
    figures["Accuracy"] = "accuracy.png"
  runtime_files = sorted(glob.glob(options.runtime_results)) if options.runtime_results else []
  plotted = plot_runtime(runtime_files, os.path.join(options.output_dir, "runtime.png"))
  summary["runtime_results"] = plotted
  if plotted:
    figures["Inference runtime vs sequence length (" + ", ".join(
        os.path.basename(f) for f in plotted) + ")"] = "runtime.png"
  with open(os.path.join(options.output_dir, "summary.json"), "w", encoding="utf-8") as f:
    json.dump(summary, f, indent=1)
  with open(os.path.join(options.output_dir, "study.md"), "w", encoding="utf-8") as f:
    f.write(markdown(summary, figures))
  return summary


def run_study(options: StudyOptions) -> Dict[str, Any]:
  """Trains every selected (run, seed), then rewrites the summary, table and plots."""
  runs = select_runs(options.runs)
  seeds = list(options.seeds) if options.seeds is not None else list(
      QUICK_SEEDS if options.quick else FULL_SEEDS)
  from train import models  # pylint: disable=import-outside-toplevel
  for run in runs:  # Fail fast on a bad override, before hours of training.
    models.create_model(build_config(run, seeds[0], options), vocab_size=2)
  os.makedirs(os.path.join(options.output_dir, "runs"), exist_ok=True)
  for run in runs:
    for seed in seeds:
      print(f"[study] {run.name} seed {seed}", flush=True)
      record = train_one(run, seed, options)
      with open(run_file(options.output_dir, run, seed), "w", encoding="utf-8") as f:
        json.dump(record, f, indent=1)
      if record["status"] == "ok":
        report = record["report"]
        print(f"[study] {run.name} seed {seed}: test acc {report['test']['accuracy']:.4f}, "
              f"manual {report['manual_test']['binary']['accuracy']:.4f}"
              f"{' (reused)' if record['reused'] else ''}", flush=True)
  return write_summary(options)


def main(argv: Sequence[str]) -> None:
  from absl import flags, logging  # pylint: disable=import-outside-toplevel

  f = flags.FLAGS
  if len(argv) > 1:
    raise SystemExit(f"Unexpected arguments: {argv[1:]}")
  if not f["verbosity"].present:
    logging.set_verbosity(logging.WARNING)  # Orbax logs every save at INFO.
  options = StudyOptions(
      output_dir=f.output_dir, workdir_root=f.workdir_root, runs=f.runs,
      seeds=[int(s) for s in f.seeds] if f.seeds else None, quick=f.quick, dataset=f.dataset,
      data_dir=f.data_dir, prepared_dir=f.prepared_dir, overrides=parse_overrides(f.set),
      retrain=f.retrain, runtime_results=f.runtime_results, tfidf_results=f.tfidf_results,
      command=" ".join(["python -m train.study"] + sys.argv[1:]),
  )
  try:
    summary = write_summary(options) if f.summarize_only else run_study(options)
  except (ValueError, FileNotFoundError) as e:
    print(f"ERROR: {e}", file=sys.stderr)
    sys.exit(2)
  failed = sum(len(r["failed_seeds"]) for r in summary["rows"])
  print(f"Wrote {os.path.join(options.output_dir, 'study.md')} ({len(summary['rows'])} runs"
        f"{f', {failed} failed seeds' if failed else ''}).")


def _define_flags() -> None:
  from absl import flags  # pylint: disable=import-outside-toplevel

  flags.DEFINE_string("output_dir", "results/study", "Run records, summary, table and plots.")
  flags.DEFINE_string("workdir_root", "workdirs/study", "Training workdirs: <root>/<run>/seed<k>.")
  flags.DEFINE_list("runs", ["*"], "Run names or fnmatch patterns: " + ", ".join(RUNS_BY_NAME))
  flags.DEFINE_list("seeds", None, f"Seeds (default {FULL_SEEDS}; --quick: {QUICK_SEEDS}).")
  flags.DEFINE_bool("quick", False, "Small subset and a few steps per run (CPU, minutes).")
  flags.DEFINE_enum("dataset", None, ["sentiment140", "synthetic"], "Override the configs' dataset.")
  flags.DEFINE_string("data_dir", None, "Raw Sentiment140 folder (default: the configs' rule).")
  flags.DEFINE_string("prepared_dir", None, "Prepared-data cache (default: the configs' rule).")
  flags.DEFINE_multi_string("set", [], "key=value config override for every run (repeatable), "
                            "e.g. --set=num_epochs=1 --set=model.dropout=0.1")
  flags.DEFINE_bool("retrain", False, "Retrain runs that already have an eval_report.json.")
  flags.DEFINE_bool("summarize_only", False, "Only re-tabulate the run records already in "
                    "--output_dir (e.g. copied from a GPU machine); train nothing.")
  flags.DEFINE_string("runtime_results", "results/runtime_*.json", "benchmarks.runtime outputs.")
  flags.DEFINE_string("tfidf_results", "results/tfidf_baseline.json", "train.tfidf_baseline output.")


if __name__ == "__main__":
  from absl import app  # pylint: disable=g-import-not-at-top

  _define_flags()
  app.run(main)
