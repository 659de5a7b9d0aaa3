"""The released model under models/: it loads on a fresh clone, predicts, and matches its card.

No training and no prepared data are needed: the model directory holds the parameters, the
tokenizer and the config. The manual-test check reads the original 498-tweet test file
(``$SENT140_DATA_DIR``, else ``../shared/data/sentiment140``) and is skipped without it.
"""

import json
import os
import pathlib
import subprocess
import sys

import pytest

from train.data import labelled_rows, sources
from train.model_files import inference, model_card
from train.runs import model_dir
from train.scoring import labelled_file_report

REPO = pathlib.Path(__file__).resolve().parent.parent
MODEL = REPO / "models" / "sent140_mamba"
REAL_DATA_DIR = os.environ.get(sources.ENV_DATA_DIR, str(REPO.parent / "shared" / "data" / "sentiment140"))


@pytest.fixture(scope="module")
def released():
  """The released model, loaded once: its engine's compiled programs serve every test here."""
  return inference.load_exported(str(MODEL))


@pytest.fixture(scope="module")
def card():
  with open(MODEL / "evaluation.json", encoding="utf-8") as f:
    return json.load(f)


def test_release_is_small_and_complete():
  names = sorted(p.name for p in MODEL.iterdir())
  assert names == sorted([model_dir.PARAMS_FILE, model_dir.CONFIG_FILE, "tokenizer.model",
                          "evaluation.json", "README.md"])
  assert sum(p.stat().st_size for p in MODEL.iterdir()) <= 10 * 2**20


def test_obvious_tweets_get_the_obvious_label():
  model = inference.load_exported(str(MODEL))
  tokens = model.encode([
      "I love this, best day ever :)", "so happy and thankful for my friends",
      "worst day ever, I hate this", "I am so sad and tired, everything went wrong"])
  probs, num_tokens = model.batch_probabilities(tokens), (tokens != 0).sum(axis=1)
  assert (num_tokens > 0).all()
  assert probs.argmax(axis=1).tolist() == [1, 1, 0, 0]
  assert (probs.max(axis=1) > 0.7).all()


@pytest.mark.real_data
def test_manual_test_accuracy_is_the_one_in_the_card(card, released):
  path = os.path.join(REAL_DATA_DIR, sources.MANUAL_TEST_CSV)
  if not os.path.isfile(path):
    pytest.skip(f"{path} not found (set ${sources.ENV_DATA_DIR} to the Sentiment140 folder)")
  loaded = released
  rows = labelled_rows.read_labelled_file(path)
  assert len(rows.texts) == 498
  report = labelled_file_report.score(loaded, rows, float(loaded.config.neutral_threshold))
  recorded = card["splits"]["manual_test"]["stored"]
  assert report["binary"]["num_examples"] == recorded["binary"]["num_examples"] == 359
  assert report["binary"]["accuracy"] == pytest.approx(recorded["binary"]["accuracy"], abs=1e-9)
  assert report["three_way"]["accuracy"] == pytest.approx(recorded["three_way"]["accuracy"], abs=1e-9)
  assert report["slices"] == card["splits"]["manual_test"]["slices"]  # The card's slices, reproduced.


def test_card_has_the_slices_of_every_split(card):
  readme = (MODEL / "README.md").read_text(encoding="utf-8")
  assert readme.count("## Slices") == 1 and "--slices_of=models/sent140_mamba" in readme
  for split in ("validation", "test", "manual_test"):
    found = card["splits"][split]["slices"]
    assert found["overall"]["accuracy"] == pytest.approx(
        model_card.binary_part(card["splits"][split]["stored"])["accuracy"], abs=1e-12)
    expected = {"length_tokens", "mention", "url", "hashtag", "emoji", "negation", "all_caps"}
    assert set(found["features"]) == expected | ({"topic"} if split == "manual_test" else set())
    for feature, table in found["features"].items():
      assert sum(s["count"] for s in table.values()) == found["overall"]["count"], (split, feature)
      for value, stats in table.items():
        assert (f"| {feature} | {value} | {stats['count']:,} |" in readme) or feature == "topic"


def test_predict_cli_on_a_fresh_clone():
  """What the README shows: ./run.sh python -m train.predict --model=models/sent140_mamba "tweet"."""
  result = subprocess.run(
      [sys.executable, "-m", "train.predict", f"--model={MODEL}", "I love this", "worst day ever"],
      cwd=REPO, env={**os.environ, "JAX_PLATFORMS": "cpu"}, capture_output=True, text=True, timeout=300)
  assert result.returncode == 0, result.stderr[-2000:]
  lines = result.stdout.strip().splitlines()
  assert len(lines) == 2 and "positive" in lines[0] and "negative" in lines[1]


@pytest.mark.real_data
def test_engine_answers_the_manual_test_as_the_unbucketed_path(released):
  """The inference engine (length buckets, batches across tweets, the forward-only scan) against the
  path train.predict took before it (fixed padding to max_length, one batch): the same labels."""
  path = os.path.join(REAL_DATA_DIR, sources.MANUAL_TEST_CSV)
  if not os.path.isfile(path):
    pytest.skip(f"{path} not found (set ${sources.ENV_DATA_DIR} to the Sentiment140 folder)")
  texts = labelled_rows.read_labelled_file(path).texts
  engine = released.engine.probabilities(texts)
  reference = released.batch_probabilities(released.encode(texts))
  assert (engine.argmax(axis=1) == reference.argmax(axis=1)).all()
  assert abs(engine - reference).max() <= 1e-5
