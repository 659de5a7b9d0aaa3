"""Scores a trained model on any labelled file of tweets.

  python -m train.evaluate --model=models/sent140 --data=testdata.manual.2009.06.14.csv
  python -m train.evaluate --workdir=workdirs/sent140 --data=mine.tsv --text_column=text --label_column=label

The file is the Sentiment140 6-column CSV (no header: polarity, id, date, query, user, text)
unless ``--text_column`` / ``--label_column`` name the columns of another CSV or TSV (a header
name, or a 0-based index; with names the first row is the header). Labels are 0/2/4
(Sentiment140), negative/neutral/positive, or 0/1 (negative/positive); ``--labels=auto``
picks the scheme from the values found. A model of other classes (its classes.json,
``train.classes``) reads its class names (case-insensitive; scheme "classes"), or the numeric
schemes' values where its classes carry their names (e.g. 0/2/4 for negative/neutral/positive).
The encoding is UTF-8 if the whole file decodes as
UTF-8, else latin-1 (the official Sentiment140 files), unless ``--encoding`` says; a byte
order mark (UTF-8, UTF-16, UTF-32: ``train.data.byte_order_marks``) names the encoding and
is removed. The report says which encoding was used. Rows that cannot be scored are
skipped and counted by reason.

Prints a summary and writes JSON (``--output``). The binary negative/positive model: binary
accuracy, macro-F1, ECE, per-class precision/recall and the confusion matrix on the
positive/negative rows, three-way accuracy (and macro-F1) on all rows with the neutral threshold,
the three-way accuracy curve over thresholds. A model of N other classes: N-way accuracy, macro-F1,
ECE, per-class precision/recall and the confusion matrix (``n_way``). Both: the label counts, the
bad rows, and accuracy per slice (``slices``, ``train.slices``: length, mention, URL, hashtag,
emoji, negation, all-caps, and the query topic of the 6-column Sentiment140 files).
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

from train import classes, inference, metrics, provenance, slices
from train.data import byte_order_marks
from train.data.datasets import LABEL_NAMES, Split

FLAGS = flags.FLAGS

ENCODINGS = ("utf-8", "latin-1")
SENTIMENT140_COLUMNS = (5, 0)  # (text, label) of the 6-column Sentiment140 CSV.
SENTIMENT140_NUM_COLUMNS = 6
SENTIMENT140_QUERY_COLUMN = 3  # The topic a tweet was found by (NO_QUERY in the training file).
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


def label_schemes(class_names=classes.BINARY) -> dict[str, dict[str, int]]:
  """Label scheme -> {label text: label id} for a model of ``class_names``.

  The binary model: ``LABEL_SCHEMES`` (ids as in train.data.datasets, 2 = neutral). Other classes:
  "classes" (their names, lower-cased -> index) and each numeric scheme of ``LABEL_SCHEMES`` cut to
  the values whose name (``LABEL_NAMES``) is one of the classes, mapped to that class's index.
  """
  if tuple(class_names) == classes.BINARY:
    return LABEL_SCHEMES
  index = {name.strip().lower(): i for i, name in enumerate(class_names)}
  schemes = {"classes": index}
  for name, mapping in LABEL_SCHEMES.items():
    if name == "names":
      continue
    cut = {value: index[LABEL_NAMES[i]] for value, i in mapping.items() if LABEL_NAMES[i] in index}
    if cut:
      schemes[name] = cut
  return schemes


class UsageError(ValueError):
  """The flags do not fit the file (a missing column, ambiguous labels, ...)."""


@dataclasses.dataclass
class LabelledRows:
  """What was read from a labelled file.

  Attributes:
    texts, labels: the N scoreable rows (labels 0 negative, 1 positive, 2 neutral; for a model of
      other classes, the index of its class).
    row_numbers: 1-based record number of each row in the file (the header is record 1).
    bad_rows: reason -> count of skipped rows (every reason of BAD_ROW_REASONS).
    encoding, encoding_detected: the encoding used, and whether it was detected (not a flag).
    label_scheme: the LABEL_SCHEMES key used.
    columns: {"text": ..., "label": ...} as given or the Sentiment140 indexes.
    topics: the N query values of a Sentiment140 6-column file, else None.
  """

  texts: list[str]
  labels: np.ndarray
  row_numbers: list[int]
  bad_rows: dict[str, int]
  encoding: str
  encoding_detected: bool
  label_scheme: str
  columns: dict[str, Union[int, str]]
  topics: Optional[list[str]] = None


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


def pick_label_scheme(values: set[str], scheme: str, schemes: dict = LABEL_SCHEMES) -> str:
  """The label scheme for these (stripped, lowercased) label texts; "auto" decides from them."""
  if scheme != "auto":
    if scheme not in schemes:
      raise UsageError(f"--labels must be auto or one of {sorted(schemes)}, got {scheme!r}")
    return scheme
  found = [name for name, mapping in schemes.items() if values & (set(mapping) - {"0"})]
  if not found:
    if values <= {"0"} and "0/2/4" in schemes:
      return "0/2/4"  # Only "0" (or no rows): negative in every scheme.
    expected = ("0/2/4, negative/neutral/positive or 0/1" if schemes is LABEL_SCHEMES
                else f"the class names {sorted(schemes['classes'])}" + (
                    f" or the {'/'.join(n for n in schemes if n != 'classes')} values" if len(schemes) > 1 else ""))
    raise UsageError(f"no label scheme fits the labels {sorted(values)[:10]}; expected {expected}")
  if len(found) > 1:
    raise UsageError(f"labels {sorted(values)[:10]} fit several schemes ({', '.join(found)}); choose one with "
                     f"--labels={'|'.join(schemes)}")
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
                       encoding: str = "auto", labels: str = "auto",
                       class_names=classes.BINARY) -> LabelledRows:
  """Reads a labelled CSV/TSV (see the module docstring) into scoreable rows and bad-row counts.

  ``class_names``: the model's classes (``label_schemes``).

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
  rows = []  # (record number, text, label text, topic)
  for number, fields in records:
    if not fields:
      bad_rows["blank_line"] += 1
    elif (len(fields) != SENTIMENT140_NUM_COLUMNS) if sentiment140 else (len(fields) < needed):
      bad_rows["wrong_column_count"] += 1
    else:
      rows.append((number, fields[text_index], fields[label_index].strip().lower(),
                   fields[SENTIMENT140_QUERY_COLUMN] if sentiment140 else None))
  schemes = label_schemes(class_names)
  scheme = pick_label_scheme({label for _, _, label, _ in rows}, labels, schemes)
  mapping = schemes[scheme]
  texts, label_ids, numbers, topics = [], [], [], []
  for number, row_text, label, topic in rows:
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
      topics.append(topic)
  return LabelledRows(texts=texts, labels=np.asarray(label_ids, np.int32), row_numbers=numbers,
                      bad_rows=bad_rows, encoding=used_encoding, encoding_detected=detected,
                      label_scheme=scheme, columns={"text": text_column, "label": label_column},
                      topics=topics if sentiment140 else None)


def score(model: inference.LoadedModel, rows: LabelledRows, threshold: float,
          batch_size: Optional[int] = None) -> dict:
  """Metrics of ``model`` on ``rows`` (evaluated in length buckets); see the module docstring.

  ``rows`` must be read with the model's class names (``read_labelled_file(class_names=...)``).
  """
  names = tuple(model.class_names)
  split = Split(tokens=model.tokenizer.encode(rows.texts), labels=rows.labels)
  probs = model.probabilities(split, batch_size) if len(split) else np.zeros((0, len(names)))
  if model.is_binary_sentiment:
    report = metrics.manual_test_report(probs, rows.labels, threshold, model.config.ece_bins)
    three_way = metrics.confusion_matrix(rows.labels, metrics.three_way_predictions(probs, threshold), 3)
    report["three_way"]["macro_f1"] = metrics.macro_f1(three_way)
    report["three_way"]["confusion_matrix"] = three_way.tolist()
    counts = np.bincount(rows.labels, minlength=len(LABEL_NAMES))
    report["label_counts"] = {name: int(c) for name, c in zip(LABEL_NAMES, counts)}
  else:
    report = {"n_way": metrics.classification_metrics(probs, rows.labels, model.config.ece_bins)}
    counts = np.bincount(rows.labels, minlength=len(names))
    report["label_counts"] = {name: int(c) for name, c in zip(names, counts)}
  report["class_names"] = list(names)
  report["slices"] = slices.classification_slices(probs, rows.labels, rows.texts, (split.tokens != 0).sum(axis=1),
                                                  normalized=False, topics=rows.topics)
  report["rows"] = {"scored": len(rows.texts), "bad": sum(rows.bad_rows.values()), "bad_by_reason": rows.bad_rows}
  report["encoding"] = rows.encoding
  report["encoding_detected"] = rows.encoding_detected
  report["label_scheme"] = rows.label_scheme
  report["columns"] = rows.columns
  return report


def class_lines(numbers: dict, class_names, indent: str = "  ") -> list[str]:
  """Per-class precision/recall/F1/support and the confusion matrix of ``classification_metrics``."""
  width = max(len(name) for name in class_names)
  lines = [f"{indent}{name:<{width}}  precision {c['precision']:.4f}  recall {c['recall']:.4f}  F1 {c['f1']:.4f}  "
           f"support {c['support']}" for name, c in zip(class_names, numbers["per_class"])]
  lines.append(f"{indent}confusion matrix (row: true, column: predicted):")
  cell = max([width] + [len(str(v)) for row in numbers["confusion_matrix"] for v in row])
  lines.append(f"{indent}  {'':<{width}}  " + "  ".join(f"{name:>{cell}}" for name in class_names))
  for name, row in zip(class_names, numbers["confusion_matrix"]):
    lines.append(f"{indent}  {name:<{width}}  " + "  ".join(f"{v:>{cell}}" for v in row))
  return lines


def summary_lines(report: dict) -> list[str]:
  rows = report["rows"]
  bad = ", ".join(f"{k} {v}" for k, v in rows["bad_by_reason"].items() if v) or "none"
  how = "detected" if report["encoding_detected"] else "from --encoding"
  lines = [
      f"{report['data']}: {rows['scored']} rows scored ({report['encoding']}, {how}; labels "
      f"{report['label_scheme']}: {report['label_counts']}); bad rows {rows['bad']} ({bad})",
  ]
  if "n_way" in report:
    n_way = report["n_way"]
    lines += [f"{len(report['class_names'])}-way ({n_way['num_examples']} rows): accuracy {n_way['accuracy']:.4f}, "
              f"macro-F1 {n_way['macro_f1']:.4f}, ECE {n_way['ece']:.4f}",
              *class_lines(n_way, report["class_names"])]
  else:
    binary, three_way = report["binary"], report["three_way"]
    lines += [
        f"binary (positive/negative, {binary['num_examples']} rows): accuracy {binary['accuracy']:.4f}, "
        f"macro-F1 {binary['macro_f1']:.4f}, ECE {binary['ece']:.4f}",
        *class_lines(binary, report["class_names"]),
        f"three-way ({three_way['num_examples']} rows, {three_way['num_neutral']} neutral, threshold "
        f"{three_way['threshold']}): accuracy {three_way['accuracy']:.4f}, macro-F1 {three_way['macro_f1']:.4f}",
    ]
  return lines + slice_lines(report["slices"])


def slice_lines(report: dict) -> list[str]:
  """``train.slices.table_lines`` with the topics cut to the flagged ones (all of them are in the JSON)."""
  lines = slices.table_lines(report, indent="", skip=("topic",))
  topics = report["features"].get("topic")
  if topics:
    flagged = [f"{value} {s['accuracy']:.3f} n={s['count']}" for value, s in topics.items() if s["flagged"]]
    lines.append(f"  {'topic':<13} {len(topics)} topics; flagged: {'; '.join(flagged) or 'none'}")
  return lines


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
    if not os.path.isfile(FLAGS.data):
      raise FileNotFoundError(f"--data={FLAGS.data}: no such file")
    model = inference.load(FLAGS.workdir, FLAGS.model, FLAGS.checkpoint)
    if FLAGS.threshold is not None and not model.is_binary_sentiment:
      raise UsageError(f"--threshold is for the binary negative/positive model (neutral by abstention); "
                       f"{model.source} has the classes {list(model.class_names)}")
    rows = read_labelled_file(FLAGS.data, text_column=FLAGS.text_column,
                              label_column=FLAGS.label_column, delimiter=delimiter,
                              encoding=FLAGS.encoding, labels=FLAGS.labels, class_names=model.class_names)
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
  flags.DEFINE_enum("labels", "auto", ["auto", *LABEL_SCHEMES, "classes"], "Label scheme; auto: from the "
                    "values; classes: the model's class names (a model with a classes.json).")
  flags.DEFINE_float("threshold", None, "Neutral threshold (default: the model's config.neutral_threshold).")
  flags.DEFINE_integer("batch_size", None, "Evaluation batch (default: the config's eval_batch_size).")
  flags.DEFINE_string("output", None, "JSON report path (default: ./<data file name>.evaluation.json).")


if __name__ == "__main__":
  _define_flags()
  app.run(main)
