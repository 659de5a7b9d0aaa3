"""TFDS builder for Sentiment140: raw files -> parsed, validated, normalized, split examples.

The prepared dataset every later stage reads (train.data.tfds_dataset): array_record files,
read back without TensorFlow with ``tfds.builder_from_directory(dir).as_data_source(split)``
(random access, batched ``__getitems__``). Splits: train / validation / test (from the
training file, see train.data.splits) and manual_test (the 498 hand-labelled tweets, neutral
included). Each example: ``text`` (raw), ``normalized_text`` (train.data.normalization) and
``label``, in source-file order. ``info.metadata`` (metadata.json) holds the build report:
malformed rows by reason, duplicates and the source files (see ``build_report``).

Standalone use (reads the raw files from ``manual_dir``, see train.data.sources):

  builder = Sentiment140Mamba(data_dir="~/tensorflow_datasets", file_format="array_record")
  builder.download_and_prepare(download_config=tfds.download.DownloadConfig(manual_dir=FOLDER))

The pipeline (train.data.pipeline) passes the records it already read (``records=``).
Writing serializes each split's examples straight into one array_record shard
(``_generate_splits``): tfds' generic per-example encoder costs ~100 us per example and
feature on a CPU, 2.5 minutes for the 1.6M tweets; this one a few microseconds.
"""

from __future__ import annotations

import dataclasses
from typing import Optional

from etils import epath
import tensorflow_datasets as tfds
from tensorflow_datasets.core import file_adapters

from train.data import normalization, records as records_lib, sources
from train.data.datasets import LABEL_NAMES

_CITATION = """@article{go2009twitter,
  title={Twitter Sentiment Classification using Distant Supervision},
  author={Go, Alec and Bhayani, Richa and Huang, Lei},
  journal={CS224N Project Report, Stanford},
  year={2009}}"""


@dataclasses.dataclass
class Sentiment140Config(tfds.core.BuilderConfig):
  split_fractions: tuple = (0.98, 0.01, 0.01)


def config_for(split_fractions) -> Sentiment140Config:
  """A builder config named after the normalization version and the split fractions (per mille)."""
  per_mille = "_".join(str(int(round(f * 1000))) for f in split_fractions)
  return Sentiment140Config(
      name=f"norm{normalization.NORMALIZATION_VERSION}_split{per_mille}",
      description=f"normalization v{normalization.NORMALIZATION_VERSION}, split fractions {tuple(split_fractions)}",
      split_fractions=tuple(float(f) for f in split_fractions))


def build_report(records: records_lib.Records) -> dict:
  """What the rows of the prepared splits cannot tell: unused rows, duplicates, source files."""
  return {
      "sources": records.sources,
      "malformed_by_reason": records.malformed,
      "malformed_first_lines": records.malformed_lines,
      "duplicate_details": records.duplicates,
  }


def features() -> tfds.features.FeaturesDict:
  """The features of every example (``serialize_example`` writes exactly these)."""
  return tfds.features.FeaturesDict({
      "text": tfds.features.Text(),
      "normalized_text": tfds.features.Text(),
      "label": tfds.features.ClassLabel(names=list(LABEL_NAMES)),
  })


# tf.train.Example in protobuf wire format. Example{features: 1} -> Features{feature: 1 (map
# entries: key 1, value 2)} -> Feature{bytes_list: 1 | int64_list: 3} -> {value: 1}.
_VARINTS = [bytes([n]) if n < 128 else bytes([(n & 0x7F) | 0x80]) + bytes([n >> 7])
            for n in range(1 << 14)]


def _varint(n: int) -> bytes:
  if n < len(_VARINTS):
    return _VARINTS[n]
  out = bytearray()
  while n >= 0x80:
    out.append((n & 0x7F) | 0x80)
    n >>= 7
  out.append(n)
  return bytes(out)


def _field(tag: bytes, payload: bytes) -> bytes:
  return tag + _varint(len(payload)) + payload


def _bytes_entry(key: bytes, value: bytes) -> bytes:
  """A Features map entry holding a one-element BytesList."""
  feature = _field(b"\x0a", _field(b"\x0a", value))
  return _field(b"\x0a", _field(b"\x0a", key) + _field(b"\x12", feature))


def serialize_example(text: str, normalized_text: str, label: int) -> bytes:
  """One example as the serialized tf.train.Example that tfds writes and reads for ``features()``."""
  label_entry = _field(b"\x0a", b"\x0a\x05label" + _field(b"\x12", _field(b"\x1a", _field(b"\x0a", _varint(label)))))
  return _field(b"\x0a", _bytes_entry(b"text", text.encode("utf-8"))
                + _bytes_entry(b"normalized_text", normalized_text.encode("utf-8")) + label_entry)


class Sentiment140Mamba(tfds.core.GeneratorBasedBuilder):
  """Sentiment140 tweets: raw and normalized text, label."""

  name = "sentiment140_mamba"  # tfds already registers a "sentiment140".
  VERSION = tfds.core.Version("1.1.0")
  RELEASE_NOTES = {
      "1.0.0": "Hash-of-normalized-text splits; manual_test with neutral.",
      "1.1.0": "Build report (unused rows, duplicates, sources) in metadata.json; same examples.",
  }
  BUILDER_CONFIGS = [config_for((0.98, 0.01, 0.01))]
  MANUAL_DOWNLOAD_INSTRUCTIONS = (
      f"Put {sources.OFFICIAL_ZIP} (from {sources.OFFICIAL_URL}), or {sources.OFFICIAL_TRAIN_CSV} "
      f"(or any training*.csv[.gz] in the same schema) plus {sources.MANUAL_TEST_CSV}, in the manual dir.")

  @tfds.core.utils.classproperty
  @classmethod
  def code_path(cls) -> epath.Path:
    # tfds' default probes `importlib_resources` (not a dependency) for package modules.
    return epath.Path(__file__)

  def __init__(self, *, records: Optional[records_lib.Records] = None, **kwargs):
    self._records = records
    super().__init__(**kwargs)

  def _log_download_bytes(self) -> None:
    """Prints nothing: tfds' "Downloading and preparing dataset Unknown size" line is wrong here.

    Nothing is downloaded (the records are given) and the pipeline names each phase itself.
    """

  def _info(self) -> tfds.core.DatasetInfo:
    return tfds.core.DatasetInfo(
        builder=self,
        description=(
            "Sentiment140 (Go et al. 2009). label: 0 negative, 1 positive (polarity 4), "
            "2 neutral (manual_test only). normalized_text: train.data.normalization "
            f"v{normalization.NORMALIZATION_VERSION}. Examples keep source-file order."),
        features=features(),
        supervised_keys=("normalized_text", "label"),
        homepage="http://help.sentiment140.com/for-students",
        citation=_CITATION,
        disable_shuffling=True,  # Keep source-file order; the batch iterators shuffle.
        metadata=tfds.core.MetadataDict(),  # build_report(records).
    )

  def _read_records(self, dl_manager) -> records_lib.Records:
    """The given records, else those read, normalized and split from manual_dir; notes the report."""
    records = self._records
    if records is None:
      files = sources.find_sources(str(dl_manager.manual_dir), download=False)
      records = records_lib.build_records(files, self.builder_config.split_fractions)
    self.info.metadata.update(build_report(records))
    return records

  def _split_generators(self, dl_manager):
    return {name: self._generate_examples(split) for name, split in self._read_records(dl_manager).splits.items()}

  def _generate_examples(self, split: records_lib.SplitRecords):
    """tfds' generic path (file formats other than array_record): the same features, keyed by source row."""
    for text, normalized, label, row in zip(split.texts, split.normalized_texts,
                                            split.labels.tolist(), split.source_rows.tolist()):
      yield row, {"text": text, "normalized_text": normalized, "label": label}

  def _generate_splits(self, dl_manager, download_config) -> list[tfds.core.SplitInfo]:
    """Writes each split into one array_record shard, in source-file order; returns their infos."""
    if self.info.file_format != file_adapters.FileFormat.ARRAY_RECORD:
      return super()._generate_splits(dl_manager, download_config)
    infos = []
    for name, split in self._read_records(dl_manager).splits.items():
      template = self._get_filename_template(split_name=name)
      path = template.sharded_filepath(shard_index=0, num_shards=1)
      serialized = map(serialize_example, split.texts, split.normalized_texts, split.labels.tolist())
      file_adapters.ArrayRecordFileAdapter.write_examples(path, ((None, s) for s in serialized))
      infos.append(tfds.core.SplitInfo(name=name, shard_lengths=[len(split)], num_bytes=path.stat().length,
                                       filename_template=template))
    return infos
