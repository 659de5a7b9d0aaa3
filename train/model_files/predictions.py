"""One answer per input line: tweets classified by a loaded model, as ``python -m train.predict`` prints them.

One output line per input line (``output_format="json"``: JSON lines). The binary
negative/positive model (no classes.json, see ``train.runs.classes``): ``label<TAB>probability<TAB>text``,
``label`` negative / positive, or ``neutral`` when the model's confidence is under the threshold
(default: the config's neutral_threshold). A model of other classes (its classes.json):
``label<TAB>probability<TAB>name=p name=p ...<TAB>text``, the argmax class and every class's
probability (no threshold: it answers one of its classes). JSON lines hold ``label``,
``probability`` and ``probabilities`` ({class name: p}); the binary model's also ``p_positive``.
Bad lines (empty, undecodable bytes, ...) get an ``error`` line or a note; the
remaining lines are still classified. Control characters of the input (ESC, NUL, C1,
bidirectional overrides, line separators) are never written raw: text output shows them
as ``\\x1b`` / ``\\u202e``, JSON output as ``\\u001b`` escapes (which decode back to the input).
A line with nothing but whitespace and control characters is an empty line.
"""

from __future__ import annotations

import json
import re
import unicodedata
from typing import Iterable, Iterator, Optional, TextIO

from train.model_files import inference

MAX_LINE_CHARS = 10_000  # Longer lines are cut here before tokenization (tweets are <= 280 chars).
# Characters a terminal acts on: C0 controls, DEL, C1 controls (CSI ...), line/paragraph separators,
# bidirectional embeddings, overrides and isolates.
UNSAFE_CHARACTERS = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029\u202a-\u202e\u2066-\u2069]")
VISIBLE_ASCII = re.compile("[!-~]")  # ASCII that is neither whitespace nor a control character.
JSON_ENCODER = json.JSONEncoder(ensure_ascii=False)  # json.dumps(..., ensure_ascii=False), made once.


def decode_line(raw: bytes) -> tuple[str, Optional[str]]:
  """bytes -> (text, note); invalid UTF-8 is decoded with replacement characters and noted."""
  try:
    return raw.decode("utf-8"), None
  except UnicodeDecodeError as e:
    return raw.decode("utf-8", errors="replace"), f"invalid UTF-8 at byte {e.start}; replaced with U+FFFD"


def escape_unsafe(text: str) -> str:
  """``UNSAFE_CHARACTERS`` -> visible escapes (``\\x1b``, ``\\u202e``); other text unchanged."""
  return UNSAFE_CHARACTERS.sub(
      lambda m: f"\\x{ord(m.group()):02x}" if ord(m.group()) < 0x100 else f"\\u{ord(m.group()):04x}", text)


def has_visible_text(text: str) -> bool:
  """Whether anything but whitespace and control/format characters is left (else: an empty line)."""
  if text.isascii():
    return VISIBLE_ASCII.search(text) is not None
  return any(not c.isspace() and unicodedata.category(c) not in ("Cc", "Cf", "Zl", "Zp") for c in text)


def argv_bytes(text: str) -> bytes:
  """A command-line argument back to its bytes (Python keeps undecodable bytes as surrogates)."""
  return text.encode("utf-8", errors="surrogateescape")


def line_result(number: int, raw: bytes) -> dict:
  """A line before scoring: {line, text, notes} (text to score), or {line, error}."""
  try:
    text, note = decode_line(raw.rstrip(b"\r\n"))
  except Exception as e:  # pylint: disable=broad-except
    return {"line": number, "error": f"unreadable line ({type(e).__name__}: {e})"}
  notes = [note] if note else []
  if not text.strip():
    return {"line": number, "error": "empty line"}
  if len(text) > MAX_LINE_CHARS:
    notes.append(f"line of {len(text)} characters cut to {MAX_LINE_CHARS}")
    text = text[:MAX_LINE_CHARS]
  if not has_visible_text(text):
    return {"line": number, "error": "empty line (only control characters)"}
  return {"line": number, "text": text, "notes": notes}


def answer(probabilities, class_names, binary: bool, threshold: float) -> tuple[str, float]:
  """(label, confidence) of one text's probabilities (c,) (an array or a list of floats): the most
  probable class (the first of equals), or "neutral" for the binary negative/positive model when its
  confidence is under ``threshold``."""
  values = probabilities.tolist() if hasattr(probabilities, "tolist") else list(probabilities)
  best = max(values)
  if binary and best < threshold:
    return "neutral", float(best)
  return class_names[values.index(best)], float(best)


def classify(model: inference.LoadedModel, raw_lines: Iterable[bytes], threshold: float,
             batch_size: Optional[int] = None) -> Iterator[dict]:
  """One result dict per input line, in order: {line, text, label, probability, probabilities,
  [p_positive], note} or {line, error}.

  ``model``: ``train.model_files.inference.load`` of a workdir or an exported model; the lines are scored by its
  ``InferenceEngine`` (length buckets, batches across lines, streaming: ``raw_lines`` is read ahead
  on the engine's reader thread). ``batch_size``: rows of every bucket's batch (default: the
  engine's). ``threshold``: the binary model answers neutral under it; a model of other classes
  ignores it (see the module docstring).
  """
  names = tuple(model.class_names)
  binary = model.is_binary_sentiment
  engine = model.engine if batch_size is None else inference.InferenceEngine(model, batch_rows=batch_size)
  lines = (line_result(number, raw) for number, raw in enumerate(raw_lines, start=1))
  for scored in engine.score(lines, text=lambda result: result.get("text")):
    result = scored.item
    if "error" in result:
      yield result
      continue
    notes = result.pop("notes")
    if scored.probabilities is None:
      yield {"line": result["line"], "error": "empty line (no tokens after normalization)"}
      continue
    if scored.num_tokens > model.max_length:
      notes.append(f"long input: only the first {model.max_length} tokens were used")
    p = scored.probabilities.tolist()  # Python floats: cheaper per line than numpy scalars.
    label, confidence = answer(p, names, binary, threshold)
    result.update(label=label, probability=confidence, probabilities=dict(zip(names, p)))
    if binary:
      result["p_positive"] = p[1]
    result["note"] = "; ".join(notes) or None
    yield result


def format_result(result: dict, output_format: str) -> str:
  if output_format == "json":  # JSON escapes of the unsafe characters: the text decodes unchanged.
    return UNSAFE_CHARACTERS.sub(lambda m: f"\\u{ord(m.group()):04x}", JSON_ENCODER.encode(result))
  if "error" in result:
    return f"error\t-\tline {result['line']}: {result['error']}"
  text = escape_unsafe(result["text"].replace("\t", " "))
  note = f"\t({result['note']})" if result["note"] else ""
  if "p_positive" in result:  # The binary model: the layout it always had.
    return f"{result['label']}\t{result['probability']:.4f}\t{text}{note}"
  probabilities = " ".join(f"{escape_unsafe(name).replace(' ', '_')}={p:.4f}"
                           for name, p in result["probabilities"].items())
  return f"{escape_unsafe(result['label'])}\t{result['probability']:.4f}\t{probabilities}\t{text}{note}"


def write_predictions(model: inference.LoadedModel, raw_lines: Iterable[bytes], out: TextIO, *,
                      threshold: Optional[float] = None, output_format: str = "text",
                      batch_size: Optional[int] = None) -> None:
  """Writes one ``format_result`` line per input line to ``out`` (``classify``, see the module docstring).

  ``threshold``: the binary model's neutral threshold (None: its config's neutral_threshold).

  Raises:
    ValueError: a threshold for a model of other classes (it always answers one of them).
  """
  if threshold is not None and not model.is_binary_sentiment:
    raise ValueError(f"--threshold is for the binary negative/positive model (neutral by abstention); "
                     f"{model.source} has the classes {list(model.class_names)} and always answers one of them.")
  threshold = model.config.neutral_threshold if threshold is None else threshold
  for result in classify(model, raw_lines, threshold, batch_size):
    out.write(format_result(result, output_format) + "\n")
  out.flush()
