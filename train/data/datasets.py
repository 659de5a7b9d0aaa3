"""Containers shared by the data pipeline and the trainer.

Axes (``mamba_jax.notation``): N, L.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Optional, Protocol

import numpy as np

SPLIT_NAMES = ("train", "validation", "test", "manual_test")
LABEL_NAMES = ("negative", "positive", "neutral")  # Index = label id.


class Tokenizer(Protocol):
  """What the trainer and predictor need from a tokenizer."""

  vocab_size: int
  pad_id: int  # Always 0.

  def encode(self, texts: list[str]) -> np.ndarray:
    """Raw texts -> np.uint16 (N, L), right-padded with pad_id (texts normalized first)."""

  def decode(self, ids) -> str:
    """One row of token ids (padding ignored) -> text."""


@dataclasses.dataclass
class Split:
  """One split held in memory.

  Attributes:
    tokens: np.uint16 (N, L), right-padded with 0.
    labels: np.int32 (N,): ids into ``Datasets.class_names`` (Sentiment140: 0 negative,
      1 positive, and 2 neutral in manual_test only).
    texts: the N normalized texts, or None (e.g. for train, to save memory).
  """

  tokens: np.ndarray
  labels: np.ndarray
  texts: Optional[list[str]] = None

  def __post_init__(self):
    if self.tokens.ndim != 2:
      raise ValueError(f"tokens must be (N, L), got shape {self.tokens.shape}")
    if self.labels.shape != (self.tokens.shape[0],):
      raise ValueError(
          f"labels must be ({self.tokens.shape[0]},), got shape {self.labels.shape}")
    if self.texts is not None and len(self.texts) != len(self.labels):
      raise ValueError(f"{len(self.texts)} texts for {len(self.labels)} labels")

  def __len__(self) -> int:
    return int(self.labels.shape[0])

  @property
  def max_length(self) -> int:
    return int(self.tokens.shape[1])

  def label_counts(self) -> dict[str, int]:
    counts = np.bincount(self.labels, minlength=len(LABEL_NAMES))
    return {name: int(c) for name, c in zip(LABEL_NAMES, counts) if c or name != "neutral"}


@dataclasses.dataclass
class Datasets:
  """All splits plus the tokenizer that produced them.

  Attributes:
    splits: "train", "validation", "test"[, "manual_test" (Sentiment140, synthetic)] -> Split.
    tokenizer: encodes raw text the same way the splits were encoded.
    summary: rows per split and label, duplicates, malformed rows, truncation share, vocab size.
    tokenizer_path: the saved tokenizer model (None for in-memory tokenizers).
    class_names: the classes the model learns, label id i = class_names[i] (the classifier has
      one logit per class). Sentiment140 and the synthetic task: ("negative", "positive") (their
      manual_test's neutral rows keep label id 2: neutral by abstention); the user's files: theirs.
  """

  splits: dict[str, Split]
  tokenizer: Any
  summary: dict
  tokenizer_path: Optional[str] = None
  class_names: tuple[str, ...] = ("negative", "positive")

  @property
  def vocab_size(self) -> int:
    return int(self.tokenizer.vocab_size)
