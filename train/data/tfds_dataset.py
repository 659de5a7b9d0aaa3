"""The prepared TFDS dataset (train.data.sentiment140_builder): find it, write it, read it back.

Every stage after the raw files reads this dataset: the tokenizer trains on the train split's
``normalized_text`` and the token cache (train.data.token_cache) encodes every split from it.
tfds, array_record and the tf.train.Example proto are imported on use only: a run that finds
its token cache never needs them.
Axes (``mamba_jax.notation``): N.
"""

from __future__ import annotations

import dataclasses
import json
import os
from typing import Optional

import numpy as np

from train.data import records as records_lib

BUILD_REPORT_FILE = "metadata.json"  # tfds.core.MetadataDict's file; sentiment140_builder.build_report.


@dataclasses.dataclass
class SplitColumns:
  """What the later stages read of one split, in source-file order.

  Attributes:
    normalized_texts: the N normalized texts.
    labels: np.int32 (N,): 0 negative, 1 positive, 2 neutral.
  """

  normalized_texts: list[str]
  labels: np.ndarray

  def __len__(self) -> int:
    return len(self.labels)


def _builder(labelled: bool):
  """(builder class, its config_for) of Sentiment140 or of the user's labelled files."""
  if not labelled:
    from train.data import sentiment140_builder  # Imports tfds.
    return sentiment140_builder.Sentiment140Mamba, sentiment140_builder.config_for
  from train.data import labelled_text_builder  # Imports tfds.
  return labelled_text_builder.LabelledTextMamba, labelled_text_builder.config_for


def find(tfds_dir: str, split_fractions, labelled: bool = False) -> Optional[str]:
  """The finished dataset directory (holding dataset_info.json) for these fractions, or None.

  ``labelled``: the user's files' dataset (train.data.labelled_text_builder), not Sentiment140's.
  """
  builder, config_for = _builder(labelled)
  config_name = config_for(split_fractions).name
  version_dir = os.path.join(tfds_dir, builder.name, config_name, str(builder.VERSION))
  return version_dir if os.path.isfile(os.path.join(version_dir, "dataset_info.json")) else None


def write(records: records_lib.Records, tfds_dir: str, split_fractions) -> str:
  """Writes the array_record dataset of ``records`` under ``tfds_dir``; returns its directory."""
  import tensorflow_datasets as tfds
  tfds.disable_progress_bar()
  builder_cls, config_for = _builder(records.class_names is not None)
  config = (config_for(split_fractions) if records.class_names is None
            else config_for(split_fractions, records.class_names))
  if config.name in builder_cls.builder_configs:
    config = config.name  # tfds refuses a custom config named like a built-in one.
  builder = builder_cls(records=records, data_dir=tfds_dir, config=config, file_format="array_record")
  builder.download_and_prepare()
  return str(builder.data_dir)


def read(dataset_dir: str, splits=None) -> dict[str, SplitColumns]:
  """Split name -> its normalized texts and labels, read from its array_record shards in order.

  ``splits``: the names to read; None: every split of the dataset.
  """
  split_infos = _split_infos(dataset_dir)
  columns = {}
  for name in (splits if splits is not None else list(split_infos.keys())):
    texts, labels = [], []
    for feature in _features(split_infos[name]):
      texts.append(feature["normalized_text"].bytes_list.value[0].decode("utf-8"))
      labels.append(feature["label"].int64_list.value[0])
    columns[name] = SplitColumns(normalized_texts=texts, labels=np.asarray(labels, np.int32))
  return columns


def read_raw_texts(dataset_dir: str, splits) -> dict[str, list[str]]:
  """Split name -> its N raw texts (the source files' text, before normalization), in the order of ``read``."""
  split_infos = _split_infos(dataset_dir)
  return {name: [feature["text"].bytes_list.value[0].decode("utf-8") for feature in _features(split_infos[name])]
          for name in splits}


def split_features(dataset_dir: str, split: str):
  """The feature map (name -> tf.train.Feature) of every record of ``split``, in file order (the LRA
  datasets, whose features are not Sentiment140's)."""
  return _features(_split_infos(dataset_dir)[split])


def _split_infos(dataset_dir: str):
  import tensorflow_datasets as tfds  # pylint: disable=import-outside-toplevel
  return tfds.builder_from_directory(dataset_dir).info.splits


def _features(split_info):
  """The feature map of every record of one split, in file order."""
  from array_record.python import array_record_module  # pylint: disable=import-outside-toplevel
  from tensorflow_datasets.proto import tf_example_pb2  # pylint: disable=import-outside-toplevel
  for path in split_info.filepaths:
    reader = array_record_module.ArrayRecordReader(os.fspath(path))
    try:
      serialized = reader.read_all()
    finally:
      reader.close()
    for record in serialized:
      yield tf_example_pb2.Example.FromString(record).features.feature


def read_build_report(dataset_dir: str) -> dict:
  """sentiment140_builder.build_report of the records the dataset was written from."""
  with open(os.path.join(dataset_dir, BUILD_REPORT_FILE)) as f:
    return json.load(f)
