"""File in, file out: every record of a file of texts with the model's answer, as ``train.predict --input`` writes it.

The input is read by the one reader, ``train.data.labelled_rows.read_texts`` (no label column needed):
a CSV or TSV (``text_column``: a header name or a 0-based index; none: the Sentiment140 6-column CSV),
or a file of lines, one text each (.txt); plain or .gz. It is streamed through the model's
``InferenceEngine``: memory stays bounded whatever the file's size.

The output (its format from its extension: .csv, .tsv, .jsonl or .json for JSON lines; .gz added:
gzipped) holds one row per input record, in input order: the input's columns (named by its header,
else ``train.data.labelled_rows.TextFile.columns``; a record is cut or padded to that many fields),
then ``label`` (the most probable class, or "neutral" for the binary model under the threshold, as
``train.model_files.predictions.answer``), ``confidence`` (the largest probability), ``p_<class>``
for every class, and ``error``: empty, or why the record has no answer (a ``BAD_ROW_REASONS``
reason of the reader; ``empty_text`` also for a text with no tokens once normalized). An added
column whose name the input already has is called ``predicted_<name>``. CSV/TSV files start with
a header row; probabilities are written with 6 decimals. The output is written to
``<output>.partial`` and renamed when complete.
"""

from __future__ import annotations

import contextlib
import csv
import dataclasses
import gzip
import json
import os
import sys
import time
from typing import Optional, TextIO

from tqdm import tqdm

from train.data import labelled_rows
from train.model_files import inference, predictions

OUTPUT_FORMATS = {".csv": "csv", ".tsv": "tsv", ".jsonl": "jsonl", ".json": "jsonl"}
PROGRESS_EVERY_ROWS = 1000  # The progress bar is updated after this many rows.


@dataclasses.dataclass
class FileSummary:
  """What ``write_file_predictions`` did.

  Attributes:
    output: the file written.
    rows: records written (one per input record).
    answered: records with an answer.
    errors: reason -> records without an answer.
    seconds: wall time, reading the model excluded.
  """

  output: str
  rows: int
  answered: int
  errors: dict[str, int]
  seconds: float


def output_format(path: str) -> str:
  """"csv" | "tsv" | "jsonl" from the extension of ``path`` (a trailing .gz ignored)."""
  extension = os.path.splitext(path.removesuffix(".gz"))[1].lower()
  if extension not in OUTPUT_FORMATS:
    raise ValueError(f"--output={path}: the extension must be one of {', '.join(OUTPUT_FORMATS)} "
                     "(optionally followed by .gz)")
  return OUTPUT_FORMATS[extension]


def added_columns(input_columns: list[str], class_names) -> list[str]:
  """label, confidence, p_<class>..., error; a name the input has already gets the prefix predicted_."""
  added = ["label", "confidence", *(f"p_{name}" for name in class_names), "error"]
  return [f"predicted_{name}" if name in input_columns else name for name in added]


def check_files(input_path: str, output_path: str) -> str:
  """The output's format ("csv" | "tsv" | "jsonl"), once the input exists and the output can be written.

  Raises:
    FileNotFoundError: no input file, or no folder for the output.
    ValueError: an output extension it cannot write, or the output is the input.
  """
  kind = output_format(output_path)
  if not os.path.isfile(input_path):
    raise FileNotFoundError(f"--input={input_path}: no such file")
  if os.path.exists(output_path) and os.path.samefile(input_path, output_path):
    raise ValueError(f"--output={output_path} is the input file")
  folder = os.path.dirname(os.path.abspath(output_path))
  if not os.path.isdir(folder):
    raise FileNotFoundError(f"--output={output_path}: no folder {folder}")
  return kind


def write_file_predictions(model: inference.LoadedModel, input_path: str, output_path: str, *,
                           text_column: Optional[labelled_rows.Column] = None, delimiter: Optional[str] = None,
                           encoding: str = "auto", threshold: Optional[float] = None,
                           batch_size: Optional[int] = None, progress: bool = True) -> FileSummary:
  """Scores every record of ``input_path`` and writes ``output_path`` (see the module docstring).

  ``threshold``: the binary model's neutral threshold (None: its config's). ``batch_size``: rows of
  every bucket's batch (None: the engine's). ``progress``: a progress bar on stderr (rows, rows/s,
  the share of the input read and the time left).

  Raises:
    FileNotFoundError, ValueError: as ``check_files``; also ValueError for a threshold for a model of
      other classes, a text column not in the header, an input that cannot be read.
  """
  kind = check_files(input_path, output_path)
  if threshold is not None and not model.is_binary_sentiment:
    raise ValueError(f"--threshold is for the binary negative/positive model (neutral by abstention); "
                     f"{model.source} has the classes {list(model.class_names)} and always answers one of them.")
  threshold = float(model.config.neutral_threshold if threshold is None else threshold)
  engine = model.engine if batch_size is None else inference.InferenceEngine(model, batch_rows=batch_size)
  names = tuple(model.class_names)
  read_bytes = [0]
  start = time.perf_counter()
  partial = output_path + ".partial"
  with contextlib.ExitStack() as stack:
    source = stack.enter_context(labelled_rows.read_texts(
        input_path, text_column=text_column, delimiter=delimiter, encoding=encoding,
        on_read=lambda n: read_bytes.__setitem__(0, read_bytes[0] + n)))
    out = stack.enter_context(gzip.open(partial, "wt", encoding="utf-8", newline="") if output_path.endswith(".gz")
                              else open(partial, "w", encoding="utf-8", newline=""))
    writer = _RowWriter(out, kind, source.columns + added_columns(source.columns, names))
    bar = tqdm(total=os.path.getsize(input_path), unit="B", unit_scale=True, unit_divisor=1024, file=sys.stderr,
               desc=f"predict {os.path.basename(input_path)}", disable=not progress, mininterval=0.5,
               bar_format="{desc}: {percentage:3.0f}%|{bar}| {n_fmt}/{total_fmt} read [{elapsed}<{remaining}{postfix}]")
    rows, answered, errors = 0, 0, {}
    width = len(source.columns)
    for scored in engine.score(source.records, text=lambda record: record.text):
      record, p = scored.item, scored.probabilities
      fields = (record.fields + [""] * width)[:width]
      error = record.error or (None if p is not None else "empty_text")
      if error:
        errors[error] = errors.get(error, 0) + 1
        writer.write(fields, None, None, None, error)
      else:
        label, confidence = predictions.answer(p, names, model.is_binary_sentiment, threshold)
        writer.write(fields, label, confidence, p, None)
        answered += 1
      rows += 1
      if rows % PROGRESS_EVERY_ROWS == 0:
        _show(bar, read_bytes[0], rows, start)
    _show(bar, read_bytes[0], rows, start)
    bar.close()
  os.replace(partial, output_path)
  return FileSummary(os.path.abspath(output_path), rows, answered, errors, time.perf_counter() - start)


def _show(bar, read_bytes: int, rows: int, start: float) -> None:
  bar.update(min(read_bytes, bar.total) - bar.n)
  bar.set_postfix_str(f"{rows:,} rows, {rows / max(time.perf_counter() - start, 1e-9):,.0f} rows/s", refresh=False)


class _RowWriter:
  """Writes output rows as CSV, TSV (a header row first) or JSON lines."""

  def __init__(self, out: TextIO, kind: str, columns: list[str]):
    self._out, self._kind, self._columns = out, kind, columns
    if kind == "jsonl":
      self._csv = None
    else:
      self._csv = csv.writer(out, delimiter="\t" if kind == "tsv" else ",", lineterminator="\n")
      self._csv.writerow(columns)

  def write(self, fields: list[str], label: Optional[str], confidence: Optional[float], probabilities,
            error: Optional[str]) -> None:
    if self._csv is not None:
      numbers = ([""] * (1 + self._num_classes(fields)) if probabilities is None else
                 [f"{confidence:.6f}", *(f"{q:.6f}" for q in probabilities)])
      self._csv.writerow([*fields, label or "", *numbers, error or ""])
      return
    values = [*fields, label, None if confidence is None else round(confidence, 6),
              *([None] * self._num_classes(fields) if probabilities is None else
                [round(float(q), 6) for q in probabilities]), error]
    line = json.dumps(dict(zip(self._columns, values)), ensure_ascii=False)
    self._out.write(predictions.UNSAFE_CHARACTERS.sub(lambda m: f"\\u{ord(m.group()):04x}", line) + "\n")

  def _num_classes(self, fields: list[str]) -> int:
    return len(self._columns) - len(fields) - 3  # Columns after the fields: label, confidence, p_..., error.
