"""Byte order marks: which Unicode encoding a file announces in its first bytes.

Spreadsheet programs write "CSV UTF-8" with a UTF-8 byte order mark (EF BB BF), and
"Unicode text" as UTF-16 with one; read as latin-1 or plain UTF-8 the mark glues itself to
the first field and the first row is lost. The file readers (the training data reader,
``train.data.sources``, and ``train.evaluate``) ask ``detect`` first and decode with the
codec it names, which also removes the mark.
"""

from __future__ import annotations

import codecs
from typing import Optional

# (mark, encoding name for reports, Python codec that strips the mark); UTF-32 LE before UTF-16 LE,
# whose mark (FF FE) begins UTF-32 LE's (FF FE 00 00).
MARKS = (
    (codecs.BOM_UTF32_LE, "utf-32", "utf-32"),
    (codecs.BOM_UTF32_BE, "utf-32", "utf-32"),
    (codecs.BOM_UTF8, "utf-8", "utf-8-sig"),
    (codecs.BOM_UTF16_LE, "utf-16", "utf-16"),
    (codecs.BOM_UTF16_BE, "utf-16", "utf-16"),
)


def detect(head: bytes) -> Optional[tuple[str, str]]:
  """(encoding name, codec) announced by the first bytes of a file (at least 4 of them), or None."""
  for mark, name, codec in MARKS:
    if head.startswith(mark):
      return name, codec
  return None
