"""The predict CLI on good and bad input lines (never a crash, one answer per line, in order)."""

import json
import os
import subprocess
import sys

import pytest

from train import predict

from tests import train_tiny_run

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.fixture(scope="module")
def workdir():
  return train_tiny_run.trained_tiny_run()[0]


def test_classify_lines_in_order_with_errors_and_notes(workdir):
  predictor = predict.Predictor(workdir)
  lines = [
      b"good great happy\n",
      b"\n",
      b"   \r\n",
      b"\xff\xfe bad awful",
      "\U0001F600\U0001F622".encode("utf-8"),
      b"good " * 5000,
      b"bad sad terrible",
  ]
  results = list(predict.classify(predictor, lines, threshold=0.0, batch_size=2))
  assert [r["line"] for r in results] == list(range(1, len(lines) + 1))
  assert results[1]["error"] == "empty line" and results[2]["error"] == "empty line"
  assert results[0]["label"] == "positive" and results[6]["label"] == "negative"
  assert "invalid UTF-8" in results[3]["note"] and results[3]["label"] in ("negative", "positive")
  assert results[4]["label"] in ("negative", "positive")
  assert "cut to" in results[5]["note"] and "first 16 tokens" in results[5]["note"]
  for r in results:
    if "error" not in r:
      assert 0.5 <= r["probability"] <= 1.0
  # Threshold 1.0: every answered line is neutral.
  assert {r.get("label") for r in predict.classify(predictor, lines, threshold=1.0) if "label" in r} == {"neutral"}


def test_cli_stdin_and_arguments(workdir):
  env = {**os.environ, "JAX_PLATFORMS": "cpu"}
  stdin = b"good great happy\n\n\xc3\x28 invalid\n\xf0\x9f\x98\x80\nbad sad\n"
  result = subprocess.run([sys.executable, "-m", "train.predict", f"--workdir={workdir}", "--format=json"],
                          input=stdin, cwd=REPO, env=env, capture_output=True, timeout=300)
  assert result.returncode == 0, result.stderr.decode()[-3000:]
  rows = [json.loads(line) for line in result.stdout.decode().splitlines()]
  assert [r["line"] for r in rows] == [1, 2, 3, 4, 5]
  assert rows[1] == {"line": 2, "error": "empty line"}
  assert rows[0]["label"] == "positive" and rows[4]["label"] == "negative"

  result = subprocess.run([sys.executable, "-m", "train.predict", f"--workdir={workdir}", "--threshold=0.5",
                           "good happy", "", "bad sad"], cwd=REPO, env=env, capture_output=True, text=True,
                          timeout=300)
  assert result.returncode == 0, result.stderr[-3000:]
  out = result.stdout.splitlines()
  assert len(out) == 3
  assert out[0].startswith("positive\t") and out[1].startswith("error\t") and out[2].startswith("negative\t")


def test_cli_missing_workdir_is_a_clear_error(tmp_path):
  result = subprocess.run([sys.executable, "-m", "train.predict", f"--workdir={tmp_path}", "x"], cwd=REPO,
                          env={**os.environ, "JAX_PLATFORMS": "cpu"}, capture_output=True, text=True, timeout=300)
  assert result.returncode == 2
  assert "config.json not found" in result.stderr
  assert "Traceback" not in result.stderr
