"""A classifier as the service serves it: loaded once, named by its parameters' digest, texts -> answers.

``load_served_model(workdir=..., model=...)`` reads a training workdir or an exported model directory
(``train.model_files.inference.load``) and returns a ``ServedModel``:

* ``version``: ``"sha256:<hex>"`` of its parameters (``parameters_digest``): the same weights give the
  same version whether read from a workdir or a float32 export; a bfloat16 export is another version.
* ``defer_below``: the confidence under which an answer is deferred to a person: ``--defer_below``
  when given, else the model's own threshold (its config's ``neutral_threshold``, the one its card states).
* ``classify(texts)``: one answer per text, in order: ``label`` (the most probable class; the binary
  negative/positive model says ``neutral`` when deferred, as ``train.predict`` does under its
  threshold), ``confidence`` (the largest probability), ``probabilities`` ({class: p}), ``deferred``,
  and ``note`` (a text cut to ``MAX_TEXT_CHARS`` characters or to the model's ``max_length`` tokens,
  else None). A text with no tokens after normalization gets ``error`` instead of a label.
* ``review_labels``: what a reviewer may answer: the model's classes, in the order negative, neutral,
  positive when they are sentiment names (the binary model adds neutral, the label it abstains with).
* ``warm_up()``: compiles every program ``classify`` can run (every length bucket x batch size),
  so no request waits for a compilation.

Scoring goes through ``TextScorer``, the one place that turns texts into probabilities: length
buckets of the training loop's bounds (``train.data.batching.config_bounds``), each call padded to
its bucket's bound and to a size of ``BATCH_SIZES``, so the programs are few and all known up front;
a small bucket joins the next one when that pads fewer tokens than a call of its own.
"""

from __future__ import annotations

import concurrent.futures
import dataclasses
import hashlib
import json
import os
from typing import Optional, Sequence

import jax
import numpy as np

from train.data import batching
from train.model_files import inference, predictions
from train.runs import classes, eval_report, model_dir

MAX_TEXT_CHARS = predictions.MAX_LINE_CHARS  # Longer texts are cut here before tokenization, as train.predict cuts.
BATCH_SIZES = (8, 64, 256)  # Rows of the compiled programs; a batch is padded up to the next one.
CALL_COST_TOKENS = 128  # What one more program call costs, in padded tokens (rows x length), when planning.
SENTIMENT_ORDER = ("negative", "neutral", "positive")  # Review keys 1/2/3 of a sentiment model.


def parameters_digest(params) -> str:
  """``"sha256:<hex>"`` of the parameters as float32, tensors in name order (name, shape and bytes)."""
  digest = hashlib.sha256()
  for name, value in sorted(model_dir.flatten_params(params).items()):
    array = np.ascontiguousarray(value, np.float32)
    digest.update(f"{name}:{array.shape}\n".encode())
    digest.update(array.tobytes())
  return "sha256:" + digest.hexdigest()


class TextScorer:
  """Texts -> softmax probabilities of one loaded model, in length buckets, on a fixed set of programs."""

  def __init__(self, model: inference.LoadedModel, batch_sizes: Sequence[int] = BATCH_SIZES):
    self.model = model
    self.bounds = batching.config_bounds(model.config, model.max_length)
    self.batch_sizes = tuple(sorted(int(b) for b in batch_sizes))

  def _padded_rows(self, rows: int) -> int:
    return next(b for b in self.batch_sizes if b >= rows)

  def _run(self, tokens: np.ndarray, bound: int) -> np.ndarray:
    """Probabilities (n, c) of ``tokens`` (n, L), n <= the largest batch size, as one padded program."""
    padded = np.zeros((self._padded_rows(len(tokens)), bound), np.int32)
    padded[:len(tokens)] = tokens[:, :bound]
    return self.model.batch_probabilities(padded)[:len(tokens)]

  def _cost(self, rows: int, bound: int) -> int:
    """Padded tokens of scoring ``rows`` rows at ``bound``, plus ``CALL_COST_TOKENS`` per call."""
    largest = self.batch_sizes[-1]
    sizes = [largest] * (rows // largest) + ([rows % largest] if rows % largest else [])
    return sum(self._padded_rows(n) * bound + CALL_COST_TOKENS for n in sizes)

  def plan(self, lengths: np.ndarray) -> list[tuple[np.ndarray, int]]:
    """The calls that score rows of these token ``lengths``: (row indices, bound) each, at most the largest
    batch size of rows. Bucket by bucket, shortest first; a bucket's rows join the next non-empty bucket
    when one call there costs fewer padded tokens than the two (``_cost``)."""
    buckets = batching.bucket_of(lengths, self.bounds)
    groups = [np.flatnonzero(buckets == b) for b in range(len(self.bounds))]
    calls, carried = [], np.zeros(0, np.int64)
    for bucket, rows in enumerate(groups):
      rows = np.concatenate([carried, rows])
      carried = np.zeros(0, np.int64)
      if not len(rows):
        continue
      following = next((b for b in range(bucket + 1, len(self.bounds)) if len(groups[b])), None)
      if following is not None and self._cost(len(rows) + len(groups[following]), self.bounds[following]) <= (
          self._cost(len(rows), self.bounds[bucket]) + self._cost(len(groups[following]), self.bounds[following])):
        carried = rows
        continue
      largest = self.batch_sizes[-1]
      calls += [(rows[start:start + largest], self.bounds[bucket]) for start in range(0, len(rows), largest)]
    return calls

  def probabilities(self, texts: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
    """(probabilities (N, c) float32, token counts (N,) int32) of ``texts``, in their order, in the calls of
    ``plan``."""
    tokens = self.model.encode(list(texts))
    lengths = batching.example_lengths(tokens)
    out = np.zeros((len(texts), len(self.model.class_names)), np.float32)
    for rows, bound in self.plan(lengths):
      out[rows] = self._run(tokens[rows], bound)
    return out, lengths

  def warm_up(self, threads: Optional[int] = None) -> int:
    """Runs every (bucket bound, batch size) program once, compiling ``threads`` at a time (default: one
    per core, at most 4); the number of programs."""
    shapes = [(size, bound) for bound in self.bounds for size in self.batch_sizes]
    threads = threads or min(4, os.cpu_count() or 1)
    with concurrent.futures.ThreadPoolExecutor(threads, thread_name_prefix="compile") as pool:
      list(pool.map(lambda shape: self.model.batch_probabilities(np.ones(shape, np.int32)), shapes))
    return len(shapes)


def review_labels(class_names: Sequence[str]) -> tuple[str, ...]:
  """The labels a reviewer chooses from (see the module docstring)."""
  names = tuple(class_names)
  if tuple(names) == classes.BINARY:
    names = names + ("neutral",)
  if set(names) <= set(SENTIMENT_ORDER):
    return tuple(n for n in SENTIMENT_ORDER if n in names)
  return names


def card_summary(directory: str) -> dict:
  """The model card's first paragraph (an export's README.md) and the accuracy of each evaluated split."""
  summary: dict = {"description": None, "accuracy": {}}
  card = os.path.join(directory, model_dir.CARD_FILE)
  if os.path.exists(card):
    with open(card, encoding="utf-8") as f:
      paragraphs = [p.strip() for p in f.read().split("\n\n")]
    summary["description"] = next((p for p in paragraphs if p and not p.startswith("#")), None)
  evaluation = os.path.join(directory, model_dir.EVALUATION_FILE)
  if os.path.exists(evaluation):
    with open(evaluation, encoding="utf-8") as f:
      splits = {name: numbers.get("stored", {}) for name, numbers in json.load(f).get("splits", {}).items()}
  elif os.path.exists(eval_report.report_path(directory)):
    splits = eval_report.read_eval_report(directory)
  else:
    splits = {}
  for name, numbers in splits.items():
    if isinstance(numbers, dict):
      numbers = numbers.get("binary", numbers)
      if isinstance(numbers.get("accuracy"), (int, float)):
        summary["accuracy"][name] = float(numbers["accuracy"])
  return summary


@dataclasses.dataclass
class ServedModel:
  """One loaded classifier and how the service answers with it (see the module docstring).

  Attributes:
    loaded: the model (``train.model_files.inference.LoadedModel``).
    source_kind: ``"model"`` (an exported directory) or ``"workdir"`` (a training run).
    version: ``"sha256:<hex>"`` of its parameters.
    defer_below: answers with a lower confidence are deferred.
    scorer: texts -> probabilities (``TextScorer``).
  """

  loaded: inference.LoadedModel
  source_kind: str
  version: str
  defer_below: float
  scorer: TextScorer

  @property
  def class_names(self) -> tuple[str, ...]:
    return tuple(self.loaded.class_names)

  @property
  def review_labels(self) -> tuple[str, ...]:
    return review_labels(self.class_names)

  def warm_up(self) -> int:
    """Compiles every program ``classify`` can run; how many."""
    return self.scorer.warm_up()

  def classify(self, texts: Sequence[str]) -> list[dict]:
    """One answer per text, in order (see the module docstring)."""
    cut = [t[:MAX_TEXT_CHARS] for t in texts]
    probabilities, lengths = self.scorer.probabilities(cut)
    names, binary = self.class_names, self.loaded.is_binary_sentiment
    answers = []
    for text, p, length in zip(texts, probabilities, lengths):
      if length == 0:
        answers.append({"error": "no tokens after normalization: the model cannot read this text"})
        continue
      notes = []
      if len(text) > MAX_TEXT_CHARS:
        notes.append(f"text of {len(text):,} characters cut to {MAX_TEXT_CHARS:,}")
      if length >= self.loaded.max_length:
        notes.append(f"only the first {self.loaded.max_length} tokens were used")
      confidence = float(p.max())
      deferred = confidence < self.defer_below
      label = "neutral" if binary and deferred else names[int(p.argmax())]
      answers.append({"label": label, "confidence": confidence,
                      "probabilities": {name: float(q) for name, q in zip(names, p)},
                      "deferred": deferred, "note": "; ".join(notes) or None})
    return answers

  def description(self) -> dict:
    """What ``GET /v1/model`` answers: classes, threshold, version, the card's summary."""
    config = self.loaded.config
    return {"version": self.version, "source": self.loaded.source, "source_kind": self.source_kind,
            "step": self.loaded.step, "classes": list(self.class_names), "review_labels": list(self.review_labels),
            "threshold": float(config.neutral_threshold), "defer_below": self.defer_below,
            "max_length": self.loaded.max_length, "length_buckets": list(self.scorer.bounds),
            "model_type": config.model_type, "card": card_summary(self.loaded.source)}


def load_served_model(workdir: Optional[str] = None, model: Optional[str] = None,
                      defer_below: Optional[float] = None, checkpoint: str = "best",
                      like: Optional[ServedModel] = None) -> ServedModel:
  """Exactly one of ``workdir`` / ``model``, loaded (not warmed up); errors as ``train.model_files.inference.load``'s,
  and a ValueError for a ``defer_below`` outside [0, 1].

  ``like``: a model being served; when the new one has the same architecture (an equal Flax module), it
  takes over ``like``'s apply function, so the compiled programs of ``like`` serve it too (a reload of
  new weights compiles nothing).
  """
  if defer_below is not None and not 0.0 <= defer_below <= 1.0:
    raise ValueError(f"--defer_below must be within [0, 1], got {defer_below}")
  loaded = inference.load(workdir, model, checkpoint)
  if like is not None:
    served_apply = like.loaded.state.apply_fn
    if getattr(served_apply, "__self__", None) == getattr(loaded.state.apply_fn, "__self__", None):
      loaded = dataclasses.replace(loaded, state=loaded.state.replace(apply_fn=served_apply))
  threshold = float(loaded.config.neutral_threshold) if defer_below is None else float(defer_below)
  params = jax.device_get(loaded.state.params)
  return ServedModel(loaded, "workdir" if workdir else "model", parameters_digest(params), threshold,
                     TextScorer(loaded))

