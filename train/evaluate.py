"""Scores a trained model on any labelled file of tweets.

  python -m train.evaluate --model=models/sent140 --data=testdata.manual.2009.06.14.csv
  python -m train.evaluate --workdir=workdirs/sent140 --data=mine.tsv --text_column=text --label_column=label

The file is the Sentiment140 6-column CSV (no header: polarity, id, date, query, user, text)
unless ``--text_column`` / ``--label_column`` name the columns of another CSV or TSV (a header
name, or a 0-based index; with names the first row is the header). Labels are 0/2/4
(Sentiment140), negative/neutral/positive, or 0/1 (negative/positive); ``--labels=auto``
picks the scheme from the values found. The encoding is UTF-8 if the whole file decodes as
UTF-8, else latin-1 (the official Sentiment140 files), unless ``--encoding`` says; a byte
order mark (UTF-8, UTF-16, UTF-32: ``train.data.byte_order_marks``) names the encoding and
is removed. The report says which encoding was used. Rows that cannot be scored are
skipped and counted by reason.

Prints a summary and writes JSON (``--output``): binary accuracy, macro-F1 and ECE on the
positive/negative rows, three-way accuracy (and macro-F1) on all rows with the neutral
threshold, the three-way accuracy curve over thresholds, the label counts and the bad rows.
"""

from __future__ import annotations

import csv
import dataclasses
import gzip
import io
import json
import os
import re
import sys
from typing import Optional, Union

import numpy as np
from absl import app, flags, logging

from train import inference, metrics, provenance
from train.data import byte_order_marks
from train.data.datasets import LABEL_NAMES, Split

FLAGS = flags.FLAGS

ENCODINGS = ("utf-8", "latin-1")
SENTIMENT140_COLUMNS = (5, 0)  # (text, label) of the 6-column Sentiment140 CSV.
SENTIMENT140_NUM_COLUMNS = 6
# Label scheme -> {label text (stripped, lowercased): label id}; ids as in train.data.datasets.
LABEL_SCHEMES = {
    "0/2/4": {"0": 0, "2": 2, "4": 1},
    "names": {"negative": 0, "neutral": 2, "positive": 1},
    "0/1": {"0": 0, "1": 1},
}
BAD_ROW_REASONS = ("blank_line", "wrong_column_count", "unknown_label", "empty_text", "invalid_utf8",
                   "unparsable_row")
# surrogateescape decodes each invalid UTF-8 byte to a lone surrogate in U+DC80..U+DCFF.
UNDECODABLE = re.compile("[\udc80-\udcff]")


class UsageError(ValueError):
  """The flags do not fit the file (a missing column, ambiguous labels, ...)."""


@dataclasses.dataclass
class LabelledRows:
  """What was read from a labelled file.

  Attributes:
    texts, labels: the N scoreable rows (labels 0 negative, 1 positive, 2 neutral).
    row_numbers: 1-based record number of each row in the file (the header is record 1).
    bad_rows: reason -> count of skipped rows (every reason of BAD_ROW_REASONS).
    encoding, encoding_detected: the encoding used, and whether it was detected (not a flag).
    label_scheme: the LABEL_SCHEMES key used.
    columns: {"text": ..., "label": ...} as given or the Sentiment140 indexes.
  """

  texts: list[str]
  labels: np.ndarray
  row_numbers: list[int]
  bad_rows: dict[str, int]
  encoding: str
  encoding_detected: bool
  label_scheme: str
  columns: dict[str, Union[int, str]]


def read_bytes(path: str) -> bytes:
  """The file's bytes (``.gz`` decompressed)."""
  opener = gzip.open if path.endswith(".gz") else open
  with opener(path, "rb") as f:
    return f.read()


def decode(raw: bytes, encoding: str) -> tuple[str, str, bool]:
  """(text, encoding used, detected?). "auto": the byte order mark's encoding if the file starts
  with one, else UTF-8 if it all decodes, else latin-1.

  With "utf-8" forced, invalid bytes become lone surrogates (their rows are counted as
  invalid_utf8) and a UTF-8 byte order mark is removed; latin-1 decodes every byte.
  """
  marked = byte_order_marks.detect(raw[:4])
  if encoding == "auto" and marked:
    name, codec = marked
    return raw.decode(codec, errors="surrogateescape" if name == "utf-8" else "replace"), name, True
  if encoding == "auto":
    try:
      return raw.decode("utf-8"), "utf-8", True
    except UnicodeDecodeError:
      return raw.decode("latin-1"), "latin-1", True
  if encoding not in ENCODINGS:
    raise UsageError(f"--encoding must be auto or one of {ENCODINGS}, got {encoding!r}")
  text = raw.decode(encoding, errors="surrogateescape")
  return (text.removeprefix("\ufeff") if encoding == "utf-8" else text), encoding, False


def parse_column(spec: Optional[Union[int, str]]) -> Optional[Union[int, str]]:
  """A column: a 0-based index (5 or "5") or a header name ("text"); None or "" -> None."""
  if spec is None or spec == "":
    return None
  if isinstance(spec, int):
    return spec
  return int(spec) if spec.strip().isdigit() else spec


def pick_label_scheme(values: set[str], scheme: str) -> str:
  """The label scheme for these (stripped, lowercased) label texts; "auto" decides from them."""
  if scheme != "auto":
    if scheme not in LABEL_SCHEMES:
      raise UsageError(f"--labels must be auto or one of {sorted(LABEL_SCHEMES)}, got {scheme!r}")
    return scheme
  found = [name for name, mapping in LABEL_SCHEMES.items() if values & (set(mapping) - {"0"})]
  if not found:
    if values <= {"0"}:
      return "0/2/4"  # Only "0" (or no rows): negative in every scheme.
    raise UsageError(f"no label scheme fits the labels {sorted(values)[:10]}; expected 0/2/4, "
                     "negative/neutral/positive or 0/1")
  if len(found) > 1:
    raise UsageError(f"labels {sorted(values)[:10]} fit several schemes ({', '.join(found)}); choose one with "
                     f"--labels={'|'.join(LABEL_SCHEMES)}")
  return found[0]


def _records(text: str, delimiter: str, bad_rows: dict[str, int]):
  """(record number, fields) of every CSV record; unparsable ones counted and skipped."""
  reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter)
  number = 0
  while True:
    try:
      fields = next(reader)
    except StopIteration:
      return
    except csv.Error:
      number += 1
      bad_rows["unparsable_row"] += 1
      continue
    number += 1
    yield number, fields


def read_labelled_file(path: str, *, text_column: Optional[Union[int, str]] = None,
                       label_column: Optional[Union[int, str]] = None, delimiter: Optional[str] = None,
                       encoding: str = "auto", labels: str = "auto") -> LabelledRows:
  """Reads a labelled CSV/TSV (see the module docstring) into scoreable rows and bad-row counts.

  Raises:
    FileNotFoundError: no such file.
    UsageError: the column flags do not fit the file, or the labels are ambiguous.
  """
  if not os.path.isfile(path):
    raise FileNotFoundError(f"--data={path}: no such file")
  text_column, label_column = parse_column(text_column), parse_column(label_column)
  if (text_column is None) != (label_column is None):
    raise UsageError("give both --text_column and --label_column, or neither (the Sentiment140 6-column CSV)")
  sentiment140 = text_column is None
  if sentiment140:
    text_column, label_column = SENTIMENT140_COLUMNS
  if delimiter is None:
    delimiter = "\t" if path.removesuffix(".gz").endswith((".tsv", ".tab")) else ","
  text, used_encoding, detected = decode(read_bytes(path), encoding)
  bad_rows = dict.fromkeys(BAD_ROW_REASONS, 0)
  records = _records(text, delimiter, bad_rows)
  if isinstance(text_column, str) or isinstance(label_column, str):
    header = next(records, (1, []))[1]
    indexes = []
    for column in (text_column, label_column):
      if isinstance(column, int):
        indexes.append(column)
      elif column in header:
        indexes.append(header.index(column))
      else:
        raise UsageError(f"column {column!r} not in the header of {path}: {header}")
    text_index, label_index = indexes
  else:
    text_index, label_index = text_column, label_column
  needed = max(text_index, label_index) + 1
  rows = []  # (record number, text, label text)
  for number, fields in records:
    if not fields:
      bad_rows["blank_line"] += 1
    elif (len(fields) != SENTIMENT140_NUM_COLUMNS) if sentiment140 else (len(fields) < needed):
      bad_rows["wrong_column_count"] += 1
    else:
      rows.append((number, fields[text_index], fields[label_index].strip().lower()))
  scheme = pick_label_scheme({label for _, _, label in rows}, labels)
  mapping = LABEL_SCHEMES[scheme]
  texts, label_ids, numbers = [], [], []
  for number, row_text, label in rows:
    if label not in mapping:
      bad_rows["unknown_label"] += 1
    elif not row_text.strip():
      bad_rows["empty_text"] += 1
    elif UNDECODABLE.search(row_text):
      bad_rows["invalid_utf8"] += 1
    else:
      texts.append(row_text)
      label_ids.append(mapping[label])
      numbers.append(number)
  return LabelledRows(texts=texts, labels=np.asarray(label_ids, np.int32), row_numbers=numbers,
                      bad_rows=bad_rows, encoding=used_encoding, encoding_detected=detected,
                      label_scheme=scheme, columns={"text": text_column, "label": label_column})


def score(model: inference.LoadedModel, rows: LabelledRows, threshold: float,
          batch_size: Optional[int] = None) -> dict:
  """Metrics of ``model`` on ``rows`` (evaluated in length buckets); see the module docstring."""
  split = Split(tokens=model.tokenizer.encode(rows.texts), labels=rows.labels)
  probs = model.probabilities(split, batch_size) if len(split) else np.zeros((0, 2))
  report = metrics.manual_test_report(probs, rows.labels, threshold, model.config.ece_bins)
  three_way = metrics.confusion_matrix(rows.labels, metrics.three_way_predictions(probs, threshold), 3)
  report["three_way"]["macro_f1"] = metrics.macro_f1(three_way)
  report["three_way"]["confusion_matrix"] = three_way.tolist()
  counts = np.bincount(rows.labels, minlength=len(LABEL_NAMES))
  report["label_counts"] = {name: int(c) for name, c in zip(LABEL_NAMES, counts)}
  report["rows"] = {"scored": len(rows.texts), "bad": sum(rows.bad_rows.values()), "bad_by_reason": rows.bad_rows}
  report["encoding"] = rows.encoding
  report["encoding_detected"] = rows.encoding_detected
  report["label_scheme"] = rows.label_scheme
  report["columns"] = rows.columns
  return report


def summary_lines(report: dict) -> list[str]:
  binary, three_way, rows = report["binary"], report["three_way"], report["rows"]
  bad = ", ".join(f"{k} {v}" for k, v in rows["bad_by_reason"].items() if v) or "none"
  how = "detected" if report["encoding_detected"] else "from --encoding"
  return [
      f"{report['data']}: {rows['scored']} rows scored ({report['encoding']}, {how}; labels "
      f"{report['label_scheme']}: {report['label_counts']}); bad rows {rows['bad']} ({bad})",
      f"binary (positive/negative, {binary['num_examples']} rows): accuracy {binary['accuracy']:.4f}, "
      f"macro-F1 {binary['macro_f1']:.4f}, ECE {binary['ece']:.4f}",
      f"three-way ({three_way['num_examples']} rows, {three_way['num_neutral']} neutral, threshold "
      f"{three_way['threshold']}): accuracy {three_way['accuracy']:.4f}, macro-F1 {three_way['macro_f1']:.4f}",
  ]


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f"Unexpected arguments: {' '.join(argv[1:])}")
  if not FLAGS["verbosity"].present:
    logging.set_verbosity(logging.WARNING)
  if bool(FLAGS.workdir) == bool(FLAGS.model):
    raise app.UsageError("give exactly one of --workdir (a training run) or --model (an exported model).")
  if not FLAGS.data:
    raise app.UsageError("--data is required (a labelled CSV or TSV file).")
  delimiter = {"auto": None, "comma": ",", "tab": "\t"}[FLAGS.delimiter]
  try:
    rows = read_labelled_file(FLAGS.data, text_column=FLAGS.text_column,
                              label_column=FLAGS.label_column, delimiter=delimiter,
                              encoding=FLAGS.encoding, labels=FLAGS.labels)
    model = inference.load(FLAGS.workdir, FLAGS.model, FLAGS.checkpoint)
  except (FileNotFoundError, ValueError) as e:
    print(f"ERROR: {e}", file=sys.stderr)
    sys.exit(2)
  threshold = model.config.neutral_threshold if FLAGS.threshold is None else FLAGS.threshold
  report = {"data": os.path.abspath(FLAGS.data), "model": model.source, "step": model.step,
            **score(model, rows, threshold, FLAGS.batch_size)}
  report["date_utc"] = provenance.utc_now()
  output = FLAGS.output or os.path.basename(FLAGS.data.removesuffix(".gz")) + ".evaluation.json"
  with open(output, "w", encoding="utf-8") as f:
    json.dump(provenance.to_jsonable(report), f, indent=2)
  for line in summary_lines(report):
    print(line)
  print(f"report: {os.path.abspath(output)}")


def _define_flags() -> None:
  """Command-line flags (defined only when run as a program, so importing is side-effect free)."""
  flags.DEFINE_string("workdir", None, "Workdir of a training run.")
  flags.DEFINE_string("model", None, "An exported model directory (python -m train.export).")
  flags.DEFINE_enum("checkpoint", "best", ["best", "latest"], "Which checkpoint of --workdir to load.")
  flags.DEFINE_string("data", None, "Labelled CSV/TSV file (plain or .gz).")
  flags.DEFINE_string("text_column", None, "Text column: header name or 0-based index "
                      "(unset with --label_column: the Sentiment140 6-column CSV).")
  flags.DEFINE_string("label_column", None, "Label column: header name or 0-based index.")
  flags.DEFINE_enum("delimiter", "auto", ["auto", "comma", "tab"], "Field separator; auto: tab for .tsv/.tab.")
  flags.DEFINE_enum("encoding", "auto", ["auto", *ENCODINGS], "Text encoding; auto: UTF-8 if the file "
                    "decodes as UTF-8, else latin-1.")
  flags.DEFINE_enum("labels", "auto", ["auto", *LABEL_SCHEMES], "Label scheme; auto: from the values.")
  flags.DEFINE_float("threshold", None, "Neutral threshold (default: the model's config.neutral_threshold).")
  flags.DEFINE_integer("batch_size", None, "Evaluation batch (default: the config's eval_batch_size).")
  flags.DEFINE_string("output", None, "JSON report path (default: ./<data file name>.evaluation.json).")


if __name__ == "__main__":
  _define_flags()
  app.run(main)
