"""Accuracy per slice of an evaluated split: which kinds of tweets a classifier gets wrong more often.

Pure functions on host arrays (nothing read or written). Axes (``mamba_jax.notation``): N. A *feature* is
one way of cutting the examples (``length_tokens``, ``mention``, ...), a *value* one of its
slices ("1-10", "yes", a topic); ``values`` maps feature -> (N,) str array of each example's value.

Features (``FEATURES``), computed from an example's text and token count:

* ``length_tokens``: non-padding tokens the model saw (after truncation), in the fixed bins of
  ``LENGTH_BINS``: "1-10", "11-16", "17-24", "25+" (about the quartiles of the Sentiment140
  manual test under the released tokenizer: 11, 17, 24).
* ``mention``: an @user (an "@" not after a word character, then a word character) or the
  normalizer's ``<user>`` placeholder.
* ``url``: http://, https:// or www. (or the normalizer's ``<url>`` placeholder).
* ``hashtag``: a "#" not after a word character, then a word character. Raw text only.
* ``emoji``: a character in ``EMOJI_RANGES`` (U+2600-U+27BF miscellaneous symbols and dingbats,
  U+1F1E6-U+1F1FF regional indicators, U+1F300-U+1FAFF the pictograph, emoticon, transport and
  supplemental symbol blocks) or an ASCII emoticon (``ASCII_EMOTICON``: :) :-( ;D :P :/ <3 and
  mirrored forms like (: ). Sentiment140's training tweets had their emoticons removed.
* ``negation``: a word of ``NEGATION_WORDS`` or any word ending in n't (straight or curly
  apostrophe), case-insensitive.
* ``all_caps``: a word of two or more letters, all upper case ("LOVE", "OMG"; "I" is not one).
  Raw text only.
* ``topic``: the query column of the Sentiment140 6-column files (the manual test's topics; the
  training file's is always NO_QUERY), only when the caller has it.

Raw texts first get the normalizer's rules 1 and 2 (UTF-8 bytes read as latin-1 repaired, so
an emoji is one character again; HTML entities unescaped: "&lt;3" -> "<3"), so that their emoji
are seen; case and "#" stay. Normalized texts (what the prepared splits keep: lower-cased, "#" dropped) cannot
show hashtags or all-caps words: ``text_features(..., normalized=True)`` leaves those two out
and says so.

Per slice: count, accuracy and its 95% Wilson score interval; ``flagged`` when the interval's
upper bound is below the overall accuracy of the split (the slice is worse than the whole, beyond
chance). Slices of a few examples are still reported: their intervals are wide.
"""

from __future__ import annotations

import html
import math
import re
from typing import Optional, Sequence

import numpy as np

from train.data import normalization

LENGTH_BINS = (10, 16, 24)  # Upper bounds of the length bins but the last (tokens).
Z_95 = 1.959963984540054  # Two-sided 95% normal quantile.
RAW_ONLY_FEATURES = ("hashtag", "all_caps")  # Lost by normalization (lower-casing, "#" dropped).
FEATURES = ("length_tokens", "mention", "url", "hashtag", "emoji", "negation", "all_caps", "topic")
EMOJI_RANGES = ((0x2600, 0x27BF), (0x1F1E6, 0x1F1FF), (0x1F300, 0x1FAFF))
NEGATION_WORDS = frozenset(
    "not no never nothing nobody none nowhere neither nor cannot without aint dont doesnt didnt isnt arent "
    "wasnt werent cant couldnt wont wouldnt shouldnt havent hasnt hadnt".split())

_MENTION = re.compile(r"(?<!\w)@\w|<user>")
_URL = re.compile(r"https?://|www\.|<url>", re.IGNORECASE)
_HASHTAG = re.compile(r"(?<![\w&])#\w")
_EMOJI = re.compile("[" + "".join(f"{chr(lo)}-{chr(hi)}" for lo, hi in EMOJI_RANGES) + "]")
# Eyes, optional nose, mouth (or mouth, nose, eyes), standing alone; and hearts.
ASCII_EMOTICON = re.compile(r"(?<!\S)(?:[:;=][-o^']?[()\[\]dDpP/\\|*oO3]+|[()\[\]/\\|]+[-o^']?[:;=]|<3+)(?!\S)")
_WORD = re.compile(r"[^\W\d_]+(?:['\u2019][^\W\d_]+)?")
_NEGATED = re.compile(r"n['\u2019]t$", re.IGNORECASE)


def length_bin(num_tokens: int) -> str:
  """The ``LENGTH_BINS`` label of a token count: "1-10", "11-16", "17-24" or "25+"."""
  low = 1
  for high in LENGTH_BINS:
    if num_tokens <= high:
      return f"{low}-{high}"
    low = high + 1
  return f"{low}+"


def length_bin_labels() -> list[str]:
  """Every length bin label, shortest first."""
  return [length_bin(high) for high in LENGTH_BINS] + [length_bin(LENGTH_BINS[-1] + 1)]


def has_emoji(text: str) -> bool:
  return bool(_EMOJI.search(text) or ASCII_EMOTICON.search(text))


def has_negation(text: str) -> bool:
  return any(word.lower() in NEGATION_WORDS or _NEGATED.search(word) for word in _WORD.findall(text))


def has_all_caps_word(text: str) -> bool:
  return any(len(word) >= 2 and word.isupper() for word in re.findall(r"[^\W\d_]+", text))


TEXT_TESTS = {
    "mention": lambda text: bool(_MENTION.search(text)),
    "url": lambda text: bool(_URL.search(text)),
    "hashtag": lambda text: bool(_HASHTAG.search(text)),
    "emoji": has_emoji,
    "negation": has_negation,
    "all_caps": has_all_caps_word,
}


def text_features(texts: Sequence[str], num_tokens: np.ndarray, *, normalized: bool = False,
                  topics: Optional[Sequence[str]] = None) -> tuple[dict[str, np.ndarray], dict[str, str]]:
  """(values, omitted): feature -> (N,) str array of slice values, and feature -> why it is left out.

  ``num_tokens`` (N,): tokens the model saw per text. ``normalized``: the texts went through
  ``train.data.normalization`` (hashtag and all_caps are then omitted). ``topics``: the N query
  values (the topic feature is omitted without them).
  """
  num_tokens = np.asarray(num_tokens)
  if len(texts) != len(num_tokens) or (topics is not None and len(topics) != len(texts)):
    raise ValueError(f"{len(texts)} texts, {len(num_tokens)} token counts"
                     + (f" and {len(topics)} topics" if topics is not None else ""))
  values = {"length_tokens": np.asarray([length_bin(int(n)) for n in num_tokens], dtype=object)}
  if not normalized:
    texts = [html.unescape(normalization.repair_mojibake(text)) for text in texts]
  omitted = {}
  for feature, test in TEXT_TESTS.items():
    if normalized and feature in RAW_ONLY_FEATURES:
      omitted[feature] = "the split keeps only normalized text (lower-cased, '#' dropped)"
      continue
    values[feature] = np.asarray(["yes" if test(text) else "no" for text in texts], dtype=object)
  if topics is None:
    omitted["topic"] = "no query column"
  else:
    values["topic"] = np.asarray([topic.strip() or "(empty)" for topic in topics], dtype=object)
  return values, omitted


def wilson_interval(successes: int, count: int, z: float = Z_95) -> tuple[float, float]:
  """Wilson score interval of a proportion: (low, high); (0, 1) for no examples."""
  if count == 0:
    return 0.0, 1.0
  p = successes / count
  denominator = 1 + z * z / count
  center = (p + z * z / (2 * count)) / denominator
  half = z * math.sqrt(p * (1 - p) / count + z * z / (4 * count * count)) / denominator
  return max(0.0, center - half), min(1.0, center + half)


def _order(feature: str, found: set) -> list[str]:
  if feature == "length_tokens":
    return [label for label in length_bin_labels() if label in found]
  if found <= {"yes", "no"}:
    return [v for v in ("yes", "no") if v in found]
  return sorted(found)


def slice_report(correct: np.ndarray, values: dict[str, np.ndarray], omitted: Optional[dict[str, str]] = None,
                 scored: str = "accuracy") -> dict:
  """Accuracy per slice.

  ``correct`` (N,) bool: whether each example was classified right; ``values``: feature -> (N,)
  slice values (``text_features``); ``omitted``: feature -> reason; ``scored``: what "accuracy" is.

  {"scored": ..., "overall": {count, accuracy, interval}, "features": {feature: {value: {count,
  correct, accuracy, interval: [low, high], flagged}}}, "omitted": {feature: reason}}; values of a
  feature in order (length bins ascending, yes before no, topics by name).
  """
  correct = np.asarray(correct, bool)
  n = int(correct.size)
  overall = float(correct.mean()) if n else 0.0
  features = {}
  for feature, per_example in values.items():
    per_example = np.asarray(per_example, dtype=object)
    if per_example.shape != correct.shape:
      raise ValueError(f"{feature}: {per_example.shape[0]} values for {n} examples")
    table = {}
    for value in _order(feature, set(per_example.tolist())):
      members = per_example == value
      count, right = int(members.sum()), int(correct[members].sum())
      low, high = wilson_interval(right, count)
      table[value] = {"count": count, "correct": right, "accuracy": right / count if count else 0.0,
                      "interval": [low, high], "flagged": bool(high < overall)}
    features[feature] = table
  low, high = wilson_interval(int(correct.sum()), n)
  return {"scored": scored, "overall": {"count": n, "accuracy": overall, "interval": [low, high]},
          "features": features, "omitted": dict(omitted or {})}


def flagged_slices(report: dict) -> list[tuple[str, str]]:
  """(feature, value) of every flagged slice of a ``slice_report``."""
  return [(feature, value) for feature, table in report["features"].items()
          for value, stats in table.items() if stats["flagged"]]


def table_lines(report: dict, indent: str = "  ", skip: Sequence[str] = ()) -> list[str]:
  """A compact text table of a ``slice_report``: one line per slice, flagged ones marked with "!"."""
  overall = report["overall"]
  lines = [f"{indent}slices ({report['scored']}; overall {overall['accuracy']:.4f} of {overall['count']}; "
           "! = 95% interval below overall):"]
  for feature, table in report["features"].items():
    if feature in skip:
      continue
    cells = [f"{'!' if s['flagged'] else ''}{value} {s['accuracy']:.3f} [{s['interval'][0]:.2f}-"
             f"{s['interval'][1]:.2f}] n={s['count']}" for value, s in table.items()]
    lines.append(f"{indent}  {feature:<13} " + "; ".join(cells))
  for feature, reason in report["omitted"].items():
    lines.append(f"{indent}  {feature:<13} omitted: {reason}")
  return lines


def classification_slices(probs: np.ndarray, labels: np.ndarray, texts: Sequence[str], num_tokens: np.ndarray, *,
                          normalized: bool, topics: Optional[Sequence[str]] = None) -> dict:
  """``slice_report`` of a classifier's argmax on the rows whose label is one of its classes.

  probs (N, c), labels (N,): a binary model's neutral rows (label 2 of the manual test) are left
  out, as in its binary accuracy (they are scored by abstention, not by argmax).
  """
  probs, labels = np.asarray(probs), np.asarray(labels)
  keep = labels < probs.shape[1]
  values, omitted = text_features(texts, num_tokens, normalized=normalized, topics=topics)
  values = {feature: per_example[keep] for feature, per_example in values.items()}
  correct = probs[keep].argmax(axis=1) == labels[keep]
  scored = "accuracy" if keep.all() else f"accuracy on the {int(keep.sum())} rows of a learned class"
  return slice_report(correct, values, omitted, scored)
