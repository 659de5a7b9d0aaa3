"""The one reader of labelled text files: Sentiment140's CSVs, ``train.evaluate``'s files, the user's own.

A file is a CSV or TSV (plain or ``.gz``, or a member of a zip) whose rows hold a text and a
label. Which columns: ``text_column`` / ``label_column``, each a header name or a 0-based
index (with a name the first record is the header); neither: the Sentiment140 6-column CSV
(no header: polarity, id, date, query, user, text; exactly 6 fields per row).

Labels (compared stripped and lowercased), ``labels=``:

* ``"0/2/4"`` (Sentiment140), ``"names"`` (negative/neutral/positive), ``"0/1"``
  (negative/positive): label ids 0 negative, 1 positive, 2 neutral, as everywhere in the
  project (``KNOWN_CLASS_NAMES``); the class names are negative, positive (and neutral when
  a kept row is neutral);
* ``"classes"``: every distinct value is a class; ids in sorted order of the values, or in
  the order of ``class_names`` when given (the train file's classes for its validation and
  test files, a model's classes for ``train.evaluate``);
* ``"auto"``: the known scheme the values fit (one of the three above); values that fit
  none or several are a ``UsageError`` (arbitrary class names need ``"classes"``: a typo
  must not become a class).

Encoding (``encoding=``): a byte order mark (``train.data.byte_order_marks``) always names
it (and is removed); else ``"auto"`` is UTF-8 if the whole file decodes as UTF-8, else
latin-1 (the official Sentiment140 files); ``"utf-8"`` / ``"latin-1"`` force one. Bytes that
are not UTF-8 in a UTF-8 file make their row ``invalid_utf8``.

The file is read line by line and each line is parsed on its own, so one bad row can never
hide the good rows after it: a line that ends inside a quoted field is joined with the next
lines (a text with a line break) only while those lines are not valid rows themselves, at
most ``MAX_CONTINUATION_LINES`` of them. A line with an odd number of quote characters is never
a row of its own (its quotes do not pair up: it ends or continues a quoted text, as in
``line break",positive`` after ``"a text with a``). Every line that is not used is counted by reason
(``BAD_ROW_REASONS``, the project's one vocabulary of them), with the line numbers of the
first ``FIRST_LINES_KEPT`` of each.

Texts without labels (``read_texts``, what ``train.predict --input`` reads): the same records and
reasons, streamed in file order with their fields; a .txt file is one text per line. Files are read
as streams (``open_text``): memory does not grow with the file.
Axes (``mamba_jax.notation``): N (the rows kept).
"""

from __future__ import annotations

import codecs
import contextlib
import csv
import dataclasses
import gzip
import io
import itertools
import os
import re
import zipfile
from typing import Callable, Iterable, Iterator, Optional, Sequence, Union

import numpy as np
from tqdm import tqdm

from train.data import byte_order_marks

ENCODINGS = ("utf-8", "latin-1")
SENTIMENT140_COLUMNS = (5, 0)  # (text, label) of the 6-column Sentiment140 CSV.
SENTIMENT140_NUM_COLUMNS = 6
SENTIMENT140_QUERY_COLUMN = 3  # The topic a tweet was found by (NO_QUERY in the training file).
KNOWN_CLASS_NAMES = ("negative", "positive", "neutral")  # Label id = index, for the known schemes.
NEUTRAL_ID = 2
# Known label scheme -> {label text (stripped, lowercased): label id}.
LABEL_SCHEMES = {
    "0/2/4": {"0": 0, "2": 2, "4": 1},
    "names": {"negative": 0, "neutral": 2, "positive": 1},
    "0/1": {"0": 0, "1": 1},
}
CLASSES_SCHEME = "classes"  # Every distinct label value is a class.
SCHEMES = ("auto", *LABEL_SCHEMES, CLASSES_SCHEME)
BAD_ROW_REASONS = ("blank_line", "wrong_column_count", "unknown_label", "empty_text", "neutral_in_training",
                   "invalid_utf8", "unterminated_quote", "field_too_large", "unparsable_row")
MAX_CONTINUATION_LINES = 8  # Lines a quoted text may span (the real files have none).
FIRST_LINES_KEPT = 5  # Line numbers kept per reason.
# surrogateescape decodes each invalid UTF-8 byte to a lone surrogate in U+DC80..U+DCFF.
UNDECODABLE = re.compile("[\udc80-\udcff]")

Column = Union[int, str]


class UsageError(ValueError):
  """The options do not fit the file (a missing column, ambiguous labels, ...)."""


@dataclasses.dataclass
class LabelledRows:
  """What was read from a labelled file.

  Attributes:
    texts: the N kept texts (raw, as decoded).
    labels: np.int32 (N,): ids into ``class_names``.
    row_numbers: np.int64 (N,): 1-based line number of each row (its first line) in the file.
    bad_rows: reason -> count of skipped lines (every reason of BAD_ROW_REASONS).
    bad_lines: reason -> line numbers of the first FIRST_LINES_KEPT skipped lines (reasons that occurred).
    encoding, encoding_detected: the encoding used, and whether it was detected (not forced).
    label_scheme: the scheme used (a LABEL_SCHEMES key or "classes").
    class_names: label id i is class_names[i].
    columns: {"text": ..., "label": ...} as given, or the Sentiment140 indexes.
    source: where the rows came from ("path" or "zip path:member").
    unknown_labels: label value -> count, of the rows counted as unknown_label (first 20 values).
    topics: the N query values of a Sentiment140 6-column file (its topic column), else None.
  """

  texts: list[str]
  labels: np.ndarray
  row_numbers: np.ndarray
  bad_rows: dict[str, int]
  bad_lines: dict[str, list[int]]
  encoding: str
  encoding_detected: bool
  label_scheme: str
  class_names: tuple[str, ...]
  columns: dict[str, Column]
  source: str
  unknown_labels: dict[str, int] = dataclasses.field(default_factory=dict)
  topics: Optional[list[str]] = None

  @property
  def num_bad(self) -> int:
    return sum(self.bad_rows.values())


def parse_column(spec: Optional[Column]) -> Optional[Column]:
  """A column: a 0-based index (5 or "5") or a header name ("text"); None or "" -> None."""
  if spec is None or spec == "":
    return None
  if isinstance(spec, int):
    return spec
  return int(spec) if spec.strip().isdigit() else spec


def pick_label_scheme(values: set[str], scheme: str) -> str:
  """The label scheme for these (stripped, lowercased) label texts; "auto" decides from them."""
  if scheme != "auto":
    if scheme not in SCHEMES:
      raise UsageError(f"the label scheme must be one of {', '.join(SCHEMES)}, got {scheme!r}")
    return scheme
  found = [name for name, mapping in LABEL_SCHEMES.items() if values & (set(mapping) - {"0"})]
  if not found:
    if values <= {"0"}:
      return "0/2/4"  # Only "0" (or no rows): negative in every scheme.
    raise UsageError(f"no label scheme fits the labels {sorted(values)[:10]}; expected 0/2/4, "
                     f"negative/neutral/positive or 0/1, or the scheme '{CLASSES_SCHEME}' (every distinct "
                     "value a class)")
  if len(found) > 1:
    raise UsageError(f"labels {sorted(values)[:10]} fit several schemes ({', '.join(found)}); choose one of "
                     f"{'|'.join(LABEL_SCHEMES)}")
  return found[0]


def _parse_line(text: str, delimiter: str) -> tuple[Optional[list[str]], Optional[str], bool]:
  """One CSV record's text -> (fields, error reason, ends inside a quoted field)."""
  try:
    fields = next(csv.reader((text,), delimiter=delimiter), [])
  except csv.Error as error:
    return None, "field_too_large" if "field larger" in str(error) else "unparsable_row", False
  open_quote = bool(fields) and text.endswith("\n") and fields[-1].endswith("\n")
  return fields, None, open_quote


class _Layout:
  """Which fields of a record are the text and the label, and what a usable record is."""

  def __init__(self, text_index: int, label_index: Optional[int], num_columns: Optional[int],
               mapping: Optional[dict[str, int]], neutral_allowed: bool):
    """``label_index`` None: the records hold texts only (``read_texts``)."""
    self.text_index, self.label_index, self.num_columns = text_index, label_index, num_columns
    self.mapping, self.neutral_allowed = mapping, neutral_allowed
    self.needed = max(text_index, text_index if label_index is None else label_index) + 1

  def column_count_ok(self, fields: list[str]) -> bool:
    return len(fields) == self.num_columns if self.num_columns else len(fields) >= self.needed

  def is_usable(self, fields: Optional[list[str]]) -> bool:
    """Whether the record would be kept (labels checked only when the scheme is fixed in advance)."""
    if not fields or not self.column_count_ok(fields) or not fields[self.text_index].strip():
      return False
    if self.label_index is None:
      return True
    label = fields[self.label_index].strip().lower()
    if self.mapping is None:
      return bool(label)
    return label in self.mapping and (self.neutral_allowed or self.mapping[label] != NEUTRAL_ID)


class _Collector:
  """Records that passed the column checks, and the counts of skipped lines."""

  def __init__(self, layout: Optional[_Layout]):
    self.layout = layout
    self.header: Optional[list[str]] = None
    self.rows: list[tuple[int, str, str]] = []  # (line number, text, label text)
    self.bad_rows = dict.fromkeys(BAD_ROW_REASONS, 0)
    self.bad_lines: dict[str, list[int]] = {reason: [] for reason in BAD_ROW_REASONS}
    self.topics: dict[int, str] = {}  # line number -> query, of the Sentiment140 6-column layout.

  def reject(self, line_number: int, reason: str) -> None:
    self.bad_rows[reason] += 1
    if len(self.bad_lines[reason]) < FIRST_LINES_KEPT:
      self.bad_lines[reason].append(line_number)

  def offer(self, line_number: int, fields: Optional[list[str]], error: Optional[str]) -> None:
    if error:
      self.reject(line_number, error)
    elif self.layout is None:  # The first record is the header.
      self.header = fields
    elif not fields:
      self.reject(line_number, "blank_line")
    elif not self.layout.column_count_ok(fields):
      self.reject(line_number, "wrong_column_count")
    else:
      self.rows.append((line_number, fields[self.layout.text_index],
                        fields[self.layout.label_index].strip().lower()))
      if self.layout.num_columns == SENTIMENT140_NUM_COLUMNS:
        self.topics[line_number] = fields[SENTIMENT140_QUERY_COLUMN]



def _records(lines: Iterable[str], delimiter: str,
             current_layout: Callable[[], Optional[_Layout]]) -> Iterator[tuple[int, Optional[list[str]], Optional[str]]]:
  """Every record of ``lines`` as (its first line number, fields, error reason or None), in file order.

  ``current_layout()``: the layout once known (None while the header is still to come); a line that
  follows an open quote is a row of its own when the layout finds it usable.
  """
  open_record: list[tuple[int, str]] = []  # (line number, text) of a record whose quote is open.
  for line_number, line in enumerate(lines, start=1):
    layout = current_layout()
    if open_record:
      alone, alone_error, alone_open = _parse_line(line, delimiter)
      stands_alone = not alone_error and not alone_open and line.count('"') % 2 == 0
      if stands_alone and layout is not None and layout.is_usable(alone):
        yield from _unterminated(open_record, delimiter)  # A valid row never continues a broken one.
        open_record = []
      else:
        open_record.append((line_number, line))
        fields, error, still_open = _parse_line("".join(text for _, text in open_record), delimiter)
        if still_open and len(open_record) <= MAX_CONTINUATION_LINES:
          continue
        if still_open:
          yield from _unterminated(open_record, delimiter)
        else:
          yield open_record[0][0], fields, error
        open_record = []
        continue
    fields, error, is_open = _parse_line(line, delimiter)
    if is_open:
      open_record = [(line_number, line)]
      continue
    yield line_number, fields, error
  if open_record:
    yield from _unterminated(open_record, delimiter)


def _unterminated(open_record: list[tuple[int, str]], delimiter: str) -> Iterator[tuple[int, Optional[list[str]], str]]:
  """A record whose quote never closed: its first line is unterminated, the others count alone."""
  yield open_record[0][0], None, "unterminated_quote"
  for line_number, text in open_record[1:]:
    fields, error, is_open = _parse_line(text, delimiter)
    yield line_number, fields, error or ("unterminated_quote" if is_open else None)


def _class_mapping(scheme: str, values: set[str], class_names: Optional[Sequence[str]]) -> dict[str, int]:
  """Label text -> id for ``scheme`` ("classes": by ``class_names`` if given, else the sorted values).

  A known scheme's ids are those of KNOWN_CLASS_NAMES (given ``class_names`` are a prefix of them:
  negative, positive[, neutral]).
  """
  if scheme != CLASSES_SCHEME:  # Given classes of a known scheme: its first len(class_names) ids.
    return {k: v for k, v in LABEL_SCHEMES[scheme].items() if not class_names or v < len(class_names)}
  names = [str(n).strip().lower() for n in class_names] if class_names else sorted(v for v in values if v)
  return {name: i for i, name in enumerate(names)}


def parse_lines(lines: Iterable[str], source: str, *, text_column: Optional[Column] = None,
                label_column: Optional[Column] = None, delimiter: str = ",", labels: str = "auto",
                class_names: Optional[Sequence[str]] = None, neutral_allowed: bool = True,
                encoding: str = "latin-1", encoding_detected: bool = False) -> LabelledRows:
  """Parses the lines of a labelled file (each keeping its "\\n"; see the module docstring).

  ``class_names``: the classes of a known scheme's ids or of "classes" (in id order); rows
  whose label is not one of them are ``unknown_label``. ``neutral_allowed`` False: neutral rows
  of a known scheme are ``neutral_in_training`` (Sentiment140's training file).

  Raises:
    UsageError: a column name not in the header, only one of the two columns, or labels that
      fit no scheme or several.
  """
  text_column, label_column = parse_column(text_column), parse_column(label_column)
  if (text_column is None) != (label_column is None):
    raise UsageError("give both the text column and the label column, or neither (the Sentiment140 6-column CSV)")
  sentiment140 = text_column is None
  if sentiment140:
    text_column, label_column = SENTIMENT140_COLUMNS
  scheme_known = labels in LABEL_SCHEMES or (labels == CLASSES_SCHEME and class_names)
  mapping = _class_mapping(labels, set(), class_names) if scheme_known else None

  def make_layout(header: list[str]) -> _Layout:
    indexes = []
    for column in (text_column, label_column):
      if isinstance(column, int):
        indexes.append(column)
      elif column in header:
        indexes.append(header.index(column))
      else:
        raise UsageError(f"column {column!r} not in the header of {source}: {header}")
    return _Layout(indexes[0], indexes[1], SENTIMENT140_NUM_COLUMNS if sentiment140 else None, mapping,
                   neutral_allowed)

  has_header = isinstance(text_column, str) or isinstance(label_column, str)
  collector = _Collector(None if has_header else make_layout([]))

  def current_layout() -> Optional[_Layout]:
    if collector.layout is None and collector.header is not None:
      collector.layout = make_layout(collector.header)
    return collector.layout

  for line_number, fields, error in _records(lines, delimiter, current_layout):
    collector.offer(line_number, fields, error)
  if collector.layout is None:
    make_layout(collector.header or [])  # An empty file or a header only: the columns are still checked.
  values = {label for _, _, label in collector.rows}
  scheme = pick_label_scheme(values, labels)
  mapping = _class_mapping(scheme, values, class_names)
  texts, label_ids, numbers, unknown = [], [], [], {}
  for number, row_text, label in collector.rows:
    if label not in mapping:
      collector.reject(number, "unknown_label")
      if label in unknown or len(unknown) < 20:
        unknown[label] = unknown.get(label, 0) + 1
    elif not neutral_allowed and scheme != CLASSES_SCHEME and mapping[label] == NEUTRAL_ID:
      collector.reject(number, "neutral_in_training")
    elif not row_text.strip():
      collector.reject(number, "empty_text")
    elif UNDECODABLE.search(row_text):
      collector.reject(number, "invalid_utf8")
    else:
      texts.append(row_text)
      label_ids.append(mapping[label])
      numbers.append(number)
  label_ids = np.asarray(label_ids, np.int32)
  if scheme == CLASSES_SCHEME:
    names = tuple(mapping)
  elif class_names:
    names = tuple(class_names)
  else:
    names = KNOWN_CLASS_NAMES if bool(np.any(label_ids == NEUTRAL_ID)) else KNOWN_CLASS_NAMES[:2]
  order = np.argsort(np.asarray(numbers, np.int64), kind="stable")  # Rows in file order (rejections interleave).
  topics = [collector.topics[numbers[i]] for i in order] if sentiment140 else None
  return LabelledRows(
      texts=[texts[i] for i in order], labels=label_ids[order], row_numbers=np.asarray(numbers, np.int64)[order],
      bad_rows=collector.bad_rows, bad_lines={k: sorted(v) for k, v in collector.bad_lines.items() if v},
      encoding=encoding, encoding_detected=encoding_detected, label_scheme=scheme, class_names=names,
      columns={"text": text_column, "label": label_column}, source=source, unknown_labels=unknown,
      topics=topics)


@contextlib.contextmanager
def open_text(path: str, member: Optional[str] = None, encoding: str = "auto",
              on_read: Optional[Callable[[int], None]] = None):
  """Yields (text stream split on "\\n" only, encoding used, detected?) of a plain, .gz or zip-member file.

  Streams: memory stays bounded whatever the file's size ("auto" without a byte order mark reads the
  file once to check that all of it decodes as UTF-8, then again to yield it). ``on_read(n)``: called
  with the bytes read from the file (compressed, for .gz) as the stream is read (not for zip members).
  """
  if encoding != "auto" and encoding not in ENCODINGS:
    raise UsageError(f"the encoding must be auto or one of {ENCODINGS}, got {encoding!r}")
  with contextlib.ExitStack() as stack:
    raw = stack.enter_context(_open_binary(path, member, on_read))
    marked = byte_order_marks.detect(raw.peek(4)[:4])
    if marked:
      name, codec = marked
      yield (io.TextIOWrapper(raw, encoding=codec, errors="surrogateescape" if name == "utf-8" else "replace",
                              newline="\n"), name, True)
      return
    used, detected = encoding, False
    if encoding == "auto":
      with _open_binary(path, member, None) as check:
        used, detected = ("utf-8" if _decodes_as_utf8(check) else "latin-1"), True
    yield io.TextIOWrapper(raw, encoding=used, errors="surrogateescape", newline="\n"), used, detected


@contextlib.contextmanager
def _open_binary(path: str, member: Optional[str], on_read: Optional[Callable[[int], None]]):
  """A buffered binary stream (with ``peek``) of the file, its .gz contents or a zip member."""
  with contextlib.ExitStack() as stack:
    if member is not None:
      raw = stack.enter_context(stack.enter_context(zipfile.ZipFile(path)).open(member))
    else:
      file = stack.enter_context(open(path, "rb"))
      if on_read is not None:
        file = _CountingReader(file, on_read)
      raw = stack.enter_context(gzip.GzipFile(fileobj=file, mode="rb")) if path.endswith(".gz") else file
    yield raw if hasattr(raw, "peek") else io.BufferedReader(raw)


class _CountingReader(io.RawIOBase):
  """A binary file that reports the bytes read from it to ``on_read``."""

  def __init__(self, file, on_read: Callable[[int], None]):
    super().__init__()
    self._file, self._on_read = file, on_read

  def readable(self) -> bool:
    return True

  def readinto(self, buffer) -> int:
    count = self._file.readinto(buffer)
    self._on_read(count or 0)
    return count


def _decodes_as_utf8(raw, chunk_bytes: int = 1 << 20) -> bool:
  """Whether the whole binary stream is valid UTF-8 (read in chunks)."""
  decoder = codecs.getincrementaldecoder("utf-8")()
  try:
    while True:
      chunk = raw.read(chunk_bytes)
      if not chunk:
        decoder.decode(b"", final=True)
        return True
      decoder.decode(chunk)
  except UnicodeDecodeError:
    return False


def default_delimiter(path: str) -> str:
  """Tab for .tsv / .tab (also gzipped), else comma."""
  return "\t" if path.removesuffix(".gz").endswith((".tsv", ".tab")) else ","


def read_labelled_file(path: str, *, member: Optional[str] = None, text_column: Optional[Column] = None,
                       label_column: Optional[Column] = None, delimiter: Optional[str] = None,
                       encoding: str = "auto", labels: str = "auto",
                       class_names: Optional[Sequence[str]] = None, neutral_allowed: bool = True,
                       progress: bool = False) -> LabelledRows:
  """Reads a labelled file (see the module docstring and ``parse_lines``).

  ``member``: a member of the zip ``path``. ``progress``: a progress bar over the lines.

  Raises:
    FileNotFoundError: no such file.
    UsageError: the options do not fit the file, or the labels are ambiguous.
    ValueError: the file cannot be read (damaged gzip or zip).
  """
  if not os.path.isfile(path):
    raise FileNotFoundError(f"{path}: no such file")
  source = f"{path}:{member}" if member else path
  try:
    with open_text(path, member, encoding) as (stream, used, detected):
      lines = tqdm(stream, desc=f"read {os.path.basename(member or path)}", unit=" rows", unit_scale=True,
                   mininterval=1.0, disable=not progress)
      return parse_lines(lines, source, text_column=text_column, label_column=label_column,
                         delimiter=delimiter or default_delimiter(member or path), labels=labels,
                         class_names=class_names, neutral_allowed=neutral_allowed, encoding=used,
                         encoding_detected=detected)
  except (OSError, EOFError, zipfile.BadZipFile, csv.Error) as error:
    raise ValueError(f"cannot read {source}: {error}") from None


# ----------------------------------------------------------------------------- texts without labels

SENTIMENT140_FIELD_NAMES = ("polarity", "id", "date", "query", "user", "text")


@dataclasses.dataclass(frozen=True)
class TextRecord:
  """One record of a file read for its texts (``read_texts``).

  Attributes:
    line_number: 1-based line of the record (its first line).
    fields: the record's fields as parsed ([] when it could not be parsed).
    text: the text column's value, or None when the record has no usable text.
    error: None, or why there is no text (one of ``BAD_ROW_REASONS``).
  """

  line_number: int
  fields: list[str]
  text: Optional[str]
  error: Optional[str]


@dataclasses.dataclass
class TextFile:
  """A file opened by ``read_texts``: its columns and its records, streamed in file order.

  Attributes:
    columns: a name per field: the header's; the Sentiment140 6-column names; ``column_<i>`` for a
      file without a header (as many as the first record has); ``["text"]`` for a file of lines.
    text_index: which field is the text.
    has_header: whether the file's first record is its header (not among ``records``).
    records: every other record, in file order (read as they are consumed).
    encoding, encoding_detected, source: as in ``LabelledRows``.
  """

  columns: list[str]
  text_index: int
  has_header: bool
  records: Iterator[TextRecord]
  encoding: str
  encoding_detected: bool
  source: str


def is_lines_file(path: str) -> bool:
  """Whether ``path`` is a file of lines, one text each (.txt, also gzipped), rather than a CSV or TSV."""
  return path.removesuffix(".gz").endswith(".txt")


@contextlib.contextmanager
def read_texts(path: str, *, text_column: Optional[Column] = None, delimiter: Optional[str] = None,
               encoding: str = "auto", on_read: Optional[Callable[[int], None]] = None) -> Iterator[TextFile]:
  """Opens a file of texts to stream its records (no label column; memory bounded by a record).

  A file of lines (``is_lines_file``): each line is a text. A CSV or TSV: ``text_column`` names the
  text (a header name: the first record is the header; or a 0-based index: no header); None: the
  Sentiment140 6-column CSV. Records are checked as ``read_labelled_file`` checks them (the same
  reasons for a record without text: blank_line, wrong_column_count, empty_text, invalid_utf8,
  unterminated_quote, field_too_large, unparsable_row). ``on_read(n)``: see ``open_text``.

  Raises (opening, or while the records are read):
    FileNotFoundError: no such file.
    UsageError: the text column is not in the header.
    ValueError: the file cannot be read (a damaged gzip).
  """
  if not os.path.isfile(path):
    raise FileNotFoundError(f"{path}: no such file")
  with contextlib.ExitStack() as stack:
    try:  # Only opening and the header here: the caller's own errors pass through unchanged.
      stream, used, detected = stack.enter_context(open_text(path, None, encoding, on_read))
      if is_lines_file(path):
        opened = TextFile(["text"], 0, False, _checked(_line_records(stream), path), used, detected, path)
      else:
        opened = _csv_texts(stream, path, parse_column(text_column), delimiter or default_delimiter(path), used,
                            detected)
    except (OSError, EOFError, csv.Error) as error:
      raise ValueError(f"cannot read {path}: {error}") from None
    yield opened


def _checked(records: Iterator[TextRecord], path: str) -> Iterator[TextRecord]:
  """``records``, a read failure while they stream turned into a one-line ValueError."""
  try:
    yield from records
  except (OSError, EOFError, csv.Error) as error:
    raise ValueError(f"cannot read {path}: {error}") from None


def _line_records(stream) -> Iterator[TextRecord]:
  for line_number, line in enumerate(stream, start=1):
    text = line.removesuffix("\n").removesuffix("\r")
    reason = ("blank_line" if not text else "empty_text" if not text.strip() else
              "invalid_utf8" if UNDECODABLE.search(text) else None)
    yield TextRecord(line_number, [text], None if reason else text, reason)


def _csv_texts(stream, source: str, text_column: Optional[Column], delimiter: str, encoding: str,
               detected: bool) -> TextFile:
  sentiment140 = text_column is None
  text_index = SENTIMENT140_COLUMNS[0] if sentiment140 else text_column
  has_header = isinstance(text_column, str)
  state = {"layout": None if has_header else _Layout(text_index, None, SENTIMENT140_NUM_COLUMNS if sentiment140
                                                     else None, None, True)}
  records = _records(stream, delimiter, lambda: state["layout"])
  before: list[TextRecord] = []  # Records read before the header (unparsable ones) or to name the columns.
  header = None
  for line_number, fields, error in records:
    if has_header and not error:
      header = fields
      if text_column not in header:
        raise UsageError(f"column {text_column!r} not in the header of {source}: {header}")
      text_index = header.index(text_column)
      state["layout"] = _Layout(text_index, None, None, None, True)
      break
    before.append(_text_record(state["layout"], line_number, fields, error))
    if not has_header and fields:
      break
  if has_header and header is None:
    raise UsageError(f"no header in {source} (the text column {text_column!r} is a header name)")
  if header is not None:
    columns = list(header)
  elif sentiment140:
    columns = list(SENTIMENT140_FIELD_NAMES)
  else:
    width = max([len(r.fields) for r in before] + [text_index + 1])
    columns = [f"column_{i}" for i in range(width)]
  rest = (_text_record(state["layout"], n, fields, error) for n, fields, error in records)
  return TextFile(columns, text_index, has_header, _checked(itertools.chain(before, rest), source), encoding,
                  detected, source)


def _text_record(layout: Optional[_Layout], line_number: int, fields: Optional[list[str]],
                 error: Optional[str]) -> TextRecord:
  fields = fields or []
  if error is None:
    if not fields:
      error = "blank_line"
    elif not layout.column_count_ok(fields):
      error = "wrong_column_count"
    elif not fields[layout.text_index].strip():
      error = "empty_text"
    elif UNDECODABLE.search(fields[layout.text_index]):
      error = "invalid_utf8"
  return TextRecord(line_number, fields, None if error else fields[layout.text_index], error)
