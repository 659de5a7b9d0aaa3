"""benchmarks.lra_speed at tiny sizes: every model's training step and forward timed, the report written."""

import json

import pytest

from benchmarks import lra_speed
from configs import lra as lra_configs


def test_every_model_timed(tmp_path):
  report = lra_speed.run(["--tiny", "--lengths=32", "--batch_size=2", "--repeats=2", "--min_repeats=1",
                          f"--output_dir={tmp_path}", "--device_tag=test"])
  assert list(report["models"]) == list(lra_configs.MODELS)
  for name, points in report["models"].items():
    assert [p["length"] for p in points] == [32]
    for point in points:
      for kind in ("train_step", "forward"):
        assert point[kind]["status"] == "ok" and point[kind]["median_s"] > 0, (name, point)
  assert set(report["speedup"]) == {f"{m} at 32" for m in lra_configs.MODELS if m != "transformer_rope"}
  saved = json.loads((tmp_path / "lra_speed_test.json").read_text())
  assert saved["num_params"] == report["num_params"] and saved["tiny"] is True
  text = (tmp_path / "lra_speed_test.md").read_text()
  assert "## Training step (ms)" in text and "| performer |" in text and "load average" in text


def test_points_above_the_memory_limit_are_skipped(tmp_path):
  report = lra_speed.run(["--tiny", "--models=transformer_rope", "--lengths=64", "--batch_size=2",
                          "--max_memory_gib=0.000001", f"--output_dir={tmp_path}", "--device_tag=test"])
  point = report["models"]["transformer_rope"][0]
  assert point["train_step"]["status"] == point["forward"]["status"] == "skipped_memory"
  with pytest.raises(ValueError, match="unknown --models"):
    lra_speed.run(["--models=lstm", f"--output_dir={tmp_path}"])
