"""get_datasets(config) for the LRA tasks: builds the prepared data once, then loads it in seconds.

The same one-way path as Sentiment140's (``train.data.pipeline``), without a trained tokenizer
(every task has a fixed vocabulary, ``train.data.lra.tasks``):

  generator or fetched files -> TFDS dataset (``train.data.lra.builders``) -> token cache
  (``train.data.token_cache``: tokens_L<max_length>.npz + its summary .json) -> Datasets.

Layout (under config.prepared_dir, else $MAMBA_JAX_DATA_CACHE, else ./data_cache):

  lra-<task>-<key>/          key: a digest of what the examples depend on (task, generator version
    tfds/lra_<task>/...        and parameters, seed and sizes; or the fetched files' digest)
    tokens_L<L>.npz, tokens_L<L>.json

A machine that has the prepared data but not the fetched files (a GPU box) uses the newest
complete ``lra-<task>-*`` cache of the same sizes and length, and says so in one line.

Config fields read: dataset ("lra_<task>"), max_length (L: longer inputs are cut, shorter
ones right-padded with 0; Retrieval: each document gets L/2), lra_data_seed and lra_sizes
((train, validation, test), generated tasks; None: the published sizes), lra_data_dir (the
fetched files' folder, ``train.data.lra.fetched.resolve_data_dir``), prepared_dir,
max_train_examples (a seeded subset of train, as for Sentiment140).
"""

from __future__ import annotations

import dataclasses
import glob
import hashlib
import json
import os
import time
from typing import Callable, Optional

import numpy as np

from train.data import prepared_paths, sources, tfds_dataset, token_cache
from train.data.datasets import Datasets, Split
from train.data.lra import fetched, listops, pathfinder, tasks

FORMAT_VERSION = 1
SUBSAMPLE_SEED = 0


@dataclasses.dataclass(frozen=True)
class FixedVocabulary:
  """The tokenizer of an LRA task: a fixed vocabulary (no model file); ``decode`` shows a row."""

  task: tasks.LraTask
  pad_id: int = 0

  @property
  def vocab_size(self) -> int:
    return self.task.vocab_size

  def decode(self, ids) -> str:
    """A row of ids -> ListOps tokens, or the bytes (Text, Retrieval) as text, or the pixel values."""
    ids = [int(i) for i in np.asarray(ids).reshape(-1) if int(i) != self.pad_id]
    if self.task.name == "listops":
      return listops.decode(ids)
    if self.task.name in ("text", "retrieval"):
      return bytes(i - 1 for i in ids).decode("utf-8", errors="replace")
    return " ".join(str(i - 1) for i in ids)

  def encode(self, texts):
    """Texts -> ids (L,) rows for ListOps and Text; the image tasks take pixels, not text."""
    length = self.task.max_length
    if self.task.name == "listops":
      return np.stack([listops.encode(t, length)[0] for t in texts])
    if self.task.name == "text":
      return np.stack([fetched.encode_bytes(t, length)[0] for t in texts])
    raise ValueError(f"the {self.task.name} task's inputs are not single texts")


@dataclasses.dataclass
class LraPaths:
  """Where the prepared data of one (task, key, max_length) lives."""

  data_dir: str
  max_length: int

  @property
  def tfds_dir(self) -> str:
    return os.path.join(self.data_dir, "tfds")

  @property
  def tokens(self) -> str:
    return os.path.join(self.data_dir, f"tokens_L{self.max_length}.npz")

  @property
  def summary(self) -> str:
    return os.path.join(self.data_dir, f"tokens_L{self.max_length}.json")

  def is_built(self) -> bool:
    return os.path.isfile(self.tokens) and os.path.isfile(self.summary)


def sizes_of(config, task: tasks.LraTask) -> tuple[int, int, int]:
  """(train, validation, test) of a generated task: ``config.lra_sizes`` or the published sizes."""
  sizes = config.lra_sizes or task.sizes
  sizes = tuple(int(s) for s in sizes)
  if len(sizes) != 3 or min(sizes) < 1:
    raise ValueError(f"config.lra_sizes must be (train, validation, test), each >= 1, got {sizes}")
  return sizes


def key_of(config, task: tasks.LraTask, check_sources: bool = True) -> dict:
  """What the examples depend on: the generator, its version, parameters, seed and sizes; or the
  fetched files' digest (``_fetched_source``)."""
  if task.generated:
    if task.name == "listops":
      generator = {"version": listops.GENERATOR_VERSION, "params": dataclasses.asdict(listops.ListOpsParams())}
    else:
      resolution = 32 if task.name == "pathfinder32" else 64
      generator = {"version": pathfinder.GENERATOR_VERSION,
                   "params": dataclasses.asdict(pathfinder.PARAMS[resolution])}
    return {"format": FORMAT_VERSION, "task": task.name, "generator": generator,
            "seed": int(config.lra_data_seed), "sizes": list(sizes_of(config, task))}
  if config.lra_sizes:
    raise ValueError(f"config.lra_sizes applies to the generated tasks; {task.name} has the sizes of its files")
  return {"format": FORMAT_VERSION, "task": task.name, "source": _fetched_source(config, task, check_sources)}


def _raw_dir(config, task: tasks.LraTask) -> str:
  return os.path.join(fetched.resolve_data_dir(config.lra_data_dir), task.name)


def _fetched_source(config, task: tasks.LraTask, check_sources: bool) -> dict:
  """A digest of the task's fetched files (their paths and sizes and mtimes are not part of it)."""
  root = _raw_dir(config, task)
  if not os.path.isdir(root):
    raise FileNotFoundError(f"no {task.name} files in {root} (config.lra_data_dir / ${fetched.ENV_DATA_DIR}); "
                            "README 'Long Range Arena' says how to fetch them")
  digest = hashlib.sha256()
  for path in sorted(glob.glob(os.path.join(root, "**", "*"), recursive=True)):
    if os.path.isfile(path):
      digest.update(os.path.relpath(path, root).encode() + b"\0" + sources.sha256_of(path).encode())
  return {"files_sha256": digest.hexdigest(), "checked": bool(check_sources)}


def _digest(payload: dict) -> str:
  return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()[:12]


def paths_for(config, task: tasks.LraTask, key: dict) -> LraPaths:
  root = prepared_paths.resolve_prepared_dir(config.prepared_dir)
  return LraPaths(os.path.join(root, f"lra-{task.name}-{_digest(key)}"), int(config.max_length))


def _encode_split(task: tasks.LraTask, features, length: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
  """The records of one split -> (tokens np.uint16 (N, L), cache lengths (N,), labels (N,), real lengths (N,))."""
  rows, cache_lengths, labels, real = [], [], [], []
  for feature in features:
    labels.append(feature["label"].int64_list.value[0])
    if task.name == "listops":
      row, count = listops.encode(feature["source"].bytes_list.value[0].decode("utf-8"), length)
    elif task.name == "text":
      row, count = fetched.encode_bytes(feature["text"].bytes_list.value[0].decode("utf-8"), length)
    elif task.name == "retrieval":
      half = length // 2
      first, count1 = fetched.encode_bytes(feature["text1"].bytes_list.value[0].decode("utf-8"), half)
      second, count2 = fetched.encode_bytes(feature["text2"].bytes_list.value[0].decode("utf-8"), half)
      row, count = np.concatenate([first, second, np.zeros(length - 2 * half, np.uint16)]), count1 + count2
    else:
      image = np.frombuffer(feature["image"].bytes_list.value[0], np.uint8)
      if task.name == "image":
        image = fetched.grayscale(image.reshape(32, 32, 3))
      pixels = pathfinder.encode(image)
      row, count = np.zeros((length,), np.uint16), pixels.size
      row[:min(length, pixels.size)] = pixels[:length]
    rows.append(row)
    real.append(count)
    # A pair keeps its padding between the two documents: the cache stores every position.
    cache_lengths.append(length if task.pair else count)
  tokens = np.stack(rows) if rows else np.zeros((0, length), np.uint16)
  return tokens, np.asarray(cache_lengths, np.int64), np.asarray(labels, np.int32), np.asarray(real, np.int64)


def _length_summary(lengths: np.ndarray) -> dict:
  if not len(lengths):
    return {}
  return {"min": int(lengths.min()), "mean": float(lengths.mean()), "max": int(lengths.max()),
          "percentiles_10_50_90": [float(np.percentile(lengths, q)) for q in (10, 50, 90)]}


def build(config, task: tasks.LraTask, paths: LraPaths, key: dict, *, log=print,
          check_sources: bool = True) -> None:
  """Writes the TFDS dataset (unless there) and the token cache of ``paths``."""
  import tensorflow_datasets as tfds  # pylint: disable=import-outside-toplevel
  from train.data.lra import builders  # pylint: disable=import-outside-toplevel  (imports tfds)
  tfds.disable_progress_bar()
  timings = {}
  builder_cls = builders.BUILDERS[task.name]
  builder_config = builders.config_named(_digest(key), seed=key.get("seed", 0), sizes=key.get("sizes", ()),
                                         description=json.dumps(key, sort_keys=True))
  kwargs = {} if task.generated else {"check_sources": check_sources}
  builder = builder_cls(data_dir=paths.tfds_dir, config=builder_config, file_format="array_record", **kwargs)
  dataset_dir = str(builder.data_dir)
  if not os.path.isfile(os.path.join(dataset_dir, "dataset_info.json")):
    t = time.perf_counter()
    log(f"{'generating' if task.generated else 'reading'} the {task.title} examples into {paths.tfds_dir}")
    builder.download_and_prepare(download_config=tfds.download.DownloadConfig(manual_dir=_raw_dir(config, task)))
    timings["tfds_write_s"] = time.perf_counter() - t
  t = time.perf_counter()
  log(f"encoding the {task.title} splits (max_length {paths.max_length})")
  encoded, real_lengths = {}, {}
  for name in tasks.SPLITS:
    tokens, cache_lengths, labels, real = _encode_split(task, tfds_dataset.split_features(dataset_dir, name),
                                                        paths.max_length)
    encoded[name] = (tokens, cache_lengths, labels)
    real_lengths[name] = real
  timings["encode_s"] = time.perf_counter() - t
  token_cache.write(paths.tokens, encoded, {})
  with open(os.path.join(dataset_dir, tfds_dataset.BUILD_REPORT_FILE)) as f:
    source = json.load(f)
  summary = {
      "dataset": task.dataset, "task": task.name, "title": task.title, "class_names": list(task.class_names),
      "key": key, "source": source,
      "rows": {name: int(len(encoded[name][2])) for name in tasks.SPLITS},
      "rows_per_label": {name: {c: int(n) for c, n in zip(task.class_names, np.bincount(
          encoded[name][2], minlength=len(task.class_names)))} for name in tasks.SPLITS},
      "lengths": {name: _length_summary(real_lengths[name]) for name in tasks.SPLITS},
      "duplicates": 0, "malformed_rows": 0, "malformed_by_reason": {},
      "truncated_share": float(np.mean(real_lengths["train"] > paths.max_length)) if len(real_lengths["train"]) else 0.0,
      "truncated_share_by_split": {name: float(np.mean(real_lengths[name] > paths.max_length))
                                   if len(real_lengths[name]) else 0.0 for name in tasks.SPLITS},
      "vocab_size": task.vocab_size, "max_length": paths.max_length,
      "prepared_dir": paths.data_dir, "tfds_dir": dataset_dir,
      "build_timings_s": {k: round(v, 2) for k, v in timings.items()},
  }
  if task.pair:  # Each document separately: the pair's count is their sum.
    summary["lengths_note"] = "Retrieval: the two documents' bytes together; each is cut at max_length / 2"
  prepared_paths.write_json(paths.summary, summary)


def _prepared_without_sources(config, task: tasks.LraTask, log) -> Optional[LraPaths]:
  """The newest complete cache of this task and length (for machines without the fetched files)."""
  root = prepared_paths.resolve_prepared_dir(config.prepared_dir)
  found = []
  for summary_path in glob.glob(os.path.join(root, f"lra-{task.name}-*", f"tokens_L{int(config.max_length)}.json")):
    paths = LraPaths(os.path.dirname(summary_path), int(config.max_length))
    if paths.is_built():
      found.append((os.path.getmtime(paths.tokens), paths))
  if not found:
    return None
  paths = max(found, key=lambda f: f[0])[1]
  log(f"WARNING: no {task.name} files in {_raw_dir(config, task)}; using the prepared data in {paths.data_dir} "
      "(not checked against any file in this run)")
  return paths


def load(config, task: tasks.LraTask, paths: LraPaths) -> Datasets:
  """Reads the token cache; subsamples train to config.max_train_examples (seeded, in file order)."""
  splits = token_cache.read(paths.tokens, int(config.max_length))
  with open(paths.summary) as f:
    summary = json.load(f)
  max_train = config.max_train_examples
  train = splits["train"]
  if max_train and int(max_train) < len(train):
    rng = np.random.Generator(np.random.PCG64(SUBSAMPLE_SEED))
    keep = np.sort(rng.choice(len(train), size=int(max_train), replace=False))
    splits["train"] = Split(tokens=train.tokens[keep], labels=train.labels[keep])
    summary["train_rows_used"] = int(max_train)
  return Datasets(splits=splits, tokenizer=FixedVocabulary(task), summary=summary, tokenizer_path=None,
                  class_names=tuple(task.class_names))


def get_datasets(config, *, log: Callable[[str], None] = print, check_sources: bool = True) -> Datasets:
  """Every split of ``config.dataset``'s LRA task, tokenized; builds the prepared data on first use.

  ``check_sources=False`` accepts fetched files without their pinned checksum (test fixtures).

  Raises:
    ValueError: a bad field (dataset, lra_sizes, max_length), or fetched files that are not the expected ones.
    FileNotFoundError: a fetched task whose files are not there (and no prepared data of it).
  """
  task = tasks.task_of(config.dataset)
  if int(config.max_length) < 1:
    raise ValueError(f"config.max_length must be >= 1, got {config.max_length}")
  if task.pair and int(config.max_length) % 2:
    raise ValueError(f"{task.name} puts two documents side by side: config.max_length must be even, "
                     f"got {config.max_length}")
  try:
    key = key_of(config, task, check_sources)
  except FileNotFoundError:
    paths = _prepared_without_sources(config, task, log)
    if paths is None:
      raise
    return load(config, task, paths)
  paths = paths_for(config, task, key)
  if not paths.is_built():
    build(config, task, paths, key, log=log, check_sources=check_sources)
  return load(config, task, paths)
