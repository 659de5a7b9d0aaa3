"""benchmarks.own_data_finetune: the README's fine-tune of the released model, timed, on a small file."""

import json

import pytest

from benchmarks import command_line, own_data_finetune


@pytest.mark.slow
def test_times_the_fine_tune_and_reports_its_plan_and_scores(tmp_path):
  words = {"negative": "awful sad hate broken", "positive": "lovely great happy thanks", "neutral": "flight gate at noon"}
  with open(tmp_path / "mine.csv", "w", encoding="utf-8") as f:
    f.write("text,label\n")
    for i in range(90):
      label = ("negative", "positive", "neutral")[i % 3]
      f.write(f"{words[label].split()[i % 4]} tweet number {i},{label}\n")
  out = tmp_path / "results"
  report = command_line.run_in_process("benchmarks.own_data_finetune", own_data_finetune.define_flags,
                                       own_data_finetune.benchmark,
                                       [f"--train_file={tmp_path / 'mine.csv'}", f"--output_dir={out}",
                                        f"--work_dir={tmp_path / 'work'}", "--overrides=num_train_steps=3"])
  summary = report["summary"]
  assert summary["steps"] == 3 and summary["train_rows"] > 0 and report["plan"].startswith("Plan: ")
  assert summary["wall_time_s"] > summary["train_time_s"] > 0
  assert 0.0 <= summary["test_macro_recall"] <= 1.0 and report["class_weighting"] == "balanced"
  assert "--config.num_train_steps=3" in report["command"]
  with open(out / "own_data_finetune_cpu.json") as f:
    assert json.load(f)["train_file"]["sha256"] == report["train_file"]["sha256"]
  assert "| whole process |" in (out / "own_data_finetune_cpu.md").read_text()
  with pytest.raises(ValueError, match="not found"):
    command_line.run_in_process("benchmarks.own_data_finetune", own_data_finetune.define_flags,
                                own_data_finetune.benchmark, [f"--train_file={tmp_path / 'none.csv'}"])
