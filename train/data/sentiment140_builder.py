"""TFDS builder for Sentiment140 with this project's normalization and leak-free splits.

Works without TensorFlow: it writes array_record files, read back with
``tfds.builder_from_directory(dir).as_data_source(split)`` (random access, batched
``__getitems__``). Splits: train / validation / test (from the training file, see
train.data.splits) and manual_test (the 498 hand-labelled tweets, neutral included).

Standalone use (reads the raw files from ``manual_dir``, see train.data.sources):

  builder = Sentiment140Mamba(data_dir="~/tensorflow_datasets", file_format="array_record")
  builder.download_and_prepare(download_config=tfds.download.DownloadConfig(manual_dir=FOLDER))

The pipeline (train.data.pipeline) passes the records it already built (``records=``) to
avoid reading and normalizing the 1.6M rows twice.
"""

from __future__ import annotations

import dataclasses
from typing import Optional

from etils import epath
import tensorflow_datasets as tfds

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


class Sentiment140Mamba(tfds.core.GeneratorBasedBuilder):
  """Sentiment140 tweets: raw and normalized text, label."""

  name = "sentiment140_mamba"  # tfds already registers a "sentiment140".
  VERSION = tfds.core.Version("1.0.0")
  RELEASE_NOTES = {"1.0.0": "Hash-of-normalized-text splits; manual_test with neutral."}
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
        features=tfds.features.FeaturesDict({
            "text": tfds.features.Text(),
            "normalized_text": tfds.features.Text(),
            "label": tfds.features.ClassLabel(names=list(LABEL_NAMES)),
        }),
        supervised_keys=("normalized_text", "label"),
        homepage="http://help.sentiment140.com/for-students",
        citation=_CITATION,
        disable_shuffling=True,  # Keep source-file order; the batch iterators shuffle.
    )

  def _split_generators(self, dl_manager):
    records = self._records
    if records is None:
      files = sources.find_sources(str(dl_manager.manual_dir), download=False)
      records = records_lib.build_records(files, self.builder_config.split_fractions)
    return {name: self._generate_examples(split) for name, split in records.splits.items()}

  def _generate_examples(self, split: records_lib.SplitRecords):
    for text, normalized, label, row in zip(split.texts, split.normalized_texts,
                                            split.labels.tolist(), split.source_rows.tolist()):
      # Only the three features: tfds serializes ~100 us per example and feature on a CPU.
      yield row, {"text": text, "normalized_text": normalized, "label": label}
