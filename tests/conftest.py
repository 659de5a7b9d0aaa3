"""Fixtures shared by the test files: the tiny training run and its exports, each made once per session."""

import os
import subprocess
import sys

import pytest

from train import export

from tests import train_tiny_run

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.fixture(scope="session")
def trained():
  """(workdir, config, report) of the uninterrupted tiny run (``tests/train_tiny_run.py``)."""
  return train_tiny_run.trained_tiny_run()


@pytest.fixture(scope="session")
def trained_workdir(trained):
  """The tiny run's workdir (read it, do not change it: copy it first)."""
  return trained[0]


@pytest.fixture(scope="session")
def exported(trained_workdir, tmp_path_factory):
  """(float32 export dir, its evaluation dict) of the tiny run, written in-process."""
  output = str(tmp_path_factory.mktemp("export") / "tiny_float32")
  return output, export.export(trained_workdir, output, "float32")


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
  from train import classes, model_dir  # pylint: disable=import-outside-toplevel
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
