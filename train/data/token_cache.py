"""The token cache: token ids, lengths and labels of every split in one .npz (what the trainer reads).

Derived from the prepared TFDS dataset (train.data.tfds_dataset) by the tokenizer. Arrays per
split ``name``: ``{name}_ids`` np.uint16 (sum of kept lengths,), the ids of every example
truncated to L and concatenated; ``{name}_lengths`` np.int32 (N,), untruncated lengths;
``{name}_labels`` np.int8 (N,); ``{name}_texts`` (N,) str, the normalized texts (not for train).
Deflate-compressed.
Axes (``mamba_jax.notation``): N, L.
"""

from __future__ import annotations

import os
import zipfile
from typing import Optional

import numpy as np

from train.data import tokenizer as tokenizer_lib
from train.data.datasets import SPLIT_NAMES, Split
from train.data.prepared_paths import atomic_write


def write(path: str, encoded: dict[str, tuple[np.ndarray, np.ndarray, np.ndarray]],
          texts: dict[str, Optional[list[str]]]) -> None:
  """Writes the cache.

  Args:
    path: the .npz file (written atomically).
    encoded: split name -> (tokens np.uint16 (N, L), untruncated lengths (N,), labels (N,)).
    texts: split name -> the N normalized texts to keep, or None.
  """
  arrays = {}
  for name, (tokens, lengths, labels) in encoded.items():
    kept = np.minimum(lengths, tokens.shape[1])
    arrays[f"{name}_ids"] = tokens[np.arange(tokens.shape[1])[None, :] < kept[:, None]]
    arrays[f"{name}_lengths"] = lengths.astype(np.int32)
    arrays[f"{name}_labels"] = labels.astype(np.int8)
    if texts.get(name) is not None:
      arrays[f"{name}_texts"] = np.asarray(texts[name], dtype=np.str_)
  def write_npz(p):
    with open(p, "wb") as f:
      np.savez_compressed(f, **arrays)
  atomic_write(path, write_npz)


def read(path: str, max_length: int) -> dict[str, Split]:
  """Split name -> Split with tokens np.uint16 (N, L), labels np.int32 (N,) and texts (or None), for
  every split of ``SPLIT_NAMES`` the cache holds (the user's files have no manual_test)."""
  splits = {}
  with np.load(path) as cache:
    for name in (n for n in SPLIT_NAMES if f"{n}_lengths" in cache.files):
      lengths = cache[f"{name}_lengths"]
      tokens = tokenizer_lib.unflatten(cache[f"{name}_ids"], np.minimum(lengths, max_length), max_length)
      labels = cache[f"{name}_labels"].astype(np.int32)
      texts = cache[f"{name}_texts"].tolist() if f"{name}_texts" in cache.files else None
      splits[name] = Split(tokens=tokens, labels=labels, texts=texts)
  return splits


def compressed_bytes_per_split(path: str) -> dict[str, int]:
  """Compressed bytes of each split's arrays in the cache, plus the file total ("file")."""
  sizes = {"file": os.path.getsize(path)}
  with zipfile.ZipFile(path) as archive:
    for info in archive.infolist():
      split = next(name for name in SPLIT_NAMES if info.filename.startswith(name + "_"))
      sizes[split] = sizes.get(split, 0) + info.compress_size
  return sizes
