"""The study's per-tweet view: each model's answer on the same tweets (``python -m train.study --qualitative``).

Reads the study's run records and their per-example answers (``<output_dir>/runs/<run>__seed<k>.json``
and ``<output_dir>/per_example/<run>__seed<k>.json``, see ``train.scoring.per_example``) and writes ``<output_dir>/qualitative.md``
and ``qualitative.json``:

1. the reference tweets (``per_example.REFERENCE_TWEETS``) with each model's label and confidence and
   their label in the training file;
2. the manual-test tweets (positive / negative rows) on which the models' labels split most evenly
   (ties: the largest spread of their positive-class probabilities), with the true label;
3. for each pair of models, on the manual test's positive / negative rows and on the held-out test
   sample, the tweets each gets right that the other gets wrong and the exact McNemar p-value, per seed
   both have;
4. for each Mamba ablation with slices in its record, the slices of the held-out test
   (``train.scoring.slices``) whose accuracy moved beyond noise against the reference Mamba.

The texts come from the data (``train.data.pipeline``, the first run's config): the manual test's raw
tweets are shown; the held-out sample is counted, never printed.
"""

from __future__ import annotations

import gzip
import itertools
import json
import math
import os
from typing import Any, Dict, List, Optional, Sequence

import numpy as np

from train.data import held_out_texts, normalization, pipeline, sources
from train.runs import provenance
from train.scoring import per_example
from train.study.runs import RUNS_BY_NAME, StudyOptions, build_config, select_runs
from train.study.training import per_example_file, run_file

DEFAULT_RUNS = ("mamba", "mamba2", "ssm", "transformer", "lstm")
DISAGREEMENTS = 15  # Manual-test tweets listed in section 2.
SEEDS = (0, 1, 2)
Z_95 = 1.959964  # Two-sided 95% normal quantile (section 4's noise band).


def load_answers(output_dir: str, runs: Sequence[str], seeds: Sequence[int] = SEEDS) -> Dict[str, Dict[int, dict]]:
  """run -> seed -> its per-example record, for the (run, seed) pairs whose file exists."""
  found: Dict[str, Dict[int, dict]] = {}
  for name in runs:
    for seed in seeds:
      path = per_example_file(output_dir, RUNS_BY_NAME[name], seed)
      if os.path.exists(path):
        found.setdefault(name, {})[seed] = per_example.read(path)
  return found


def manual_test_texts(options: StudyOptions, run: str) -> Dict[str, str]:
  """Row key -> the manual test's tweet (raw where the prepared data keeps it, else normalized)."""
  config = build_config(RUNS_BY_NAME[run], 0, options)
  splits = pipeline.get_datasets(config, log=lambda *_: None).splits
  split = splits.get("manual_test")
  if split is None or split.texts is None:
    raise ValueError(f"the data of run {run} ({config.dataset}) has no manual test texts")
  raw = held_out_texts.raw_texts(config, splits, ["manual_test"], log=lambda *_: None).get("manual_test")
  return dict(zip(per_example.row_keys(split.texts), raw if raw is not None else split.texts))


def training_file_labels(options: StudyOptions, texts: Sequence[str]) -> Dict[str, List[str]]:
  """Raw text -> its labels' names in the Sentiment140 training file (empty: not in it, or not readable)."""
  found: Dict[str, List[str]] = {text: [] for text in texts}
  try:
    files = sources.find_sources(sources.resolve_data_dir(options.data_dir), download=False)
  except (sources.DataNotFoundError, OSError):
    return found
  if files.train_member is not None:  # The official zip: not scanned (the prepared data is what runs see).
    return found
  opener = gzip.open if files.train.endswith(".gz") else open
  with opener(files.train, "rt", encoding="latin-1", newline="") as f:
    lines = [line for line in f if any(text in line for text in texts)]
  rows = sources.parse_rows(lines, files.train, allow_neutral=True)
  for text, label in zip(rows.texts, rows.labels):
    if text in found:
      found[text].append(("negative", "positive", "neutral")[int(label)])
  return found


def _answer(record: dict, part: str, key: str) -> Optional[str]:
  """'positive 0.93' for the row ``key`` of ``part``; None if the part lacks it."""
  one = record["parts"].get(part)
  if one is None or key not in one["keys"]:
    return None
  row = one["keys"].index(key)
  best = one["predictions"][row]
  return f"{record['class_names'][best]} {one['probs'][row][best]:.2f}"


def reference_rows(answers: Dict[str, Dict[int, dict]], labels: Dict[str, List[str]]) -> List[dict]:
  """Section 1: each reference tweet with each run's seed-0 answer (else its first seed's)."""
  keys = per_example.row_keys(normalization.normalize_many(list(per_example.REFERENCE_TWEETS)))
  rows = []
  for text, key in zip(per_example.REFERENCE_TWEETS, keys):
    rows.append({"text": text, "training_file_labels": labels.get(text, []),
                 "answers": {run: _answer(seeds[min(seeds)], "reference", key) for run, seeds in answers.items()}})
  return rows


def disagreements(answers: Dict[str, Dict[int, dict]], texts: Dict[str, str], count: int = DISAGREEMENTS) -> List[dict]:
  """Section 2: the ``count`` manual-test positive/negative tweets the seed-0 runs split on most."""
  runs = [run for run in answers if 0 in answers[run]]
  if len(runs) < 2:
    return []
  keys, labels, found = per_example.aligned({run: answers[run][0]["parts"]["manual_test"] for run in runs},
                                            keep_labels=(0, 1))
  positive = np.stack([found[run][0][:, 1] for run in runs], axis=1)  # (N, runs)
  votes = np.stack([found[run][1] == 1 for run in runs], axis=1).sum(axis=1)
  minority = np.minimum(votes, len(runs) - votes)
  order = np.lexsort((-positive.std(axis=1), -minority))[:count]
  names = answers[runs[0]][0]["class_names"]
  return [{"key": keys[i], "text": texts.get(keys[i], "(not in this data's manual test)"),
           "label": names[int(labels[i])], "minority_votes": int(minority[i]),
           "answers": {run: f"{names[found[run][1][i]]} {found[run][0][i, found[run][1][i]]:.2f}" for run in runs}}
          for i in order]


def pairwise(answers: Dict[str, Dict[int, dict]]) -> List[dict]:
  """Section 3: McNemar counts of every pair of runs, per part and per seed both have."""
  rows = []
  for (a, seeds_a), (b, seeds_b) in itertools.combinations(answers.items(), 2):
    for seed in sorted(set(seeds_a) & set(seeds_b)):
      for part, keep in (("manual_test", (0, 1)), ("test_sample", None)):
        if part not in seeds_a[seed]["parts"] or part not in seeds_b[seed]["parts"]:
          continue
        _, labels, found = per_example.aligned({a: seeds_a[seed]["parts"][part], b: seeds_b[seed]["parts"][part]},
                                               keep_labels=keep)
        if not len(labels):
          continue
        predicted_a, predicted_b = found[a][1], found[b][1]
        rows.append({"a": a, "b": b, "seed": seed, "part": part, "rows": int(len(labels)),
                     "accuracy_a": float(np.mean(predicted_a == labels)),
                     "accuracy_b": float(np.mean(predicted_b == labels)),
                     **per_example.mcnemar(labels, predicted_a, predicted_b)})
  return rows


def _slice_accuracies(records: List[dict]) -> Dict[tuple, tuple]:
  """(feature, bucket) -> (correct, count) summed over the records' held-out test slices."""
  totals: Dict[tuple, list] = {}
  for record in records:
    features = record["report"]["test"].get("slices", {}).get("features", {})
    for feature, buckets in features.items():
      for bucket, cell in buckets.items():
        total = totals.setdefault((feature, bucket), [0, 0])
        total[0] += cell["correct"]
        total[1] += cell["count"]
  return {key: (c, n) for key, (c, n) in totals.items()}


def ablation_slices(output_dir: str, reference: str = "mamba") -> List[dict]:
  """Section 4: per Mamba ablation (run name ``<reference>_*``), the slices that moved beyond noise.

  Accuracy per slice is pooled over the seeds each run has; a change is beyond noise when it exceeds
  ``Z_95`` standard errors of the difference of two independent proportions. Runs without slices in
  their records are listed with ``slices: None``.
  """
  def records_of(name: str) -> List[dict]:
    out = []
    for seed in SEEDS:
      path = run_file(output_dir, RUNS_BY_NAME[name], seed)
      if os.path.exists(path):
        with open(path, encoding="utf-8") as f:
          record = json.load(f)
        if record.get("status") == "ok":
          out.append(record)
    return out

  base = _slice_accuracies(records_of(reference))
  rows = []
  for name in RUNS_BY_NAME:
    if not name.startswith(reference + "_"):
      continue
    records = records_of(name)
    if not records:
      continue
    theirs = _slice_accuracies(records)
    if not theirs or not base:
      rows.append({"run": name, "seeds": len(records), "slices": None})
      continue
    moved = []
    for key in sorted(set(theirs) & set(base)):
      (c1, n1), (c0, n0) = theirs[key], base[key]
      if not n1 or not n0:
        continue
      p1, p0 = c1 / n1, c0 / n0
      error = math.sqrt(p1 * (1 - p1) / n1 + p0 * (1 - p0) / n0)
      if error and abs(p1 - p0) > Z_95 * error:
        moved.append({"feature": key[0], "bucket": key[1], "accuracy": p1, "reference_accuracy": p0,
                      "change": p1 - p0, "count": n1})
    rows.append({"run": name, "seeds": len(records), "slices": moved})
  return rows


def _format_p(p: float) -> str:
  return f"{p:.2g}" if p < 0.01 else f"{p:.2f}"


def markdown(report: dict) -> str:
  """The report as ``qualitative.md``."""
  runs = report["runs"]
  lines = ["# The study's per-tweet view", "",
           "Runs: " + ", ".join(f"{r} (seeds {','.join(map(str, s))})" for r, s in report["seeds"].items()) + ". "
           "Generated by `python -m train.study --qualitative` from the per-example files in `per_example/` "
           "(`train.scoring.per_example`).", ""]
  if report["missing"]:
    lines += [f"No per-example answers (trained before they were kept; retrain to add them): "
              f"{', '.join(report['missing'])}.", ""]
  lines += ["## 1. The reference study's example tweets", "",
            "Scored from their raw text; they are tweets of the training file, so a model may have trained "
            "on them.", "", "| tweet | training file label | " + " | ".join(runs) + " |",
            "|---|---|" + "---|" * len(runs)]
  for row in report["reference"]:
    label = ", ".join(row["training_file_labels"]) or "(not found)"
    lines.append(f"| `{row['text']}` | {label} | " + " | ".join(row["answers"].get(r) or "-" for r in runs) + " |")
  lines += ["", f"## 2. The {len(report['disagreements'])} manual-test tweets the models split on most", "",
            "Positive / negative rows of the manual test; seed 0 of each model; label and confidence.", "",
            "| tweet | true | " + " | ".join(runs) + " |", "|---|---|" + "---|" * len(runs)]
  for row in report["disagreements"]:
    text = row["text"].replace("|", "\\|").replace("\n", " ")
    lines.append(f"| {text} | {row['label']} | " + " | ".join(row["answers"].get(r, "-") for r in runs) + " |")
  lines += ["", "## 3. Pairs of models: tweets one gets right and the other wrong", "",
            "Exact McNemar test (two-sided binomial on the discordant tweets). manual: the manual test's "
            f"positive / negative rows; sample: {per_example.SAMPLE_SIZE} held-out test tweets chosen by text hash.",
            "", "| A | B | seed | tweets | acc A | acc B | A right, B wrong | B right, A wrong | p |",
            "|---|---|---:|---|---:|---:|---:|---:|---:|"]
  for row in report["pairwise"]:
    part = "manual" if row["part"] == "manual_test" else "sample"
    lines.append(f"| {row['a']} | {row['b']} | {row['seed']} | {part} ({row['rows']}) | "
                 f"{100 * row['accuracy_a']:.2f} | {100 * row['accuracy_b']:.2f} | {row['only_a']} | "
                 f"{row['only_b']} | {_format_p(row['p_value'])} |")
  lines += ["", "## 4. Mamba ablations: slices of the held-out test that moved", "",
            "Against the reference Mamba, accuracy pooled over each run's seeds; listed when the change exceeds "
            "1.96 standard errors of the difference.", ""]
  for row in report["ablation_slices"]:
    if row["slices"] is None:
      lines.append(f"- {row['run']}: no slices in its records (trained before slices were reported).")
    elif not row["slices"]:
      lines.append(f"- {row['run']} ({_seeds(row['seeds'])}): no slice beyond noise.")
    else:
      moved = "; ".join(f"{s['feature']} {s['bucket']} {100 * s['change']:+.2f} points "
                        f"({100 * s['accuracy']:.2f}%, {s['count']} tweets)" for s in row["slices"])
      lines.append(f"- {row['run']} ({_seeds(row['seeds'])}): {moved}.")
  return "\n".join(lines) + "\n"


def _seeds(count: int) -> str:
  return f"{count} seed" if count == 1 else f"{count} seeds"


def write_qualitative(options: StudyOptions, runs: Sequence[str] = DEFAULT_RUNS) -> dict:
  """Builds the per-tweet report of ``runs`` and writes qualitative.{md,json} into the output dir."""
  runs = [run.name for run in select_runs(runs)]
  answers = load_answers(options.output_dir, runs)
  if not answers:
    raise ValueError(f"no per-example answers in {os.path.join(options.output_dir, 'per_example')} for {', '.join(runs)}: "
                     f"train them (python -m train.study --runs={','.join(runs)} --seeds=0)")
  first = next(iter(answers))
  texts = manual_test_texts(options, first)
  labels = training_file_labels(options, per_example.REFERENCE_TWEETS) if any(
      "reference" in record["parts"] for seeds in answers.values() for record in seeds.values()) else {}
  report: Dict[str, Any] = {
      "runs": list(answers), "seeds": {run: sorted(seeds) for run, seeds in answers.items()},
      "missing": [run for run in runs if run not in answers],
      "reference": reference_rows(answers, labels), "disagreements": disagreements(answers, texts),
      "pairwise": pairwise(answers), "ablation_slices": ablation_slices(options.output_dir),
      "provenance": provenance.host_environment(options.command or "python -m train.study --qualitative"),
  }
  with open(os.path.join(options.output_dir, "qualitative.json"), "w", encoding="utf-8") as f:
    json.dump(report, f, indent=1)
  with open(os.path.join(options.output_dir, "qualitative.md"), "w", encoding="utf-8") as f:
    f.write(markdown(report))
  return report
