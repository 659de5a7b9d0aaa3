"""Finding and reading the raw files: schema checks, malformed-row counts, zip, .gz, errors."""

import gzip
import os
import pathlib
import zipfile

import numpy as np
import pytest

from train.data import sources

REPO = pathlib.Path(__file__).resolve().parents[1]
REAL_DATA_DIR = os.environ.get(sources.ENV_DATA_DIR, str(REPO.parent / "shared" / "data" / "sentiment140"))

GOOD_ROWS = [
    b'"0","1","Mon Apr 06 22:19:45 PDT 2009","NO_QUERY","a","@bob sad caf\xe9 day"',
    b'"4","","","NO_QUERY","","happy, \xabquoted\xbb ""day"""',  # Empty id/date/user are fine.
    b'"0","3","d","NO_QUERY","c","multi\nline text"',
]
MALFORMED_ROWS = [
    b'"0","4","d","NO_QUERY","c"',  # 5 columns.
    b'"0","4","d","NO_QUERY","c","text","extra"',  # 7 columns.
    b'"3","5","d","NO_QUERY","c","unknown polarity"',
    b'"x","5","d","NO_QUERY","c","unknown polarity"',
    b'"4","6","d","NO_QUERY","c","   "',  # Empty text.
    b'"2","7","d","NO_QUERY","c","neutral in the training file"',
]
MANUAL_ROWS = [
    b'"4","3","Mon May 11 03:17:40 UTC 2009","kindle2","tpryan","I love my Kindle2"',
    b'"2","4","Mon May 11 03:18:03 UTC 2009","kindle2","vcu451","Reading my kindle2"',
    b'"0","5","Mon May 11 03:18:54 UTC 2009","kindle2","chadfu","awful"',
]


def _csv_bytes(rows):
  return b"\n".join(rows) + b"\n"


def _write_folder(folder, train_name="training.custom.csv"):
  folder.mkdir(exist_ok=True)
  train = _csv_bytes(GOOD_ROWS[:1] + MALFORMED_ROWS + GOOD_ROWS[1:])
  if train_name.endswith(".gz"):
    (folder / train_name).write_bytes(gzip.compress(train))
  else:
    (folder / train_name).write_bytes(train)
  (folder / sources.MANUAL_TEST_CSV).write_bytes(_csv_bytes(MANUAL_ROWS))
  return folder


def _check_training_rows(rows):
  assert rows.texts == ["@bob sad café day", 'happy, «quoted» "day"', "multi\nline text"]
  np.testing.assert_array_equal(rows.labels, [0, 1, 0])
  assert rows.labels.dtype == np.int32
  assert rows.malformed == {"blank_line": 0, "wrong_column_count": 2, "unknown_label": 2, "empty_text": 1,
                            "neutral_in_training": 1, "invalid_utf8": 0, "unterminated_quote": 0,
                            "field_too_large": 0, "unparsable_row": 0}
  assert rows.malformed_lines == {"wrong_column_count": [2, 3], "unknown_label": [4, 5], "empty_text": [6],
                                  "neutral_in_training": [7]}
  assert rows.num_malformed == 6
  np.testing.assert_array_equal(rows.row_numbers, [1, 8, 9])


@pytest.mark.parametrize("train_name", ["training.custom.csv", "training.custom.csv.gz"])
def test_reads_plain_and_gzip_csv_and_counts_malformed_rows(tmp_path, train_name):
  folder = _write_folder(tmp_path / "data", train_name)
  files = sources.find_sources(str(folder), download=False)
  assert files.train.endswith(train_name) and files.train_member is None
  train, manual = sources.read_sources(files)
  _check_training_rows(train)
  np.testing.assert_array_equal(manual.labels, [1, 2, 0])  # Polarity 4 -> 1, 2 -> 2 (neutral), 0 -> 0.
  assert manual.num_malformed == 0


def test_label_mapping():
  assert sources.POLARITY_TO_LABEL == {"0": 0, "4": 1, "2": 2}
  rows = sources.parse_rows(['"4","","","","","a"', '"0","","","","","b"', '"2","","","","","c"'],
                            "memory", allow_neutral=True)
  np.testing.assert_array_equal(rows.labels, [1, 0, 2])


def test_official_file_names_win_over_other_csvs(tmp_path):
  folder = _write_folder(tmp_path / "data", "training.other.csv")
  (folder / sources.OFFICIAL_TRAIN_CSV).write_bytes(_csv_bytes(GOOD_ROWS))
  assert sources.find_sources(str(folder), download=False).train.endswith(sources.OFFICIAL_TRAIN_CSV)


def test_official_zip_is_checksummed(tmp_path):
  folder = tmp_path / "data"
  folder.mkdir()
  with zipfile.ZipFile(folder / sources.OFFICIAL_ZIP, "w", zipfile.ZIP_DEFLATED) as archive:
    archive.writestr(sources.OFFICIAL_TRAIN_CSV, _csv_bytes(GOOD_ROWS[:1] + MALFORMED_ROWS + GOOD_ROWS[1:]))
    archive.writestr(sources.MANUAL_TEST_CSV, _csv_bytes(MANUAL_ROWS))
  files = sources.find_sources(str(folder), download=False)
  assert files.train_member == sources.OFFICIAL_TRAIN_CSV
  with pytest.raises(ValueError, match="sha256"):
    sources.read_sources(files)  # A fake zip is not the official one.
  train, manual = sources.read_sources(files, verify_zip=False)
  _check_training_rows(train)
  assert len(manual.texts) == 3


def test_missing_files_name_folder_and_expected_files(tmp_path):
  folder = tmp_path / "empty"
  folder.mkdir()
  with pytest.raises(sources.DataNotFoundError) as error:
    sources.find_sources(str(folder), download=False)
  message = str(error.value)
  for expected in (str(folder), sources.OFFICIAL_ZIP, sources.OFFICIAL_TRAIN_CSV, sources.MANUAL_TEST_CSV,
                   sources.OFFICIAL_URL):
    assert expected in message
  (folder / "training.x.csv").write_bytes(_csv_bytes(GOOD_ROWS))
  with pytest.raises(sources.DataNotFoundError, match=sources.MANUAL_TEST_CSV):
    sources.find_sources(str(folder), download=False)


def test_offline_download_fails_with_instructions(tmp_path):
  with pytest.raises(sources.DataNotFoundError, match="downloading .* failed"):
    sources.download_official_zip(str(tmp_path), url="http://127.0.0.1:9/trainingandtestdata.zip", timeout_s=2)
  assert not list(tmp_path.iterdir())  # No partial file left behind.


def test_data_dir_precedence(monkeypatch, tmp_path):
  monkeypatch.setenv(sources.ENV_DATA_DIR, str(tmp_path / "env"))
  assert sources.resolve_data_dir(str(tmp_path / "cfg")) == str(tmp_path / "cfg")
  assert sources.resolve_data_dir(None) == str(tmp_path / "env")
  monkeypatch.delenv(sources.ENV_DATA_DIR)
  assert sources.resolve_data_dir(None) == os.path.expanduser(sources.TFDS_MANUAL_DIR)


@pytest.mark.real_data
def test_real_manual_test_set():
  path = os.path.join(REAL_DATA_DIR, sources.MANUAL_TEST_CSV)
  if not os.path.isfile(path):
    pytest.skip(f"{path} not found (set ${sources.ENV_DATA_DIR} to the Sentiment140 folder)")
  rows = sources.read_csv(path, allow_neutral=True)
  assert len(rows.texts) == 498 and rows.num_malformed == 0
  assert np.bincount(rows.labels).tolist() == [177, 182, 139]  # negative, positive, neutral.
