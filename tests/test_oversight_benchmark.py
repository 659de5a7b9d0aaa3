"""The measured oversight loop (python -m train.oversight_benchmark): its stream, choices, scores and table.

Promises: both strategies of a seed see the same stream, cut into the rounds without loss or overlap;
deferred-first picks the least confident texts, random a seeded choice without repeats; macro-recall is
the mean per-class recall; the table and the "labels to match" line are computed from the runs. (The
whole loop on the airline tweets is the benchmark itself; its tiny run is in the README.)
"""

import numpy as np
import pytest

from train.service import oversight_loop


def test_the_stream_is_seeded_and_cut_into_rounds_without_loss():
  chunks = oversight_loop.stream_chunks(103, 4, seed=0)
  assert [len(c) for c in chunks] == [26, 26, 26, 25]
  assert sorted(np.concatenate(chunks).tolist()) == list(range(103))
  again = oversight_loop.stream_chunks(103, 4, seed=0)
  assert all((a == b).all() for a, b in zip(chunks, again))
  assert not all((a == b).all() for a, b in zip(chunks, oversight_loop.stream_chunks(103, 4, seed=1)))
  capped = oversight_loop.stream_chunks(103, 2, seed=0, stream_size=40)
  assert sum(len(c) for c in capped) == 40 and np.concatenate(capped).tolist() == np.concatenate(chunks)[:40].tolist()


def test_deferred_first_takes_the_least_confident_and_random_a_seeded_choice():
  confidences = np.asarray([0.9, 0.55, 0.99, 0.6, 0.51, 0.8])
  assert oversight_loop.choose("deferred_first", confidences, 3, np.random.default_rng(0)).tolist() == [4, 1, 3]
  first = oversight_loop.choose("random", confidences, 4, np.random.default_rng(5))
  assert len(set(first.tolist())) == 4 and first.tolist() == oversight_loop.choose(
      "random", confidences, 4, np.random.default_rng(5)).tolist()
  with pytest.raises(ValueError, match="cannot label 7 texts of a chunk of 6"):
    oversight_loop.choose("random", confidences, 7, np.random.default_rng(0))
  with pytest.raises(ValueError, match="unknown strategy"):
    oversight_loop.choose("smallest", confidences, 1, np.random.default_rng(0))


def test_macro_recall_is_the_mean_recall_of_the_classes():
  probabilities = np.asarray([[0.9, 0.1], [0.8, 0.2], [0.7, 0.3], [0.6, 0.4], [0.2, 0.8], [0.9, 0.1]])
  labels = np.asarray([0, 0, 0, 0, 1, 1])  # Negatives all right; positives one of two.
  scores = oversight_loop.binary_scores(probabilities, labels)
  assert scores["accuracy"] == pytest.approx(5 / 6)
  assert scores["recall"] == {"negative": 1.0, "positive": 0.5} and scores["macro_recall"] == pytest.approx(0.75)


def _run(strategy, seed, accuracies):
  return {"strategy": strategy, "seed": seed, "rounds": [
      {"round": r, "labels": 250 * r, "accuracy": a, "macro_recall": a - 0.1} for r, a in enumerate(accuracies)]}


def test_the_table_and_the_labels_deferred_first_needs(tmp_path):
  runs = [_run("deferred_first", 0, [0.7, 0.85, 0.90, 0.91, 0.92]), _run("deferred_first", 1, [0.7, 0.83, 0.88, 0.91, 0.92]),
          _run("random", 0, [0.7, 0.80, 0.84, 0.87, 0.88]), _run("random", 1, [0.7, 0.80, 0.86, 0.87, 0.90])]
  table = oversight_loop.summary(runs)
  assert [row["labels"] for row in table["random"]] == [0, 250, 500, 750, 1000]
  assert table["deferred_first"][2]["accuracy"] == pytest.approx(0.89)
  assert table["deferred_first"][2]["accuracy_std"] == pytest.approx(np.std([0.90, 0.88], ddof=1))
  match = oversight_loop.labels_to_match(table)
  assert match["random_labels"] == 1000 and match["random_value"] == pytest.approx(0.89)
  assert match["deferred_first_labels"] == 500  # 0.89 >= 0.89 at 500 labels.
  report = {"split": {"source": "/x/Tweets.csv", "source_sha256": "ab" * 32, "test": 2272, "test_share": 0.2,
                      "pool": 9269},
            "environment": {"command": "python -m train.oversight_benchmark"}, "summary": table, "note": "",
            "rounds": 4, "stream_per_round": 2317, "per_round": 250, "model": "models/sent140_mamba",
            "released_version": "sha256:" + "0" * 64, "seeds": [0, 1], "plot": str(tmp_path / "oversight.png")}
  text = oversight_loop.markdown(report)
  assert "| 500 | 89.00 +- 1.41 | 85.00 +- 1.41 |" in text
  assert "reaches random's accuracy at 1000 labels (89.00%) with 500 labels" in text
  oversight_loop.plot(table, report["plot"])
  assert (tmp_path / "oversight.png").stat().st_size > 10_000
