# Source of notebooks/03_results.ipynb (percent format).
# Edit here, then run: python notebooks/build_notebooks.py

# %% [markdown]
# # Results: Mamba against the baselines
#
# This notebook reads the measurement files in `results/` and draws the comparison:
#
# | file | made by | shows |
# |---|---|---|
# | `data_preparation.json` | `python -m train.prepare_data` | the prepared data: rows, duplicates, tokens |
# | `study/summary.json` | `python -m train.study` | accuracy, F1, calibration, training cost of every model |
# | `tfidf_baseline.json` | `python -m train.tfidf_baseline` | the bag-of-n-grams logistic regression reference |
# | `runtime_<device>.json` | `python -m benchmarks.runtime` | inference time vs sequence length, recurrent step |
# | `scan_<device>.json` | `python -m benchmarks.scan` | the selective-scan kernels against each other |
#
# It only reads: nothing is trained or timed here. A missing file is reported with the command
# that produces it, and the rest of the notebook still runs.

# %%
# Settings. MAMBA_JAX_RESULTS_DIR points the notebook at another results folder.
import os
import pathlib
import sys

QUICK = os.environ.get("MAMBA_JAX_NOTEBOOK_QUICK", "0") == "1"  # Nothing to shrink: reading is fast.
REPO_ROOT = next((p for p in [pathlib.Path.cwd(), *pathlib.Path.cwd().parents] if (p / "mamba_jax").is_dir()), None)
if REPO_ROOT is None:
  raise FileNotFoundError(f"Run this notebook inside the mamba-jax checkout: no mamba_jax/ above {pathlib.Path.cwd()}")
RESULTS_DIR = pathlib.Path(os.environ.get("MAMBA_JAX_RESULTS_DIR", REPO_ROOT / "results"))

# %%
import json

import matplotlib.pyplot as plt
import numpy as np

PRODUCERS = {
    "data_preparation.json": "python -m train.prepare_data --report=results/data_preparation.json",
    "study/summary.json": "python -m train.study --output_dir=results/study",
    "tfidf_baseline.json": "python -m train.tfidf_baseline",
    "runtime_*.json": "python -m benchmarks.runtime",
    "scan_*.json": "python -m benchmarks.scan",
}


def load_json_files(pattern):
  """{file name: parsed JSON} of RESULTS_DIR/pattern; notes what is missing or unreadable."""
  found = {}
  paths = sorted(RESULTS_DIR.glob(pattern)) if RESULTS_DIR.is_dir() else []
  for path in paths:
    try:
      found[path.name] = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as e:
      print(f"NOTE: {path} is unreadable ({type(e).__name__}: {e}); skipped.")
  if not found:
    print(f"NOTE: no {pattern} in {RESULTS_DIR}; run `{PRODUCERS[pattern]}` to make it.")
  return found


print(f"results folder: {RESULTS_DIR}" + ("" if RESULTS_DIR.is_dir() else " (missing)"))
data_files = load_json_files("data_preparation.json")
study_files = load_json_files("study/summary.json")
tfidf_files = load_json_files("tfidf_baseline.json")
runtime_files = load_json_files("runtime_*.json")
scan_files = load_json_files("scan_*.json")
for name in [*data_files, *study_files, *tfidf_files, *runtime_files, *scan_files]:
  print("  found", name)

# %% [markdown]
# ## 0. The data
#
# What the models were trained on: Sentiment140's 1.6M training tweets split by a hash of the
# normalized text (so duplicate tweets never straddle splits), plus the 498 hand-labelled test
# tweets.

# %%
def count(value):
  """1,234 for numbers, '?' for a missing value."""
  return f"{value:,}" if isinstance(value, (int, float)) else "?"


for file_name, preparation in data_files.items():
  summary_data = preparation.get("summary", {})
  print(f"{file_name}: `{preparation.get('command', '?')}` on {preparation.get('machine', '?')}, "
        f"{count(preparation.get('wall_time_s'))} s")
  for split, counts in summary_data.get("rows_per_label", {}).items():
    print(f"  {split:>12}: " + ", ".join(f"{label} {count(n)}" for label, n in counts.items() if n))
  details = summary_data.get("duplicate_details", {})
  print(f"  duplicate rows {count(summary_data.get('duplicates'))} in {count(details.get('duplicate_groups'))} "
        f"groups ({count(details.get('conflicting_label_texts'))} texts with both labels); "
        f"malformed rows {count(summary_data.get('malformed_rows'))}")
  mean_tokens, truncated = summary_data.get("mean_tokens_per_tweet"), summary_data.get("truncated_share")
  if isinstance(mean_tokens, (int, float)) and isinstance(truncated, (int, float)):
    print(f"  vocabulary {count(summary_data.get('vocab_size'))}, {mean_tokens:.1f} tokens per tweet on average, "
          f"{100 * truncated:.2f} % longer than max_length {summary_data.get('max_length', '?')}")

# %% [markdown]
# ## 1. Accuracy and calibration
#
# `train.study` trains every model of the comparison (and the Mamba ablations) with the same
# data, tokenizer, epochs and optimizer, over several seeds, and writes
# `results/study/summary.json`: per run the mean, standard deviation and values over seeds of
# each metric. Test = the held-out test split; manual = the 359 positive/negative
# hand-labelled tweets (the literature's benchmark: 83.0 % for MaxEnt on n-grams in Go et al.
# 2009); 3-way adds the 139 neutral tweets with the confidence threshold; ECE = expected
# calibration error (lower is better).

# %%
def dig(tree, *keys):
  """tree[k1][k2]... or None when a key is missing."""
  for key in keys:
    if not isinstance(tree, dict) or key not in tree:
      return None
    tree = tree[key]
  return tree


def mean_std_text(stat, scale=1.0, fmt="{:.2f}"):
  if not isinstance(stat, dict) or stat.get("mean") is None:
    return "-"
  text = fmt.format(stat["mean"] * scale)
  if stat.get("std"):  # None for one seed; 0 (e.g. the parameter count) is not shown.
    text += " ± " + fmt.format(stat["std"] * scale)
  return text


summary = study_files.get("summary.json") or next(iter(study_files.values()), None)
tfidf = next(iter(tfidf_files.values()), None) or dig(summary, "tfidf")
rows = (summary or {}).get("rows", [])
COLUMNS = [  # (header, metric in the summary, path in a TF-IDF / eval report, scale, format)
    ("test acc %", "test_accuracy", ("test", "accuracy"), 100, "{:.2f}"),
    ("manual acc %", "manual_binary_accuracy", ("manual_test", "binary", "accuracy"), 100, "{:.2f}"),
    ("3-way %", "manual_three_way_accuracy", ("manual_test", "three_way", "accuracy"), 100, "{:.1f}"),
    ("macro-F1", "test_macro_f1", ("test", "macro_f1"), 1, "{:.4f}"),
    ("ECE", "test_ece", ("test", "ece"), 1, "{:.4f}"),
    ("params", "num_params", ("num_parameters",), 1, "{:,.0f}"),
    ("train ex/s", "examples_per_s", ("examples_per_s",), 1, "{:,.0f}"),
]
if summary is not None:
  env = summary.get("environment", {})
  print(f"study: {env.get('command', '?')} ({env.get('date_utc', '?')}, commit {str(env.get('commit', '?'))[:10]})")
  if summary.get("quick"):
    print("NOTE: this study ran in QUICK mode (small subset, few steps): a smoke test, not results.")
table = []
for row in rows:
  seeds = ",".join(map(str, row.get("seeds", []))) + (f" (failed {row['failed_seeds']})" if row.get("failed_seeds") else "")
  table.append([row["run"], seeds] + [mean_std_text(dig(row, "metrics", metric), scale, fmt)
                                      for _, metric, _, scale, fmt in COLUMNS])
if tfidf is not None:
  table.append(["tfidf_logreg", "-"] + [
      fmt.format(v * scale) if isinstance(v := dig(tfidf, *path), (int, float)) else "-"
      for _, _, path, scale, fmt in COLUMNS])
if table:
  headers = ["run", "seeds"] + [c[0] for c in COLUMNS]
  widths = [max(len(str(r[i])) for r in table + [headers]) for i in range(len(headers))]
  print("  ".join(h.ljust(w) for h, w in zip(headers, widths)))
  for r in table:
    print("  ".join(str(c).ljust(w) for c, w in zip(r, widths)))
else:
  print("NOTE: no study rows and no TF-IDF baseline: the accuracy table and figures are skipped.")

# %%
rows_with_accuracy = [r for r in rows if dig(r, "metrics", "test_accuracy", "mean") is not None]
if rows_with_accuracy:
  names = [r["run"] for r in rows_with_accuracy]
  series = [("held-out test", "test_accuracy"), ("manual test (pos/neg)", "manual_binary_accuracy")]
  fig, ax = plt.subplots(figsize=(max(6, 0.8 * len(names) + 2), 4))
  width = 0.38
  for k, (label, metric) in enumerate(series):
    means = [100 * (dig(r, "metrics", metric, "mean") or np.nan) for r in rows_with_accuracy]
    stds = [100 * (dig(r, "metrics", metric, "std") or 0.0) for r in rows_with_accuracy]
    ax.bar(np.arange(len(names)) + (k - 0.5) * width, means, width, yerr=stds, capsize=3, label=label)
  if isinstance(dig(tfidf, "test", "accuracy"), (int, float)):
    ax.axhline(100 * tfidf["test"]["accuracy"], color="gray", linestyle="--", label="TF-IDF + logreg (test)")
  lowest = min(100 * dig(r, "metrics", "test_accuracy", "mean") for r in rows_with_accuracy)
  ax.set_ylim(max(0, lowest - 10), 100)
  ax.set_xticks(range(len(names)), names, rotation=35, ha="right")
  ax.set_ylabel("accuracy (%), mean ± std over seeds")
  ax.set_title("Sentiment140: accuracy per model and ablation")
  ax.legend(loc="upper left", bbox_to_anchor=(1.0, 1.0), fontsize=8)
  fig.tight_layout()
  plt.show()

# %% [markdown]
# **State size.** The `mamba_d_state_*` ablations change only $n$, the state entries per
# channel (the reference Mamba has the value of `configs/sent140.py`). How much state does a
# tweet need?

# %%
sys.path.insert(0, str(REPO_ROOT))
from configs import sent140  # noqa: E402  (the reference d_state)

by_name = {r["run"]: r for r in rows_with_accuracy}
d_state_runs = {int(name.rsplit("_", 1)[1]): r for name, r in by_name.items()
                if name.startswith("mamba_d_state_") and name.rsplit("_", 1)[1].isdigit()}
if "mamba" in by_name:
  d_state_runs.setdefault(sent140.get_config().model.d_state, by_name["mamba"])
if len(d_state_runs) >= 2:
  states = sorted(d_state_runs)
  fig, ax = plt.subplots(figsize=(5, 3.2))
  for label, metric in [("held-out test", "test_accuracy"), ("manual test", "manual_binary_accuracy")]:
    means = [100 * (dig(d_state_runs[n], "metrics", metric, "mean") or np.nan) for n in states]
    stds = [100 * (dig(d_state_runs[n], "metrics", metric, "std") or 0.0) for n in states]
    ax.errorbar(states, means, yerr=stds, marker="o", capsize=3, label=label)
  ax.set_xscale("log", base=2)
  ax.set(xlabel="d_state (n)", ylabel="accuracy (%)", title="Mamba: accuracy vs state size")
  ax.legend(fontsize=8)
  fig.tight_layout()
  plt.show()
else:
  print("NOTE: fewer than two d_state runs in the study: the state-size figure is skipped.")

# %% [markdown]
# ## 2. Inference time against sequence length
#
# `benchmarks.runtime` times one jitted forward pass of each study model over a batch of
# random tweets of a given length. Attention costs $O(l^2)$, the scan and the LSTM $O(l)$: on
# a log-log plot the slopes tell them apart. Dashed lines: Mamba's recurrent `step` (one new
# token with a cached state), whose cost does not grow with the prefix.

# %%
for file_name, runtime in runtime_files.items():
  env = runtime.get("environment", {})
  print(f"{file_name}: {env.get('device', '?')}, batch {runtime.get('batch_size')}, "
        f"jax {env.get('jax_version', '?')}, {env.get('date_utc', '?')}")
  forward = runtime.get("forward", {})
  lengths = runtime.get("lengths", [])
  print(f"  {'model':<12}" + "".join(f"{l:>10}" for l in lengths) + "   (ms per batch)")
  for model_name, points in forward.items():
    by_length = {p["length"]: p for p in points}
    cells = []
    for l in lengths:
      p = by_length.get(l, {})
      cells.append(f"{p['median_s'] * 1e3:>10.2f}" if p.get("status") == "ok" else f"{p.get('status', '-'):>10}")
    print(f"  {model_name:<12}" + "".join(cells))
  for key, value in runtime.get("summary", {}).items():
    if "crossover" in key:
      print(f"  {key}: {value.get('length')} ({value.get('note')})")

  fig, ax = plt.subplots(figsize=(6.5, 4))
  for model_name, points in forward.items():
    ok = sorted((p["length"], p["median_s"]) for p in points if p.get("status") == "ok")
    if ok:
      ax.plot(*zip(*ok), marker="o", label=model_name)
  for model_name, step in runtime.get("step", {}).items():
    ax.axhline(step["median_s"], linestyle="--", linewidth=1, color="gray")
    ax.annotate(f"{model_name} step (1 token)", (lengths[0] if lengths else 1, step["median_s"]),
                fontsize=8, va="bottom")
  ax.set_xscale("log", base=2)
  ax.set_yscale("log")
  ax.set(xlabel="sequence length (tokens)", ylabel="seconds per batch",
         title=f"Forward time, {env.get('device', file_name)}")
  ax.legend()
  fig.tight_layout()
  plt.show()

# %% [markdown]
# ## 3. The selective-scan kernels
#
# `benchmarks.scan` times the scan methods of `mamba_jax.ssm` alone (forward, and forward plus
# backward) at tweet-like and longer shapes. The associative scan materializes every state, a
# (b, l, d, n) array; the sequential scan streams one state; the Pallas kernel (GPU) keeps the
# state on chip. "x floor" compares with the time just to read the inputs and write the
# outputs once at the measured copy bandwidth.

# %%
for file_name, scan in scan_files.items():
  meta = scan.get("meta", {})
  rows = scan.get("results", [])
  print(f"{file_name}: {meta.get('device_kind', '?')} ({meta.get('backend', '?')}), jax {meta.get('jax_version', '?')}")
  print(f"  {'shape (b,l,d,n)':<27}{'dtype':<10}{'mode':<9}{'method':<13}{'median ms':>10}{'vs assoc':>9}{'x floor':>9}")
  for r in rows:
    if "median_ms" not in r:
      continue
    shape = f"{r['shape']} ({r['b']},{r['l']},{r['d']},{r['n']})"
    print(f"  {shape:<27}{r['dtype']:<10}{r['mode']:<9}{r['method']:<13}{r['median_ms']:>10.3f}"
          f"{r.get('speedup_vs_associative', float('nan')):>9.2f}{r.get('ratio_to_floor', float('nan')):>9.1f}")

  timed = [r for r in rows if "median_ms" in r and r.get("dtype") == "float32"]
  if not timed:
    continue
  shape_order = {shape: i for i, shape in reversed(list(enumerate(r["shape"] for r in timed)))}
  dims = {r["shape"]: f"({r['b']},{r['l']},{r['d']},{r['n']})" for r in timed}
  cases = sorted({(r["shape"], r["mode"]) for r in timed}, key=lambda c: (shape_order[c[0]], c[1]))
  methods = sorted({r["method"] for r in timed})
  fig, ax = plt.subplots(figsize=(max(6, 1.5 * len(cases)), 4))
  width = 0.8 / len(methods)
  for k, method in enumerate(methods):
    values = []
    for shape, mode in cases:
      match = [r["median_ms"] for r in timed if (r["shape"], r["mode"], r["method"]) == (shape, mode, method)]
      values.append(match[0] if match else np.nan)
    ax.bar(np.arange(len(cases)) + (k - (len(methods) - 1) / 2) * width, values, width, label=method)
  ax.set_yscale("log")
  ax.set_xticks(range(len(cases)), [f"{s}\n{dims[s]}\n{m}" for s, m in cases], fontsize=8)
  ax.set_ylabel("median ms (log)")
  ax.set_title(f"Selective scan, float32, {meta.get('device_kind', file_name)}")
  ax.legend(loc="upper left", bbox_to_anchor=(1.0, 1.0))
  fig.tight_layout()
  plt.show()
