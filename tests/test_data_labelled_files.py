"""The user's own labelled files: the shared reader's reasons, 2- and 3-class files through the one
data path (TFDS dataset, tokenizer, token cache), splits, subsampling and the one-line errors."""

import os

import numpy as np
import pytest

from configs import sent140
from train.data import labelled_files, labelled_rows, pipeline, records as records_lib

WORDS = {
    "negative": "bad sad awful hate rain tired angry".split(),
    "positive": "good happy love great sun fun nice".split(),
    "neutral": "the table is a day at home work".split(),
}


def _texts(label, n, seed):
  rng = np.random.default_rng(seed)
  return [" ".join(rng.choice(WORDS[label], size=int(rng.integers(3, 12)))) + f" #{seed}x{i}" for i in range(n)]


def _write_tsv(path, classes, per_class, seed=0, spell=None):
  """A header "label<TAB>text" file with ``per_class`` rows of each class (labels spelled by ``spell``)."""
  spell = spell or (lambda name: name)
  rows = [(spell(label), text) for k, label in enumerate(classes)
          for text in _texts(label, per_class, seed * 10 + k)]
  order = np.random.default_rng(seed).permutation(len(rows))
  path.write_text("label\ttext\n" + "".join(f"{rows[i][0]}\t{rows[i][1]}\n" for i in order), encoding="utf-8")
  return str(path)


def _config(tmp_path, train_file, **overrides):
  config = sent140.get_config()
  config.dataset = "labelled_files"
  config.train_file = train_file
  config.text_column = "text"
  config.label_column = "label"
  config.prepared_dir = str(tmp_path / "cache")
  config.vocab_size = 300
  config.max_length = 16
  config.split_fractions = (0.8, 0.1, 0.1)
  config.update(overrides)
  return config


def test_a_text_with_line_breaks_is_one_row_even_when_its_last_line_looks_like_one(tmp_path):
  """Text before label: a quoted text's last line (``line break",positive``) parses as a row on its own."""
  path = tmp_path / "mine.csv"
  path.write_text("".join([
      "text,label\n",  # 1: header.
      '"a text with a\n', 'line break",positive\n',  # 2-3: one row.
      '"three\n', "lines\n", 'the end",negative\n',  # 4-6: one row.
      'say ""hi"",positive\n',  # 7: quotes that pair up: a row of its own.
      '"unterminated,negative\n',  # 8: unterminated_quote (must not swallow 9).
      "fine row,negative\n",  # 9.
  ]), encoding="utf-8")
  rows = labelled_rows.read_labelled_file(str(path), text_column="text", label_column="label")
  assert rows.texts == ["a text with a\nline break", "three\nlines\nthe end", 'say ""hi""', "fine row"]
  assert rows.labels.tolist() == [1, 0, 1, 0] and rows.row_numbers.tolist() == [2, 4, 7, 9]
  assert {k: v for k, v in rows.bad_rows.items() if v} == {"unterminated_quote": 1}
  assert rows.bad_lines == {"unterminated_quote": [8]}


def test_shared_reader_counts_every_reason_with_line_numbers(tmp_path):
  path = tmp_path / "mine.csv"
  lines = [
      "label,text\n",  # 1: header.
      "positive,good day\n",  # 2.
      "\n",  # 3: blank_line.
      "negative\n",  # 4: wrong_column_count.
      "positve,typo label\n",  # 5: unknown_label.
      "neutral,   \n",  # 6: empty_text.
      'negative,"unterminated\n',  # 7: unterminated_quote (must not swallow 8).
      "negative,so bad\n",  # 8.
      'positive,"a text with a\n', 'line break"\n',  # 9-10: one row.
  ]
  path.write_bytes("".join(lines).encode("utf-8") + b"neutral,caf\xe9 latin\n")  # 11: invalid_utf8 when UTF-8 forced.
  rows = labelled_rows.read_labelled_file(str(path), text_column="text", label_column="label", encoding="utf-8")
  assert rows.texts == ["good day", "so bad", "a text with a\nline break"]
  assert rows.labels.tolist() == [1, 0, 1] and rows.row_numbers.tolist() == [2, 8, 9]
  assert rows.class_names == ("negative", "positive") and rows.label_scheme == "names"
  assert {k: v for k, v in rows.bad_rows.items() if v} == {
      "blank_line": 1, "wrong_column_count": 1, "unknown_label": 1, "empty_text": 1, "invalid_utf8": 1,
      "unterminated_quote": 1}
  assert rows.bad_lines == {"blank_line": [3], "wrong_column_count": [4], "unknown_label": [5], "empty_text": [6],
                            "invalid_utf8": [11], "unterminated_quote": [7]}
  assert rows.unknown_labels == {"positve": 1}
  assert set(rows.bad_rows) == set(labelled_rows.BAD_ROW_REASONS)
  # Arbitrary class names: "classes" (sorted ids); a given class list fixes the ids.
  named = labelled_rows.read_labelled_file(str(path), text_column="text", label_column="label", labels="classes")
  assert named.class_names == ("negative", "neutral", "positive", "positve")
  fixed = labelled_rows.read_labelled_file(str(path), text_column="text", label_column="label", labels="classes",
                                           class_names=("positive", "negative"))
  assert fixed.labels.tolist() == [0, 1, 0] and fixed.bad_rows["unknown_label"] == 3  # positve, 2 x neutral.


def test_two_class_file_builds_splits_and_reuses_the_cache(tmp_path, monkeypatch):
  train = _write_tsv(tmp_path / "two.tsv", ["negative", "positive"], 100, spell={"negative": "0", "positive": "1"}.get)
  config = _config(tmp_path, train)
  datasets = pipeline.get_datasets(config, log=lambda _: None)
  assert datasets.class_names == ("negative", "positive")
  assert set(datasets.splits) == {"train", "validation", "test"}
  summary = datasets.summary
  assert summary["dataset"] == "labelled_files" and summary["class_names"] == ["negative", "positive"]
  assert sum(summary["rows"].values()) == 200
  assert summary["rows_per_label"]["validation"] == {"negative": 10, "positive": 10}
  assert summary["sources"]["train_file"] == train
  assert datasets.splits["train"].tokens.shape == (160, 16)
  assert int(datasets.splits["train"].tokens.max()) < datasets.tokenizer.vocab_size
  # A rebuilt cache is not needed: nothing is read again.
  monkeypatch.setattr(labelled_files, "build_records", lambda *a, **k: pytest.fail("rebuilt"))
  again = pipeline.get_datasets(config, log=lambda _: None)
  np.testing.assert_array_equal(again.splits["test"].tokens, datasets.splits["test"].tokens)
  # max_train_examples: a deterministic subsample of the train split only.
  sub = pipeline.get_datasets(_config(tmp_path, train, max_train_examples=50), log=lambda _: None)
  sub2 = pipeline.get_datasets(_config(tmp_path, train, max_train_examples=50), log=lambda _: None)
  assert len(sub.splits["train"]) == 50 and len(sub.splits["validation"]) == 20
  np.testing.assert_array_equal(sub.splits["train"].tokens, sub2.splits["train"].tokens)


def test_three_class_file_with_validation_and_test_files(tmp_path):
  classes = ["negative", "positive", "neutral"]
  train = _write_tsv(tmp_path / "train.tsv", classes, 60, seed=1)
  validation = _write_tsv(tmp_path / "validation.tsv", classes, 5, seed=2)
  test = _write_tsv(tmp_path / "test.tsv", classes[:2], 4, seed=3)
  config = _config(tmp_path, train, validation_file=validation, test_file=test)
  datasets = pipeline.get_datasets(config, log=lambda _: None)
  assert datasets.class_names == ("negative", "positive", "neutral")  # Neutral is a learned class, id 2.
  assert {name: len(split) for name, split in datasets.splits.items()} == {"train": 180, "validation": 15, "test": 8}
  assert datasets.summary["rows_per_label"]["train"] == {"negative": 60, "positive": 60, "neutral": 60}
  # The validation and test files' texts never reach training.
  held_out = set(datasets.splits["validation"].texts) | set(datasets.splits["test"].texts)
  train_tokens = {tuple(row) for row in datasets.splits["train"].tokens.tolist()}
  assert not {tuple(row) for row in datasets.tokenizer.encode(sorted(held_out)).tolist()} & train_tokens
  # Arbitrary class names: sorted ids, stored in the prepared dataset.
  topics = _write_tsv(tmp_path / "topics.tsv", classes, 30, seed=4,
                      spell={"negative": "Bug", "positive": "feature", "neutral": "question"}.get)
  named = pipeline.get_datasets(_config(tmp_path, topics, label_scheme="classes"), log=lambda _: None)
  assert named.class_names == ("bug", "feature", "question")
  import tensorflow_datasets as tfds  # pylint: disable=import-outside-toplevel
  features = tfds.builder_from_directory(named.summary["tfds_dir"]).info.features
  assert features["label"].names == ["bug", "feature", "question"]


def _error(tmp_path, train, **overrides):
  with pytest.raises(ValueError) as error:
    labelled_files.build_records(labelled_files.find_files(_config(tmp_path, train, **overrides)), (0.8, 0.1, 0.1))
  message = str(error.value)
  assert "\n" not in message
  return message


def test_one_line_errors(tmp_path):
  one_class = _write_tsv(tmp_path / "one.tsv", ["positive"], 20)
  assert "of the class 'positive'; a classifier needs rows of at least 2 classes" in _error(tmp_path, one_class)
  unknown = tmp_path / "unknown.tsv"
  unknown.write_text("label\ttext\n0\tbad day\n4\tgood day\n7\tstrange\n7\tagain\n", encoding="utf-8")
  message = _error(tmp_path, str(unknown))
  assert "2 rows have a label outside the label scheme 0/2/4" in message and "'7' (2 rows)" in message
  assert "lines 4, 5" in message
  train = _write_tsv(tmp_path / "train.tsv", ["negative", "positive", "neutral"], 20, seed=1)
  binary_validation = _write_tsv(tmp_path / "validation.tsv", ["negative", "positive"], 5, seed=2)
  assert "its classes ['negative', 'positive'] differ from the train file's ['negative', 'positive', 'neutral']" in (
      _error(tmp_path, train, validation_file=binary_validation))
  binary_train = _write_tsv(tmp_path / "binary.tsv", ["negative", "positive"], 20, seed=3)
  neutral_test = _write_tsv(tmp_path / "test.tsv", ["neutral", "positive"], 3, seed=4)
  assert "outside the train file's classes ['negative', 'positive']: 'neutral' (3 rows)" in (
      _error(tmp_path, binary_train, test_file=neutral_test))
  tiny = _write_tsv(tmp_path / "tiny.tsv", ["negative", "positive"], 2, seed=5)
  assert "the validation split of" in _error(tmp_path, tiny) and "is empty" in _error(tmp_path, tiny)
  with pytest.raises(FileNotFoundError, match="config.test_file .*: no such file"):
    labelled_files.find_files(_config(tmp_path, train, test_file=str(tmp_path / "missing.tsv")))
  with pytest.raises(ValueError, match="not in the header"):
    labelled_files.build_records(labelled_files.find_files(_config(tmp_path, train, text_column="tweet")),
                                 (0.8, 0.1, 0.1))
