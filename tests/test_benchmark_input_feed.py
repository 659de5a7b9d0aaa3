"""benchmarks.input_feed: a clear error without grain; --quick runs and checks grain's batches (grain only)."""

import importlib.util
import json

import pytest

from benchmarks import input_feed


def test_without_grain_it_stops_with_one_line(monkeypatch, tmp_path):
  real_find_spec = importlib.util.find_spec
  monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "grain" else real_find_spec(name, *a))
  with pytest.raises(SystemExit) as stopped:
    input_feed.run(["--quick", f"--output_dir={tmp_path}"])
  assert str(stopped.value) == ("benchmarks.input_feed: needs the grain package, which the project does not "
                                "install (./run.sh pip install grain)")
  assert not list(tmp_path.iterdir())


def test_quick_run_feeds_the_trainers_batches(tmp_path):
  pytest.importorskip("grain")  # An optional package: the benchmark's comparison only.
  report = input_feed.run(["--quick", f"--output_dir={tmp_path}"])
  saved = json.load(open(next(tmp_path.glob("input_feed_*.json"))))
  assert saved["checks"] == {"same_batches_as_host": True, "grain_steps_resume_equal": True} == report["checks"]
  assert set(saved["examples_per_s"]) == set(input_feed.FEEDS)
  assert all(entry["median"] > 0 for entry in saved["examples_per_s"].values())
  assert "grain_steps yields the host feed's batches: True" in next(tmp_path.glob("input_feed_*.md")).read_text()
