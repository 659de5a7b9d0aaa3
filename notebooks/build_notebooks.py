"""Builds the committed notebooks from their percent-format sources.

    python notebooks/build_notebooks.py            # writes notebooks/*.ipynb
    python notebooks/build_notebooks.py --check    # exits 1 if a notebook is stale

``notebooks/src/<name>.py`` holds the cells of ``notebooks/<name>.ipynb`` in the
percent format that jupytext and editors understand: ``# %%`` starts a code
cell, ``# %% [markdown]`` a markdown cell whose lines are written as ``# text``.
Anything before the first marker (a header comment) is not part of the notebook.
The notebooks are written with outputs cleared.
"""

from __future__ import annotations

import argparse
import pathlib
import sys
from typing import List, Tuple

import nbformat

NOTEBOOK_DIR = pathlib.Path(__file__).resolve().parent
SOURCE_DIR = NOTEBOOK_DIR / "src"
CODE_MARKER = "# %%"
MARKDOWN_MARKER = "# %% [markdown]"

KERNELSPEC = {"display_name": "Python 3 (ipykernel)", "language": "python", "name": "python3"}
LANGUAGE_INFO = {"name": "python", "pygments_lexer": "ipython3"}


def parse_cells(text: str, origin: str = "<source>") -> List[Tuple[str, str]]:
  """Percent-format text -> [(kind "code" | "markdown", cell source)]."""
  cells: List[Tuple[str, List[str]]] = []
  for number, line in enumerate(text.splitlines(), start=1):
    if line.startswith(MARKDOWN_MARKER):
      cells.append(("markdown", []))
    elif line.startswith(CODE_MARKER):
      cells.append(("code", []))
    elif cells:
      kind, lines = cells[-1]
      if kind == "markdown":
        if line and line != "#" and not line.startswith("# "):
          raise ValueError(f"{origin}:{number}: markdown lines must start with '# ', got {line!r}")
        line = line[2:]
      lines.append(line)
  if not cells:
    raise ValueError(f"{origin}: no '{CODE_MARKER}' cell marker found")
  return [(kind, "\n".join(lines).strip("\n")) for kind, lines in cells]


def build_notebook(source_path: pathlib.Path) -> nbformat.NotebookNode:
  """One percent-format source file -> a notebook with no outputs."""
  notebook = nbformat.v4.new_notebook()
  notebook.metadata["kernelspec"] = dict(KERNELSPEC)
  notebook.metadata["language_info"] = dict(LANGUAGE_INFO)
  for index, (kind, source) in enumerate(parse_cells(source_path.read_text(), str(source_path))):
    make = nbformat.v4.new_code_cell if kind == "code" else nbformat.v4.new_markdown_cell
    cell = make(source)
    cell["id"] = f"{source_path.stem.replace('_', '-')}-{index:02d}"  # Stable ids: clean diffs.
    notebook.cells.append(cell)
  nbformat.validate(notebook)
  return notebook


def source_files() -> List[pathlib.Path]:
  return sorted(SOURCE_DIR.glob("[0-9][0-9]_*.py"))


def target_path(source_path: pathlib.Path) -> pathlib.Path:
  return NOTEBOOK_DIR / f"{source_path.stem}.ipynb"


def render(notebook: nbformat.NotebookNode) -> str:
  return nbformat.writes(notebook) + "\n"


def main(argv=None) -> int:
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--check", action="store_true", help="only check that the notebooks are up to date")
  args = parser.parse_args(argv)
  stale = []
  for source_path in source_files():
    text = render(build_notebook(source_path))
    target = target_path(source_path)
    if args.check:
      if not target.exists() or target.read_text() != text:
        stale.append(target.name)
    else:
      target.write_text(text)
      print(f"wrote {target.relative_to(NOTEBOOK_DIR.parent)}")
  if stale:
    print(f"stale notebooks (run python notebooks/build_notebooks.py): {', '.join(stale)}", file=sys.stderr)
    return 1
  return 0


if __name__ == "__main__":
  sys.exit(main())
