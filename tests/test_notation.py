"""Docstrings name array axes by the letters of one module, mamba_jax.notation, and by no glossary of their own."""

import pathlib
import re

from mamba_jax import notation

REPO = pathlib.Path(__file__).resolve().parents[1]
TREES = ("mamba_jax", "train", "benchmarks", "scripts", "tests", "notebooks/src")
REFERENCE = re.compile(r"Axes \(``mamba_jax\.notation``(?P<scan>, with ``SCAN_AXES``)?\): ")


def _python_files():
  """Every Python file of the trees but this test."""
  return sorted(p for tree in TREES for p in (REPO / tree).rglob("*.py")
                if "__pycache__" not in p.parts and p != pathlib.Path(__file__).resolve())


def _letters(text: str) -> list[str]:
  """The axis letters of a reference's list: up to the first period outside parentheses, split at
  commas (or semicolons) outside them, the first word of each item ("l (the longest prompt)" -> "l")."""
  items, item, depth = [], "", 0
  for char in text:
    if char == "." and depth == 0:
      break
    depth += {"(": 1, ")": -1}.get(char, 0)
    if char in ",;" and depth == 0:
      items.append(item)
      item = ""
    else:
      item += char
  items.append(item)
  return [re.split(r"[\s(]", piece.strip().removeprefix("for the SSD").strip(), maxsplit=1)[0] for piece in items]


def test_every_axes_line_uses_the_notations_letters():
  references = 0
  for path in _python_files():
    text = path.read_text(encoding="utf-8")
    for match in REFERENCE.finditer(text):
      references += 1
      known = {**notation.AXES, **(notation.SCAN_AXES if match.group("scan") else {})}
      letters = _letters(text[match.end():])
      assert letters and all(letter in known for letter in letters), (path, letters)
  assert references >= 40  # One per module that shows shapes.


def test_no_module_keeps_a_glossary_of_its_own():
  assert [str(p) for p in _python_files() if "glossary" in p.read_text(encoding="utf-8").lower()] == []


def test_the_scan_axes_are_only_the_scan_kernels():
  for path in _python_files():
    if any(match.group("scan") for match in REFERENCE.finditer(path.read_text(encoding="utf-8"))):
      assert path.parent == REPO / "mamba_jax" / "scan", path


def test_letters_are_single_axes_with_one_meaning():
  assert all(re.fullmatch(r"[a-zA-Z]{1,2}", letter) for letter in {**notation.AXES, **notation.SCAN_AXES})
  assert len(set(notation.AXES.values())) == len(notation.AXES)
