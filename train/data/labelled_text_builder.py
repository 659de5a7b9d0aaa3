"""TFDS builder for the user's labelled files: the same prepared dataset as Sentiment140's, any classes.

``train.data.labelled_files`` reads, checks, normalizes and splits the files; this builder
writes the records it is given (``records=``), exactly like
``train.data.sentiment140_builder.Sentiment140Mamba`` (whose array_record writer it reuses):
splits train / validation / test, each example ``text`` (raw), ``normalized_text`` and
``label``, in source-file order. ``label`` is a ``ClassLabel`` of the data's class names
(label id i = ``class_names[i]``), so the prepared dataset itself says what each id means and
a rebuilt cache gives the same ids. ``info.metadata`` holds the build report (unused rows per
file and reason, duplicates, sources, class names).
"""

from __future__ import annotations

import dataclasses
from typing import Optional

import tensorflow_datasets as tfds

from train.data import normalization, records as records_lib, sentiment140_builder


@dataclasses.dataclass
class LabelledTextConfig(tfds.core.BuilderConfig):
  split_fractions: tuple = (0.98, 0.01, 0.01)
  class_names: tuple = ("negative", "positive")


def config_for(split_fractions, class_names=("negative", "positive")) -> LabelledTextConfig:
  """A builder config named after the normalization version and the split fractions (the folder above
  is keyed by the files and reading options, which decide the class names)."""
  per_mille = "_".join(str(int(round(f * 1000))) for f in split_fractions)
  return LabelledTextConfig(
      name=f"norm{normalization.NORMALIZATION_VERSION}_split{per_mille}",
      description=(f"normalization v{normalization.NORMALIZATION_VERSION}, split fractions "
                   f"{tuple(split_fractions)}, classes {list(class_names)}"),
      split_fractions=tuple(float(f) for f in split_fractions), class_names=tuple(class_names))


class LabelledTextMamba(sentiment140_builder.Sentiment140Mamba):
  """The user's labelled texts: raw and normalized text, label (a class of the data)."""

  name = "labelled_text_mamba"
  VERSION = tfds.core.Version("1.0.0")
  RELEASE_NOTES = {"1.0.0": "train/validation/test of the user's files; ClassLabel of the data's class names."}
  # Only a name tfds needs; every dataset is written with its own config (config_for).
  BUILDER_CONFIGS = [LabelledTextConfig(name="builtin_unused", description="placeholder name, never written")]

  def __init__(self, *, records: Optional[records_lib.Records] = None, **kwargs):
    super().__init__(records=records, **kwargs)

  def _info(self) -> tfds.core.DatasetInfo:
    class_names = list(self.builder_config.class_names)
    return tfds.core.DatasetInfo(
        builder=self,
        description=(f"Labelled texts from the user's files. label: {dict(enumerate(class_names))}. "
                     f"normalized_text: train.data.normalization v{normalization.NORMALIZATION_VERSION}. "
                     "Examples keep source-file order."),
        features=tfds.features.FeaturesDict({
            "text": tfds.features.Text(),
            "normalized_text": tfds.features.Text(),
            "label": tfds.features.ClassLabel(names=class_names),
        }),
        supervised_keys=("normalized_text", "label"),
        disable_shuffling=True,
        metadata=tfds.core.MetadataDict(),
    )

  def _read_records(self, dl_manager) -> records_lib.Records:
    if self._records is None:
      raise ValueError("LabelledTextMamba writes the records it is given (train.data.labelled_files reads the files)")
    self.info.metadata.update(sentiment140_builder.build_report(self._records))
    self.info.metadata["class_names"] = list(self._records.class_names)
    return self._records
