"""The notebooks run top to bottom from a clean kernel and match their sources.

Each notebook is executed with nbclient in a fresh ``python3`` kernel of the
interpreter running the tests (jupyter_client maps the kernelspec's "python" to
``sys.executable``), with the working directory ``notebooks/`` as in Jupyter,
and with ``MAMBA_JAX_NOTEBOOK_QUICK=1`` so its settings cell picks CI sizes.
Training runs and data caches go to a temporary directory
(``MAMBA_JAX_NOTEBOOK_WORKDIR``), never into the checkout.
"""

from __future__ import annotations

import csv
import os
import pathlib
import re
import sys

import pytest

nbformat = pytest.importorskip("nbformat")
nbclient = pytest.importorskip("nbclient")
pytest.importorskip("ipykernel")

REPO_ROOT = pathlib.Path(__file__).resolve().parents[1]
NOTEBOOK_DIR = REPO_ROOT / "notebooks"
NOTEBOOKS = ("01_quickstart.ipynb", "02_selective_scan.ipynb", "03_results.ipynb")
CELL_TIMEOUT_S = 300

sys.path[:0] = [str(NOTEBOOK_DIR), str(REPO_ROOT)]
import build_notebooks  # noqa: E402  pylint: disable=wrong-import-position


def test_every_notebook_is_listed():
  assert sorted(p.name for p in NOTEBOOK_DIR.glob("[0-9][0-9]_*.ipynb")) == sorted(NOTEBOOKS)


def test_notebooks_match_their_sources():
  assert build_notebooks.main(["--check"]) == 0, "run: python notebooks/build_notebooks.py"


@pytest.mark.parametrize("name", NOTEBOOKS)
def test_notebook_is_committed_without_outputs(name):
  notebook = nbformat.read(NOTEBOOK_DIR / name, as_version=4)
  nbformat.validate(notebook)
  for cell in notebook.cells:
    if cell.cell_type == "code":
      assert not cell.outputs and cell.execution_count is None, f"{name}: outputs not cleared"


def _write_csv(path, rows):
  with open(path, "w", encoding="latin-1", newline="") as f:
    csv.writer(f, quoting=csv.QUOTE_ALL).writerows(rows)


def test_sentiment140_sample_is_a_readable_data_folder(tmp_path):
  import sentiment140_sample  # notebooks/sentiment140_sample.py  pylint: disable=import-outside-toplevel
  from train.data import sources  # pylint: disable=import-outside-toplevel

  full = tmp_path / "full"
  full.mkdir()
  tweets = [(("0", "4")[i % 2], str(i), "", "NO_QUERY", "u", f"tweet number {i} caf\xe9") for i in range(40)]
  _write_csv(full / "training.tiny.csv", tweets)
  _write_csv(full / sources.MANUAL_TEST_CSV, [("2", "1", "", "q", "u", "meh"), ("4", "2", "", "q", "u", "yay")])

  folder = sentiment140_sample.write_sample(full, tmp_path / "sample", 10, seed=1)
  files = sources.find_sources(str(folder), download=False)
  sampled = sources.read_csv(files.train, allow_neutral=False)
  assert len(sampled.texts) == 10 and sum(sampled.malformed.values()) == 0
  originals = {t[5]: int(t[0] == "4") for t in tweets}
  assert all(originals[text] == label for text, label in zip(sampled.texts, sampled.labels))
  assert len(set(sampled.texts)) == 10
  manual = sources.read_csv(files.manual_test, allow_neutral=True)
  assert manual.texts == ["meh", "yay"] and manual.labels.tolist() == [2, 1]
  # Written once: a second call keeps the file; another seed gives another sample.
  before = (folder / "training.sample10.csv").read_bytes()
  assert sentiment140_sample.write_sample(full, folder, 10, seed=2) == folder
  assert (folder / "training.sample10.csv").read_bytes() == before
  other = sentiment140_sample.write_sample(full, tmp_path / "other", 10, seed=2)
  assert (other / "training.sample10.csv").read_bytes() != before
  assert not list(folder.glob("*.partial"))


def test_markdown_marker_lines_are_checked():
  with pytest.raises(ValueError, match="must start with '# '"):
    build_notebooks.parse_cells("# %% [markdown]\nnot a comment\n", "bad.py")
  cells = build_notebooks.parse_cells("header\n# %% [markdown]\n# # Title\n#\n# %%\nx = 1\n")
  assert cells == [("markdown", "# Title"), ("code", "x = 1")]


@pytest.fixture(scope="session")
def data_cache(tmp_path_factory):
  """One prepared-data folder for all notebooks of the session ($MAMBA_JAX_DATA_CACHE if set)."""
  return os.environ.get("MAMBA_JAX_DATA_CACHE") or str(tmp_path_factory.mktemp("data_cache"))


def execute(name, monkeypatch, **env):
  """Runs notebooks/<name> in a fresh kernel with env set; returns the executed notebook."""
  for key, value in env.items():
    monkeypatch.setenv(key, value)
  monkeypatch.setenv("MAMBA_JAX_NOTEBOOK_QUICK", "1")
  monkeypatch.setenv("JAX_PLATFORMS", os.environ.get("JAX_PLATFORMS", "cpu"))
  monkeypatch.setenv("PYTHONPATH", os.pathsep.join(
      [str(REPO_ROOT)] + [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p]))
  notebook = nbformat.read(NOTEBOOK_DIR / name, as_version=4)
  client = nbclient.NotebookClient(
      notebook, timeout=CELL_TIMEOUT_S, kernel_name="python3",
      resources={"metadata": {"path": str(NOTEBOOK_DIR)}})
  try:
    client.execute()
  except nbclient.exceptions.CellExecutionError as e:
    message = re.sub(r"\x1b\[[0-9;]*m", "", str(e))  # Drop the traceback's terminal colours.
    pytest.fail(f"{name} failed in a cell:\n{message}", pytrace=False)
  return notebook


def printed(notebook) -> str:
  return "".join(o.get("text", "") for c in notebook.cells if c.cell_type == "code"
                 for o in c.outputs if o.output_type == "stream")


@pytest.mark.slow
@pytest.mark.parametrize("name", NOTEBOOKS)
def test_notebook_runs(name, tmp_path, monkeypatch, data_cache):
  notebook = execute(name, monkeypatch, MAMBA_JAX_NOTEBOOK_WORKDIR=str(tmp_path / "workdir"),
                     MAMBA_JAX_DATA_CACHE=data_cache, MAMBA_JAX_NOTEBOOK_FIGURES=str(tmp_path / "figures"))
  figures = [o for c in notebook.cells if c.cell_type == "code" for o in c.outputs
             if "image/png" in o.get("data", {})]
  assert figures or name == "03_results.ipynb", f"{name} drew no figure"
  if name == "02_selective_scan.ipynb":
    saved = sorted(p.name for p in (tmp_path / "figures").glob("*.png"))
    assert saved == ["delta_per_channel.png", "delta_per_token.png", "state_norm.png"]


@pytest.mark.slow
def test_results_notebook_explains_missing_files(tmp_path, monkeypatch):
  notebook = execute("03_results.ipynb", monkeypatch, MAMBA_JAX_RESULTS_DIR=str(tmp_path / "empty"))
  text = printed(notebook)
  for command in ("python -m train.study", "python -m benchmarks.runtime", "python -m benchmarks.scan"):
    assert f"run `{command}" in text
  assert "the accuracy table and figures are skipped" in text
