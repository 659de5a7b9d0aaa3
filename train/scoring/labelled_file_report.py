"""A trained model's scores on a labelled file of tweets: the report of ``python -m train.evaluate``.

The file is read by ``train.data.labelled_rows`` (shared with training): the Sentiment140 6-column CSV
unless the text and label columns are named, labels 0/2/4, negative/neutral/positive or 0/1, or a model
of other classes' own class names (``reading_classes``); rows that cannot be scored are counted by reason.
``model`` is a ``train.model_files.inference.LoadedModel`` (its tokenizer, config, classes and
``probabilities``). The binary negative/positive model: binary accuracy, macro-F1, ECE, per-class
precision/recall and the confusion matrix on the positive/negative rows, three-way accuracy (and
macro-F1) on all rows with the neutral threshold, the three-way accuracy curve over thresholds. A model of
N other classes: N-way accuracy, macro-F1, ECE, per-class precision/recall and the confusion matrix
(``n_way``). Both: the label counts, the bad rows, and accuracy per slice (``slices``,
``train.scoring.slices``: length, mention, URL, hashtag, emoji, negation, all-caps, and the query topic of
the 6-column Sentiment140 files). ``summary_lines`` prints a report.
"""

from __future__ import annotations

import json
import os
from typing import Optional

import numpy as np

from train.data import labelled_rows
from train.data.datasets import LABEL_NAMES, Split
from train.runs import classes, provenance
from train.scoring import metrics, slices

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


def score(model, rows: labelled_rows.LabelledRows, threshold: float,
          batch_size: Optional[int] = None) -> dict:
  """Metrics of ``model`` (a ``train.model_files.inference.LoadedModel``) on ``rows`` (scored by its
  ``InferenceEngine``: length buckets); see the module docstring.

  ``rows`` must be read with the model's class names (``read_labelled_file(class_names=...)``).
  """
  names = tuple(model.class_names)
  split = Split(tokens=model.engine.encode(rows.texts)[0], labels=rows.labels)
  probs = model.probabilities(split, batch_size) if len(split) else np.zeros((0, len(names)))
  if model.is_binary_sentiment:
    report = metrics.manual_test_report(probs, rows.labels, threshold, model.config.ece_bins)
    three_way = metrics.confusion_matrix(rows.labels, metrics.three_way_predictions(probs, threshold), 3)
    report["three_way"]["macro_f1"] = metrics.macro_f1(three_way)
    report["three_way"]["macro_recall"] = metrics.macro_recall(three_way)
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
              f"macro-recall {n_way['macro_recall']:.4f}, macro-F1 {n_way['macro_f1']:.4f}, ECE {n_way['ece']:.4f}",
              *class_lines(n_way, report["class_names"])]
  else:
    binary, three_way = report["binary"], report["three_way"]
    lines += [
        f"binary (positive/negative, {binary['num_examples']} rows): accuracy {binary['accuracy']:.4f}, "
        f"macro-recall {binary['macro_recall']:.4f}, macro-F1 {binary['macro_f1']:.4f}, ECE {binary['ece']:.4f}",
        *class_lines(binary, report["class_names"]),
        f"three-way ({three_way['num_examples']} rows, {three_way['num_neutral']} neutral, threshold "
        f"{three_way['threshold']}): accuracy {three_way['accuracy']:.4f}, macro-recall {three_way['macro_recall']:.4f}, "
        f"macro-F1 {three_way['macro_f1']:.4f}",
    ]
  return lines + slice_lines(report["slices"])


def slice_lines(report: dict) -> list[str]:
  """``train.scoring.slices.table_lines`` with the topics cut to the flagged ones (all of them are in the JSON)."""
  lines = slices.table_lines(report, indent="", skip=("topic",))
  topics = report["features"].get("topic")
  if topics:
    flagged = [f"{value} {s['accuracy']:.3f} n={s['count']}" for value, s in topics.items() if s["flagged"]]
    lines.append(f"  {'topic':<13} {len(topics)} topics; flagged: {'; '.join(flagged) or 'none'}")
  return lines


def evaluate_file(model, path: str, output: Optional[str] = None, *, text_column: Optional[str] = None,
                  label_column: Optional[str] = None, delimiter: Optional[str] = None, encoding: str = "auto",
                  labels: str = "auto", threshold: Optional[float] = None,
                  batch_size: Optional[int] = None) -> tuple[dict, str]:
  """Scores ``model`` on the labelled file ``path``, writes the report as JSON to ``output`` (None:
  ``./<file name>.evaluation.json``); returns (the report, the path written).

  ``threshold``: the binary model's neutral threshold (None: its config's); ``batch_size``: None, the
  config's eval_batch_size. The other arguments are ``labelled_rows.read_labelled_file``'s.

  Raises:
    FileNotFoundError: no file at ``path``.
    ValueError: a threshold for a model of other classes, or a file the reader refuses
      (``labelled_rows.UsageError``: columns, label scheme).
  """
  if not os.path.isfile(path):
    raise FileNotFoundError(f"--data={path}: no such file")
  if threshold is not None and not model.is_binary_sentiment:
    raise labelled_rows.UsageError(f"--threshold is for the binary negative/positive model (neutral by abstention); "
                                   f"{model.source} has the classes {list(model.class_names)}")
  scheme, class_names = reading_classes(model.class_names, labels)
  rows = labelled_rows.read_labelled_file(path, text_column=text_column, label_column=label_column,
                                          delimiter=delimiter, encoding=encoding, labels=scheme,
                                          class_names=class_names)
  threshold = model.config.neutral_threshold if threshold is None else threshold
  report = {"data": os.path.abspath(path), "model": model.source, "step": model.step,
            **score(model, rows, threshold, batch_size)}
  report["date_utc"] = provenance.utc_now()
  output = os.path.abspath(output or os.path.basename(path.removesuffix(".gz")) + ".evaluation.json")
  with open(output, "w", encoding="utf-8") as f:
    json.dump(provenance.to_jsonable(report), f, indent=2)
  return report, output
