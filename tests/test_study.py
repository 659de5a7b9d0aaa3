"""The comparison study (train.study), TF-IDF baseline and runtime benchmark, at toy size."""

import dataclasses
import json
import os
import statistics
import subprocess
import sys

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from unittest import mock

from configs import tiny
from train.data import normalization
from train.loop import models
from train.runs import preemption
from train.scoring import per_example
from train.study import qualitative
from train.study import runs as study_runs
from train.study import tfidf_baseline
from train.study import training as study_training

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def _num_params(config):
  model = models.create_model(config, 54)
  tokens = jnp.ones((1, 8), jnp.int32)
  shapes = jax.eval_shape(lambda: model.init({"params": jax.random.key(0)}, tokens, tokens))
  return models.count_params(shapes["params"]), shapes["params"]


def test_every_run_builds_its_model_with_its_overrides():
  options = study_runs.StudyOptions(quick=True, dataset="synthetic")
  params = {}
  for run in study_runs.STUDY_RUNS:
    config = study_runs.build_config(run, seed=3, options=options)
    assert config.seed == 3 and config.dataset == "synthetic"
    assert config.num_train_steps == study_runs.QUICK_OVERRIDES["num_train_steps"]
    for key, value in run.overrides.items():
      assert config.model[key.split(".")[1]] == value
    params[run.name] = _num_params(config)
  counts = {name: count for name, (count, _) in params.items()}
  assert counts["mamba_d_state_1"] < counts["mamba_d_state_4"] < counts["mamba"] < counts[
      "mamba_d_state_64"]
  assert counts["mamba_expand_1"] < counts["mamba"]
  assert counts["mamba"] < counts["mamba_bidirectional"] < counts["mamba_4_layers"] < counts["mamba_d_model_128"]
  assert counts["ssm"] < counts["mamba_no_bc_selection"] < counts["mamba"]
  assert "conv_kernel" not in params["mamba_no_conv"][1]["layers_0"]["mixer"]
  assert "dt_proj" not in params["ssm"][1]["layers_0"]["mixer"]
  assert "lstm_0" in params["lstm"][1] and "layers_0" in params["transformer"][1]


def test_run_selection_and_overrides():
  names = [r.name for r in study_runs.select_runs(["mamba_d_state_*", "lstm"])]
  assert names == ["lstm", "mamba_d_state_1", "mamba_d_state_4", "mamba_d_state_64"]
  with pytest.raises(ValueError, match="match no run"):
    study_runs.select_runs(["gru"])
  assert study_runs.parse_overrides(["num_epochs=1", "model.pooling=last"]) == {
      "num_epochs": 1, "model.pooling": "last"}
  with pytest.raises(ValueError, match="no field"):
    study_runs.build_config(study_runs.RUNS_BY_NAME["mamba"], 0,
                       study_runs.StudyOptions(overrides={"nope.x": 1}))


def test_bad_model_override_fails_before_any_training(tmp_path):
  options = study_runs.StudyOptions(output_dir=str(tmp_path / "out"), workdir_root=str(tmp_path / "wd"),
                               quick=True, dataset="synthetic", runs=["lstm"],
                               overrides={"model.num_heads": 4})
  with pytest.raises(ValueError, match="does not fit LSTMConfig"):
    study_training.run_study(options)
  assert not (tmp_path / "wd").exists()


def test_tfidf_baseline_learns_the_synthetic_task():
  config = tiny.get_config()
  splits, summary = tfidf_baseline.load_texts(config)
  assert summary["dataset"] == "synthetic"
  report = tfidf_baseline.fit_and_evaluate(splits, [0.5, 4.0], min_df=1)
  assert report["C"] in (0.5, 4.0) and len(report["c_search"]) == 2
  assert report["test"]["accuracy"] > 0.8
  manual = report["manual_test"]
  labels = splits["manual_test"][1]
  assert manual["binary"]["num_examples"] == int(np.sum(labels != 2))
  assert report["num_parameters"] == report["num_features"] + 1


def _write_runtime_results(directory):
  """A real (tiny) benchmarks.runtime result: two models, two lengths."""
  env = dict(os.environ, JAX_PLATFORMS="cpu")
  subprocess.run(
      [sys.executable, "-m", "benchmarks.runtime", "--models=mamba,transformer",
       "--lengths=8,32", "--repeats=2", "--min_repeats=1", "--step_repeats=3",
       "--batch_sizes=4", "--modes=forward", f"--output_dir={directory}"],
      cwd=REPO, env=env, check=True, capture_output=True, timeout=120)
  with open(os.path.join(directory, "runtime_cpu.json")) as f:
    result = json.load(f)
  assert [p["status"] for p in result["forward"]["mamba"]] == ["ok", "ok"]
  assert result["step"]["mamba"]["median_s"] > 0
  assert "forward" in result["summary"]["crossover"]
  return os.path.join(directory, "runtime_*.json")


@pytest.mark.slow
def test_quick_study_end_to_end(tmp_path):
  runtime_glob = _write_runtime_results(tmp_path / "runtime")
  tfidf_path = tmp_path / "tfidf_baseline.json"
  splits, _ = tfidf_baseline.load_texts(tiny.get_config())
  tfidf_path.write_text(json.dumps(tfidf_baseline.fit_and_evaluate(splits, [1.0], min_df=1)))
  out = tmp_path / "study"
  options = study_runs.StudyOptions(
      output_dir=str(out), workdir_root=str(tmp_path / "workdirs"), quick=True,
      dataset="synthetic", runs=["mamba", "mamba2", "transformer", "lstm", "ssm"],
      seeds=[0], runtime_results=runtime_glob, tfidf_results=str(tfidf_path))
  study_training.run_study(options)
  # A second seed of one run only (--runs filter): the other rows must stay.
  summary = study_training.run_study(dataclasses.replace(options, runs=["mamba"], seeds=[1]))

  rows = {row["run"]: row for row in summary["rows"]}
  assert list(rows) == ["mamba", "mamba2", "transformer", "lstm", "ssm"]
  _check_per_example_files_and_qualitative_report(out, options)
  assert rows["mamba"]["seeds"] == [0, 1] and rows["lstm"]["seeds"] == [0]
  for name, row in rows.items():
    values = []
    for seed in row["seeds"]:
      with open(out / "runs" / f"{name}__seed{seed}.json") as f:
        record = json.load(f)
      assert record["status"] == "ok"
      assert record["report"]["config"]["seed"] == seed
      values.append(record["report"]["test"]["accuracy"])
    stat = row["metrics"]["test_accuracy"]
    assert stat["values"] == values
    assert stat["mean"] == pytest.approx(statistics.fmean(values))
    assert (stat["std"] is None) == (len(values) == 1)
    assert 0.0 <= stat["mean"] <= 1.0
    assert row["metrics"]["num_params"]["mean"] > 0
  assert rows["mamba"]["metrics"]["num_params"]["std"] == 0.0

  md = (out / "study.md").read_text()
  table = [line for line in md.splitlines() if line.startswith("| ")][1:]  # without the header
  assert [line.split("|")[1].strip() for line in table] == list(rows) + ["tfidf_logreg"]
  mamba_line = table[0]
  acc = rows["mamba"]["metrics"]["test_accuracy"]
  assert f"{100 * acc['mean']:.2f} ± {100 * acc['std']:.2f}" in mamba_line
  assert "QUICK" in md and "accuracy.png" in md and "runtime.png" in md
  for png in ("accuracy.png", "runtime.png"):
    data = (out / png).read_bytes()
    assert data.startswith(PNG_SIGNATURE) and len(data) > 5000
  assert summary["runtime_results"] and summary["tfidf"]["model"] == "tfidf_logreg"
  with open(out / "summary.json") as f:
    assert json.load(f)["rows"] == json.loads(json.dumps(summary["rows"]))

  # Rerunning a finished (run, seed) reuses its eval report instead of training again.
  record = study_training.train_one(study_runs.RUNS_BY_NAME["ssm"], 0, options)
  assert record["reused"] is True
  # Starting the whole study again trains nothing and leaves the committed records as written.
  before = {p.name: p.read_bytes() for p in (out / "runs").glob("*.json")}
  study_training.run_study(options)
  assert {p.name: p.read_bytes() for p in (out / "runs").glob("*.json")} == before
  assert all(json.loads(data)["reused"] is False for data in before.values())
  # ... also on another machine, where only the committed run record exists (no workdir).
  elsewhere = dataclasses.replace(options, workdir_root=str(tmp_path / "no_workdirs_here"))
  record = study_training.train_one(study_runs.RUNS_BY_NAME["ssm"], 0, elsewhere)
  assert record["reused"] is True and record["report"]["test"]["accuracy"] == rows["ssm"]["metrics"][
      "test_accuracy"]["values"][0]
  assert not (tmp_path / "no_workdirs_here").exists()
  # A field that does not change the trained result (a cadence) may differ; one that does may not.
  cadence = dataclasses.replace(elsewhere, overrides={**options.overrides, "log_every_steps": 5})
  assert study_training.train_one(study_runs.RUNS_BY_NAME["ssm"], 0, cadence)["reused"] is True
  assert not (tmp_path / "no_workdirs_here").exists()
  # --retrain_without_answers: a record without per-example answers is made again: from its workdir's
  # answers where they exist, else by training; one with them is reused as it is.
  answers = out / "per_example" / "ssm__seed0.json"
  add = dataclasses.replace(options, retrain_without_answers=True)
  assert study_training.train_one(study_runs.RUNS_BY_NAME["lstm"], 0, add)["reused"] is True
  answers.unlink()
  record = study_training.train_one(study_runs.RUNS_BY_NAME["ssm"], 0, add)
  assert record["reused"] is True and answers.exists()  # From the workdir: nothing trained.
  answers.unlink()
  record = study_training.train_one(study_runs.RUNS_BY_NAME["ssm"], 0, dataclasses.replace(
      add, workdir_root=str(tmp_path / "fresh_workdirs")))
  assert record["reused"] is False and answers.exists()
  assert (tmp_path / "fresh_workdirs" / "ssm" / "seed0").is_dir()
  changed = dataclasses.replace(elsewhere, overrides={**options.overrides, "learning_rate": 1e-4})
  with pytest.raises(ValueError, match="learning_rate .* there, 0.0001 here.*--retrain"):
    study_training.run_study(dataclasses.replace(changed, runs=["ssm"], seeds=[0]))  # Records of mixed budgets.
  assert not (tmp_path / "no_workdirs_here").exists()  # Refused before any training.
  record = study_training.train_one(study_runs.RUNS_BY_NAME["ssm"], 0, dataclasses.replace(changed, retrain=True))
  assert record["reused"] is False and record["report"]["config"]["learning_rate"] == 1e-4
  with pytest.raises(preemption.Preempted):  # SIGTERM stops the study: no record, no next run.
    with mock.patch.object(study_training.trainer, "train_and_evaluate",
                           side_effect=preemption.Preempted("SIGTERM", 3, "ckpt")) as train:
      study_training.run_study(dataclasses.replace(options, runs=["lstm", "ssm"], seeds=[5]))
  assert train.call_count == 1 and not (out / "runs" / "lstm__seed5.json").exists()


def _check_per_example_files_and_qualitative_report(out, options):
  """Each run's answers on the same tweets agree with its report; the per-tweet report pairs them."""
  answers = {}
  for name in ("mamba", "mamba2", "transformer", "lstm", "ssm"):
    record = per_example.read(str(out / "per_example" / f"{name}__seed0.json"))
    with open(out / "runs" / f"{name}__seed0.json") as f:
      report = json.load(f)["report"]
    assert set(record["parts"]) == {"manual_test", "test_sample"}  # No reference tweets off Sentiment140.
    manual = record["parts"]["manual_test"]
    labels, predicted = np.asarray(manual["labels"]), per_example.predictions(manual)
    binary = labels < 2
    assert len(labels) == report["manual_test"]["binary"]["num_examples"] + report["manual_test"]["three_way"][
        "num_neutral"]
    assert np.mean(predicted[binary] == labels[binary]) == pytest.approx(report["manual_test"]["binary"]["accuracy"])
    sample = record["parts"]["test_sample"]
    assert len(sample["keys"]) == min(per_example.SAMPLE_SIZE, report["test"]["num_examples"])
    assert sample["keys"] == sorted(sample["keys"])
    answers[name] = record
  assert len({tuple(r["parts"]["test_sample"]["keys"]) for r in answers.values()}) == 1  # The same tweets.
  assert (out / "per_example" / "mamba__seed1.json").exists()

  report = qualitative.write_qualitative(options)
  assert report["runs"] == ["mamba", "mamba2", "transformer", "lstm", "ssm"] and not report["missing"]
  assert report["seeds"]["mamba"] == [0, 1]
  assert len(report["disagreements"]) == qualitative.DISAGREEMENTS
  minority = [row["minority_votes"] for row in report["disagreements"]]
  assert minority == sorted(minority, reverse=True)
  pairs = [row for row in report["pairwise"] if row["seed"] == 0]
  assert len(pairs) == 2 * 10  # 10 pairs of 5 models, manual test and held-out sample.
  for row in pairs:  # The discordant counts are the accuracy difference.
    assert row["only_a"] - row["only_b"] == round((row["accuracy_a"] - row["accuracy_b"]) * row["rows"])
    assert row["only_a"] + row["only_b"] + row["both"] + row["neither"] == row["rows"]
  md = (out / "qualitative.md").read_text()
  assert "## 3. Pairs of models" in md and md.count("| mamba | mamba2 | 0 |") == 2


def test_mcnemar_exact_test_and_row_alignment():
  labels = np.array([1] * 12 + [0] * 4)
  a = np.array([1] * 10 + [0] * 2 + [0] * 4)  # Right on 10 of the 12 discordant rows.
  b = np.array([0] * 10 + [1] * 2 + [0] * 4)
  test = per_example.mcnemar(labels, a, b)
  assert (test["only_a"], test["only_b"], test["both"], test["neither"]) == (10, 2, 4, 0)
  assert test["p_value"] == pytest.approx(2 * (1 + 12 + 66) / 4096)
  assert per_example.mcnemar(labels, a, a)["p_value"] == 1.0
  one = per_example.part(["k1", "k2", "k3"], [0, 1, 2], [[0.9, 0.1], [0.2, 0.8], [0.6, 0.4]])
  other = per_example.part(["k3", "k1"], [2, 0], [[0.3, 0.7], [0.4, 0.6]])
  keys, labels, probs = per_example.aligned({"one": one, "other": other}, keep_labels=(0, 1))
  assert keys == ["k1"] and labels.tolist() == [0]
  assert probs["other"][0].tolist() == [[0.4, 0.6]] and probs["other"][1].tolist() == [1]
  tie = per_example.part(["k"], [1], [[0.4999996, 0.5000004]])  # Rounded to a tie; the prediction is kept.
  assert tie["probs"] == [[0.5, 0.5]] and per_example.predictions(tie).tolist() == [1]
  with pytest.raises(ValueError, match="differently"):
    per_example.aligned({"one": one, "bad": per_example.part(["k1"], [1], [[0.5, 0.5]])})
  assert per_example.sample_rows(["c", "a", "b"], 2).tolist() == [1, 2]


def test_qualitative_reference_tweets_and_ablation_slices(tmp_path):
  keys = per_example.row_keys(normalization.normalize_many(list(per_example.REFERENCE_TWEETS)))
  record = per_example.build(("negative", "positive"), {"reference": per_example.part(
      keys, [-1] * 3, [[0.1, 0.9], [0.7, 0.3], [0.4, 0.6]])})
  rows = qualitative.reference_rows({"mamba": {0: record}}, {per_example.REFERENCE_TWEETS[0]: ["positive"]})
  assert [row["answers"]["mamba"] for row in rows] == ["positive 0.90", "negative 0.70", "positive 0.60"]
  assert rows[0]["training_file_labels"] == ["positive"] and rows[1]["training_file_labels"] == []

  def slices(correct, count=1000):  # One slice bucket of the held-out test.
    return {"status": "ok", "report": {"test": {"slices": {"features": {"mention": {"yes": {
        "correct": correct, "count": count}}}}}}}
  (tmp_path / "runs").mkdir()
  for name, correct in (("mamba", 800), ("mamba_no_conv", 700), ("mamba_expand_1", 805)):
    (tmp_path / "runs" / f"{name}__seed0.json").write_text(json.dumps(slices(correct)))
  moved = {row["run"]: row["slices"] for row in qualitative.ablation_slices(str(tmp_path))}
  assert moved["mamba_expand_1"] == []  # 0.5 points on 1,000 tweets: noise.
  assert [(s["feature"], s["bucket"], round(s["change"], 3)) for s in moved["mamba_no_conv"]] == [
      ("mention", "yes", -0.1)]
