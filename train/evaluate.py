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
skipped and counted by reason. The file is read by ``train.data.labelled_rows`` (shared with
training).

Prints a summary and writes JSON (``--output``). The binary negative/positive model: binary
accuracy, macro-F1, ECE, per-class precision/recall and the confusion matrix on the
positive/negative rows, three-way accuracy (and macro-F1) on all rows with the neutral threshold,
the three-way accuracy curve over thresholds. A model of N other classes: N-way accuracy, macro-F1,
ECE, per-class precision/recall and the confusion matrix (``n_way``). Both: the label counts, the
bad rows, and accuracy per slice (``slices``, ``train.slices``: length, mention, URL, hashtag,
emoji, negation, all-caps, and the query topic of the 6-column Sentiment140 files).
"""

from __future__ import annotations

import json
import os
import sys
from typing import Optional

import numpy as np
from absl import app, flags, logging

from train import classes, inference, metrics, provenance, slices
from train.data import labelled_rows
from train.data.datasets import LABEL_NAMES, Split

FLAGS = flags.FLAGS

# The reader (one for training data and evaluation): train.data.labelled_rows.
ENCODINGS = labelled_rows.ENCODINGS
LABEL_SCHEMES = labelled_rows.LABEL_SCHEMES
BAD_ROW_REASONS = labelled_rows.BAD_ROW_REASONS
UsageError = labelled_rows.UsageError
LabelledRows = labelled_rows.LabelledRows
read_labelled_file = labelled_rows.read_labelled_file


def reading_classes(model_classes, labels: str) -> tuple[str, Optional[tuple[str, ...]]]:
  """(label scheme, class names) to read a file scored by a model of ``model_classes``.

  The binary negative/positive model: the file's own scheme, neutral rows kept (id 2: scored by
  abstention). Another model: its classes; "auto" becomes "classes" (labels matched to the class
  names, case-insensitively) unless they are the known names negative, positive[, neutral].
  """
  model_classes = tuple(model_classes)
  if model_classes == classes.BINARY:
    return labels, None
  known = labelled_rows.KNOWN_CLASS_NAMES[:len(model_classes)]
  if labels == "auto" and model_classes != known:
    return labelled_rows.CLASSES_SCHEME, model_classes
  return labels, model_classes


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
    labels, class_names = reading_classes(model.class_names, FLAGS.labels)
    rows = read_labelled_file(FLAGS.data, text_column=FLAGS.text_column,
                              label_column=FLAGS.label_column, delimiter=delimiter,
                              encoding=FLAGS.encoding, labels=labels, class_names=class_names)
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
