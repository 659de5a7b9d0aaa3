"""Finding and reading the raw Sentiment140 files.

Accepted, in this order of preference, inside the data folder:
  1. the official ``trainingandtestdata.zip`` (sha256 verified);
  2. the extracted ``training.1600000.processed.noemoticon.csv`` (or ``.csv.gz``);
  3. any other ``training*.csv`` / ``training*.csv.gz`` in the same 6-column schema
     (e.g. ``training.1600000.reconstructed.csv.gz``, whose id/date/user may be empty);
plus the manual test set ``testdata.manual.2009.06.14.csv`` (from the zip or the folder).
The folder is ``config.data_dir``, else $SENT140_DATA_DIR, else the TFDS manual-download
folder. If none holds the files, the official zip is downloaded there; offline, a
``DataNotFoundError`` says which folder, which file names and where to get them.

CSV schema (no header, latin-1, fields quoted): polarity (0/2/4), id, date, query, user, text.
The files are read by ``train.data.labelled_rows`` (the reader ``train.evaluate`` and the
user's own files share): a byte order mark names the encoding, one bad row never hides the
good rows after it, and every line that is not used is counted by reason
(``MALFORMED_REASONS`` = ``labelled_rows.BAD_ROW_REASONS``), with the line numbers of the first few.
"""

from __future__ import annotations

import dataclasses
import hashlib
import os
import pathlib
import urllib.request
import zipfile
from typing import Iterable, Optional

import numpy as np

from train.data import labelled_rows

OFFICIAL_URL = "http://cs.stanford.edu/people/alecmgo/trainingandtestdata.zip"
OFFICIAL_ZIP = "trainingandtestdata.zip"
OFFICIAL_ZIP_SHA256 = "004a3772c8a7ff9bbfeb875880f47f0679d93fc63e5cf9cff72d54a8a6162e57"
OFFICIAL_TRAIN_CSV = "training.1600000.processed.noemoticon.csv"
MANUAL_TEST_CSV = "testdata.manual.2009.06.14.csv"
TRAIN_GLOBS = ("training*.csv", "training*.csv.gz")
ENV_DATA_DIR = "SENT140_DATA_DIR"
TFDS_MANUAL_DIR = "~/tensorflow_datasets/downloads/manual"

NUM_COLUMNS = labelled_rows.SENTIMENT140_NUM_COLUMNS
POLARITY_TO_LABEL = {"0": 0, "4": 1, "2": 2}  # negative, positive, neutral (labelled_rows.LABEL_SCHEMES["0/2/4"]).
MALFORMED_REASONS = labelled_rows.BAD_ROW_REASONS  # The project's one vocabulary of unused-row reasons.


class DataNotFoundError(FileNotFoundError):
  """No usable Sentiment140 files; the message says where to put which files."""


@dataclasses.dataclass
class RawRows:
  """Rows of one CSV that passed the checks.

  Attributes:
    texts: N raw texts (latin-1 decoded, unmodified).
    labels: np.int32 (N,): 0 negative, 1 positive, 2 neutral.
    row_numbers: np.int64 (N,): 1-based line number of each row (its first line) in its file.
    malformed: reason -> number of skipped lines.
    source: where the rows came from ("path" or "zip:member").
    malformed_lines: reason -> line numbers of the first FIRST_LINES_KEPT skipped lines.
  """

  texts: list[str]
  labels: np.ndarray
  row_numbers: np.ndarray
  malformed: dict[str, int]
  source: str
  malformed_lines: dict[str, list[int]] = dataclasses.field(default_factory=dict)

  @property
  def num_malformed(self) -> int:
    return sum(self.malformed.values())


@dataclasses.dataclass(frozen=True)
class SourceFiles:
  """The files chosen in a data folder."""

  data_dir: str
  train: str  # A path; for the zip "<zip path>" and train_member is set.
  manual_test: str
  train_member: Optional[str] = None  # Member names inside the official zip.
  manual_test_member: Optional[str] = None

  def fingerprint(self) -> dict:
    """Identity of the inputs (file names, sizes and sha256) for cache keys."""
    paths = sorted({self.train, self.manual_test})
    return {os.path.basename(p): {"bytes": os.path.getsize(p), "sha256": sha256_of(p)} for p in paths}


def sha256_of(path: str) -> str:
  digest = hashlib.sha256()
  with open(path, "rb") as f:
    for block in iter(lambda: f.read(1 << 22), b""):
      digest.update(block)
  return digest.hexdigest()


def resolve_data_dir(config_data_dir: Optional[str] = None) -> str:
  """config.data_dir, else $SENT140_DATA_DIR, else the TFDS manual-download folder."""
  folder = config_data_dir or os.environ.get(ENV_DATA_DIR) or TFDS_MANUAL_DIR
  return os.path.abspath(os.path.expanduser(folder))


def data_dir_origin(config_data_dir: Optional[str] = None) -> Optional[str]:
  """Who chose the data folder: "config.data_dir", "$SENT140_DATA_DIR", or None (the default folder).

  A folder someone chose is never created (a typo must not become an empty folder and a download).
  """
  if config_data_dir:
    return "config.data_dir"
  if os.environ.get(ENV_DATA_DIR):
    return f"${ENV_DATA_DIR}"
  return None


def _missing_message(data_dir: str, why: str) -> str:
  return (
      f"Sentiment140 files not found in {data_dir} ({why}).\n"
      f"Put one of these in that folder:\n"
      f"  - {OFFICIAL_ZIP} (official, from {OFFICIAL_URL}), or\n"
      f"  - {OFFICIAL_TRAIN_CSV} and {MANUAL_TEST_CSV} (the zip's contents), or\n"
      f"  - any training*.csv[.gz] in the same 6-column schema plus {MANUAL_TEST_CSV}\n"
      f"or point config.data_dir / ${ENV_DATA_DIR} at a folder that holds them.")


def find_sources(data_dir: str, *, download: bool = True) -> SourceFiles:
  """Chooses the files in ``data_dir``; downloads the official zip there if nothing is found."""
  folder = pathlib.Path(data_dir)
  zip_path = folder / OFFICIAL_ZIP
  if zip_path.is_file():
    return _zip_sources(str(folder), str(zip_path))
  manual = folder / MANUAL_TEST_CSV
  train = None
  for name in (OFFICIAL_TRAIN_CSV, OFFICIAL_TRAIN_CSV + ".gz"):
    if (folder / name).is_file():
      train = folder / name
      break
  if train is None and folder.is_dir():
    candidates = sorted({p for g in TRAIN_GLOBS for p in folder.glob(g) if p.is_file()})
    train = candidates[0] if candidates else None
  if train is not None and manual.is_file():
    return SourceFiles(data_dir=str(folder), train=str(train), manual_test=str(manual))
  if train is None and not manual.is_file() and download:
    return _zip_sources(str(folder), download_official_zip(str(folder)))
  missing = [name for name, ok in (("a training CSV", train is not None), (MANUAL_TEST_CSV, manual.is_file())) if not ok]
  raise DataNotFoundError(_missing_message(str(folder), "missing: " + ", ".join(missing)))


def _zip_sources(data_dir: str, zip_path: str) -> SourceFiles:
  with zipfile.ZipFile(zip_path) as archive:
    names = set(archive.namelist())
  for member in (OFFICIAL_TRAIN_CSV, MANUAL_TEST_CSV):
    if member not in names:
      raise DataNotFoundError(f"{zip_path} has no member {member} (members: {sorted(names)})")
  return SourceFiles(data_dir=data_dir, train=zip_path, manual_test=zip_path,
                     train_member=OFFICIAL_TRAIN_CSV, manual_test_member=MANUAL_TEST_CSV)


def download_official_zip(data_dir: str, url: str = OFFICIAL_URL, timeout_s: float = 30.0) -> str:
  """Downloads the official zip into ``data_dir`` and checks its sha256; offline -> DataNotFoundError."""
  target = os.path.join(data_dir, OFFICIAL_ZIP)
  partial = target + ".partial"
  try:
    os.makedirs(data_dir, exist_ok=True)
    with urllib.request.urlopen(url, timeout=timeout_s) as response, open(partial, "wb") as out:
      for block in iter(lambda: response.read(1 << 20), b""):
        out.write(block)
  except OSError as error:
    if os.path.exists(partial):
      os.remove(partial)
    raise DataNotFoundError(
        _missing_message(data_dir, f"and downloading {url} failed: {error}")) from None
  verify_sha256(partial, OFFICIAL_ZIP_SHA256)
  os.replace(partial, target)
  return target


def verify_sha256(path: str, expected: str) -> None:
  actual = sha256_of(path)
  if actual != expected:
    raise ValueError(
        f"{path}: sha256 {actual} does not match the official {expected}; "
        f"the file is damaged or not the official one (re-download it from {OFFICIAL_URL}).")


def _raw_rows(rows: labelled_rows.LabelledRows) -> RawRows:
  return RawRows(texts=rows.texts, labels=rows.labels, row_numbers=rows.row_numbers, malformed=rows.bad_rows,
                 source=rows.source, malformed_lines=rows.bad_lines)


def parse_rows(lines: Iterable[str], source: str, *, allow_neutral: bool) -> RawRows:
  """Parses 6-column Sentiment140 CSV lines (``train.data.labelled_rows``, scheme 0/2/4); skips and counts
  malformed lines.

  ``lines`` keep their line endings (split on "\\n" only).
  """
  return _raw_rows(labelled_rows.parse_lines(lines, source, labels="0/2/4", neutral_allowed=allow_neutral))


def read_csv(path: str, member: Optional[str] = None, *, allow_neutral: bool) -> RawRows:
  """Reads one CSV: plain, .gz, or a member of a zip (latin-1, or the encoding of its byte order mark)."""
  return _raw_rows(labelled_rows.read_labelled_file(path, member=member, encoding="latin-1", labels="0/2/4",
                                                    neutral_allowed=allow_neutral, progress=True))


def read_sources(files: SourceFiles, *, verify_zip: bool = True) -> tuple[RawRows, RawRows]:
  """(training rows, manual test rows) of the chosen files."""
  if files.train_member is not None and verify_zip:
    verify_sha256(files.train, OFFICIAL_ZIP_SHA256)
  train = read_csv(files.train, files.train_member, allow_neutral=False)
  manual = read_csv(files.manual_test, files.manual_test_member, allow_neutral=True)
  if not train.texts:
    raise ValueError(f"{train.source}: no valid rows (malformed: {train.malformed})")
  return train, manual
