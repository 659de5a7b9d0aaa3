"""Where the prepared data of a config lives, and which prepared data matches a config.

Layout (under config.prepared_dir, else $MAMBA_JAX_DATA_CACHE, else ./data_cache):

  sentiment140-<data key>/                 key: source files (sha256), normalization version,
    tfds/sentiment140_mamba/<config>/<version>/  split fractions, format version
    spm-bpe<vocab>-<tokenizer key>/          key: vocab_size, tokenizer_max_sentences
    spm-given-<sha256 of the model>/         a given tokenizer (config.init_from's), not trained
      sentencepiece.model, tokenizer.json
      tokens_L<max_length>.npz               uint16 token ids of every split (train.data.token_cache)
      tokens_L<max_length>.json              the summary (train.data.summary)

The user's own files (config.dataset "labelled_files") live in ``labelled-<data key>/``
(key: the files' names, sizes and sha256, the reading options, normalization, fractions),
with ``tfds/labelled_text_mamba/...`` and the same tokenizer folders. Any change of inputs, normalization, fractions or tokenizer settings gives a new key, so a
stale dataset, tokenizer or cache is never reused; an unchanged config reuses everything.
On a machine without the raw files (e.g. a GPU box that was sent only the prepared dir), the
newest complete token cache whose settings match the config is used. A prepared file or
dataset that cannot be read is moved to ``sentiment140-<data key>/unreadable/`` (renamed,
nothing deleted) and built again (``train.data.pipeline``).
"""

from __future__ import annotations

import glob
import hashlib
import json
import os
from typing import Callable, Optional

from train.data import normalization, sources

PREPARED_FORMAT_VERSION = 1
ENV_PREPARED_DIR = "MAMBA_JAX_DATA_CACHE"
DEFAULT_PREPARED_DIR = "./data_cache"
TOKENIZER_FILE = "sentencepiece.model"
TOKENIZER_SAMPLE_SEED = 0
UNREADABLE_DIR = "unreadable"


def resolve_prepared_dir(config_prepared_dir: Optional[str] = None) -> str:
  folder = config_prepared_dir or os.environ.get(ENV_PREPARED_DIR) or DEFAULT_PREPARED_DIR
  return os.path.abspath(os.path.expanduser(folder))


def _digest(payload: dict) -> str:
  return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()[:12]


def tokenizer_fingerprint(config, source_fingerprint: Optional[dict], given_tokenizer_sha256: Optional[str] = None) -> dict:
  """Everything the tokenizer and token ids depend on, except max_length (None: sources unknown).

  ``given_tokenizer_sha256``: the tokenizer is not trained but given (config.init_from's).
  """
  if given_tokenizer_sha256:
    return {
        "data": tokenizer_fingerprint(config, source_fingerprint)["data"],
        "given_tokenizer_sha256": given_tokenizer_sha256,
    }
  return {
      "data": {
          "format_version": PREPARED_FORMAT_VERSION,
          "normalization_version": normalization.NORMALIZATION_VERSION,
          "split_fractions": [float(f) for f in config.split_fractions],
          "sources": source_fingerprint,
      },
      "vocab_size": int(config.vocab_size),
      "tokenizer_max_sentences": int(config.tokenizer_max_sentences),
      "sample_seed": TOKENIZER_SAMPLE_SEED,
  }


class PreparedPaths:
  """Where the prepared files of one config live (see the module docstring)."""

  def __init__(self, tokenizer_dir: str, max_length: int, fingerprint: Optional[dict] = None):
    self.tokenizer_dir = tokenizer_dir
    self.data_dir = os.path.dirname(tokenizer_dir)
    self.tfds_dir = os.path.join(self.data_dir, "tfds")
    self.tokenizer_model = os.path.join(tokenizer_dir, TOKENIZER_FILE)
    self.tokenizer_info = os.path.join(tokenizer_dir, "tokenizer.json")
    self.tokens = os.path.join(tokenizer_dir, f"tokens_L{max_length}.npz")
    self.summary = os.path.join(tokenizer_dir, f"tokens_L{max_length}.json")
    self.fingerprint = fingerprint

  @classmethod
  def for_sources(cls, config, files, given_tokenizer: Optional[str] = None) -> "PreparedPaths":
    """The paths for ``files`` (``sources.SourceFiles``: "sentiment140-<key>", or the user's
    ``labelled_files.LabelledFiles``: "labelled-<key>"); ``given_tokenizer``: a tokenizer model
    to use instead of training one ("spm-given-<its sha256>", never shared with a trained one)."""
    given_sha = sources.sha256_of(given_tokenizer) if given_tokenizer else None
    fingerprint = tokenizer_fingerprint(config, files.fingerprint(), given_sha)
    prefix = "sentiment140" if isinstance(files, sources.SourceFiles) else "labelled"
    data_dir = os.path.join(resolve_prepared_dir(config.prepared_dir), f"{prefix}-{_digest(fingerprint['data'])}")
    name = f"spm-given-{given_sha[:12]}" if given_sha else f"spm-bpe{int(config.vocab_size)}-{_digest(fingerprint)}"
    return cls(os.path.join(data_dir, name), int(config.max_length), fingerprint)

  def is_built(self) -> bool:
    """Whether the token cache, its summary and the tokenizer are all there."""
    return all(os.path.isfile(p) for p in (self.tokens, self.summary, self.tokenizer_model))


def find_without_sources(config) -> Optional[PreparedPaths]:
  """A complete token cache in the prepared dir whose settings match the config, for machines that
  hold only the prepared data (e.g. a GPU box): the newest match, or None."""
  wanted = tokenizer_fingerprint(config, None)
  root = resolve_prepared_dir(config.prepared_dir)
  matches = []
  for info_path in glob.glob(os.path.join(root, "sentiment140-*", "spm-bpe*", "tokenizer.json")):
    try:
      with open(info_path) as f:
        fingerprint = json.load(f).get("fingerprint", {})
    except (OSError, ValueError):  # Damaged: not a match (a build with the raw files replaces it).
      continue
    fingerprint = json.loads(json.dumps(fingerprint))
    if fingerprint.get("data"):
      fingerprint["data"]["sources"] = None
    paths = PreparedPaths(os.path.dirname(info_path), int(config.max_length), fingerprint)
    if fingerprint == json.loads(json.dumps(wanted)) and paths.is_built():
      matches.append((os.path.getmtime(paths.tokens), paths))
  return max(matches, key=lambda m: m[0])[1] if matches else None


def used_instead_message(data_dir: str, origin: Optional[str], folder_missing: bool,
                         prepared: PreparedPaths) -> str:
  """Says plainly that a prepared cache (of which files) is used instead of raw data that is not there."""
  with open(prepared.summary) as f:
    built_from = json.load(f).get("sources", {}).get("training_file", "unknown files")
  where = (f"the data folder {data_dir} (from {origin}) does not exist" if folder_missing
           else f"no raw Sentiment140 files in {data_dir}")
  return (f"WARNING: {where}; using the prepared data in {prepared.tokenizer_dir}, built from {built_from} "
          "(not checked against any raw file in this run)")


def atomic_write(path: str, write: Callable[[str], None]) -> None:
  """Calls ``write`` on a partial file, then renames it to ``path`` (no half-written file at ``path``)."""
  partial = path + ".partial"
  write(partial)
  os.replace(partial, path)


def write_json(path: str, payload: dict) -> None:
  def write(p):
    with open(p, "w") as f:
      json.dump(payload, f, indent=2, sort_keys=True)
  atomic_write(path, write)


def set_aside(path: str, data_dir: str) -> str:
  """Renames the unreadable ``path`` (a file or folder under ``data_dir``) to
  ``<data_dir>/unreadable/<its path below data_dir, "/" as "-">[-n]``; returns the new path."""
  name = os.path.relpath(path, data_dir).replace(os.sep, "-")
  os.makedirs(os.path.join(data_dir, UNREADABLE_DIR), exist_ok=True)
  target = os.path.join(data_dir, UNREADABLE_DIR, name)
  suffix = 1
  while os.path.exists(target):
    suffix += 1
    target = os.path.join(data_dir, UNREADABLE_DIR, f"{name}-{suffix}")
  os.rename(path, target)
  return target
