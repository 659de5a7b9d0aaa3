"""Accuracy per slice (train.scoring.slices): the features of hand-made tweets, Wilson intervals, flags, tables."""

import numpy as np
import pytest

from train.scoring import slices


@pytest.mark.parametrize("text, expected", [
    ("@bob see http://t.co/x #win :)", {"mention", "url", "hashtag", "emoji"}),
    ("mail me at bob@example.com, item #", set()),  # An e-mail is no mention; a lone "#" no hashtag.
    ("www.site.org is NOT working", {"url", "negation", "all_caps"}),
    ("I don't know, I can\u2019t", {"negation"}),  # n't with a straight and a curly apostrophe.
    ("dont cry", {"negation"}),
    ("so happy \U0001F600 today", {"emoji"}),
    ("flags \U0001F1EB\U0001F1F7 and \u2764", {"emoji"}),
    ("tired <3", {"emoji"}),
    ("(: back", {"emoji"}),
    ("page 8) and a:b", set()),  # Not emoticons: "8)" and a colon inside a word.
    ("I am A ok", set()),  # Single capitals are not all-caps words.
    ("OMG yes", {"all_caps"}),
    ("nothing works", {"negation"}),
    ("another day", set()),  # "no" inside a word is not a negation.
    ("<user> said <url>", {"mention", "url"}),  # The normalizer's placeholders.
])
def test_text_features(text, expected):
  found = {feature for feature, test in slices.TEXT_TESTS.items() if test(text)}
  assert found == expected


def test_length_bins():
  assert [slices.length_bin(n) for n in (1, 10, 11, 16, 17, 24, 25, 64)] == \
      ["1-10", "1-10", "11-16", "11-16", "17-24", "17-24", "25+", "25+"]
  assert slices.length_bin_labels() == ["1-10", "11-16", "17-24", "25+"]


def test_wilson_interval_known_values():
  low, high = slices.wilson_interval(8, 10)
  assert (low, high) == pytest.approx((0.4902, 0.9433), abs=1e-4)  # Wilson (1927), textbook example.
  assert slices.wilson_interval(0, 0) == (0.0, 1.0)
  assert slices.wilson_interval(0, 5)[0] == 0.0 and slices.wilson_interval(5, 5)[1] == 1.0
  low, high = slices.wilson_interval(500, 1000)
  assert low == pytest.approx(0.469, abs=1e-3) and high == pytest.approx(0.531, abs=1e-3)


def test_slice_report_counts_accuracy_and_flags():
  # 40 examples: the 20 with a mention are right 5 times, the 20 without always.
  correct = np.array([i >= 15 for i in range(20)] + [True] * 20)
  values = {"mention": np.array(["yes"] * 20 + ["no"] * 20, dtype=object),
            "length_tokens": np.array(["25+", "1-10"] * 20, dtype=object)}
  report = slices.slice_report(correct, values, {"topic": "no query column"})
  assert report["overall"]["count"] == 40 and report["overall"]["accuracy"] == pytest.approx(25 / 40)
  mention = report["features"]["mention"]
  assert list(mention) == ["yes", "no"]
  assert mention["yes"]["count"] == 20 and mention["yes"]["correct"] == 5 and mention["yes"]["accuracy"] == 0.25
  assert mention["yes"]["flagged"] and not mention["no"]["flagged"]
  assert mention["yes"]["interval"] == pytest.approx(list(slices.wilson_interval(5, 20)))
  lengths = report["features"]["length_tokens"]
  assert list(lengths) == ["1-10", "25+"]  # Bins in length order, not by name.
  assert not any(s["flagged"] for s in lengths.values())  # 12/20 and 13/20: within chance of 25/40.
  assert slices.flagged_slices(report) == [("mention", "yes")]
  table = "\n".join(slices.table_lines(report))
  assert "!yes 0.250" in table and "no 1.000" in table and "topic" in table and "no query column" in table


def test_a_tiny_slice_is_reported_but_not_flagged():
  correct = np.array([False] + [True] * 6 + [False] * 3)  # Overall 0.6.
  values = {"hashtag": np.array(["yes"] + ["no"] * 9, dtype=object)}
  stats = slices.slice_report(correct, values)["features"]["hashtag"]["yes"]
  assert stats["count"] == 1 and stats["accuracy"] == 0.0 and not stats["flagged"]  # Its interval reaches 0.79.
  assert stats["interval"][1] == pytest.approx(slices.Z_95 ** 2 / (1 + slices.Z_95 ** 2))


def test_text_features_normalized_texts_and_topics():
  texts = ["<user> i LOVE it #yay", "not good"]
  values, omitted = slices.text_features(texts, np.array([5, 30]), normalized=True)
  assert set(values) == {"length_tokens", "mention", "url", "emoji", "negation"}
  assert set(omitted) == {"hashtag", "all_caps", "topic"}
  assert values["length_tokens"].tolist() == ["1-10", "25+"] and values["mention"].tolist() == ["yes", "no"]
  values, omitted = slices.text_features(texts, np.array([5, 30]), topics=["kindle2", " "])
  assert omitted == {} and values["topic"].tolist() == ["kindle2", "(empty)"]
  assert values["all_caps"].tolist() == ["yes", "no"] and values["hashtag"].tolist() == ["yes", "no"]
  mojibake = "\u2764".encode("utf-8").decode("latin-1")  # A heart read as latin-1.
  values, _ = slices.text_features([f"love {mojibake}", "miss you &lt;3", "A &amp; B"], np.array([3, 3, 3]))
  assert values["emoji"].tolist() == ["yes", "yes", "no"]
  with pytest.raises(ValueError, match="2 texts, 1 token counts"):
    slices.text_features(texts, np.array([5]))


def test_classification_slices_leave_out_a_binary_models_neutral_rows():
  probs = np.array([[0.9, 0.1], [0.2, 0.8], [0.6, 0.4], [0.5, 0.5]])
  labels = np.array([0, 0, 2, 1])
  report = slices.classification_slices(probs, labels, ["a", "b not", "c", "d"], np.array([3, 3, 3, 3]),
                                        normalized=True)
  assert report["overall"]["count"] == 3 and report["overall"]["accuracy"] == pytest.approx(1 / 3)
  assert "3 rows" in report["scored"]
  assert report["features"]["negation"]["yes"]["count"] == 1
  three = slices.classification_slices(np.eye(3)[[0, 1, 2]], np.array([0, 1, 1]), ["x", "y", "z"],
                                       np.array([1, 2, 3]), normalized=False)
  assert three["scored"] == "accuracy" and three["overall"]["accuracy"] == pytest.approx(2 / 3)


def test_classifier_report_slices_raw_texts_when_given():
  import ml_collections  # pylint: disable=import-outside-toplevel
  from train.data.datasets import Split  # pylint: disable=import-outside-toplevel
  from train.loop import tasks  # pylint: disable=import-outside-toplevel
  raw = ["I LOVE #mondays", "@bob not again", "so sad http://x.co"]
  split = Split(tokens=np.array([[5, 6, 0], [7, 8, 9], [4, 0, 0]], np.uint16), labels=np.array([1, 0, 0], np.int32),
                texts=["i love mondays", "<user> not again", "so sad <url>"])
  logits = np.array([[0.0, 2.0], [0.0, 1.0], [3.0, 0.0]])  # Right, wrong, right.
  config = ml_collections.ConfigDict({"neutral_threshold": 0.7, "ece_bins": 10})
  normalized = tasks.CLASSIFICATION.report_metrics("test", logits, split, config)["slices"]
  assert "hashtag" in normalized["omitted"] and "all_caps" in normalized["omitted"]
  assert normalized["features"]["mention"]["yes"] == normalized["features"]["negation"]["yes"]
  from_raw = tasks.CLASSIFICATION.report_metrics("test", logits, split, config, raw_texts=raw)["slices"]
  assert from_raw["omitted"] == {"topic": "no query column"}
  assert from_raw["features"]["hashtag"]["yes"]["count"] == 1
  assert from_raw["features"]["all_caps"]["yes"]["correct"] == 1
  assert from_raw["features"]["mention"]["yes"]["correct"] == 0
  assert from_raw["features"]["length_tokens"] == {
      "1-10": {"count": 3, "correct": 2, "accuracy": 2 / 3, "interval": list(slices.wilson_interval(2, 3)),
               "flagged": False}}


def test_raw_texts_without_the_prepared_data_fall_back_in_one_line(tmp_path):
  from configs import sent140  # pylint: disable=import-outside-toplevel
  from train.data import held_out_texts  # pylint: disable=import-outside-toplevel
  from train.data.datasets import Split  # pylint: disable=import-outside-toplevel
  config = sent140.get_config()
  config.data_dir = str(tmp_path / "no_such_folder")
  config.prepared_dir = str(tmp_path / "prepared")
  config.download = False
  split = Split(tokens=np.ones((1, 2), np.uint16), labels=np.zeros(1, np.int32), texts=["hi"])
  said = []
  assert held_out_texts.raw_texts(config, {"test": split}, ("validation", "test"), log=said.append) == {}
  assert len(said) == 1 and "the raw texts of test could not be read" in said[0]
  config.dataset = "synthetic"
  assert held_out_texts.raw_texts(config, {"test": split}, ("test",), log=said.append) == {} and len(said) == 1
