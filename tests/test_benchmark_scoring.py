"""benchmarks.scoring: a model's whole-process and steady-state rates, and its probabilities against the old path."""

import json
import os
import subprocess
import sys

import pytest

from benchmarks import scoring

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.mark.slow
def test_scoring_benchmark_end_to_end(tmp_path):
  texts = tmp_path / "tweets.txt"
  texts.write_text("\n".join(["i love this", "worst day ever", "so tired of work but ok", "@bob see http://x.co"] * 5)
                   + "\n", encoding="utf-8")
  subprocess.run([sys.executable, "-m", "benchmarks.scoring", f"--texts={texts}", "--num_tweets=30",
                  "--steady_tweets=25", "--rounds=2", "--models=lstm", f"--output_dir={tmp_path}"],
                 cwd=REPO, env=dict(os.environ, JAX_PLATFORMS="cpu"), check=True, capture_output=True, timeout=600)
  result = json.loads((tmp_path / "scoring_cpu.json").read_text())
  assert result["tweets"]["num_tweets"] == 30 and "20 tweets, repeated to 30 lines" in result["tweets"]["source"]
  lstm = result["models"]["lstm"]
  assert len(lstm["whole_process_s"]["cold"]) == 1 and len(lstm["whole_process_s"]["warm"]) == 1
  assert len(lstm["steady_state_s"]) == 2 and lstm["summary"]["steady_state_tweets_per_s"] > 0
  assert lstm["max_abs_probability_difference_vs_old_path"] <= 1e-3 and lstm["labels_different_from_old_path"] == 0
  assert "| lstm | " in (tmp_path / "scoring_cpu.md").read_text()


def test_summary_rates_come_from_the_median_round():
  entry = {"whole_process_s": {"cold": [10.0], "warm": [4.0, 5.0, 6.0]}, "steady_state_s": [1.0, 2.0],
           "old_path_steady_state_s": []}
  summary = scoring.summarize(entry, num_tweets=100, steady_tweets=10)
  assert summary == {"whole_process_cold_tweets_per_s": 10.0, "whole_process_warm_tweets_per_s": 20.0,
                     "steady_state_tweets_per_s": 10 / 1.5, "old_path_steady_state_tweets_per_s": None}
