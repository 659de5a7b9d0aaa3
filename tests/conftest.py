"""Fixtures shared by the test files: the tiny training run and its exports, each made once per session.

XLA's CPU compiler is most of the suite's time on a small machine: the test processes (pytest
and its xdist workers), the CLI runs they start and the notebook kernels compile tiny models'
steps again and again. So, for every process of the session (set here, before JAX is imported,
and inherited):

- XLA compiles fast (``TEST_XLA_FLAGS``: no LLVM optimization, the classic fusion emitters),
  ~2x faster on these tiny programs. The suite checks what the programs compute, not how fast
  the compiled code runs; a comparison between two runs always has both under the same flags.
  An ``XLA_FLAGS`` that already sets ``--xla_backend_optimization_level`` is left alone (to
  run the suite with XLA's defaults: ``XLA_FLAGS=--xla_backend_optimization_level=2``).
- JAX allocates GPU memory as needed (``XLA_PYTHON_CLIENT_PREALLOCATE=false``, unless set), so
  the xdist workers can share one GPU.
- One persistent compilation cache, keyed by the program, the XLA flags and the backend (a hit
  runs exactly what a fresh compile would), in a fresh temporary folder removed at the end,
  unless ``JAX_COMPILATION_CACHE_DIR`` is already set.
"""

import atexit
import json
import os
import shutil
import subprocess
import sys
import tempfile

TEST_XLA_FLAGS = "--xla_backend_optimization_level=0 --xla_cpu_use_fusion_emitters=false"
if "--xla_backend_optimization_level" not in os.environ.get("XLA_FLAGS", ""):
  os.environ["XLA_FLAGS"] = f"{os.environ.get('XLA_FLAGS', '')} {TEST_XLA_FLAGS}".strip()
os.environ.setdefault("XLA_PYTHON_CLIENT_PREALLOCATE", "false")
if "JAX_COMPILATION_CACHE_DIR" not in os.environ:  # Before JAX is imported; xdist workers inherit it.
  os.environ["JAX_COMPILATION_CACHE_DIR"] = tempfile.mkdtemp(prefix="mamba_jax_tests_xla_cache_")
  os.environ["JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS"] = "0.2"  # Cheaper to compile than to read: not stored.
  atexit.register(shutil.rmtree, os.environ["JAX_COMPILATION_CACHE_DIR"], ignore_errors=True)

import pytest  # pylint: disable=wrong-import-position

from train.loop import trainer
from train.model_files import exporter  # pylint: disable=wrong-import-position
from train.runs import eval_report

from tests import train_tiny_run  # pylint: disable=wrong-import-position
from tests.once_per_session import first_to_ask  # pylint: disable=wrong-import-position

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def pytest_collection_modifyitems(items):
  """Tests marked slow first, the rest in file order: the two xdist workers then end together."""
  items.sort(key=lambda item: item.get_closest_marker("slow") is None)


@pytest.fixture(scope="session")
def shared_tmp_path(tmp_path_factory, worker_id):
  """A folder all xdist workers of this session see (without xdist: the session's own)."""
  base = tmp_path_factory.getbasetemp()
  return base.parent if worker_id != "master" else base


@pytest.fixture(scope="session")
def trained(shared_tmp_path):
  """(workdir, config, report) of the uninterrupted tiny run (``tests/train_tiny_run.py``).

  Trained once per session: the first xdist worker to ask trains it, the others wait and read it.
  """
  workdir, config = shared_tmp_path / "tiny_run", train_tiny_run.tiny_config()
  done = workdir / eval_report.EVAL_REPORT_FILE  # Written last, by the run.
  with first_to_ask(shared_tmp_path / "tiny_run.lock", done) as make:
    if make:
      trainer.train_and_evaluate(config, str(workdir))
  with open(done, encoding="utf-8") as f:
    return str(workdir), config, json.load(f)


@pytest.fixture(scope="session")
def trained_workdir(trained):
  """The tiny run's workdir (read it, do not change it: copy it first)."""
  return trained[0]


@pytest.fixture(scope="session")
def exported(trained_workdir, tmp_path_factory):
  """(float32 export dir, its evaluation dict) of the tiny run, written in-process."""
  output = str(tmp_path_factory.mktemp("export") / "tiny_float32")
  return output, exporter.export(trained_workdir, output, "float32")


@pytest.fixture(scope="session")
def exported_bfloat16(trained_workdir, tmp_path_factory):
  """A bfloat16 export of the tiny run, written by the CLI."""
  output = str(tmp_path_factory.mktemp("export") / "tiny_bf16")
  result = subprocess.run([sys.executable, "-m", "train.export", f"--workdir={trained_workdir}",
                           f"--output={output}", "--dtype=bfloat16"], cwd=REPO,
                          env={**os.environ, "JAX_PLATFORMS": "cpu"}, capture_output=True, text=True, timeout=300)
  assert result.returncode == 0, result.stderr[-3000:]
  assert "wrote" in result.stdout and "stored" in result.stdout
  return output


THREE_CLASSES = ("negative", "positive", "neutral")


@pytest.fixture(scope="session")
def three_class_export(exported, tmp_path_factory):
  """An exported model of 3 classes (``THREE_CLASSES``, in a classes.json), made from the tiny export.

  Not trained on 3 classes: its head is the binary head plus a "neutral" logit, the mean of the
  other two plus 1, so it answers neutral where the binary model is unsure (|logit gap| < 2).
  """
  import shutil  # pylint: disable=import-outside-toplevel
  import numpy as np  # pylint: disable=import-outside-toplevel
  from train.runs import classes  # pylint: disable=import-outside-toplevel
  from train.runs import model_dir
  source, _ = exported
  output = str(tmp_path_factory.mktemp("export") / "tiny_three_classes")
  shutil.copytree(source, output)
  path = os.path.join(output, model_dir.PARAMS_FILE)
  params, metadata = model_dir.load_params(path)
  kernel, bias = np.asarray(params["head"]["kernel"]), np.asarray(params["head"]["bias"])
  params["head"]["kernel"] = np.concatenate([kernel, kernel.mean(axis=1, keepdims=True)], axis=1)
  params["head"]["bias"] = np.concatenate([bias, [bias.mean() + 1.0]]).astype(np.float32)
  model_dir.save_params(path, params, "float32", {k: v for k, v in metadata.items()
                                                    if k in ("model_type", "step")})
  classes.write(output, THREE_CLASSES)
  return output
