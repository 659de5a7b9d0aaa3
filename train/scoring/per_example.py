"""A classifier run's answer on each of the same tweets: the per-example file, and paired comparisons.

Every classifier run (``train.loop.trainer``) writes ``<workdir>/per_example.json``; the study copies
it beside its run records (``train.study.training``: ``<output_dir>/per_example/``). So two runs of any models on the same data can
be compared tweet by tweet without training again (``train.study.qualitative``).

The file (``build`` / ``read``): ``format``, ``class_names`` and ``parts``, each part a dict of equal-length
lists ``keys`` (``row_keys``: the hex blake2b-64 of the normalized text, as ``train.data.splits``
keys rows; texts are not stored), ``labels`` (the split's label ids: the manual test's neutral rows
keep id 2 beside a binary model's two classes; -1 where unknown), ``probs`` (N, c), rounded to
``DIGITS``, and ``predictions`` (the argmax of the unrounded probabilities: rounding may tie them):

* ``manual_test``: every row of the manual test, in its prepared order (the 498 tweets may be shown);
* ``test_sample``: the ``SAMPLE_SIZE`` rows of the held-out test with the smallest keys (``sample_rows``):
  for one dataset and split, the same tweets in every run, whatever the model;
* ``reference``: ``REFERENCE_TWEETS``, the reference study's example tweets, scored from their raw text
  (Sentiment140 runs only); ``labels`` are -1 (their labels are the training file's).

Paired comparisons: ``mcnemar`` (exact two-sided test of two classifiers on the same rows).
Axes (``mamba_jax.notation``): N, c.
"""

from __future__ import annotations

import json
import os
from typing import Optional, Sequence

import numpy as np
from scipy import stats

from train.data import splits as splits_lib
from train.runs import eval_report

FILE_NAME = eval_report.PER_EXAMPLE_FILE
FORMAT = 1
SAMPLE_SIZE = 2000  # Held-out test rows kept per run.
DIGITS = 5  # Probabilities rounded to this many decimals.
PART_NAMES = ("manual_test", "test_sample", "reference")
# The example tweets of the reference study's per-tweet table, as the Sentiment140 training file
# (training.1600000.*.csv) spells them, each labelled 4 (positive) there: its lines 1,584,477,
# 876,401 and 960,636 (the study quotes the last one as "Nice one bray!").
REFERENCE_TWEETS = (
    "relaxing..   ",
    "@user Haha, I agree, they rock and they are awesome.",
    "@user Nice one bruv! Hope you can make it along",
)


def row_keys(normalized_texts: Sequence[str]) -> list[str]:
  """The hex ``train.data.splits.text_keys`` of each normalized text (16 characters each)."""
  return [f"{int(k):016x}" for k in splits_lib.text_keys(list(normalized_texts))]


def sample_rows(keys: Sequence[str], size: int = SAMPLE_SIZE) -> np.ndarray:
  """Indices of the ``size`` rows with the smallest keys (fewer if there are fewer), in key order."""
  return np.argsort(np.asarray(keys), kind="stable")[:size]


def part(keys: Sequence[str], labels, probs) -> dict:
  """One part of the file: keys, integer labels, rounded probabilities and the predicted class ids (argmax),
  checked to be of one length."""
  probs = np.asarray(probs, np.float64)
  labels = np.asarray(labels, np.int64)
  if probs.ndim != 2 or not len(keys) == len(labels) == probs.shape[0]:
    raise ValueError(f"a per-example part needs N keys, N labels and (N, c) probabilities; got {len(keys)}, "
                     f"{labels.shape} and {probs.shape}")
  return {"keys": list(keys), "labels": labels.tolist(), "probs": np.round(probs, DIGITS).tolist(),
          "predictions": probs.argmax(axis=1).tolist() if probs.size else []}


def build(class_names: Sequence[str], parts: dict) -> dict:
  """The per-example record of a run: its class names and its ``parts`` (name -> ``part``)."""
  unknown = sorted(set(parts) - set(PART_NAMES))
  if unknown:
    raise ValueError(f"unknown per-example parts {unknown}; known: {', '.join(PART_NAMES)}")
  for name, one in parts.items():
    if one["probs"] and len(one["probs"][0]) != len(class_names):
      raise ValueError(f"part {name}: {len(one['probs'][0])} probabilities per row for {len(class_names)} classes")
  return {"format": FORMAT, "class_names": list(class_names), "parts": parts}


def write(directory: str, record: dict, name: str = FILE_NAME) -> str:
  """Writes ``record`` as ``<directory>/<name>`` (compact JSON, replaced atomically); its path."""
  path = os.path.join(directory, name)
  tmp = path + ".tmp"
  with open(tmp, "w", encoding="utf-8") as f:
    json.dump(record, f, separators=(",", ":"))
  os.replace(tmp, path)
  return path


def read(path: str) -> dict:
  """A per-example record; a ValueError naming the file if it is not one."""
  try:
    with open(path, encoding="utf-8") as f:
      record = json.load(f)
  except (OSError, json.JSONDecodeError) as e:
    raise ValueError(f"{path}: not a readable per-example file ({type(e).__name__}: {e})") from e
  if not isinstance(record, dict) or record.get("format") != FORMAT or "parts" not in record:
    raise ValueError(f"{path}: not a per-example file of format {FORMAT}")
  return record


def predictions(one_part: dict) -> np.ndarray:
  """The predicted class id of each row of a part (the argmax of its unrounded probabilities)."""
  return np.asarray(one_part["predictions"], np.int64)


def aligned(parts_by_run: dict, keep_labels: Optional[Sequence[int]] = None) -> tuple[list, np.ndarray, dict]:
  """The rows every run's part has (matched by key, first run's order), optionally only of ``keep_labels``.

  ``parts_by_run``: run name -> one part (same part name of each run). Returns (keys, labels (N,),
  run name -> (probabilities (N, c), predicted class ids (N,))). A key labelled differently by two runs is
  a ValueError.
  """
  names = list(parts_by_run)
  first = parts_by_run[names[0]]
  common = set(first["keys"])
  for name in names[1:]:
    common &= set(parts_by_run[name]["keys"])
  keys = [k for k in dict.fromkeys(first["keys"]) if k in common]
  index = {name: {k: i for i, k in enumerate(parts_by_run[name]["keys"])} for name in names}
  labels = np.asarray([first["labels"][index[names[0]][k]] for k in keys], np.int64)
  for name in names[1:]:
    theirs = np.asarray([parts_by_run[name]["labels"][index[name][k]] for k in keys], np.int64)
    if not np.array_equal(theirs, labels):
      raise ValueError(f"runs {names[0]} and {name} label the same tweets differently: not the same data")
  keep = np.ones(len(keys), bool) if keep_labels is None else np.isin(labels, list(keep_labels))
  answers = {}
  for name in names:
    rows = [index[name][k] for k in keys]
    probs = np.asarray([parts_by_run[name]["probs"][i] for i in rows], np.float64).reshape(len(keys), -1)
    predicted = np.asarray([parts_by_run[name]["predictions"][i] for i in rows], np.int64)
    answers[name] = (probs[keep], predicted[keep])
  return [k for k, kept in zip(keys, keep) if kept], labels[keep], answers


def mcnemar(labels: np.ndarray, predictions_a: np.ndarray, predictions_b: np.ndarray) -> dict:
  """The exact McNemar test of two classifiers on the same rows.

  Returns ``only_a`` (rows a gets right and b wrong), ``only_b``, ``both``, ``neither`` and ``p_value``:
  the two-sided binomial test of only_a against only_b at 1/2 (1.0 when they never differ).
  """
  right_a, right_b = predictions_a == labels, predictions_b == labels
  only_a, only_b = int(np.sum(right_a & ~right_b)), int(np.sum(right_b & ~right_a))
  p_value = 1.0 if only_a + only_b == 0 else float(stats.binomtest(only_a, only_a + only_b, 0.5).pvalue)
  return {"only_a": only_a, "only_b": only_b, "both": int(np.sum(right_a & right_b)),
          "neither": int(np.sum(~right_a & ~right_b)), "p_value": p_value}
