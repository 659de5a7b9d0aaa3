"""fastText (Joulin et al. 2017, "Bag of Tricks for Efficient Text Classification") as a classical baseline.

``fit_and_evaluate`` takes the same ``{split: (texts, labels)}`` as ``train.study.tfidf_baseline``
(the pipeline's normalized texts, so every method sees the same tweets) and returns the same kind of
report: a linear classifier over averaged word and word-bigram embeddings (dim 100, the
``fasttext-wheel`` package), one model per (epochs, learning rate) of the grid, the best on the
validation split kept and scored with ``train.scoring.metrics``. One thread and a fixed seed make a
fit deterministic.
"""

from __future__ import annotations

import os
import tempfile
import time
from typing import Any, Dict, Sequence

import numpy as np

from train.runs import provenance
from train.scoring import metrics

LABEL_PREFIX = "__label__"


def _write_training_file(path: str, texts: Sequence[str], labels: np.ndarray) -> None:
  """fastText's input: one ``__label__<id> <text>`` line per row (texts on one line)."""
  with open(path, "w", encoding="utf-8") as f:
    for text, label in zip(texts, labels):
      f.write(f"{LABEL_PREFIX}{int(label)} {' '.join(text.split())}\n")


def probabilities(model, texts: Sequence[str], num_classes: int) -> np.ndarray:
  """(N, c) class probabilities of ``texts``, rows summing to 1 (a class fastText never saw gets 0).

  Calls the binding ``model.f.predict`` line by line: under NumPy 2 the package's ``predict`` fails
  on one line (``np.array(copy=False)``) and returns wrong probabilities for a list (fasttext-wheel 0.9.2).
  """
  out = np.zeros((len(texts), num_classes), np.float64)
  for row, text in enumerate(texts):
    for prob, name in model.f.predict(" ".join(text.split()) + "\n", -1, 0.0, "strict"):
      out[row, int(name[len(LABEL_PREFIX):])] = prob
  return out / np.maximum(out.sum(axis=1, keepdims=True), 1e-12)


def fit_and_evaluate(splits, *, epochs: Sequence[int] = (5, 10, 25), learning_rates: Sequence[float] = (0.1, 0.5),
                     dim: int = 100, word_ngrams: int = 2, bucket: int = 2_000_000, seed: int = 0,
                     select_by: str = "accuracy", ece_bins: int = 15) -> Dict[str, Any]:
  """Fits fastText per (epochs, learning rate), keeps the best by validation ``select_by``, evaluates it.

  Args:
    splits: {split: (texts, labels)} with train, validation and test (labels: class ids 0..c-1).
    bucket: hash buckets of the word n-grams (fastText's default; its (bucket, dim) matrix is
      allocated by every fit, so small data may use fewer).
    select_by: "accuracy" or "macro_recall" (ties: the later grid point).
  Returns:
    {"model", "epochs", "learning_rate", "search", "validation", "test", ...}: the split metrics
    of ``train.scoring.metrics.classification_metrics``.
  """
  import fasttext  # pylint: disable=import-outside-toplevel

  num_classes = int(max(int(np.max(labels)) for _, labels in splits.values() if len(labels)) + 1)
  candidates, best = [], None
  with tempfile.TemporaryDirectory(prefix="fasttext_") as folder:
    train_path = os.path.join(folder, "train.txt")
    _write_training_file(train_path, *splits["train"])
    for epoch in epochs:
      for lr in learning_rates:
        start = time.perf_counter()
        model = fasttext.train_supervised(input=train_path, epoch=int(epoch), lr=float(lr), dim=dim,
                                          wordNgrams=word_ngrams, bucket=bucket, thread=1, seed=seed, verbose=0)
        validation = metrics.classification_metrics(probabilities(model, splits["validation"][0], num_classes),
                                                    splits["validation"][1], ece_bins)
        candidates.append({"epochs": int(epoch), "learning_rate": float(lr),
                           "validation_accuracy": validation["accuracy"],
                           "validation_macro_recall": validation["macro_recall"],
                           "fit_s": time.perf_counter() - start})
        if best is None or candidates[-1][f"validation_{select_by}"] >= best[0][f"validation_{select_by}"]:
          best = (candidates[-1], model)
  chosen, model = best
  report = {"model": "fasttext", "dim": dim, "word_ngrams": word_ngrams, "bucket": bucket, "epochs": chosen["epochs"],
            "learning_rate": chosen["learning_rate"], "selected_by": f"validation {select_by}", "search": candidates,
            "rows": {name: len(labels) for name, (_, labels) in splits.items()}, "fasttext_version": fasttext_version()}
  for name in ("validation", "test"):
    report[name] = metrics.classification_metrics(probabilities(model, splits[name][0], num_classes),
                                                  splits[name][1], ece_bins)
  return provenance.to_jsonable(report)


def fasttext_version() -> str:
  from importlib import metadata  # pylint: disable=import-outside-toplevel
  try:
    return metadata.version("fasttext-wheel")
  except metadata.PackageNotFoundError:
    return metadata.version("fasttext")
