"""get_datasets end to end on a small CSV: build, TFDS read-back, cache reuse, retraining on change."""

import os

import numpy as np
import pytest

from configs import sent140
from train.data import normalization, pipeline, records as records_lib, sources
from train.data.datasets import SPLIT_NAMES

WORDS = "good bad day night love hate phone work home movie music rain sun tired happy sad".split()


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
  folder = tmp_path_factory.mktemp("raw")
  rng = np.random.default_rng(0)
  lines = []
  for i in range(600):
    polarity = "0" if i < 300 else "4"
    text = " ".join(rng.choice(WORDS, size=rng.integers(3, 30))) + f" #{i} @friend \u00e9"
    lines.append(f'"{polarity}","{i}","","NO_QUERY","","{text}"')
  lines += ['"4","dup","","NO_QUERY","","the very same tweet"'] * 3
  lines += ['"9","bad","","NO_QUERY","","unknown polarity"', '"0","short row"']
  (folder / "training.small.csv").write_text("\n".join(lines) + "\n", encoding="latin-1")
  manual = ['"4","1","","q","u","I love it"', '"2","2","","q","u","it is a phone"', '"0","3","","q","u","so bad"']
  (folder / sources.MANUAL_TEST_CSV).write_text("\n".join(manual) + "\n", encoding="latin-1")
  return str(folder)


def _config(data_dir, prepared_dir, **overrides):
  config = sent140.get_config()
  config.data_dir = data_dir
  config.prepared_dir = prepared_dir
  config.vocab_size = 400
  config.max_length = 16
  config.split_fractions = (0.8, 0.1, 0.1)
  config.download = False
  config.update(overrides)
  return config


def test_build_then_load_from_cache(data_dir, tmp_path, monkeypatch):
  config = _config(data_dir, str(tmp_path / "cache"))
  datasets = pipeline.get_datasets(config, log=lambda _: None)
  assert set(datasets.splits) == set(SPLIT_NAMES)
  summary = datasets.summary
  assert summary["rows"] == {"train": 483, "validation": 60, "test": 60, "manual_test": 3}
  assert summary["rows_per_label"]["validation"] == {"negative": 30, "positive": 30, "neutral": 0}
  assert summary["malformed_rows"] == 2 and summary["duplicates"] == 2
  assert summary["vocab_size"] == datasets.tokenizer.vocab_size <= 400
  assert 0.0 < summary["truncated_share"] < 1.0
  for name, split in datasets.splits.items():
    assert split.tokens.dtype == np.uint16 and split.tokens.shape == (len(split), 16)
    assert split.labels.dtype == np.int32
    assert int(split.tokens.max()) < datasets.tokenizer.vocab_size
  np.testing.assert_array_equal(datasets.splits["manual_test"].labels, [1, 2, 0])
  assert datasets.splits["train"].texts is None
  val = datasets.splits["validation"]
  np.testing.assert_array_equal(datasets.tokenizer.encode(val.texts), val.tokens)  # Normalizing is idempotent here.
  assert os.path.isfile(datasets.tokenizer_path)

  # The TFDS dataset reads back without TensorFlow.
  import tensorflow_datasets as tfds
  builder = tfds.builder_from_directory(summary["tfds_dir"])
  assert builder.info.splits["validation"].num_examples == len(val)
  manual = builder.as_data_source(split="manual_test")
  examples = manual.__getitems__([0, 1, 2])
  assert [e["label"] for e in examples] == [1, 2, 0]
  assert examples[0]["text"].decode() == "I love it" and examples[0]["normalized_text"].decode() == "i love it"

  # Second call: nothing is rebuilt.
  def fail(*args, **kwargs):
    raise AssertionError("rebuilt although the cache is complete")
  monkeypatch.setattr(records_lib, "build_records", fail)
  again = pipeline.get_datasets(config, log=lambda _: None)
  for name in SPLIT_NAMES:
    np.testing.assert_array_equal(again.splits[name].tokens, datasets.splits[name].tokens)
  assert again.tokenizer_path == datasets.tokenizer_path


def test_changed_settings_retrain_instead_of_reusing(data_dir, tmp_path, monkeypatch):
  cache = str(tmp_path / "cache")
  base = pipeline.get_datasets(_config(data_dir, cache), log=lambda _: None)
  other_vocab = pipeline.get_datasets(_config(data_dir, cache, vocab_size=350), log=lambda _: None)
  assert other_vocab.tokenizer_path != base.tokenizer_path
  assert other_vocab.tokenizer.vocab_size <= 350
  other_length = pipeline.get_datasets(_config(data_dir, cache, max_length=8), log=lambda _: None)
  assert other_length.tokenizer_path == base.tokenizer_path  # Same tokenizer, new token cache.
  assert other_length.splits["test"].tokens.shape[1] == 8
  monkeypatch.setattr(normalization, "NORMALIZATION_VERSION", normalization.NORMALIZATION_VERSION + 1)
  renormalized = pipeline.get_datasets(_config(data_dir, cache), log=lambda _: None)
  assert os.path.dirname(os.path.dirname(renormalized.tokenizer_path)) != os.path.dirname(
      os.path.dirname(base.tokenizer_path))


def test_max_train_examples_subsamples_deterministically(data_dir, tmp_path):
  config = _config(data_dir, str(tmp_path / "cache"), max_train_examples=100)
  a = pipeline.get_datasets(config, log=lambda _: None)
  b = pipeline.get_datasets(config, log=lambda _: None)
  assert len(a.splits["train"]) == 100
  np.testing.assert_array_equal(a.splits["train"].tokens, b.splits["train"].tokens)
  assert len(a.splits["validation"]) == a.summary["rows"]["validation"]


def test_synthetic_and_unknown_dataset():
  config = sent140.get_config()
  config.dataset = "synthetic"
  config.max_length = 10
  assert pipeline.get_datasets(config).splits["train"].tokens.shape[1] == 10
  config.dataset = "imdb"
  with pytest.raises(ValueError, match="synthetic"):
    pipeline.get_datasets(config)


def test_prepared_data_loads_without_raw_files(data_dir, tmp_path):
  cache = str(tmp_path / "cache")
  built = pipeline.get_datasets(_config(data_dir, cache), log=lambda _: None)
  empty = tmp_path / "no_raw_data"
  empty.mkdir()
  moved = pipeline.get_datasets(_config(str(empty), cache), log=lambda _: None)  # E.g. on a GPU box.
  assert moved.tokenizer_path == built.tokenizer_path
  np.testing.assert_array_equal(moved.splits["train"].tokens, built.splits["train"].tokens)
  with pytest.raises(sources.DataNotFoundError, match="not found"):
    pipeline.get_datasets(_config(str(empty), cache, vocab_size=300), log=lambda _: None)


def test_prepare_data_summary_text(data_dir, tmp_path):
  from train.data import summary as summary_lib
  datasets = pipeline.get_datasets(_config(data_dir, str(tmp_path / "cache")), log=lambda _: None)
  assert datasets.summary["cache_bytes"]["train"] > 0
  text = summary_lib.format_summary(datasets.summary)
  for expected in ("train", "validation", "test", "manual_test", "duplicates", "malformed rows skipped: 2",
                   "vocab size", "longer than max_length=16"):
    assert expected in text


def test_standalone_tfds_builder_reads_the_manual_dir(data_dir, tmp_path):
  import tensorflow_datasets as tfds
  from train.data import sentiment140_builder
  builder = sentiment140_builder.Sentiment140Mamba(
      data_dir=str(tmp_path / "tfds"), config=sentiment140_builder.config_for((0.8, 0.1, 0.1)),
      file_format="array_record")
  builder.download_and_prepare(download_config=tfds.download.DownloadConfig(manual_dir=data_dir))
  splits = builder.info.splits
  assert {name: splits[name].num_examples for name in SPLIT_NAMES} == {
      "train": 483, "validation": 60, "test": 60, "manual_test": 3}
  source = builder.as_data_source(split="test")
  example = source[0]
  assert set(example) == {"text", "normalized_text", "label"}
  assert example["normalized_text"].decode() == normalization.normalize(example["text"].decode())


def test_later_stages_read_the_tfds_dataset_not_the_raw_files(data_dir, tmp_path, monkeypatch):
  cache = str(tmp_path / "cache")
  base = pipeline.get_datasets(_config(data_dir, cache), log=lambda _: None)

  def fail(*args, **kwargs):
    raise AssertionError("read the raw files although the TFDS dataset is there")
  monkeypatch.setattr(records_lib, "build_records", fail)
  other_vocab = pipeline.get_datasets(_config(data_dir, cache, vocab_size=350, max_length=8), log=lambda _: None)
  assert other_vocab.summary["tfds_dir"] == base.summary["tfds_dir"]
  assert other_vocab.summary["rows"] == base.summary["rows"]
  assert other_vocab.summary["malformed_by_reason"] == base.summary["malformed_by_reason"]
  np.testing.assert_array_equal(other_vocab.splits["test"].labels, base.splits["test"].labels)
  assert other_vocab.splits["test"].texts == base.splits["test"].texts


def test_fast_serializer_matches_tfds_own_encoding():
  from tensorflow_datasets.proto import tf_example_pb2
  from train.data import sentiment140_builder
  features = sentiment140_builder.features()
  for text, normalized, label in [("I love it", "i love it", 1), ("donï¿½t \u00e9 \U0001F600", "don\ufffdt", 0),
                                  ("x" * 200, "x" * 20000, 2), ("", "", 0)]:
    ours = sentiment140_builder.serialize_example(text, normalized, label)
    theirs = features.serialize_example({"text": text, "normalized_text": normalized, "label": label})
    assert tf_example_pb2.Example.FromString(ours) == tf_example_pb2.Example.FromString(theirs)
    decoded = features.deserialize_example_np(ours)
    assert (decoded["text"].decode(), decoded["normalized_text"].decode(), int(decoded["label"])) == (
        text, normalized, label)
