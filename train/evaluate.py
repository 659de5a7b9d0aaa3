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
skipped and counted by reason. The file is read by ``train.data.labelled_rows`` (shared with
training).

Prints a summary and writes JSON (``--output``): binary accuracy, macro-F1 and ECE on the
positive/negative rows, three-way accuracy (and macro-F1) on all rows with the neutral
threshold, the three-way accuracy curve over thresholds, the label counts and the bad rows.
"""

from __future__ import annotations

import json
import os
import sys
from typing import Optional

import numpy as np
from absl import app, flags, logging

from train import inference, metrics, provenance
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
