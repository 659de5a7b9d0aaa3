"""The reviewed texts as a training file: what ``configs/own_data.py`` fine-tunes the served model on.

``export_reviews(db, output)`` writes every label of the review database (``review_database``) as a
TSV with the header ``text  label  reviewer  reviewed_at`` (UTC, ISO 8601), oldest label first, one
line per text (line breaks and tabs inside a text become spaces; quotes are CSV-quoted), written to a
temporary file and renamed, so a reader never sees half a file. ``only_labels`` keeps the rows of
those labels (e.g. negative,positive for a binary model: a reviewer's neutral would add a class).
The file is read by ``train/data/labelled_rows.py`` like any labelled TSV
(``--config.text_column=text --config.label_column=label``).
"""

from __future__ import annotations

import csv
import datetime
import os
from typing import Optional, Sequence

from train.service import review_database

HEADER = ("text", "label", "reviewer", "reviewed_at")


def iso_time(unix_seconds: float) -> str:
  return datetime.datetime.fromtimestamp(unix_seconds, datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def export_reviews(db_path: str, output: str, only_labels: Optional[Sequence[str]] = None) -> dict:
  """Writes the TSV; {"rows": written, "labels": {label: rows}, "left_out": {label: rows}}.

  Raises FileNotFoundError for a missing database, ValueError for a file that is not one.
  """
  if not os.path.isfile(db_path):
    raise FileNotFoundError(f"{db_path}: no such review database (python -m train.serve --db=...)")
  rows = review_database.reviewed_rows(db_path)
  keep = set(only_labels) if only_labels else None
  written: dict[str, int] = {}
  left_out: dict[str, int] = {}
  temporary = f"{output}.tmp{os.getpid()}"
  os.makedirs(os.path.dirname(os.path.abspath(output)), exist_ok=True)
  with open(temporary, "w", encoding="utf-8", newline="") as f:
    writer = csv.writer(f, delimiter="\t", lineterminator="\n")
    writer.writerow(HEADER)
    for row in rows:
      if keep is not None and row["label"] not in keep:
        left_out[row["label"]] = left_out.get(row["label"], 0) + 1
        continue
      writer.writerow((" ".join(row["text"].split()), row["label"], row["reviewer"], iso_time(row["reviewed_at"])))
      written[row["label"]] = written.get(row["label"], 0) + 1
  os.replace(temporary, output)
  return {"rows": sum(written.values()), "labels": written, "left_out": left_out}


def export_summary(output: str, counts: dict) -> str:
  """One line: what ``export_reviews`` wrote to ``output`` (``counts``: its result)."""
  by_label = ", ".join(f"{count} {label}" for label, count in sorted(counts["labels"].items())) or "none"
  left_out = "".join(f"; left out {count} {label}" for label, count in sorted(counts["left_out"].items()))
  return f"wrote {output}: {counts['rows']} reviewed texts ({by_label}){left_out}"
