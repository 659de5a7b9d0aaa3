"""The rows of all four splits after reading, normalizing and splitting (before tokenization).

Shared by the TFDS builder (which writes them) and the pipeline (which tokenizes them).
Axes (``mamba_jax.notation``): N (the rows of the training file), M.
"""

from __future__ import annotations

import dataclasses
from typing import Optional

import numpy as np

from train.data import normalization, sources, splits

SPLIT_IDS = {"train": 0, "validation": 1, "test": 2}


@dataclasses.dataclass
class SplitRecords:
  """Rows of one split, in source-file order."""

  texts: list[str]  # Raw.
  normalized_texts: list[str]
  labels: np.ndarray  # np.int32: 0 negative, 1 positive, 2 neutral.
  source_rows: np.ndarray  # np.int64: 1-based line number in the source file.

  def __len__(self) -> int:
    return len(self.labels)


@dataclasses.dataclass
class Records:
  """All splits of one prepared dataset and its build report.

  Sentiment140 (``build_records``): keys "training_file" / "manual_test", class_names None (the
  fixed ids of ``train.data.datasets.LABEL_NAMES``); the user's files
  (``train.data.labelled_files.build_records``): keys "train_file" / "validation_file" /
  "test_file", class_names the ids' names.
  """

  splits: dict[str, SplitRecords]  # train, validation, test[, manual_test].
  malformed: dict[str, dict[str, int]]  # "training_file" / "manual_test" -> reason -> count.
  # "training_file" / "manual_test" -> reason -> line numbers of the first few such lines.
  malformed_lines: dict[str, dict[str, list[int]]]
  duplicates: dict[str, int]  # See splits.duplicate_stats (training file).
  sources: dict[str, str]  # "training_file" / "manual_test" -> where it was read from.
  class_names: Optional[tuple[str, ...]] = None  # Label id i = class_names[i]; None: Sentiment140's.


def _take(rows: sources.RawRows, normalized: list[str], index: np.ndarray) -> SplitRecords:
  return SplitRecords(
      texts=[rows.texts[i] for i in index],
      normalized_texts=[normalized[i] for i in index],
      labels=rows.labels[index],
      source_rows=rows.row_numbers[index])


def build_records(files: sources.SourceFiles, split_fractions, *, verify_zip: bool = True) -> Records:
  """Reads the sources, normalizes every text and assigns train/validation/test."""
  train_rows, manual_rows = sources.read_sources(files, verify_zip=verify_zip)
  normalized = normalization.normalize_many(train_rows.texts)
  keys = splits.text_keys(normalized)
  split_of_row = splits.assign_splits(keys, train_rows.labels, split_fractions)
  by_split = {name: _take(train_rows, normalized, np.flatnonzero(split_of_row == split_id))
              for name, split_id in SPLIT_IDS.items()}
  by_split["manual_test"] = SplitRecords(
      texts=manual_rows.texts,
      normalized_texts=normalization.normalize_many(manual_rows.texts),
      labels=manual_rows.labels,
      source_rows=manual_rows.row_numbers)
  return Records(
      splits=by_split,
      malformed={"training_file": train_rows.malformed, "manual_test": manual_rows.malformed},
      malformed_lines={"training_file": train_rows.malformed_lines, "manual_test": manual_rows.malformed_lines},
      duplicates=splits.duplicate_stats(keys, train_rows.labels),
      sources={"training_file": train_rows.source, "manual_test": manual_rows.source})
