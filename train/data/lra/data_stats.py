"""The generated tasks' label balance and length distribution, next to what the LRA publications say.

``write_data_stats(path, summaries, command)`` writes a Markdown report from the summaries of
prepared LRA datasets (``Datasets.summary`` of ``train.data.lra.prepared``): per task and split,
the examples, the share of each label and the token lengths (min, 10th/50th/90th percentile,
mean, max), beside ``PUBLISHED``.
"""

from __future__ import annotations

import os
from typing import Sequence

from train.data.lra import tasks

# What the publications fix (Tay et al. 2021, "Long Range Arena", ICLR; its release's generators and
# input pipelines, github.com/google-research/long-range-arena; Linsley et al. 2018 for Pathfinder).
PUBLISHED = {
    "listops": {
        "examples": "96,000 / 2,000 / 2,000",
        "labels": "10 classes (the value 0-9); no per-class shares published",
        "lengths": "500 < tokens < 2,000 (the generator's rejection bounds); inputs cut at 2,000",
    },
    "pathfinder32": {
        "examples": "80% / 10% / 10% of the generated images ('hard': 14-dash contours)",
        "labels": "2 classes, each image's label drawn at random (balanced in expectation)",
        "lengths": "1,024 pixels (32 x 32)",
    },
    "pathfinder64": {
        "examples": "80% / 10% / 10% of the generated images (14-dash contours)",
        "labels": "2 classes, each image's label drawn at random (balanced in expectation)",
        "lengths": "4,096 pixels (64 x 64)",
    },
}


def _label_shares(counts: dict) -> str:
  total = max(sum(counts.values()), 1)
  return ", ".join(f"{name} {100.0 * n / total:.1f}%" for name, n in counts.items())


def _lengths(stats: dict) -> str:
  if not stats:
    return "-"
  p10, p50, p90 = stats["percentiles_10_50_90"]
  return (f"{stats['min']:,} / {p10:,.0f} / {p50:,.0f} / {p90:,.0f} / {stats['max']:,} "
          f"(mean {stats['mean']:,.0f})")


def report(summaries: Sequence[dict], command: str) -> str:
  """The Markdown report of the summaries (one per task)."""
  lines = ["# Long Range Arena: the generated tasks' data", "",
           f"Made by `{command}`. Each task's examples come from its seeded generator",
           "(train/data/lra/listops.py, train/data/lra/pathfinder.py), written by its TFDS builder and",
           "encoded once into the token cache that training reads; the figures below are of that cache.",
           "Lengths: min / 10th / 50th / 90th percentile / max tokens before the cut at max_length.", ""]
  for summary in summaries:
    task = tasks.TASKS[summary["task"]]
    published = PUBLISHED.get(task.name, {})
    key = summary.get("key", {})
    lines += [f"## {task.title}", "",
              f"Seed {key.get('seed')}, sizes {key.get('sizes')}, generator version "
              f"{key.get('generator', {}).get('version')}; max_length {summary['max_length']:,}.", "",
              "| split | examples | label shares | lengths |", "|---|---:|---|---|"]
    for split in tasks.SPLITS:
      lines.append(f"| {split} | {summary['rows'][split]:,} | {_label_shares(summary['rows_per_label'][split])} | "
                   f"{_lengths(summary['lengths'].get(split, {}))} |")
    if published:
      lines.append(f"| published | {published['examples']} | {published['labels']} | {published['lengths']} |")
    lines.append("")
  return "\n".join(lines)


def write_data_stats(path: str, summaries: Sequence[dict], command: str) -> str:
  """Writes ``report(summaries, command)`` to ``path`` (folders made); returns the text."""
  text = report(summaries, command)
  os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
  with open(path, "w", encoding="utf-8") as f:
    f.write(text)
  return text
