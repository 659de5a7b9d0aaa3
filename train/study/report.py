"""The study's report: run records aggregated over seeds, the markdown table and the figures.

Reads every ``<output_dir>/runs/*.json`` record (this invocation's and earlier ones), the
TF-IDF baseline's and ``benchmarks.runtime``'s results, and writes ``summary.json``,
``study.md``, ``accuracy.png`` and ``runtime.png`` into the output dir.
"""

from __future__ import annotations

import glob
import json
import os
import statistics
from typing import Any, Dict, List, Optional, Sequence

import jax

from train.runs import provenance
from train.study.runs import RUNS_BY_NAME, STUDY_RUNS, StudyOptions

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


def write_summary(options: StudyOptions) -> Dict[str, Any]:
  """Aggregates every run record in the output dir into summary.json, study.md and plots."""
  records = load_records(options.output_dir)
  datasets = sorted({r.get("dataset", "?") for r in records}) or [options.dataset or "sentiment140"]
  summary = {
      "environment": provenance.environment(jax.devices()[0], options.command),
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

