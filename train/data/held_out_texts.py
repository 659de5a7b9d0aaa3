"""The raw texts of the prepared held-out splits, for slicing by what normalization removes.

The prepared splits (``train.data.token_cache``) keep only normalized texts: lower-cased, "#"
dropped, so hashtags and all-caps words cannot be seen (``train.scoring.slices``). The prepared TFDS
dataset (``train.data.tfds_dataset``) still holds each tweet's raw text in the same order; this
reads it back for the splits asked, and keeps a split's raw texts only when they normalize to its
prepared texts exactly.
"""

from __future__ import annotations

from typing import Sequence

from train.data import normalization, pipeline, tfds_dataset


def raw_texts(config, splits: dict, names: Sequence[str], log=print) -> dict[str, list[str]]:
  """Split name -> the raw texts of ``splits[name]`` (Sentiment140, for the ``names`` present whose raw
  texts normalize to the split's texts); {} for other data, without the prepared TFDS dataset, or when it
  cannot be read (said in one ``log`` line)."""
  names = [name for name in names if name in splits and splits[name].texts is not None]
  if config.dataset != "sentiment140" or not names:
    return {}
  try:
    dataset_dir = tfds_dataset.find(pipeline.build(config, log=log).tfds_dir, config.split_fractions)
    read = tfds_dataset.read_raw_texts(dataset_dir, names) if dataset_dir else {}
  except Exception as e:  # pylint: disable=broad-except  (slices must never cost a run its report)
    log(f"the raw texts of {', '.join(names)} could not be read ({type(e).__name__}: {e}); "
        "slicing their normalized text")
    return {}
  found = {}
  for name, texts in read.items():
    if normalization.normalize_many(texts) == list(splits[name].texts):
      found[name] = texts
    else:
      log(f"the raw texts of {name} in {dataset_dir} do not match its prepared split; slicing its normalized text")
  return found
