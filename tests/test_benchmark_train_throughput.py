"""benchmarks.train_throughput --quick: runs, writes the JSON/markdown the README and issue ask for."""

import json

import numpy as np
import pytest

from benchmarks import train_throughput
from train.data import batching


def test_synthetic_split_follows_the_histogram():
  histogram = train_throughput.load_histogram()
  assert histogram.sum() == 1_568_000 and len(histogram) == 65
  split = train_throughput.synthetic_split(histogram, 20_000, vocab_size=100)
  lengths = batching.example_lengths(split.tokens)
  real_mean = (np.arange(65) * histogram).sum() / histogram.sum()
  assert abs(lengths.mean() - real_mean) < 0.3
  assert split.tokens.max() < 100 and np.all((split.tokens != 0).sum(1) == lengths)


@pytest.mark.slow
def test_quick_run_writes_speedups(tmp_path):
  report = train_throughput.run(["--quick", f"--output_dir={tmp_path}"])
  saved = json.load(open(tmp_path / "train_throughput_cpu.json"))
  assert set(saved["speedup"]) == set(train_throughput.QUICK["configs"].split(","))
  assert "mamba2" in saved["speedup"]
  for name, entry in saved["models"].items():
    assert saved["speedup"][name] > 0
    assert entry["bucketed"]["compiled_train_programs"] == 2 and entry["fixed"]["compiled_train_programs"] == 1
    assert entry["bucketed"]["full_run_estimate_min"] > 0
    assert sum(entry["bucketed"]["batches_per_epoch_by_bound"].values()) > 0
  assert saved["environment"]["command"].startswith("python -m benchmarks.train_throughput --quick")
  assert report["speedup"] == saved["speedup"]
  text = (tmp_path / "train_throughput_cpu.md").read_text()
  assert "| mamba |" in text and "| mamba2 |" in text
  assert "Estimated full `configs/sent140.py` run" in text
  assert "Estimated full `configs/sent140_mamba2.py` run" in text
  assert saved["model_overrides"]["head_dim"] == 16  # Mamba-2: d_inner 32 in 2 heads.
