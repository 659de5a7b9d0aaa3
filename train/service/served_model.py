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
* ``warm_up()``: compiles every program ``classify`` can run (one per length bucket), so no request
  waits for a compilation.

Scoring goes through the model's ``InferenceEngine`` (``train.model_files.inference``), the one that
``train.predict`` uses: the training loop's length buckets, batches filled across the texts of a call,
one compiled program per bucket. The label rule is ``train.predict``'s
(``train.model_files.predictions.answer``) with ``defer_below`` as its threshold.
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import json
import os
from typing import Optional, Sequence

import jax
import numpy as np

from train.model_files import inference, predictions
from train.runs import classes, eval_report, model_dir

MAX_TEXT_CHARS = predictions.MAX_LINE_CHARS  # Longer texts are cut here before tokenization, as train.predict cuts.
SENTIMENT_ORDER = ("negative", "neutral", "positive")  # Review keys 1/2/3 of a sentiment model.


def parameters_digest(params) -> str:
  """``"sha256:<hex>"`` of the parameters as float32, tensors in name order (name, shape and bytes)."""
  digest = hashlib.sha256()
  for name, value in sorted(model_dir.flatten_params(params).items()):
    array = np.ascontiguousarray(value, np.float32)
    digest.update(f"{name}:{array.shape}\n".encode())
    digest.update(array.tobytes())
  return "sha256:" + digest.hexdigest()


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
  """

  loaded: inference.LoadedModel
  source_kind: str
  version: str
  defer_below: float

  @functools.cached_property
  def engine(self) -> inference.InferenceEngine:
    """The model's inference engine (texts -> probabilities), with programs for partial batches: a
    scoring call holds the texts of the requests that came in together, often a few dozen."""
    return inference.InferenceEngine(self.loaded, fit_partial_batches=True)

  @property
  def class_names(self) -> tuple[str, ...]:
    return tuple(self.loaded.class_names)

  @property
  def review_labels(self) -> tuple[str, ...]:
    return review_labels(self.class_names)

  def warm_up(self) -> int:
    """Compiles every program ``classify`` can run; how many."""
    self.engine.warm_up()
    return len(self.engine.compiled_programs)

  def classify(self, texts: Sequence[str]) -> list[dict]:
    """One answer per text, in order (see the module docstring)."""
    scores = self.engine.score_texts([t[:MAX_TEXT_CHARS] for t in texts])
    names, binary = self.class_names, self.loaded.is_binary_sentiment
    answers = []
    for text, p, num_tokens in zip(texts, scores.probabilities, scores.num_tokens):
      if num_tokens == 0:
        answers.append({"error": "no tokens after normalization: the model cannot read this text"})
        continue
      notes = []
      if len(text) > MAX_TEXT_CHARS:
        notes.append(f"text of {len(text):,} characters cut to {MAX_TEXT_CHARS:,}")
      if num_tokens > self.loaded.max_length:
        notes.append(f"only the first {self.loaded.max_length} of its {num_tokens:,} tokens were used")
      label, confidence = predictions.answer(p, names, binary, self.defer_below)
      deferred = confidence < self.defer_below
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
            "max_length": self.loaded.max_length, "length_buckets": list(self.engine.bounds),
            "batch_rows": {str(bound): list(rows) for bound, rows in self.engine.row_options.items()},
            "model_type": config.model_type, "card": card_summary(self.loaded.source)}


def load_served_model(workdir: Optional[str] = None, model: Optional[str] = None,
                      defer_below: Optional[float] = None, checkpoint: str = "best") -> ServedModel:
  """Exactly one of ``workdir`` / ``model``, loaded (not warmed up); errors as ``train.model_files.inference.load``'s,
  and a ValueError for a ``defer_below`` outside [0, 1]."""
  if defer_below is not None and not 0.0 <= defer_below <= 1.0:
    raise ValueError(f"--defer_below must be within [0, 1], got {defer_below}")
  loaded = inference.load(workdir, model, checkpoint)
  threshold = float(loaded.config.neutral_threshold) if defer_below is None else float(defer_below)
  return ServedModel(loaded, "workdir" if workdir else "model", parameters_digest(jax.device_get(loaded.state.params)),
                     threshold)
