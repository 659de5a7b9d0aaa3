"""get_datasets(config): builds the prepared data once, then loads it in seconds.

Prepared layout (under config.prepared_dir, else $MAMBA_JAX_DATA_CACHE, else ./data_cache):

  sentiment140-<data key>/                 key: source files (sha256), normalization version,
    tfds/sentiment140_mamba/<config>/1.0.0/  split fractions, format version
    spm-bpe<vocab>-<tokenizer key>/          key: vocab_size, tokenizer_max_sentences
      sentencepiece.model, tokenizer.json
      tokens_L<max_length>.npz               uint16 token ids of every split (flat, deflate)
      tokens_L<max_length>.json              the summary

Any change of inputs, normalization, fractions or tokenizer settings gives a new key, so a
stale tokenizer or cache is never reused; an unchanged config reuses everything. On a machine
without the raw files (e.g. a GPU box that was sent only the prepared dir), the newest complete
cache whose settings match the config is used.
Glossary: N examples, L max_length.
"""

from __future__ import annotations

import glob
import hashlib
import json
import os
import time
import zipfile
from typing import Optional

import numpy as np

from train.data import normalization, records as records_lib, sources, synthetic
from train.data import tokenizer as tokenizer_lib
from train.data.datasets import LABEL_NAMES, SPLIT_NAMES, Datasets, Split

PREPARED_FORMAT_VERSION = 1
ENV_PREPARED_DIR = "MAMBA_JAX_DATA_CACHE"
DEFAULT_PREPARED_DIR = "./data_cache"
TOKENIZER_FILE = "sentencepiece.model"
TOKENIZER_SAMPLE_SEED = 0
SUBSAMPLE_SEED = 0


def resolve_prepared_dir(config_prepared_dir: Optional[str] = None) -> str:
  folder = config_prepared_dir or os.environ.get(ENV_PREPARED_DIR) or DEFAULT_PREPARED_DIR
  return os.path.abspath(os.path.expanduser(folder))


def _digest(payload: dict) -> str:
  return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()[:12]


def tokenizer_fingerprint(config, source_fingerprint: Optional[dict]) -> dict:
  """Everything the tokenizer and token ids depend on, except max_length (None: sources unknown)."""
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
  def for_sources(cls, config, files: sources.SourceFiles) -> "PreparedPaths":
    fingerprint = tokenizer_fingerprint(config, files.fingerprint())
    data_dir = os.path.join(resolve_prepared_dir(config.prepared_dir),
                            f"sentiment140-{_digest(fingerprint['data'])}")
    tokenizer_dir = os.path.join(data_dir, f"spm-bpe{int(config.vocab_size)}-{_digest(fingerprint)}")
    return cls(tokenizer_dir, int(config.max_length), fingerprint)

  def is_built(self) -> bool:
    return all(os.path.isfile(p) for p in (self.tokens, self.summary, self.tokenizer_model))


def find_prepared_without_sources(config) -> Optional[PreparedPaths]:
  """A complete token cache in the prepared dir whose settings match the config, for machines that
  hold only the prepared data (e.g. a GPU box): the newest match, or None."""
  wanted = tokenizer_fingerprint(config, None)
  root = resolve_prepared_dir(config.prepared_dir)
  matches = []
  for info_path in glob.glob(os.path.join(root, "sentiment140-*", "spm-bpe*", "tokenizer.json")):
    with open(info_path) as f:
      fingerprint = json.load(f).get("fingerprint", {})
    fingerprint = json.loads(json.dumps(fingerprint))
    if fingerprint.get("data"):
      fingerprint["data"]["sources"] = None
    paths = PreparedPaths(os.path.dirname(info_path), int(config.max_length), fingerprint)
    if fingerprint == json.loads(json.dumps(wanted)) and paths.is_built():
      matches.append((os.path.getmtime(paths.tokens), paths))
  return max(matches, key=lambda m: m[0])[1] if matches else None


def _atomic_write(path: str, write) -> None:
  partial = path + ".partial"
  write(partial)
  os.replace(partial, path)


def _write_json(path: str, payload: dict) -> None:
  def write(p):
    with open(p, "w") as f:
      json.dump(payload, f, indent=2, sort_keys=True)
  _atomic_write(path, write)


def prepared_instead_message(data_dir: str, origin: Optional[str], folder_missing: bool,
                             prepared: PreparedPaths) -> str:
  """Says plainly that a prepared cache (of which files) is used instead of raw data that is not there."""
  with open(prepared.summary) as f:
    built_from = json.load(f).get("sources", {}).get("training_file", "unknown files")
  where = (f"the data folder {data_dir} (from {origin}) does not exist" if folder_missing
           else f"no raw Sentiment140 files in {data_dir}")
  return (f"WARNING: {where}; using the prepared data in {prepared.tokenizer_dir}, built from {built_from} "
          "(not checked against any raw file in this run)")


def find_tfds_dataset(tfds_dir: str) -> Optional[str]:
  """The finished dataset directory (holding dataset_info.json) under ``tfds_dir``, or None."""
  from train.data import sentiment140_builder  # Imports tfds; only needed here.
  builder = sentiment140_builder.Sentiment140Mamba
  builder_dir = os.path.join(tfds_dir, builder.name)
  if not os.path.isdir(builder_dir):
    return None
  for config_name in sorted(os.listdir(builder_dir)):
    version_dir = os.path.join(builder_dir, config_name, str(builder.VERSION))
    if os.path.isfile(os.path.join(version_dir, "dataset_info.json")):
      return version_dir
  return None


def write_tfds(records: records_lib.Records, tfds_dir: str, split_fractions) -> str:
  """Writes the array_record TFDS dataset under ``tfds_dir``; returns the dataset directory."""
  import tensorflow_datasets as tfds
  from train.data import sentiment140_builder
  tfds.disable_progress_bar()
  config = sentiment140_builder.config_for(split_fractions)
  if config.name in sentiment140_builder.Sentiment140Mamba.builder_configs:
    config = config.name  # tfds refuses a custom config named like a built-in one.
  builder = sentiment140_builder.Sentiment140Mamba(
      records=records, data_dir=tfds_dir, config=config, file_format="array_record")
  builder.download_and_prepare()
  return str(builder.data_dir)


def _label_counts(labels: np.ndarray) -> dict[str, int]:
  counts = np.bincount(labels, minlength=len(LABEL_NAMES))
  return {name: int(c) for name, c in zip(LABEL_NAMES, counts)}


def _save_tokens(path: str, encoded: dict, texts: dict) -> None:
  arrays = {}
  for name, (tokens, lengths, labels) in encoded.items():
    kept = np.minimum(lengths, tokens.shape[1])
    arrays[f"{name}_ids"] = tokens[np.arange(tokens.shape[1])[None, :] < kept[:, None]]
    arrays[f"{name}_lengths"] = lengths.astype(np.int32)
    arrays[f"{name}_labels"] = labels.astype(np.int8)
    if texts.get(name) is not None:
      arrays[f"{name}_texts"] = np.asarray(texts[name], dtype=np.str_)
  def write(p):
    with open(p, "wb") as f:
      np.savez_compressed(f, **arrays)
  _atomic_write(path, write)


def _compressed_bytes_per_split(npz_path: str) -> dict[str, int]:
  """Compressed bytes of each split's arrays in the token cache, plus the file total."""
  sizes = {"file": os.path.getsize(npz_path)}
  with zipfile.ZipFile(npz_path) as archive:
    for info in archive.infolist():
      split = next(name for name in SPLIT_NAMES if info.filename.startswith(name + "_"))
      sizes[split] = sizes.get(split, 0) + info.compress_size
  return sizes


def build(config, *, log=print) -> PreparedPaths:
  """Builds whatever of the prepared data is missing for this config; returns its paths."""
  data_dir = sources.resolve_data_dir(config.data_dir)
  origin = sources.data_dir_origin(config.data_dir)
  chosen_but_missing = origin is not None and not os.path.isdir(data_dir)
  try:
    files = sources.find_sources(data_dir, download=False)
  except sources.DataNotFoundError:
    prepared = find_prepared_without_sources(config)
    if prepared is not None:
      log(prepared_instead_message(data_dir, origin, chosen_but_missing, prepared))
      return prepared
    if chosen_but_missing:
      raise sources.DataNotFoundError(
          f"the data folder {data_dir} (from {origin}) does not exist, and no prepared data matches this "
          "config; fix the path, or create the folder and put the Sentiment140 files in it") from None
    if not config.download:
      raise
    files = sources.find_sources(data_dir, download=True)
  paths = PreparedPaths.for_sources(config, files)
  write_tfds_files = bool(config.write_tfds)
  if paths.is_built() and (not write_tfds_files or find_tfds_dataset(paths.tfds_dir)):
    return paths
  timings = {}
  start = time.perf_counter()
  log(f"reading and normalizing {files.train}")
  records = records_lib.build_records(files, config.split_fractions)
  timings["read_normalize_split_s"] = time.perf_counter() - start
  os.makedirs(paths.tokenizer_dir, exist_ok=True)
  if write_tfds_files and not find_tfds_dataset(paths.tfds_dir):
    log(f"writing the TFDS dataset to {paths.tfds_dir}")
    t = time.perf_counter()
    write_tfds(records, paths.tfds_dir, config.split_fractions)
    timings["tfds_write_s"] = time.perf_counter() - t

  t = time.perf_counter()
  train_texts = records.splits["train"].normalized_texts
  if os.path.isfile(paths.tokenizer_model):
    tokenizer = tokenizer_lib.load_tokenizer(paths.tokenizer_model, int(config.max_length))
  else:
    log(f"training the SentencePiece BPE tokenizer (vocab {config.vocab_size}) on the train split")
    tokenizer = tokenizer_lib.train_tokenizer(
        train_texts, int(config.vocab_size), max_sentences=int(config.tokenizer_max_sentences),
        max_length=int(config.max_length), seed=TOKENIZER_SAMPLE_SEED)
    _atomic_write(paths.tokenizer_model, tokenizer.save)
    _write_json(paths.tokenizer_info, {
        "fingerprint": paths.fingerprint, "vocab_size": tokenizer.vocab_size,
        "trained_on_sentences": min(len(train_texts), int(config.tokenizer_max_sentences))})
    timings["tokenizer_train_s"] = time.perf_counter() - t

  t = time.perf_counter()
  log(f"encoding {sum(len(s) for s in records.splits.values())} texts (max_length {config.max_length})")
  encoded = {}
  for name in SPLIT_NAMES:
    split = records.splits[name]
    tokens, lengths = tokenizer.encode_normalized(split.normalized_texts, progress=f"encode {name}")
    encoded[name] = (tokens, lengths, split.labels)
  timings["encode_s"] = time.perf_counter() - t
  t = time.perf_counter()
  _save_tokens(paths.tokens, encoded,
               {name: records.splits[name].normalized_texts for name in SPLIT_NAMES if name != "train"})
  timings["cache_write_s"] = time.perf_counter() - t

  summary = {
      "dataset": "sentiment140",
      "sources": records.sources,
      "rows": {name: len(records.splits[name]) for name in SPLIT_NAMES},
      "rows_per_label": {name: _label_counts(records.splits[name].labels) for name in SPLIT_NAMES},
      "duplicates": records.duplicates["duplicate_rows"],
      "duplicate_details": records.duplicates,
      "malformed_rows": sum(sum(r.values()) for r in records.malformed.values()),
      "malformed_by_reason": records.malformed,
      "malformed_first_lines": records.malformed_lines,
      "truncated_share": float(np.mean(encoded["train"][1] > int(config.max_length))),
      "truncated_share_by_split": {
          name: float(np.mean(lengths > int(config.max_length))) if len(lengths) else 0.0
          for name, (_, lengths, _) in encoded.items()},
      "mean_tokens_per_tweet": float(np.mean(encoded["train"][1])),
      "vocab_size": tokenizer.vocab_size,
      "max_length": int(config.max_length),
      "normalization_version": normalization.NORMALIZATION_VERSION,
      "split_fractions": [float(f) for f in config.split_fractions],
      "tokenizer_max_sentences": int(config.tokenizer_max_sentences),
      "prepared_dir": paths.tokenizer_dir,
      # Read with tfds.builder_from_directory(tfds_dir).as_data_source(split).
      "tfds_dir": find_tfds_dataset(paths.tfds_dir) if write_tfds_files else None,
      "cache_bytes": _compressed_bytes_per_split(paths.tokens),
      "build_timings_s": {k: round(v, 2) for k, v in timings.items()},
  }
  _write_json(paths.summary, summary)
  return paths


def describe_unused_rows(summary: dict) -> str:
  """One line: rows of the source files that were not used, by file and reason, with first line numbers."""
  first_lines = summary.get("malformed_first_lines", {})  # Absent in caches built before it existed.
  parts = []
  for source, reasons in summary["malformed_by_reason"].items():
    counted = [f"{count:,} {reason}" + (f" (lines {', '.join(map(str, first_lines[source][reason]))}"
                                        f"{', ...' if count > len(first_lines[source][reason]) else ''})"
                                        if reason in first_lines.get(source, {}) else "")
               for reason, count in sorted(reasons.items()) if count]
    parts.append(f"{source}: {'; '.join(counted) if counted else 'none'}")
  return f"unused source rows: {summary['malformed_rows']:,} ({' | '.join(parts)})"


def load(config, paths: PreparedPaths) -> Datasets:
  """Reads the token cache; subsamples train to config.max_train_examples (seeded, in file order)."""
  max_length = int(config.max_length)
  with np.load(paths.tokens) as cache:
    split_arrays = {}
    for name in SPLIT_NAMES:
      lengths = cache[f"{name}_lengths"]
      tokens = tokenizer_lib.unflatten(cache[f"{name}_ids"], np.minimum(lengths, max_length), max_length)
      labels = cache[f"{name}_labels"].astype(np.int32)
      texts = cache[f"{name}_texts"].tolist() if f"{name}_texts" in cache.files else None
      split_arrays[name] = Split(tokens=tokens, labels=labels, texts=texts)
  with open(paths.summary) as f:
    summary = json.load(f)
  max_train = config.max_train_examples
  train = split_arrays["train"]
  if max_train and int(max_train) < len(train):
    rng = np.random.Generator(np.random.PCG64(SUBSAMPLE_SEED))
    keep = np.sort(rng.choice(len(train), size=int(max_train), replace=False))
    split_arrays["train"] = Split(tokens=train.tokens[keep], labels=train.labels[keep])
    summary["train_rows_used"] = int(max_train)
  tokenizer = tokenizer_lib.load_tokenizer(paths.tokenizer_model, max_length)
  return Datasets(splits=split_arrays, tokenizer=tokenizer, summary=summary,
                  tokenizer_path=paths.tokenizer_model)


def get_datasets(config, *, log=print) -> Datasets:
  """All four splits, tokenized; builds the prepared data on first use (see module docstring)."""
  dataset = config.dataset
  if dataset == "synthetic":
    return synthetic.make_datasets(config)
  if dataset != "sentiment140":
    raise ValueError(f"config.dataset must be 'sentiment140' or 'synthetic', got {dataset!r}")
  return load(config, build(config, log=log))
