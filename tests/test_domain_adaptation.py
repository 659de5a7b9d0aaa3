"""train.domain_adaptation: the held-out split, the drawn examples and the table (the runs are train.main's)."""

import csv
import json
import os

import pytest

from train.runs import model_dir
from train.study import domain_adaptation


def _source(path, n=200):
  with open(path, "w", encoding="utf-8", newline="") as f:
    writer = csv.writer(f)
    writer.writerow(["id", "sentiment", "text"])
    for i in range(n):
      label = ("negative", "positive", "neutral")[i % 3]
      writer.writerow([i, label, f"tweet number {i} is {label}\nsecond line" if i == 4 else f"tweet {i} {label}"])


def _rows(path):
  with open(path, encoding="utf-8", newline="") as f:
    return list(csv.reader(f))[1:]


def test_split_is_stable_one_line_per_row_and_keeps_only_negative_and_positive(tmp_path):
  _source(tmp_path / "src.csv")
  first = domain_adaptation.split_source(str(tmp_path / "src.csv"), "text", "sentiment", 0.25, str(tmp_path))
  pool, test = _rows(tmp_path / "pool.csv"), _rows(tmp_path / "test.csv")
  assert first["pool"] + first["test"] == 134 == len(pool) + len(test)  # The 66 neutral rows are left out.
  assert 0.1 < len(test) / 134 < 0.4 and not {r[0] for r in pool} & {r[0] for r in test}
  assert {r[1] for r in pool + test} == {"negative", "positive"}
  assert all("\n" not in r[0] for r in pool + test)
  again = domain_adaptation.split_source(str(tmp_path / "src.csv"), "text", "sentiment", 0.25, str(tmp_path))
  assert again == first and _rows(tmp_path / "test.csv") == test


def test_examples_are_a_seeded_prefix_and_the_table_has_every_method(tmp_path):
  _source(tmp_path / "src.csv")
  split = domain_adaptation.split_source(str(tmp_path / "src.csv"), "text", "sentiment", 0.25, str(tmp_path))
  path, count = domain_adaptation.write_examples(str(tmp_path), "10", 0)
  assert count == 10 and len(_rows(path)) == 10
  assert _rows(domain_adaptation.write_examples(str(tmp_path), "10", 0)[0]) == _rows(path)
  assert _rows(domain_adaptation.write_examples(str(tmp_path), "10", 1)[0]) != _rows(path)
  assert domain_adaptation.write_examples(str(tmp_path), "all", 0)[1] == split["pool"]
  runs = [{"method": "zero_shot", "size": "0", "accuracy": 0.7},
          *({"method": m, "size": s, "accuracy": a} for m, a in (("finetune", 0.9), ("scratch", 0.8), ("tfidf", 0.85))
            for s in ("10", "all")),
          {"method": "finetune", "size": "10", "accuracy": 0.8}]
  table = domain_adaptation.table(runs, split)
  assert "| released model, zero-shot | 70.00 | 70.00 |" in table
  assert "| fine-tuned from the released model | 85.00 +- 7.07 (n=2) | 90.00 (n=1) |" in table  # Sample std.
  assert "| TF-IDF + logistic regression | 85.00 (n=1) | 85.00 (n=1) |" in table


def test_a_run_is_reused_only_with_the_same_inputs(tmp_path):
  _source(tmp_path / "src.csv")
  split = domain_adaptation.split_source(str(tmp_path / "src.csv"), "text", "sentiment", 0.25, str(tmp_path))
  model = tmp_path / "model"
  model.mkdir()
  (model / model_dir.PARAMS_FILE).write_bytes(b"weights one")
  inputs = {m: domain_adaptation.run_inputs(m, split, str(model)) for m in ("zero_shot", "finetune", "scratch", "tfidf")}
  assert set(inputs["finetune"]) == {"source_sha256", "test_share", "model_params_sha256", "architecture"}
  assert "model_params_sha256" not in inputs["scratch"] and "architecture" not in inputs["tfidf"]
  path = str(tmp_path / "finetune__10__seed0.json")
  assert not domain_adaptation.earlier_run(path, inputs["finetune"])
  with open(path, "w", encoding="utf-8") as f:
    json.dump({"method": "finetune", "accuracy": 0.9, "inputs": inputs["finetune"]}, f)
  assert domain_adaptation.earlier_run(path, inputs["finetune"])
  (model / model_dir.PARAMS_FILE).write_bytes(b"weights two")  # Another released model: not the same run.
  with pytest.raises(ValueError, match="model_params_sha256 differ"):
    domain_adaptation.earlier_run(path, domain_adaptation.run_inputs("finetune", split, str(model)))
  os.remove(path)
  with open(path, "w", encoding="utf-8") as f:
    json.dump({"method": "finetune", "accuracy": 0.9}, f)  # No inputs recorded: never reused.
  with pytest.raises(ValueError, match="architecture, model_params_sha256, source_sha256, test_share differ"):
    domain_adaptation.earlier_run(path, inputs["finetune"])
