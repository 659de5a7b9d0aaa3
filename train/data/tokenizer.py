"""SentencePiece BPE tokenizer over normalized tweets.

Ids: 0 = padding, 1 = unknown (never produced: byte fallback spells unseen characters as bytes),
then "<url>" and "<user>" (user-defined symbols, never split), byte pieces and merges.
Axes (``mamba_jax.notation``): N (texts), L.

Word by word. The vocabulary is trained with SentencePiece's default ``split_by_whitespace``, so
no piece holds the whitespace mark "▁" anywhere but at its start: BPE never merges across
a space, and the ids of a normalized text (single spaces, ``train.data.normalization``) are the
ids of its space-separated words, each encoded alone, concatenated (every word, the first one
included, gets the "▁" prefix). ``encode_with_lengths`` uses that: each distinct word is
encoded once by SentencePiece and kept (at most ``MAX_CACHED_WORDS``), and a text is the
concatenation of its words' ids: the same ids as ``encode_normalized`` at a fraction of its cost
on text that repeats words (tests/test_data_tokenizer.py checks the two agree).
"""

from __future__ import annotations

import io
import itertools
import os
import re
import threading
from typing import Optional, Sequence

import numpy as np
import sentencepiece as spm
from tqdm import tqdm

from train.data import normalization

PAD_ID = 0
UNK_ID = 1
MAX_UINT16_VOCAB = 1 << 16
MAX_CACHED_WORDS = 500_000  # Words kept by encode_with_lengths (~100 MB at most); then it starts over.
_CHUNK_ROWS = 65_536


class SentencePieceTokenizer:
  """Normalizes, encodes to fixed-length uint16 rows (head kept, right-padded), decodes."""

  pad_id = PAD_ID

  def __init__(self, model_proto: bytes, max_length: int):
    self._processor = spm.SentencePieceProcessor()
    try:
      self._processor.LoadFromSerializedProto(model_proto)
    except RuntimeError:  # A truncated or foreign file; SentencePiece's message is a source location.
      raise ValueError(f"not a SentencePiece model ({len(model_proto):,} bytes that do not parse)") from None
    self.model_proto = model_proto
    self.max_length = max_length
    self.vocab_size = int(self._processor.get_piece_size())
    if self._processor.pad_id() != PAD_ID:
      raise ValueError(f"tokenizer model has pad id {self._processor.pad_id()}, expected {PAD_ID}")
    if self.vocab_size > MAX_UINT16_VOCAB:
      raise ValueError(f"vocab_size {self.vocab_size} does not fit uint16 token ids")
    self._words = _WordTable()  # encode_with_lengths' cache of word -> ids.
    self._words_lock = threading.Lock()

  def encode(self, texts: Sequence[str]) -> np.ndarray:
    """Raw texts -> np.uint16 (N, L)."""
    return self.encode_normalized(normalization.normalize_many(list(texts)))[0]

  def encode_with_lengths(self, texts: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
    """Raw texts -> (np.uint16 (N, L), np.int32 (N,) untruncated lengths), word by word through the
    cache (see the module docstring): the ids of ``encode``. Safe to call from several threads."""
    words_of = [text.split(" ") for text in normalization.normalize_many(list(texts))]
    words = list(itertools.chain.from_iterable(words_of))
    table = self._words
    missing = set(words).difference(table.index)
    if missing:
      missing = list(missing)
      found = self._processor.encode(missing, num_threads=os.cpu_count() or 1)
      with self._words_lock:
        if len(self._words.index) + len(missing) > MAX_CACHED_WORDS:
          self._words = _WordTable()  # Start over; callers holding the old table keep using it.
        table = self._words
        table.add(missing, found)
    index = np.fromiter(map(table.index.__getitem__, words), np.int64, len(words))
    start, length = table.start[index], table.length[index]  # Arrays read after this call's words are in.
    words_per_text = np.fromiter(map(len, words_of), np.int64, len(words_of))
    lengths = np.add.reduceat(length, np.cumsum(words_per_text) - words_per_text) if len(words) else \
        np.zeros(0, np.int64)
    total = int(length.sum())
    offsets = np.cumsum(length) - length  # Where each word's ids go in the flat output.
    flat = table.ids[np.repeat(start - offsets, length) + np.arange(total)]
    return unflatten(flat, lengths.astype(np.int32), self.max_length), lengths.astype(np.int32)

  def encode_normalized(self, normalized_texts: Sequence[str],
                        progress: Optional[str] = None) -> tuple[np.ndarray, np.ndarray]:
    """Already normalized texts -> (np.uint16 (N, L), np.int32 (N,) untruncated lengths).

    ``progress``: title of a progress bar over the texts (None: no bar).
    """
    n = len(normalized_texts)
    tokens = np.zeros((n, self.max_length), np.uint16)
    lengths = np.zeros((n,), np.int32)
    bar = tqdm(total=n, desc=progress, unit=" texts", unit_scale=True, mininterval=1.0, disable=progress is None)
    for start in range(0, n, _CHUNK_ROWS):
      ids = self._processor.encode(list(normalized_texts[start:start + _CHUNK_ROWS]), num_threads=os.cpu_count() or 1)
      chunk_lengths = np.fromiter(map(len, ids), np.int32, len(ids))
      lengths[start:start + len(ids)] = chunk_lengths
      tokens[start:start + len(ids)] = pad_ragged(ids, chunk_lengths, self.max_length)
      bar.update(len(ids))
    bar.close()
    return tokens, lengths

  def decode(self, ids) -> str:
    """One row of ids (padding dropped) -> normalized text."""
    return self._processor.decode([int(i) for i in np.asarray(ids).reshape(-1) if int(i) != PAD_ID])

  def id_to_piece(self, token_id: int) -> str:
    return self._processor.id_to_piece(int(token_id))

  def save(self, path: str) -> None:
    with open(path, "wb") as f:
      f.write(self.model_proto)


class _WordTable:
  """Words and their ids: ``index`` word -> row r, whose ids are ``ids[start[r]:start[r] + length[r]]``.

  Only added to (under the tokenizer's lock), rows before ids: a caller that reads the arrays after
  its words are in ``index`` finds their rows. Capacities double, so adding is amortized O(new ids).
  """

  def __init__(self):
    self.index: dict[str, int] = {}
    self.ids = np.zeros(1024, np.uint16)
    self.start = np.zeros(1024, np.int64)
    self.length = np.zeros(1024, np.int64)
    self._used = 0  # Ids held.

  def add(self, missing: list[str], found: list[list[int]]) -> None:
    """Adds the ``missing`` words, whose ids are ``found``, except those another caller added meanwhile."""
    new = [(word, ids) for word, ids in zip(missing, found) if word not in self.index]
    if not new:
      return
    lengths = np.fromiter((len(ids) for _, ids in new), np.int64, len(new))
    flat = np.fromiter(itertools.chain.from_iterable(ids for _, ids in new), np.uint16, int(lengths.sum()))
    rows, used = len(self.index), self._used
    self.ids = _with_room(self.ids, used, used + len(flat))
    self.start = _with_room(self.start, rows, rows + len(new))
    self.length = _with_room(self.length, rows, rows + len(new))
    self.ids[used:used + len(flat)] = flat
    self.start[rows:rows + len(new)] = used + np.cumsum(lengths) - lengths
    self.length[rows:rows + len(new)] = lengths
    self._used = used + len(flat)
    self.index.update((word, rows + i) for i, (word, _) in enumerate(new))  # Last: the rows are written.


def _with_room(array: np.ndarray, used: int, needed: int) -> np.ndarray:
  """``array`` if it holds ``needed`` entries, else a copy of its first ``used`` ones with twice the room."""
  if needed <= len(array):
    return array
  grown = np.zeros(2 * needed, array.dtype)
  grown[:used] = array[:used]
  return grown


def pad_ragged(rows: list[list[int]], lengths: np.ndarray, max_length: int) -> np.ndarray:
  """Ragged id lists -> np.uint16 (N, L), truncated to the first L ids, right-padded with 0."""
  flat = np.fromiter((i for row in rows for i in row), np.uint16, int(lengths.sum()))
  return unflatten(flat, lengths, max_length)


def unflatten(flat: np.ndarray, lengths: np.ndarray, max_length: int) -> np.ndarray:
  """Concatenated rows (lengths (N,)) -> np.uint16 (N, L) keeping at most L ids of each."""
  n = len(lengths)
  out = np.zeros((n, max_length), np.uint16)
  starts = np.cumsum(lengths, dtype=np.int64) - lengths
  positions = np.arange(max_length)
  for lo in range(0, n, _CHUNK_ROWS):
    hi = min(lo + _CHUNK_ROWS, n)
    valid = positions[None, :] < lengths[lo:hi, None]
    index = np.where(valid, starts[lo:hi, None] + positions[None, :], 0)
    out[lo:hi] = np.where(valid, flat[index] if flat.size else 0, 0)
  return out


def train_tokenizer(normalized_texts: Sequence[str], vocab_size: int, *, max_sentences: int,
                    max_length: int, seed: int = 0) -> SentencePieceTokenizer:
  """Trains BPE on at most ``max_sentences`` texts sampled (seeded) from ``normalized_texts``.

  A ``vocab_size`` the texts cannot fill, or one below the characters and bytes they need, is a
  one-line ValueError naming the size that works (never capped silently: the size is part of
  the model's architecture).
  """
  if not 0 < vocab_size <= MAX_UINT16_VOCAB:
    raise ValueError(f"vocab_size must be in (0, {MAX_UINT16_VOCAB}], got {vocab_size}")
  if len(normalized_texts) > max_sentences:
    rng = np.random.Generator(np.random.PCG64(seed))
    chosen = np.sort(rng.choice(len(normalized_texts), size=max_sentences, replace=False))
    sentences = [normalized_texts[i] for i in chosen]
  else:
    sentences = list(normalized_texts)
  model = io.BytesIO()
  try:
    _train_sentencepiece(sentences, vocab_size, model)
  except RuntimeError as error:  # SentencePiece's message is a C++ source location and a check.
    too_small = re.search(r"Vocabulary size is smaller than required_chars\. (\d+) vs (\d+)", str(error))
    if too_small:
      raise ValueError(f"vocab_size {vocab_size} is smaller than the {too_small.group(2)} characters, bytes and "
                       f"symbols the tokenizer must hold; set config.vocab_size to {too_small.group(2)} or more") from None
    raise ValueError(f"SentencePiece could not train a vocabulary of {vocab_size} on {len(sentences):,} sentences: "
                     f"{(str(error).strip().splitlines() or [''])[-1][:300]}") from None
  tokenizer = SentencePieceTokenizer(model.getvalue(), max_length)
  if tokenizer.vocab_size < vocab_size:
    raise ValueError(
        f"vocab_size {vocab_size} was requested, but the {len(sentences):,} training sentences support "
        f"only {tokenizer.vocab_size}; set config.vocab_size to {tokenizer.vocab_size} or less")
  return tokenizer


def _train_sentencepiece(sentences: list[str], vocab_size: int, model: io.BytesIO) -> None:
  """SentencePiece BPE on ``sentences`` written into ``model`` (RuntimeError when it cannot)."""
  spm.SentencePieceTrainer.train(
      sentence_iterator=iter(sentences),
      model_writer=model,
      model_type="bpe",
      vocab_size=vocab_size,
      hard_vocab_limit=False,  # Train what the corpus supports; a shortfall is an error below.
      pad_id=PAD_ID, unk_id=UNK_ID, bos_id=-1, eos_id=-1,
      user_defined_symbols=list(normalization.PLACEHOLDERS),
      byte_fallback=True,
      character_coverage=0.9995,
      normalization_rule_name="identity",  # train.data.normalization already did the work.
      input_sentence_size=0, shuffle_input_sentence=False,
      num_threads=os.cpu_count() or 1,
      minloglevel=2,
  )


def load_tokenizer(path: str, max_length: int = 64) -> SentencePieceTokenizer:
  """Loads a saved tokenizer model (e.g. Datasets.tokenizer_path)."""
  if not os.path.isfile(path):
    raise FileNotFoundError(f"no tokenizer model at {path}; run `python -m train.prepare_data` first")
  with open(path, "rb") as f:
    return SentencePieceTokenizer(f.read(), max_length)
