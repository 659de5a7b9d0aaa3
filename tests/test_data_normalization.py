"""The normalization rules (train/data/normalization.py), case by case."""

import pytest

from train.data import normalization
from train.data.normalization import normalize, normalize_many

CASES = [
    # (raw, normalized)
    ("@switchfoot http://twitpic.com/2y1zl - Awww, that's a bummer.", "<user> <url> - awww, that's a bummer."),
    ("@user I WOULD SOOOOO BE THERE http://url", "<user> i would sooo be there <url>"),  # Reconstruction masks.
    ("see https://t.co/AbC?x=1&y=2 and www.Example.com/page", "see <url> and <url>"),
    ("@bob: hi @Alice_99!", "<user>: hi <user>!"),
    ("mail me@example.com", "mail me@example.com"),  # Not a mention.
    ("I &lt;3 you &amp; &quot;me&quot;", 'i <3 you & "me"'),
    ("&amp;lt; is unescaped once", "&lt; is unescaped once"),
    ("a&#10;b", "a b"),  # An entity that is a line break.
    ("#Kindle2 rocks #FollowFriday", "kindle2 rocks followfriday"),
    ("c# and a lone # stay", "c# and a lone # stay"),
    ("cool coool cooool cooooooool", "cool coool coool coool"),
    ("NOOOOOO!!!!!!! ?????", "nooo!!! ???"),
    ("  lots \t of\n\r\n  space  ", "lots of space"),
    ("Cafe\u0301 CAFÉ", "caf\u00e9 caf\u00e9"),  # NFC then lowercase.
    ("I love it \U0001F600\U0001F600\U0001F600\U0001F600\U0001F600", "i love it \U0001F600\U0001F600\U0001F600"),
    ("ÄÖÜ straße ♥", "äöü straße ♥"),
    ("don\xef\xbf\xbdt", "don\ufffdt"),  # UTF-8 read as latin-1 is repaired.
    ("caf\xc3\xa9 \xf0\x9f\x98\x80", "café \U0001F600"),
    ("na\xefve", "na\xefve"),  # Genuine latin-1 stays.
    ("", ""),
]


@pytest.mark.parametrize("raw,expected", CASES)
def test_normalize(raw, expected):
  assert normalize(raw) == expected


def test_normalize_many_matches_one_by_one():
  raws = [raw for raw, _ in CASES]
  assert normalize_many(raws) == [expected for _, expected in CASES]
  assert normalize_many([]) == []


def test_normalized_text_is_a_fixed_point_and_single_line():
  for _, expected in CASES:
    assert "\n" not in expected
    if "&" not in expected:  # Entities are unescaped once, by design.
      assert normalize(expected) == expected


def test_placeholders_and_version():
  assert normalization.PLACEHOLDERS == ("<url>", "<user>")
  assert isinstance(normalization.NORMALIZATION_VERSION, int)
