"""A small, deterministic, learnable toy sentiment task (config.dataset == "synthetic").

Each example is a sequence of filler words with one or three sentiment words; a
sentiment word preceded by "not" counts with the opposite sign. The label is the sign
of the sum (1 positive, 0 negative). ``manual_test`` also holds neutral examples
(label 2, no sentiment word), like the real manual test set. Seconds to build on a CPU.
"""

from __future__ import annotations

import numpy as np

from train.data.datasets import Datasets, Split

POSITIVE_WORDS = ("good", "great", "love", "happy", "fun", "nice", "awesome", "best")
NEGATIVE_WORDS = ("bad", "sad", "hate", "awful", "worst", "sick", "tired", "boring")
NEGATION = "not"
FILLER_WORDS = tuple(
    "the a i you it is was to and of in my at on day so just now today with this that "
    "for me we they get go work home time see all out up".split())
SPECIAL_TOKENS = ("<pad>", "<unk>")
VOCABULARY = SPECIAL_TOKENS + POSITIVE_WORDS + NEGATIVE_WORDS + (NEGATION,) + FILLER_WORDS

# Sizes used unless the config has these fields.
MANUAL_TEST_SIZE = 498  # As many as the real manual test set.
MIN_WORDS = 3


class SyntheticTokenizer:
  """Whitespace word tokenizer over the fixed toy vocabulary (id 0 = pad, 1 = unknown)."""

  pad_id = 0
  unk_id = 1

  def __init__(self, max_length: int):
    self.max_length = max_length
    self.vocab_size = len(VOCABULARY)
    self._ids = {word: i for i, word in enumerate(VOCABULARY)}

  def encode(self, texts: list[str]) -> np.ndarray:
    """Texts -> np.uint16 (N, max_length), lowercased, truncated and right-padded."""
    out = np.zeros((len(texts), self.max_length), np.uint16)
    for row, text in enumerate(texts):
      ids = [self._ids.get(w, self.unk_id) for w in text.lower().split()][:self.max_length]
      out[row, :len(ids)] = ids
    return out

  def encode_with_lengths(self, texts: list[str]) -> tuple[np.ndarray, np.ndarray]:
    """(``encode(texts)``, np.int32 (N,) word counts before truncation)."""
    lengths = np.fromiter((len(text.split()) for text in texts), np.int32, len(texts))
    return self.encode(texts), lengths

  def decode(self, ids) -> str:
    return " ".join(VOCABULARY[int(i)] for i in ids if int(i) != self.pad_id)


def _sentence(rng: np.random.Generator, max_words: int, neutral: bool) -> tuple[str, int]:
  """One toy sentence and its label."""
  num_words = int(rng.integers(MIN_WORDS, max_words + 1))
  words = list(rng.choice(FILLER_WORDS, size=num_words))
  if neutral:
    return " ".join(words), 2
  num_sentiment = 1 if num_words < 6 or rng.random() < 0.6 else 3
  slots = np.sort(rng.choice(np.arange(1, num_words), size=num_sentiment, replace=False))
  score = 0
  for slot in slots:
    positive = bool(rng.random() < 0.5)
    words[slot] = str(rng.choice(POSITIVE_WORDS if positive else NEGATIVE_WORDS))
    sign = 1 if positive else -1
    if rng.random() < 0.25 and words[slot - 1] in FILLER_WORDS:
      words[slot - 1] = NEGATION
      sign = -sign
    score += sign
  return " ".join(words), int(score > 0)


def _make_split(name: str, size: int, seed: int, max_length: int,
                tokenizer: SyntheticTokenizer) -> Split:
  rng = np.random.Generator(np.random.PCG64(np.random.SeedSequence([seed, sum(map(ord, name))])))
  max_words = max(MIN_WORDS + 3, max_length - 2)
  texts, labels = [], []
  for _ in range(size):
    neutral = name == "manual_test" and rng.random() < 0.28
    text, label = _sentence(rng, max_words, neutral)
    texts.append(text)
    labels.append(label)
  return Split(tokens=tokenizer.encode(texts), labels=np.asarray(labels, np.int32), texts=texts)


def make_datasets(config) -> Datasets:
  """Builds all four splits in memory; deterministic in config.seed.

  Reads config.max_length, seed, max_train_examples, synthetic_train_size (train) and
  synthetic_eval_size (validation and test); manual_test has ``MANUAL_TEST_SIZE`` examples always.
  """
  max_length = int(config.max_length)
  if max_length < MIN_WORDS:
    raise ValueError(f"max_length must be >= {MIN_WORDS} for the synthetic task, got {max_length}")
  seed = int(config.seed)
  sizes = {"train": int(config.synthetic_train_size), "validation": int(config.synthetic_eval_size),
           "test": int(config.synthetic_eval_size), "manual_test": MANUAL_TEST_SIZE}
  if config.max_train_examples:
    sizes["train"] = min(sizes["train"], int(config.max_train_examples))
  tokenizer = SyntheticTokenizer(max_length)
  splits = {name: _make_split(name, size, seed, max_length, tokenizer) for name, size in sizes.items()}
  summary = {
      "dataset": "synthetic",
      "rows": {name: len(split) for name, split in splits.items()},
      "rows_per_label": {name: split.label_counts() for name, split in splits.items()},
      "duplicates": 0,
      "malformed_rows": 0,
      "truncated_share": 0.0,
      "vocab_size": tokenizer.vocab_size,
      "max_length": max_length,
  }
  return Datasets(splits=splits, tokenizer=tokenizer, summary=summary, tokenizer_path=None)
