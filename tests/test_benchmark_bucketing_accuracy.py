"""benchmarks.bucketing_accuracy: the runs it trains and the table it builds."""

import pytest

from benchmarks import bucketing_accuracy


def _report(test, validation, manual, rate=100.0):
  return {"test": {"accuracy": test}, "validation": {"accuracy": validation},
          "manual_test": {"binary": {"accuracy": manual}}, "examples_per_s": rate, "train_time_s": 10.0,
          "steps": 390}


def test_run_configs_differ_only_in_bucketing_and_seed():
  args = type("Args", (), dict(max_train_examples=200_000, num_epochs=1, warmup_steps=100, eval_every_steps=200))
  fixed, bucketed = (bucketing_accuracy.run_config(m, 1, args) for m in ("fixed", "bucketed"))
  assert not fixed.bucket_by_length and bucketed.bucket_by_length
  bucketed.bucket_by_length = False
  assert fixed.to_dict() == bucketed.to_dict()
  assert fixed.seed == 1 and fixed.max_train_examples == 200_000 and fixed.num_epochs == 1


def test_summary_means_std_and_difference():
  reports = {"fixed": [_report(0.80, 0.81, 0.82), _report(0.82, 0.81, 0.84)],
             "bucketed": [_report(0.81, 0.80, 0.83, 300.0), _report(0.83, 0.82, 0.83, 300.0)]}
  summary = bucketing_accuracy.summarize(reports)
  assert summary["fixed"]["test_accuracy"]["mean"] == pytest.approx(0.81)
  assert summary["fixed"]["test_accuracy"]["std"] == pytest.approx(0.0141421, rel=1e-4)
  assert summary["bucketed_minus_fixed"]["test_accuracy"] == pytest.approx(0.01)
  text = bucketing_accuracy.markdown({"environment": {"device": "cpu", "command": "c", "commit": "x",
                                                      "date_utc": "d"},
                                      "max_train_examples": 200_000, "num_epochs": 1, "warmup_steps": 100,
                                      "seeds": [0, 1], "other_load": "none", "summary": summary})
  assert "| fixed | 81.00 +- 1.41 |" in text and "test_accuracy +1.00" in text
