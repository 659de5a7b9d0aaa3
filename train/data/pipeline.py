"""get_datasets(config): builds the prepared data once, then loads it in seconds.

The data flows one way, each stage reading what the one before wrote:

  raw files -> TFDS dataset (sentiment140_builder / labelled_text_builder: parse, validate, normalize, split)
    -> tokenizer (SentencePiece BPE, trained on the dataset's train split)
    -> token cache (token_cache: the dataset's splits encoded) -> Datasets -> batching.

Only what is missing is built (prepared_paths says where each part lives and keys it by what
it depends on): a new max_length re-encodes the dataset, a new vocab_size retrains the
tokenizer, new sources or split fractions rewrite the dataset. A prepared file that cannot be
read (a truncated token cache, tokenizer model or TFDS shard) is moved aside
(``prepared_paths.set_aside``), reported in one line and built again from what precedes it.
config.dataset "labelled_files" runs the user's own files (train.data.labelled_files) through the
same stages; the Long Range Arena tasks ("lra_<task>") have their own builders and fixed vocabularies
(train.data.lra.prepared); a classifier given as config.init_from hands its tokenizer in (``given_tokenizer``):
the splits are encoded with it instead of a trained one.
Axes (``mamba_jax.notation``): N, L.
"""

from __future__ import annotations

import os
import time

import numpy as np

from train.data import labelled_files, prepared_paths, records as records_lib, sources, synthetic, tfds_dataset
from train.data import token_cache
from train.data.lra import prepared as lra_prepared
from train.data.lra import tasks as lra_tasks
from train.data import summary as summary_lib
from train.data import tokenizer as tokenizer_lib
from train.data.datasets import SPLIT_NAMES, Datasets, Split

SUBSAMPLE_SEED = 0
DATASETS = ("sentiment140", "labelled_files", "synthetic")
LABELLED_SPLIT_NAMES = ("train", "validation", "test")  # The user's files' splits (no manual_test).


class UnreadablePreparedData(ValueError):
  """A prepared file could not be read; it was moved aside (the message is one line)."""


def _read_prepared(path: str, read, data_dir: str, log):
  """``read(path)``; if that fails, ``path`` is moved aside, logged in one line, and
  ``UnreadablePreparedData`` raised (``get_datasets`` then builds it again)."""
  try:
    return read(path)
  except MemoryError:
    raise
  except Exception as error:  # pylint: disable=broad-except  # Any damage: truncation, bad zip, bad proto.
    moved = prepared_paths.set_aside(path, data_dir)
    reason = f"{type(error).__name__}: {(str(error).strip().splitlines() or [''])[0][:200]}"
    message = f"the prepared {path} cannot be read ({reason}); moved to {moved}"
    log(f"WARNING: {message}, building it again")
    raise UnreadablePreparedData(message) from None


def _find_sources(config, log) -> tuple[sources.SourceFiles | None, prepared_paths.PreparedPaths | None]:
  """(the raw files, None), or (None, a complete prepared cache used instead of missing raw files)."""
  data_dir = sources.resolve_data_dir(config.data_dir)
  origin = sources.data_dir_origin(config.data_dir)
  chosen_but_missing = origin is not None and not os.path.isdir(data_dir)
  try:
    return sources.find_sources(data_dir, download=False), None
  except sources.DataNotFoundError:
    prepared = prepared_paths.find_without_sources(config)
    if prepared is not None:
      log(prepared_paths.used_instead_message(data_dir, origin, chosen_but_missing, prepared))
      return None, prepared
    if chosen_but_missing:
      raise sources.DataNotFoundError(
          f"the data folder {data_dir} (from {origin}) does not exist, and no prepared data matches this "
          "config; fix the path, or create the folder and put the Sentiment140 files in it") from None
    if not config.download:
      raise
    return sources.find_sources(data_dir, download=True), None


def build_tfds(config, files, *, log=print, timings=None) -> str:
  """The TFDS dataset directory of these raw files and split fractions; written if missing.

  ``files``: ``sources.SourceFiles`` (Sentiment140) or ``labelled_files.LabelledFiles`` (the user's).
  """
  timings = {} if timings is None else timings
  labelled = isinstance(files, labelled_files.LabelledFiles)
  tfds_dir = prepared_paths.PreparedPaths.for_sources(config, files).tfds_dir
  dataset_dir = tfds_dataset.find(tfds_dir, config.split_fractions, labelled=labelled)
  if dataset_dir is not None:
    return dataset_dir
  t = time.perf_counter()
  log(f"reading and normalizing {files.train}")
  if labelled:
    records = labelled_files.build_records(files, config.split_fractions)
  else:
    records = records_lib.build_records(files, config.split_fractions)
  timings["read_normalize_split_s"] = time.perf_counter() - t
  t = time.perf_counter()
  log(f"writing the TFDS dataset to {tfds_dir}")
  dataset_dir = tfds_dataset.write(records, tfds_dir, config.split_fractions)
  timings["tfds_write_s"] = time.perf_counter() - t
  return dataset_dir


def _tokenizer(config, paths: prepared_paths.PreparedPaths, train_texts: list[str], given_tokenizer, log, timings):
  """The prepared tokenizer: read back, else the given one copied in, else trained on ``train_texts``."""
  if os.path.isfile(paths.tokenizer_model):
    return _read_prepared(paths.tokenizer_model, lambda p: tokenizer_lib.load_tokenizer(p, int(config.max_length)),
                          paths.data_dir, log)
  if given_tokenizer:
    tokenizer = tokenizer_lib.load_tokenizer(given_tokenizer, int(config.max_length))
    log(f"using the tokenizer of config.init_from ({given_tokenizer}, vocab {tokenizer.vocab_size})")
    prepared_paths.atomic_write(paths.tokenizer_model, tokenizer.save)
    prepared_paths.write_json(paths.tokenizer_info, {
        "fingerprint": paths.fingerprint, "vocab_size": tokenizer.vocab_size, "copied_from": given_tokenizer})
    return tokenizer
  t = time.perf_counter()
  log(f"training the SentencePiece BPE tokenizer (vocab {config.vocab_size}) on the train split")
  tokenizer = tokenizer_lib.train_tokenizer(
      train_texts, int(config.vocab_size), max_sentences=int(config.tokenizer_max_sentences),
      max_length=int(config.max_length), seed=prepared_paths.TOKENIZER_SAMPLE_SEED)
  prepared_paths.atomic_write(paths.tokenizer_model, tokenizer.save)
  prepared_paths.write_json(paths.tokenizer_info, {
      "fingerprint": paths.fingerprint, "vocab_size": tokenizer.vocab_size,
      "trained_on_sentences": min(len(train_texts), int(config.tokenizer_max_sentences))})
  timings["tokenizer_train_s"] = time.perf_counter() - t
  return tokenizer


def build(config, *, log=print, given_tokenizer: str | None = None) -> prepared_paths.PreparedPaths:
  """Builds whatever of the prepared data is missing for this config; returns its paths.

  ``given_tokenizer``: a tokenizer model to encode with instead of training one (config.init_from's).
  """
  if config.dataset == "labelled_files":
    files = labelled_files.find_files(config)
  else:
    files, prepared = _find_sources(config, log) if not given_tokenizer else (
        sources.find_sources(sources.resolve_data_dir(config.data_dir), download=config.download), None)
    if prepared is not None:
      return prepared
  paths = prepared_paths.PreparedPaths.for_sources(config, files, given_tokenizer)
  if paths.is_built():
    return paths
  timings = {}
  dataset_dir = build_tfds(config, files, log=log, timings=timings)
  split_names = LABELLED_SPLIT_NAMES if config.dataset == "labelled_files" else SPLIT_NAMES
  t = time.perf_counter()
  log(f"reading the TFDS dataset {dataset_dir}")
  columns = _read_prepared(dataset_dir, lambda d: tfds_dataset.read(d, split_names), paths.data_dir, log)
  timings["tfds_read_s"] = time.perf_counter() - t
  os.makedirs(paths.tokenizer_dir, exist_ok=True)
  tokenizer = _tokenizer(config, paths, columns["train"].normalized_texts, given_tokenizer, log, timings)

  t = time.perf_counter()
  log(f"encoding {sum(len(c) for c in columns.values())} texts (max_length {config.max_length})")
  encoded = {}
  for name in split_names:
    tokens, lengths = tokenizer.encode_normalized(columns[name].normalized_texts, progress=f"encode {name}")
    encoded[name] = (tokens, lengths, columns[name].labels)
  timings["encode_s"] = time.perf_counter() - t
  t = time.perf_counter()
  token_cache.write(paths.tokens, encoded,
                    {name: columns[name].normalized_texts for name in split_names if name != "train"})
  timings["cache_write_s"] = time.perf_counter() - t

  build_report = tfds_dataset.read_build_report(dataset_dir)
  summary = summary_lib.make_summary(
      config, build_report, encoded, vocab_size=tokenizer.vocab_size,
      prepared_dir=paths.tokenizer_dir, tfds_dir=dataset_dir, class_names=build_report.get("class_names"))
  summary["cache_bytes"] = token_cache.compressed_bytes_per_split(paths.tokens)
  summary["build_timings_s"] = {k: round(v, 2) for k, v in timings.items()}
  prepared_paths.write_json(paths.summary, summary)
  return paths


def load(config, paths: prepared_paths.PreparedPaths, *, log=print) -> Datasets:
  """Reads the token cache; subsamples train to config.max_train_examples (seeded, in file order).

  Raises:
    UnreadablePreparedData: a prepared file cannot be read (it was moved aside).
  """
  max_length = int(config.max_length)
  split_arrays = _read_prepared(paths.tokens, lambda p: token_cache.read(p, max_length), paths.data_dir, log)
  summary = _read_prepared(paths.summary, summary_lib.read, paths.data_dir, log)
  max_train = config.max_train_examples
  train = split_arrays["train"]
  if max_train and int(max_train) < len(train):
    rng = np.random.Generator(np.random.PCG64(SUBSAMPLE_SEED))
    keep = np.sort(rng.choice(len(train), size=int(max_train), replace=False))
    split_arrays["train"] = Split(tokens=train.tokens[keep], labels=train.labels[keep])
    summary["train_rows_used"] = int(max_train)
  tokenizer = _read_prepared(paths.tokenizer_model, lambda p: tokenizer_lib.load_tokenizer(p, max_length),
                             paths.data_dir, log)
  class_names = tuple(summary.get("class_names", ("negative", "positive")))
  return Datasets(splits=split_arrays, tokenizer=tokenizer, summary=summary,
                  tokenizer_path=paths.tokenizer_model, class_names=class_names)


def get_datasets(config, *, log=print, given_tokenizer: str | None = None) -> Datasets:
  """Every split, tokenized; builds the prepared data on first use (see module docstring).

  ``given_tokenizer``: encode with this tokenizer model (config.init_from's) instead of training one.
  """
  dataset = config.dataset
  if dataset == "synthetic":
    return synthetic.make_datasets(config)
  if dataset in lra_tasks.BY_DATASET:
    return lra_prepared.get_datasets(config, log=log)
  if dataset not in DATASETS:
    raise ValueError(f"config.dataset must be one of {', '.join(DATASETS + tuple(lra_tasks.BY_DATASET))}, "
                     f"got {dataset!r}")
  try:
    return load(config, build(config, log=log, given_tokenizer=given_tokenizer), log=log)
  except UnreadablePreparedData:  # Moved aside: built again from the files before it, once.
    return load(config, build(config, log=log, given_tokenizer=given_tokenizer), log=log)
