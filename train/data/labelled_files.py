"""The user's own labelled files (``config.dataset = "labelled_files"``) -> the records of train/validation/test.

``config.train_file`` (required), ``config.validation_file`` and ``config.test_file`` are read
by ``train.data.labelled_rows`` (the reader ``train.evaluate`` and Sentiment140 use) with the
config's columns, label scheme, encoding and delimiter. The train file decides the classes:

* a known scheme (0/2/4, negative/neutral/positive, 0/1): ids 0 negative, 1 positive, and 2
  neutral when the train file has neutral rows (neutral is then a learned class);
* ``"classes"``: every distinct value of the train file, in sorted order.

The validation and test files are read with the train file's scheme and classes: the
validation file must have exactly the train file's classes, the test file some of them. A
split without a file comes from a stable hash split of the train file (``train.data.splits``:
``config.split_fractions``, the shares of the splits given as files left out), so no
validation or test row ever reaches training and a rebuilt cache gives the same rows.

Unusable rows are counted by reason with their first line numbers (the build report); a
label outside the scheme, a train file with one class, a class without train rows, a
label set that differs between the files or an empty split is a ``ValueError`` in one line.
Axes (``mamba_jax.notation``): N (the rows of the train file).
"""

from __future__ import annotations

import dataclasses
import os
from typing import Optional

import numpy as np

from train.data import labelled_rows, normalization, records as records_lib, sources, splits

ROLES = ("train_file", "validation_file", "test_file")  # Config fields; also the build report's keys.
DELIMITERS = {"auto": None, "comma": ",", "tab": "\t"}


@dataclasses.dataclass(frozen=True)
class LabelledFiles:
  """The user's files and how to read them (the config's own-files fields, checked)."""

  train: str
  validation: Optional[str]
  test: Optional[str]
  read_options: dict  # text_column, label_column, labels, encoding, delimiter (labelled_rows.read_labelled_file).

  def paths(self) -> dict[str, str]:
    """Role ("train_file", ...) -> path, for the files given."""
    return {role: path for role, path in zip(ROLES, (self.train, self.validation, self.test)) if path}

  def fingerprint(self) -> dict:
    """Identity of the inputs (file names, sizes, sha256 and the reading options) for cache keys."""
    return {"files": {role: {"name": os.path.basename(path), "bytes": os.path.getsize(path),
                             "sha256": sources.sha256_of(path)} for role, path in self.paths().items()},
            "read_options": self.read_options}


def find_files(config) -> LabelledFiles:
  """The files named by the config, checked to exist.

  Raises:
    ValueError: no train_file, a bad label scheme / encoding / delimiter.
    FileNotFoundError: a named file does not exist.
  """
  if not config.train_file:
    raise ValueError('config.dataset "labelled_files" needs config.train_file (a CSV or TSV file of labelled rows)')
  for role in ROLES:
    path = config[role]
    if path and not os.path.isfile(os.path.expanduser(path)):
      raise FileNotFoundError(f"config.{role} {path}: no such file")
  if config.label_scheme not in labelled_rows.SCHEMES:
    raise ValueError(f"config.label_scheme must be one of {', '.join(labelled_rows.SCHEMES)}, "
                     f"got {config.label_scheme!r}")
  if config.encoding not in ("auto", *labelled_rows.ENCODINGS):
    raise ValueError(f"config.encoding must be auto or one of {labelled_rows.ENCODINGS}, got {config.encoding!r}")
  if config.delimiter not in DELIMITERS:
    raise ValueError(f"config.delimiter must be one of {', '.join(DELIMITERS)}, got {config.delimiter!r}")
  path_of = lambda p: os.path.abspath(os.path.expanduser(p)) if p else None  # pylint: disable=unnecessary-lambda-assignment
  return LabelledFiles(
      train=path_of(config.train_file), validation=path_of(config.validation_file), test=path_of(config.test_file),
      read_options={"text_column": config.text_column, "label_column": config.label_column,
                    "labels": config.label_scheme, "encoding": config.encoding, "delimiter": config.delimiter})


def _read(path: str, role: str, options: dict, class_names=None, labels=None) -> labelled_rows.LabelledRows:
  """One file's rows; a label outside the scheme or classes, or no usable row, is a ValueError."""
  try:
    rows = labelled_rows.read_labelled_file(
        path, text_column=options["text_column"], label_column=options["label_column"],
        delimiter=DELIMITERS[options["delimiter"]], encoding=options["encoding"],
        labels=labels or options["labels"], class_names=class_names, progress=True)
  except labelled_rows.UsageError as error:
    raise ValueError(f"config.{role} {path}: {error}") from None
  if rows.bad_rows["unknown_label"]:
    values = ", ".join(f"{value!r} ({count} rows)" for value, count in rows.unknown_labels.items())
    lines = ", ".join(map(str, rows.bad_lines["unknown_label"]))
    known = (f"the train file's classes {list(class_names)}" if class_names
             else f"the label scheme {rows.label_scheme} ({', '.join(labelled_rows.LABEL_SCHEMES[rows.label_scheme])})")
    raise ValueError(f"config.{role} {path}: {rows.bad_rows['unknown_label']} rows have a label outside {known}: "
                     f"{values}, first at lines {lines}; fix those rows, or set config.label_scheme "
                     f"(e.g. '{labelled_rows.CLASSES_SCHEME}': every distinct value a class)")
  if not rows.texts:
    raise ValueError(f"config.{role} {path}: no usable rows (unused rows by reason: "
                     f"{ {k: v for k, v in rows.bad_rows.items() if v} })")
  return rows


def _check_classes(train: labelled_rows.LabelledRows, path: str) -> tuple[str, ...]:
  """The train file's classes; each must have rows, and there must be at least 2."""
  counts = np.bincount(train.labels, minlength=len(train.class_names))
  present = [name for name, count in zip(train.class_names, counts) if count]
  if len(present) < 2:
    raise ValueError(f"config.train_file {path}: all {len(train.texts)} usable rows are of the class {present[0]!r}; "
                     "a classifier needs rows of at least 2 classes (check config.label_column)")
  missing = [name for name, count in zip(train.class_names, counts) if not count]
  if missing:
    raise ValueError(f"config.train_file {path}: no rows of the class(es) {missing} of the label scheme "
                     f"{train.label_scheme} (found {present}); use config.label_scheme='{labelled_rows.CLASSES_SCHEME}' "
                     "to learn only the classes the file has")
  return train.class_names


def _present(rows: labelled_rows.LabelledRows) -> list[str]:
  return [name for name, count in zip(rows.class_names, np.bincount(rows.labels, minlength=len(rows.class_names)))
          if count]


def _split_records(rows: labelled_rows.LabelledRows, normalized: list[str], index: np.ndarray) -> records_lib.SplitRecords:
  return records_lib.SplitRecords(texts=[rows.texts[i] for i in index], normalized_texts=[normalized[i] for i in index],
                                  labels=rows.labels[index], source_rows=rows.row_numbers[index])


def split_fractions_without_files(files: LabelledFiles, split_fractions) -> tuple[float, float, float]:
  """The hash split's (train, validation, test) shares: those of splits given as files left out, renormalized."""
  fractions = splits.check_fractions(split_fractions).copy()
  if files.validation:
    fractions[1] = 0.0
  if files.test:
    fractions[2] = 0.0
  return tuple(float(f) for f in fractions / fractions.sum())


def build_records(files: LabelledFiles, split_fractions) -> records_lib.Records:
  """Reads, checks, normalizes and splits the user's files (see the module docstring).

  Raises:
    ValueError: one line: an unknown label, one class, a label set that differs between the
      files, a file or split without usable rows.
  """
  options = files.read_options
  train_rows = _read(files.train, "train_file", options)
  class_names = _check_classes(train_rows, files.train)
  read_by_role = {"train_file": train_rows}
  for role, path in (("validation_file", files.validation), ("test_file", files.test)):
    if not path:
      continue
    rows = _read(path, role, options, class_names=class_names, labels=train_rows.label_scheme)
    present = _present(rows)
    if role == "validation_file" and present != list(class_names):
      raise ValueError(f"config.validation_file {path}: its classes {present} differ from the train file's "
                       f"{list(class_names)}; validation must measure every class the model learns")
    read_by_role[role] = rows
  normalized = normalization.normalize_many(train_rows.texts)
  keys = splits.text_keys(normalized)
  split_of_row = splits.assign_splits(keys, train_rows.labels, split_fractions_without_files(files, split_fractions))
  by_split = {"train": _split_records(train_rows, normalized, np.flatnonzero(split_of_row == 0))}
  for name, split_id, role in (("validation", 1, "validation_file"), ("test", 2, "test_file")):
    if role in read_by_role:
      rows = read_by_role[role]
      by_split[name] = records_lib.SplitRecords(
          texts=rows.texts, normalized_texts=normalization.normalize_many(rows.texts), labels=rows.labels,
          source_rows=rows.row_numbers)
    else:
      by_split[name] = _split_records(train_rows, normalized, np.flatnonzero(split_of_row == split_id))
  for name, split in by_split.items():
    if not len(split):
      raise ValueError(f"the {name} split of {files.train} is empty ({len(train_rows.texts)} usable rows, "
                       f"split_fractions {tuple(split_fractions)}); add rows, or give config.{name}_file"
                       if name != "train" else f"config.train_file {files.train}: no rows left for training")
  return records_lib.Records(
      splits=by_split,
      malformed={role: rows.bad_rows for role, rows in read_by_role.items()},
      malformed_lines={role: rows.bad_lines for role, rows in read_by_role.items()},
      duplicates=splits.duplicate_stats(keys, train_rows.labels),
      sources={role: rows.source for role, rows in read_by_role.items()},
      class_names=tuple(class_names))
