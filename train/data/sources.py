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
A file that starts with a byte order mark (UTF-8, UTF-16 or UTF-32, see
``train.data.byte_order_marks``) is read in the encoding the mark names.
The file is read line by line and each line is parsed on its own, so one bad row can never
hide the good rows after it: a line that ends inside a quoted field is joined with the next
lines (a text with a line break) only while those lines are not valid rows themselves, at
most ``MAX_CONTINUATION_LINES`` of them. Every line that is not used is counted by reason
(``MALFORMED_REASONS``), with the line numbers of the first few.
"""

from __future__ import annotations

import contextlib
import csv
import dataclasses
import gzip
import hashlib
import io
import os
import pathlib
import urllib.request
import zipfile
from typing import Iterable, Optional

import numpy as np
from tqdm import tqdm

from train.data import byte_order_marks

OFFICIAL_URL = "http://cs.stanford.edu/people/alecmgo/trainingandtestdata.zip"
OFFICIAL_ZIP = "trainingandtestdata.zip"
OFFICIAL_ZIP_SHA256 = "004a3772c8a7ff9bbfeb875880f47f0679d93fc63e5cf9cff72d54a8a6162e57"
OFFICIAL_TRAIN_CSV = "training.1600000.processed.noemoticon.csv"
MANUAL_TEST_CSV = "testdata.manual.2009.06.14.csv"
TRAIN_GLOBS = ("training*.csv", "training*.csv.gz")
ENV_DATA_DIR = "SENT140_DATA_DIR"
TFDS_MANUAL_DIR = "~/tensorflow_datasets/downloads/manual"

NUM_COLUMNS = 6
POLARITY_TO_LABEL = {"0": 0, "4": 1, "2": 2}  # negative, positive, neutral
MALFORMED_REASONS = ("wrong_column_count", "unknown_polarity", "empty_text", "neutral_in_training",
                     "unterminated_quote", "field_too_large", "unparseable")
MAX_CONTINUATION_LINES = 8  # Lines a quoted text may span (the real files have none).
FIRST_LINES_KEPT = 5  # Line numbers kept per malformed reason.


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


def _parse_line(text: str) -> tuple[Optional[list[str]], Optional[str], bool]:
  """One CSV record's text -> (fields, error reason, ends inside a quoted field)."""
  try:
    fields = next(csv.reader((text,)), [])
  except csv.Error as error:
    return None, "field_too_large" if "field larger" in str(error) else "unparseable", False
  open_quote = bool(fields) and text.endswith("\n") and fields[-1].endswith("\n")
  return fields, None, open_quote


def _check_row(fields: list[str], allow_neutral: bool) -> tuple[Optional[int], Optional[str]]:
  """6 fields -> (label, None) if usable, else (None, reason)."""
  if len(fields) != NUM_COLUMNS:
    return None, "wrong_column_count"
  label = POLARITY_TO_LABEL.get(fields[0].strip())
  if label is None:
    return None, "unknown_polarity"
  if label == 2 and not allow_neutral:
    return None, "neutral_in_training"
  if not fields[5].strip():
    return None, "empty_text"
  return label, None


class _RowCollector:
  """Accepted rows and malformed-line counts of one file."""

  def __init__(self, allow_neutral: bool):
    self.allow_neutral = allow_neutral
    self.texts, self.labels, self.row_numbers = [], [], []
    self.malformed = dict.fromkeys(MALFORMED_REASONS, 0)
    self.malformed_lines = {reason: [] for reason in MALFORMED_REASONS}

  def reject(self, line_number: int, reason: str) -> None:
    self.malformed[reason] += 1
    if len(self.malformed_lines[reason]) < FIRST_LINES_KEPT:
      self.malformed_lines[reason].append(line_number)

  def offer(self, line_number: int, fields: Optional[list[str]], error: Optional[str]) -> bool:
    """Adds the row, or counts it as malformed; returns whether it was used."""
    label, reason = (None, error) if error else _check_row(fields, self.allow_neutral)
    if reason:
      self.reject(line_number, reason)
      return False
    self.texts.append(fields[5])
    self.labels.append(label)
    self.row_numbers.append(line_number)
    return True

  def reject_open_record(self, open_record: list[tuple[int, str]]) -> None:
    """A record whose quote never closed: its first line is unterminated, the others count alone."""
    self.reject(open_record[0][0], "unterminated_quote")
    for line_number, text in open_record[1:]:
      fields, error, is_open = _parse_line(text)
      self.offer(line_number, fields, error or ("unterminated_quote" if is_open else None))


def parse_rows(lines: Iterable[str], source: str, *, allow_neutral: bool) -> RawRows:
  """Parses 6-column Sentiment140 CSV lines one by one; skips and counts malformed lines.

  ``lines`` keep their line endings (split on "\\n" only).
  """
  rows = _RowCollector(allow_neutral)
  open_record: list[tuple[int, str]] = []  # (line number, text) of a record whose quote is open.
  for line_number, line in enumerate(lines, start=1):
    if open_record:
      alone, alone_error, alone_open = _parse_line(line)
      if not alone_error and not alone_open and _check_row(alone, allow_neutral)[0] is not None:
        rows.reject_open_record(open_record)  # A valid row never continues a broken one.
        open_record = []
      else:
        open_record.append((line_number, line))
        fields, error, still_open = _parse_line("".join(text for _, text in open_record))
        if still_open and len(open_record) <= MAX_CONTINUATION_LINES:
          continue
        if still_open:
          rows.reject_open_record(open_record)
        else:
          rows.offer(open_record[0][0], fields, error)
        open_record = []
        continue
    fields, error, is_open = _parse_line(line)
    if is_open:
      open_record = [(line_number, line)]
      continue
    rows.offer(line_number, fields, error)
  if open_record:
    rows.reject_open_record(open_record)
  return RawRows(texts=rows.texts, labels=np.asarray(rows.labels, np.int32),
                 row_numbers=np.asarray(rows.row_numbers, np.int64), malformed=rows.malformed,
                 source=source, malformed_lines={k: v for k, v in rows.malformed_lines.items() if v})


def read_csv(path: str, member: Optional[str] = None, *, allow_neutral: bool) -> RawRows:
  """Reads one CSV: plain, .gz, or a member of a zip (latin-1, or the encoding of its byte order mark)."""
  source = f"{path}:{member}" if member else path
  try:
    with contextlib.ExitStack() as stack:
      if member is not None:
        raw = stack.enter_context(stack.enter_context(zipfile.ZipFile(path)).open(member))
      elif path.endswith(".gz"):
        raw = stack.enter_context(gzip.open(path, "rb"))
      else:
        raw = stack.enter_context(open(path, "rb"))
      raw = io.BufferedReader(raw) if not hasattr(raw, "peek") else raw
      marked = byte_order_marks.detect(raw.peek(4)[:4])
      encoding = marked[1] if marked else "latin-1"
      # Invalid bytes after a UTF mark: replaced (U+FFFD), the row kept.
      stream = io.TextIOWrapper(raw, encoding=encoding, errors="replace", newline="\n")
      lines = tqdm(stream, desc=f"read {os.path.basename(member or path)}", unit=" rows", unit_scale=True,
                   mininterval=1.0)
      return parse_rows(lines, source, allow_neutral=allow_neutral)
  except (OSError, zipfile.BadZipFile, csv.Error) as error:
    raise ValueError(f"cannot read {source}: {error}") from None


def read_sources(files: SourceFiles, *, verify_zip: bool = True) -> tuple[RawRows, RawRows]:
  """(training rows, manual test rows) of the chosen files."""
  if files.train_member is not None and verify_zip:
    verify_sha256(files.train, OFFICIAL_ZIP_SHA256)
  train = read_csv(files.train, files.train_member, allow_neutral=False)
  manual = read_csv(files.manual_test, files.manual_test_member, allow_neutral=True)
  if not train.texts:
    raise ValueError(f"{train.source}: no valid rows (malformed: {train.malformed})")
  return train, manual
