"""The summary of the prepared data: rows per split and label, unused rows, duplicates, truncation.

Written next to the token cache (tokens_L<max_length>.json), returned as Datasets.summary,
printed by train.prepare_data (``format_summary``) and stored in every run's report.
Axes (``mamba_jax.notation``): N, L.
"""

from __future__ import annotations

import json

import numpy as np

from train.data import normalization
from train.data.datasets import LABEL_NAMES, SPLIT_NAMES


def label_counts(labels: np.ndarray, class_names=LABEL_NAMES) -> dict[str, int]:
  """Class name -> rows of that label id (every class, zeros included)."""
  counts = np.bincount(labels, minlength=len(class_names))
  return {name: int(c) for name, c in zip(class_names, counts)}


def make_summary(config, build_report: dict, encoded: dict, *, vocab_size: int, prepared_dir: str,
                 tfds_dir: str, class_names=None) -> dict:
  """The summary of one token cache.

  Args:
    config: the data fields of the config (max_length, split_fractions, tokenizer_max_sentences).
    build_report: sentiment140_builder.build_report of the prepared TFDS dataset.
    encoded: split name -> (tokens np.uint16 (N, L), untruncated lengths np.int32 (N,), labels (N,)).
    vocab_size: of the tokenizer.
    prepared_dir: the tokenizer folder holding the cache.
    tfds_dir: the TFDS dataset directory it was encoded from.
    class_names: the user's files' classes (label id i = class_names[i]; stored as "class_names");
      None: Sentiment140 (LABEL_NAMES).
  """
  max_length = int(config.max_length)
  malformed = build_report["malformed_by_reason"]
  duplicates = build_report["duplicate_details"]
  train_lengths = encoded["train"][1]
  names = [name for name in SPLIT_NAMES if name in encoded]
  classes = {} if class_names is None else {"class_names": list(class_names)}
  return {
      "dataset": "sentiment140" if class_names is None else "labelled_files",
      **classes,
      "sources": build_report["sources"],
      "rows": {name: len(encoded[name][2]) for name in names},
      "rows_per_label": {name: label_counts(encoded[name][2], class_names or LABEL_NAMES) for name in names},
      "duplicates": duplicates["duplicate_rows"],
      "duplicate_details": duplicates,
      "malformed_rows": sum(sum(reasons.values()) for reasons in malformed.values()),
      "malformed_by_reason": malformed,
      "malformed_first_lines": build_report["malformed_first_lines"],
      "truncated_share": float(np.mean(train_lengths > max_length)),
      "truncated_share_by_split": {
          name: float(np.mean(lengths > max_length)) if len(lengths) else 0.0
          for name, (_, lengths, _) in encoded.items()},
      "mean_tokens_per_tweet": float(np.mean(train_lengths)),
      "vocab_size": vocab_size,
      "max_length": max_length,
      "normalization_version": normalization.NORMALIZATION_VERSION,
      "split_fractions": [float(f) for f in config.split_fractions],
      "tokenizer_max_sentences": int(config.tokenizer_max_sentences),
      "prepared_dir": prepared_dir,
      # Read with tfds.builder_from_directory(tfds_dir).as_data_source(split).
      "tfds_dir": tfds_dir,
  }


def describe_unused_rows(summary: dict, title: str = "unused source rows") -> str:
  """One line: how many rows of the source files were not used, then, by file, each reason that
  occurred with its count and first line numbers, e.g.
  ``unused source rows: 3 (training_file: 3 unterminated_quote (lines 4, 9, 12))``."""
  first_lines = summary.get("malformed_first_lines", {})  # Absent in caches built before it existed.
  parts = []
  for source, reasons in summary.get("malformed_by_reason", {}).items():
    counted = []
    for reason, count in sorted(reasons.items()):
      if not count:
        continue
      lines = first_lines.get(source, {}).get(reason)
      where = (f" ({'lines' if len(lines) > 1 else 'line'} {', '.join(map(str, lines))}"
               f"{', ...' if count > len(lines) else ''})" if lines else "")
      counted.append(f"{count:,} {reason}{where}")
    if counted:
      parts.append(f"{source}: {'; '.join(counted)}")
  total = summary.get("malformed_rows", 0)
  return f"{title}: {total:,}" + (f" ({' | '.join(parts)})" if parts else "")


def read(path: str) -> dict:
  with open(path) as f:
    return json.load(f)


def format_summary(summary: dict) -> str:
  """The summary as the table and lines ``python -m train.prepare_data`` prints."""
  class_names = summary.get("class_names") or ["negative", "positive", "neutral"]  # Own files: theirs.
  widths = [max(8, len(name)) + (1 if i < 2 and "class_names" not in summary else 0)
            for i, name in enumerate(class_names)]
  lines = [f"{'split':<12} {'rows':>9} " + " ".join(f"{name:>{w}}" for name, w in zip(class_names, widths))
           + f" {'truncated':>10}"]
  for name in (n for n in SPLIT_NAMES if n in summary["rows"]):
    rows = summary["rows"][name]
    labels = summary["rows_per_label"][name]
    truncated = summary.get("truncated_share_by_split", {}).get(name, 0.0)
    lines.append(f"{name:<12} {rows:>9,} " + " ".join(f"{labels.get(c, 0):>{w},}" for c, w in zip(class_names, widths))
                 + f" {truncated:>9.3%}")
  details = summary.get("duplicate_details", {})
  lines += [
      f"duplicates (rows repeating an earlier normalized text): {summary['duplicates']:,}"
      + (f" in {details['duplicate_groups']:,} texts, {details['conflicting_label_texts']:,} with both labels"
         if details else ""),
      describe_unused_rows(summary, "malformed rows skipped"),
      f"train tweets longer than max_length={summary['max_length']}: {summary['truncated_share']:.3%}",
      f"vocab size: {summary['vocab_size']:,}",
  ]
  if summary.get("prepared_dir"):
    lines.append(f"prepared data: {summary['prepared_dir']}")
  return "\n".join(lines)
