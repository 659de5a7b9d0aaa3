"""train.domain_adaptation: the held-out split, the drawn examples, the inputs a run is reused by, the tables,
and the classical baselines (the Mamba runs are train.main's)."""

import csv
import json
import os

import numpy as np
import pytest

from train.model_files import exporter, model_card
from train.runs import model_dir
from train.study import domain_adaptation, fasttext_baseline, release_rule, tfidf_baseline

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _source(path, n=200):
  with open(path, "w", encoding="utf-8", newline="") as f:
    writer = csv.writer(f)
    writer.writerow(["id", "sentiment", "text"])
    for i in range(n):
      label = ("Negative", "positive", "NEUTRAL", "irrelevant")[i % 4]
      writer.writerow([i, label, f"tweet number {i} is {label}\nsecond line" if i == 4 else f"tweet {i} {label}"])


def _rows(path):
  with open(path, encoding="utf-8", newline="") as f:
    return list(csv.reader(f))[1:]


@pytest.mark.parametrize("classes, kept", [(("negative", "positive"), 100),
                                           (("negative", "neutral", "positive"), 150)])
def test_split_is_stable_one_line_per_row_and_keeps_only_the_classes(tmp_path, classes, kept):
  _source(tmp_path / "src.csv")
  first = domain_adaptation.split_source(str(tmp_path / "src.csv"), "text", "sentiment", 0.25, str(tmp_path), classes)
  pool, test = _rows(tmp_path / "pool.csv"), _rows(tmp_path / "test.csv")
  assert first["pool"] + first["test"] == kept == len(pool) + len(test)  # Other labels are left out.
  assert 0.1 < len(test) / kept < 0.4 and not {r[0] for r in pool} & {r[0] for r in test}
  assert {r[1] for r in pool + test} == set(classes)
  assert sum(first["class_counts"]["test"].values()) == len(test)
  assert all("\n" not in r[0] for r in pool + test)
  again = domain_adaptation.split_source(str(tmp_path / "src.csv"), "text", "sentiment", 0.25, str(tmp_path), classes)
  assert again == first and _rows(tmp_path / "test.csv") == test
  with pytest.raises(ValueError, match="--classes=negative,irrelevant"):
    domain_adaptation.split_source(str(tmp_path / "src.csv"), "text", "sentiment", 0.25, str(tmp_path),
                                   ("negative", "irrelevant"))


def test_examples_are_a_seeded_prefix_and_the_tables_have_every_method(tmp_path):
  _source(tmp_path / "src.csv")
  split = domain_adaptation.split_source(str(tmp_path / "src.csv"), "text", "sentiment", 0.25, str(tmp_path),
                                         ("negative", "positive", "neutral"))
  path, count = domain_adaptation.write_examples(str(tmp_path), "10", 0)
  assert count == 10 and len(_rows(path)) == 10
  assert _rows(domain_adaptation.write_examples(str(tmp_path), "10", 0)[0]) == _rows(path)
  assert _rows(domain_adaptation.write_examples(str(tmp_path), "10", 1)[0]) != _rows(path)
  assert domain_adaptation.write_examples(str(tmp_path), "all", 0)[1] == split["pool"]
  scores = lambda a, r: {"accuracy": a, "macro_recall": r, "macro_f1": r}
  runs = [{"method": "zero_shot", "size": "0", **scores(0.7, 0.5)},
          *({"method": m, "size": s, **scores(a, a - 0.1)} for m, a in (
              ("finetune", 0.9), ("finetune_lm", 0.95), ("scratch", 0.8), ("tfidf", 0.85), ("tfidf_balanced", 0.84),
              ("fasttext", 0.83)) for s in ("10", "all")),
          {"method": "finetune", "size": "10", **scores(0.8, 0.7)}]
  table = domain_adaptation.table(runs, split)
  assert table.index("## Test macro-averaged recall") < table.index("## Test accuracy") < table.index("## Test macro-F1")
  assert "| current release, zero-shot | 50.00 | 50.00 |" in table  # Macro-recall first.
  assert "| fine-tuned from the current release | 75.00 +- 7.07 (n=2) | 80.00 (n=1) |" in table  # Sample std.
  assert "| fine-tuned from candidate `lm` | 85.00 (n=1) | 85.00 (n=1) |" in table
  assert "| TF-IDF + logistic regression, class-weighted | 74.00 (n=1) | 74.00 (n=1) |" in table
  assert "| fastText (bigrams, dim 100) | 83.00 (n=1) | 83.00 (n=1) |" in table  # The accuracy table.

  # A release's card gains the macro-recall table (python -m train.export --transfer_of).
  (tmp_path / "airline").mkdir()
  (tmp_path / "airline" / "table.md").write_text(table)
  model = tmp_path / "model"
  model.mkdir()
  with open(os.path.join(REPO, "models", "sent140_mamba", model_dir.CARD_FILE), encoding="utf-8") as f:
    before = f.read()
  if model_card.TRANSFER_HEADING in before:  # The release's card has its own tables: start from a card without.
    before = before[:before.index(model_card.TRANSFER_HEADING)] + before[before.index("## Known limits"):]
  (model / model_dir.CARD_FILE).write_text(before)
  for _ in range(2):  # Added, then renewed in place.
    exporter.add_transfer(str(model), [str(tmp_path / "airline")], "python -m train.export --transfer_of=model")
    card = (model / model_dir.CARD_FILE).read_text()
    assert card.count(model_card.TRANSFER_HEADING) == 1
    assert card.index(model_card.TRANSFER_HEADING) < card.index("## Known limits")
    section = card[card.index(model_card.TRANSFER_HEADING):card.index("## Known limits")]
    assert "| fine-tuned from candidate `lm` | 85.00 (n=1) | 85.00 (n=1) |" in section
    assert "83.00" not in section  # Only the macro-recall table, not accuracy's.
    assert card.replace(section, "") == before
  with pytest.raises(ValueError, match="table.md: not found"):
    exporter.add_transfer(str(model), [str(tmp_path / "nowhere")])


def test_a_run_is_reused_only_with_the_same_inputs(tmp_path):
  _source(tmp_path / "src.csv")
  split = domain_adaptation.split_source(str(tmp_path / "src.csv"), "text", "sentiment", 0.25, str(tmp_path))
  model = tmp_path / "model"
  model.mkdir()
  (model / model_dir.PARAMS_FILE).write_bytes(b"weights one")
  (model / model_dir.CONFIG_FILE).write_text(json.dumps({"model_type": "mamba", "model": {"d_model": 128}}))
  inputs = {m: domain_adaptation.run_inputs(m, split, str(model) if m.startswith(("zero", "fine")) else None)
            for m in ("zero_shot", "finetune", "scratch", "tfidf")}
  assert set(inputs["finetune"]) == {"source_sha256", "test_share", "classes", "model_params_sha256", "training"}
  assert "--config.model.d_model=128" in inputs["finetune"]["training"]["overrides"]
  assert set(inputs["scratch"]) == {"source_sha256", "test_share", "classes", "training", "architecture"}
  assert set(inputs["tfidf"]) == {"source_sha256", "test_share", "classes"}
  path = str(tmp_path / "finetune__10__seed0.json")
  assert not domain_adaptation.earlier_run(path, inputs["finetune"])
  with open(path, "w", encoding="utf-8") as f:
    json.dump({"method": "finetune", "accuracy": 0.9, "inputs": inputs["finetune"]}, f)
  assert domain_adaptation.earlier_run(path, inputs["finetune"])
  other_weighting = "balanced" if inputs["finetune"]["training"]["class_weighting"] == "none" else "none"
  weighted = domain_adaptation.run_inputs("finetune", split, str(model), class_weighting=other_weighting)
  assert weighted["training"]["class_weighting"] == other_weighting  # --class_weighting: another run.
  with pytest.raises(ValueError, match="training differ"):
    domain_adaptation.earlier_run(path, weighted)
  (model / model_dir.PARAMS_FILE).write_bytes(b"weights two")  # Another released model: not the same run.
  with pytest.raises(ValueError, match="model_params_sha256 differ"):
    domain_adaptation.earlier_run(path, domain_adaptation.run_inputs("finetune", split, str(model)))
  os.remove(path)
  with open(path, "w", encoding="utf-8") as f:
    json.dump({"method": "finetune", "accuracy": 0.9}, f)  # No inputs recorded: never reused.
  with pytest.raises(ValueError, match="classes, model_params_sha256, source_sha256, test_share, training differ"):
    domain_adaptation.earlier_run(path, inputs["finetune"])
  # A Mamba-2 classifier: configs/own_data.py:mamba2 (the mixer's fields exist there) plus its architecture.
  (model / model_dir.CONFIG_FILE).write_text(json.dumps({"model_type": "mamba", "model": {
      "d_model": 128, "mixer": "mamba2", "head_dim": 64, "n_groups": 1, "chunk_size": 64}}))
  assert domain_adaptation.config_file(str(model)) == "configs/own_data.py:mamba2"
  overrides = domain_adaptation.training_overrides(str(model))
  assert {"--config.model.mixer=mamba2", "--config.model.head_dim=64", "--config.model.chunk_size=64"} <= set(overrides)
  assert domain_adaptation.run_inputs("finetune", split, str(model))["config_file"] == "configs/own_data.py:mamba2"
  assert domain_adaptation.config_file(None) == "configs/own_data.py"
  with pytest.raises(ValueError, match="no params.safetensors; a release or candidate is an exported model"):
    domain_adaptation.run_inputs("finetune", split, str(tmp_path))  # A folder that is not an export.
  with pytest.raises(ValueError, match="unknown methods finetune_nope"):
    domain_adaptation.run(str(tmp_path / "src.csv"), model=str(model), methods=["finetune_nope"],
                          work_dir=str(tmp_path / "w"), output_dir=str(tmp_path / "o"))


def _imbalanced_splits(seed=0):
  """Three classes, 8:1:1 in train: a cue word per class in 60% of its rows, random filler otherwise."""
  rng = np.random.default_rng(seed)
  cues = ("bad", "meh", "great")

  def rows(counts):
    texts, labels = [], []
    for label, count in enumerate(counts):
      for i in range(count):
        words = list(rng.choice([f"w{k}" for k in range(20)], 5))
        if i < 0.6 * count:
          words.insert(2, cues[label])
        texts.append(" ".join(words))
        labels.append(label)
    return texts, np.array(labels, np.int32)

  return {"train": rows((400, 50, 50)), "validation": rows((40, 40, 40)), "test": rows((60, 60, 60))}


def test_tfidf_class_weighting_and_fasttext_score_the_minority_classes():
  splits = _imbalanced_splits()
  plain = tfidf_baseline.fit_and_evaluate(splits, [0.25, 1.0], min_df=1, select_by="macro_recall")
  balanced = tfidf_baseline.fit_and_evaluate(splits, [0.25, 1.0], min_df=1, select_by="macro_recall",
                                             class_weight="balanced")
  assert balanced["class_weight"] == "balanced" and balanced["selected_by"] == "validation macro_recall"
  minority = lambda report: np.mean([c["recall"] for c in report["test"]["per_class"][1:]])
  assert minority(balanced) > minority(plain) + 0.1
  assert balanced["test"]["macro_recall"] > plain["test"]["macro_recall"]
  fast = fasttext_baseline.fit_and_evaluate(splits, epochs=(5, 25), learning_rates=(0.5,), select_by="macro_recall",
                                            bucket=10_000)
  again = fasttext_baseline.fit_and_evaluate(splits, epochs=(5, 25), learning_rates=(0.5,), select_by="macro_recall",
                                            bucket=10_000)
  assert fast["test"] == again["test"]  # One thread, a fixed seed: deterministic.
  assert len(fast["search"]) == 2 and fast["epochs"] in (5, 25)
  assert fast["test"]["macro_recall"] > 0.5 and fast["test"]["num_examples"] == 180
  probs = fasttext_baseline.probabilities(__import__("fasttext").train_supervised(
      input=_fasttext_file(splits), epoch=1, verbose=0, thread=1, bucket=10_000), ["w1 w2"], 4)
  assert probs.shape == (1, 4) and probs[0, 3] == 0.0 and probs.sum() == pytest.approx(1.0)


def _fasttext_file(splits):
  import tempfile  # pylint: disable=import-outside-toplevel
  path = os.path.join(tempfile.mkdtemp(), "train.txt")
  fasttext_baseline._write_training_file(path, *splits["train"])  # pylint: disable=protected-access
  return path


def test_release_rule_ranks_by_validation_only_and_needs_the_same_runs(tmp_path):
  def classifier(name, accuracy):
    path = tmp_path / name
    path.mkdir()
    (path / "eval_report.json").write_text(json.dumps({"validation": {"accuracy": accuracy}}))
    return str(path)

  def runs(folder, method, recalls, test=0.5):
    (tmp_path / folder / "runs").mkdir(parents=True, exist_ok=True)
    for seed, recall in enumerate(recalls):
      (tmp_path / folder / "runs" / f"{method}__500__seed{seed}.json").write_text(json.dumps(
          {"method": method, "size": "500", "seed": seed, "validation_macro_recall": recall, "macro_recall": test}))
    return str(tmp_path / folder)

  current, candidate = classifier("current", 0.84), classifier("candidate", 0.85)
  folders = [runs("a", "finetune", [0.60, 0.62]), runs("b", "finetune", [0.58, 0.60])]
  runs("a", "finetune_new", [0.66, 0.64], test=0.1)  # Its test numbers are bad: they must not count.
  contestants = {"finetune": current, "finetune_new": candidate}
  ranking = release_rule.rank(contestants, folders)
  assert not ranking["complete"] and ranking["release"] is None  # The candidate lacks set b's runs.
  assert "No decision" in release_rule.markdown(ranking)
  runs("b", "finetune_new", [0.62, 0.60])
  ranking = release_rule.rank(contestants, folders)
  assert ranking["complete"] and ranking["release"] == "finetune_new"
  best = ranking["rows"][0]
  assert best["transfer_validation_macro_recall"] == pytest.approx(0.63) and best["transfer_runs"] == 4
  assert best["score"] == pytest.approx((0.85 + 0.63) / 2)
  assert "Release: **fine-tuned from candidate `new`**" in release_rule.markdown(ranking)
  with pytest.raises(ValueError, match="neither an export"):
    release_rule.rank({"finetune": str(tmp_path / "a")}, folders)
