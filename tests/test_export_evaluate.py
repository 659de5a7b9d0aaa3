"""Exported model directories (train.export, train.runs.model_dir) and scoring labelled files (train.evaluate).

The tiny run and its exports are fixtures of tests/conftest.py.
"""

import gzip
import json
import os
import subprocess
import sys

import jax
import numpy as np
import pytest

from configs import tiny
from train.data import labelled_rows, synthetic
from train.loop import models
from train.model_files import exporter, inference, model_card
from train.runs import classes, eval_report, model_dir
from train.scoring import labelled_file_report, metrics

from tests import train_tiny_run

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
ENV = {**os.environ, "JAX_PLATFORMS": "cpu"}
TEXTS = ["good great happy", "bad sad terrible", "the day is not good", "i love this fun day", "my work"]


def run_module(*args, timeout=300):
  return subprocess.run([sys.executable, "-m", *args], cwd=REPO, env=ENV, capture_output=True, text=True,
                        timeout=timeout)


# ---- Parameter files ----

@pytest.mark.parametrize("dtype, tolerance", [("float32", 0.0), ("float16", 1e-3), ("bfloat16", 1e-2)])
def test_params_round_trip(tmp_path, dtype, tolerance):
  rng = np.random.default_rng(0)
  params = {"embed": {"embedding": rng.normal(size=(7, 3)).astype(np.float32)},
            "layers_0": {"mixer": {"A_log": rng.normal(size=(4, 2)).astype(np.float32),
                                   "D": np.ones(4, np.float32)}}}
  path = str(tmp_path / "p.safetensors")
  model_dir.save_params(path, params, dtype, {"step": "12"})
  loaded, metadata = model_dir.load_params(path)
  assert metadata["dtype"] == dtype and metadata["step"] == "12" and metadata["format"] == model_dir.PARAMS_FORMAT
  assert jax.tree_util.tree_structure(loaded) == jax.tree_util.tree_structure(params)
  for a, b in zip(jax.tree_util.tree_leaves(loaded), jax.tree_util.tree_leaves(params)):
    assert a.dtype == np.float32
    np.testing.assert_allclose(a, b, rtol=tolerance, atol=0)
  bytes_per_value = {"float32": 4, "float16": 2, "bfloat16": 2}[dtype]
  with open(path, "rb") as f:
    header = json.loads(f.read(int.from_bytes(f.read(8), "little")))
  assert header["layers_0/mixer/A_log"]["shape"] == [4, 2]
  assert header["embed/embedding"]["data_offsets"][1] - header["embed/embedding"]["data_offsets"][0] == \
      21 * bytes_per_value


def test_load_params_rejects_other_files(tmp_path):
  import safetensors.numpy  # pylint: disable=import-outside-toplevel
  path = str(tmp_path / "other.safetensors")
  safetensors.numpy.save_file({"w": np.ones(2, np.float32)}, path)
  with pytest.raises(ValueError, match="not a mamba-jax parameter file"):
    model_dir.load_params(path)


# ---- Export ----

def test_export_holds_parameters_only_and_predicts_like_the_workdir(trained_workdir, exported):
  output, result = exported
  assert sorted(os.listdir(output)) == sorted(
      [model_dir.PARAMS_FILE, model_dir.CONFIG_FILE, model_dir.EVALUATION_FILE, model_dir.CARD_FILE,
       classes.CLASSES_FILE])  # Every run writes its classes (this one: negative, positive).
  assert classes.read(output) == classes.BINARY
  from_workdir = inference.load_workdir(trained_workdir)
  params, metadata = model_dir.load_params(os.path.join(output, model_dir.PARAMS_FILE))
  assert models.count_params(params) == models.count_params(from_workdir.state.params)  # No optimizer state.
  assert int(metadata["step"]) == from_workdir.step
  from_export = inference.load_exported(output)
  assert from_export.step == from_workdir.step
  np.testing.assert_allclose(from_export.batch_probabilities(from_export.encode(TEXTS)),
                             from_workdir.batch_probabilities(from_workdir.encode(TEXTS)), rtol=0, atol=1e-7)
  report = eval_report.read_eval_report(trained_workdir)
  for split in exporter.EVALUATED_SPLITS:
    numbers = result["splits"][split]
    assert numbers["max_abs_probability_difference"] <= 1e-6  # float32 stored: the same weights.
    stored, reported = model_card.binary_part(numbers["stored"]), model_card.binary_part(report[split])
    assert stored["accuracy"] == pytest.approx(model_card.binary_part(numbers["float32"])["accuracy"], abs=1e-12)
    assert stored["accuracy"] == pytest.approx(reported["accuracy"], abs=1e-12)
  card = open(os.path.join(output, model_dir.CARD_FILE), encoding="utf-8").read()
  manual = result["splits"]["manual_test"]["stored"]
  assert f"{100 * manual['binary']['accuracy']:.2f}%" in card
  assert f"{100 * manual['three_way']['accuracy']:.2f}%" in card
  assert f"threshold {report['manual_test']['three_way']['threshold']}" in card
  for heading in ("## Data and splits", "## Calibration", "## Known limits", "## Provenance"):
    assert heading in card
  assert "synthetic toy task" in card
  assert "-layer Mamba-1 (selective-scan mixer; d_model" in card  # The card says which Mamba.


@pytest.mark.parametrize("mixer, version", [("mamba1", "Mamba-1 (selective-scan mixer; "),
                                            ("mamba2", "Mamba-2 (SSD mixer, 2 heads of 16 channels, 1 group(s)")])
def test_card_says_which_mamba(mixer, version):
  config = tiny.get_config()
  config.model.mixer, config.model.head_dim = mixer, 16
  assert model_card._model_summary(config, 300, 1234).startswith(f"{config.model.n_layers}-layer {version}")


def test_bfloat16_export_is_smaller_and_keeps_accuracy(exported, exported_bfloat16):
  float32_dir, _ = exported
  size32 = os.path.getsize(os.path.join(float32_dir, model_dir.PARAMS_FILE))
  size16 = os.path.getsize(os.path.join(exported_bfloat16, model_dir.PARAMS_FILE))
  assert size16 < 0.55 * size32
  with open(os.path.join(exported_bfloat16, model_dir.EVALUATION_FILE), encoding="utf-8") as f:
    result = json.load(f)
  assert result["export"]["dtype"] == "bfloat16"
  for split in exporter.EVALUATED_SPLITS:
    numbers = result["splits"][split]
    assert 0.0 < numbers["max_abs_probability_difference"] < 0.05
    stored, float32 = model_card.binary_part(numbers["stored"]), model_card.binary_part(numbers["float32"])
    assert abs(stored["accuracy"] - float32["accuracy"]) <= 0.01
  card = open(os.path.join(exported_bfloat16, model_dir.CARD_FILE), encoding="utf-8").read()
  assert "accuracy (bfloat16)" in card


def test_export_errors(trained_workdir, tmp_path):
  with pytest.raises(FileNotFoundError, match="eval_report.json"):
    exporter.export(str(tmp_path), str(tmp_path / "out"), "float32")
  (tmp_path / "busy").mkdir()
  (tmp_path / "busy" / "notes.txt").write_text("mine")
  with pytest.raises(ValueError, match="not an exported model directory"):
    exporter.export(trained_workdir, str(tmp_path / "busy"), "float32")
  assert (tmp_path / "busy" / "notes.txt").read_text() == "mine"
  with pytest.raises(ValueError, match="exactly one"):
    inference.load(trained_workdir, str(tmp_path), "best")


# ---- Reading labelled files ----

def _sentiment140_row(polarity, text, columns=6):
  fields = [str(polarity), "1", "Mon Apr 06 2009", "NO_QUERY", "user", text][:columns]
  return ",".join(f'"{f}"' for f in fields)


def test_sentiment140_csv_latin1_with_bad_rows(tmp_path):
  lines = [_sentiment140_row(0, "caf\xe9 was bad"), _sentiment140_row(4, "love it"), "",
           _sentiment140_row(2, "meh"), _sentiment140_row(3, "what"), _sentiment140_row(4, "   "),
           _sentiment140_row(0, "short", columns=5)]
  path = tmp_path / "s140.csv"
  path.write_bytes("\r\n".join(lines).encode("latin-1"))
  rows = labelled_rows.read_labelled_file(str(path))
  assert rows.encoding == "latin-1" and rows.encoding_detected
  assert rows.label_scheme == "0/2/4"
  assert rows.texts == ["caf\xe9 was bad", "love it", "meh"]
  assert rows.labels.tolist() == [0, 1, 2]
  assert rows.row_numbers.tolist() == [1, 2, 4]
  assert rows.bad_rows == {"blank_line": 1, "wrong_column_count": 1, "unknown_label": 1, "empty_text": 1,
                           "neutral_in_training": 0, "invalid_utf8": 0, "unterminated_quote": 0,
                           "field_too_large": 0, "unparsable_row": 0}
  assert rows.bad_lines == {"blank_line": [3], "unknown_label": [5], "empty_text": [6], "wrong_column_count": [7]}
  # Forcing UTF-8 on latin-1 bytes: the row with the undecodable byte is counted, not guessed.
  forced = labelled_rows.read_labelled_file(str(path), encoding="utf-8")
  assert not forced.encoding_detected and forced.texts == ["love it", "meh"]
  assert forced.bad_rows["invalid_utf8"] == 1
  # The same file gzipped reads the same.
  gz = tmp_path / "s140.csv.gz"
  gz.write_bytes(gzip.compress(path.read_bytes()))
  assert labelled_rows.read_labelled_file(str(gz)).texts == rows.texts


def test_tsv_utf8_with_header_names(tmp_path):
  path = tmp_path / "mine.tsv"
  path.write_text("id\tlabel\ttext\n1\tPositive\tso happy \U0001F600\n2\tnegative\tsad d\xe9j\xe0 vu\n"
                  "3\tneutral\tthe day\n4\tangry\tgrr\n5\tpositive\n", encoding="utf-8")
  rows = labelled_rows.read_labelled_file(str(path), text_column="text", label_column="label")
  assert rows.encoding == "utf-8" and rows.encoding_detected and rows.label_scheme == "names"
  assert rows.texts == ["so happy \U0001F600", "sad d\xe9j\xe0 vu", "the day"]
  assert rows.labels.tolist() == [1, 0, 2]
  assert rows.row_numbers.tolist() == [2, 3, 4]
  assert rows.bad_rows["unknown_label"] == 1 and rows.bad_rows["wrong_column_count"] == 1
  # Forcing latin-1 on UTF-8 bytes still reads every row (normalization repairs such mojibake).
  latin = labelled_rows.read_labelled_file(str(path), text_column="text", label_column="label", encoding="latin-1")
  assert len(latin.texts) == 3 and latin.encoding == "latin-1" and not latin.encoding_detected
  with pytest.raises(labelled_rows.UsageError, match="not in the header"):
    labelled_rows.read_labelled_file(str(path), text_column="tweet", label_column="label")


def test_csv_binary_labels_by_index_and_ambiguity(tmp_path):
  path = tmp_path / "binary.csv"
  path.write_text('1,"good, great"\n0,bad\n1,fun\n', encoding="utf-8")
  rows = labelled_rows.read_labelled_file(str(path), text_column="1", label_column="0")
  assert rows.label_scheme == "0/1" and rows.labels.tolist() == [1, 0, 1] and rows.texts[0] == "good, great"
  assert sum(rows.bad_rows.values()) == 0
  mixed = tmp_path / "mixed.csv"
  mixed.write_text("1,good\n4,great\n0,bad\n", encoding="utf-8")
  with pytest.raises(labelled_rows.UsageError, match="several schemes"):
    labelled_rows.read_labelled_file(str(mixed), text_column=1, label_column=0)
  forced = labelled_rows.read_labelled_file(str(mixed), text_column=1, label_column=0, labels="0/2/4")
  assert forced.labels.tolist() == [1, 0] and forced.bad_rows["unknown_label"] == 1
  with pytest.raises(labelled_rows.UsageError, match="no label scheme fits"):
    labelled_rows.read_labelled_file(str(mixed), text_column=0, label_column=1)
  with pytest.raises(labelled_rows.UsageError, match="both"):
    labelled_rows.read_labelled_file(str(mixed), text_column=1)


# ---- Scoring ----

def _manual_split():
  return synthetic.make_datasets(train_tiny_run.tiny_config()).splits["manual_test"]


def test_score_matches_direct_probabilities_in_every_format(exported, tmp_path):
  output, _ = exported
  loaded = inference.load_exported(output)
  split = _manual_split()
  names = {0: "negative", 1: "positive", 2: "neutral"}
  polarity = {0: "0", 1: "4", 2: "2"}
  csv_path = tmp_path / "s140.csv"
  csv_path.write_bytes("\n".join(_sentiment140_row(polarity[int(l)], t) for t, l in zip(split.texts, split.labels))
                       .encode("latin-1"))
  tsv_path = tmp_path / "names.tsv"
  tsv_path.write_text("text\tlabel\n" + "".join(f"{t}\t{names[int(l)]}\n" for t, l in zip(split.texts, split.labels)),
                      encoding="utf-8")
  threshold = float(loaded.config.neutral_threshold)
  probs = loaded.batch_probabilities(loaded.encode(split.texts))  # Unbucketed, one batch.
  binary = split.labels != metrics.NEUTRAL
  expected_binary = float((probs[binary].argmax(1) == split.labels[binary]).mean())
  reports = []
  for rows in (labelled_rows.read_labelled_file(str(csv_path)),
               labelled_rows.read_labelled_file(str(tsv_path), text_column="text", label_column="label")):
    report = labelled_file_report.score(loaded, rows, threshold, batch_size=64)
    assert report["binary"]["accuracy"] == pytest.approx(expected_binary, abs=1e-12)
    assert report["three_way"]["accuracy"] == pytest.approx(
        metrics.three_way_accuracy(probs, split.labels, threshold), abs=1e-12)
    assert report["binary"]["ece"] == pytest.approx(metrics.expected_calibration_error(
        probs[binary].max(1), probs[binary].argmax(1) == split.labels[binary], loaded.config.ece_bins), abs=1e-5)
    assert report["label_counts"]["neutral"] == int((~binary).sum())
    assert len(report["three_way"]["curve"]) == len(metrics.DEFAULT_THRESHOLDS)
    assert 0.0 <= report["three_way"]["macro_f1"] <= 1.0
    reports.append(report)
  assert reports[0]["binary"] == reports[1]["binary"] and reports[0]["three_way"] == reports[1]["three_way"]


def test_evaluate_cli(exported, tmp_path):
  output, _ = exported
  data = tmp_path / "tiny.tsv"
  data.write_text("label\ttext\npositive\tgood great happy\nnegative\tbad sad awful\nmaybe\tthe day\n",
                  encoding="utf-8")
  report_path = tmp_path / "report.json"
  result = run_module("train.evaluate", f"--model={output}", f"--data={data}", "--text_column=text",
                      "--label_column=label", f"--output={report_path}")
  assert result.returncode == 0, result.stderr[-3000:]
  assert "utf-8, detected" in result.stdout and "unknown_label 1" in result.stdout
  report = json.loads(report_path.read_text())
  assert report["rows"]["scored"] == 2 and report["rows"]["bad"] == 1
  assert report["binary"]["num_examples"] == 2 and report["encoding"] == "utf-8"
  assert report["model"] == os.path.abspath(output)
  bad = run_module("train.evaluate", f"--model={output}", f"--data={data}", "--text_column=tweet",
                   "--label_column=label", f"--output={report_path}")
  assert bad.returncode == 2 and "not in the header" in bad.stderr and "Traceback" not in bad.stderr


# ---- Slices in every report ----

def test_eval_report_and_export_carry_slices(trained, exported):
  _, _, report = trained
  for split in ("validation", "test", "manual_test"):
    found = report[split]["slices"]
    assert set(found["features"]) == {"length_tokens", "mention", "url", "emoji", "negation"}
    assert set(found["omitted"]) == {"hashtag", "all_caps", "topic"}  # Normalized text, no query column.
    assert sum(s["count"] for s in found["features"]["negation"].values()) == found["overall"]["count"]
  assert report["test"]["slices"]["overall"]["accuracy"] == pytest.approx(report["test"]["accuracy"], abs=1e-12)
  manual = report["manual_test"]
  assert manual["slices"]["overall"]["count"] == manual["binary"]["num_examples"]  # Neutral rows left out.
  negated = report["test"]["slices"]["features"]["negation"]
  assert negated["yes"]["count"] > 0 and negated["no"]["count"] > 0  # The synthetic task negates some tweets.
  output, result = exported
  assert result["splits"]["test"]["slices"]["overall"]["count"] == result["splits"]["test"]["stored"]["num_examples"]
  card = open(os.path.join(output, model_dir.CARD_FILE), encoding="utf-8").read()
  assert "## Slices" in card and "| negation | yes |" in card and "| hashtag | not measured" in card
  assert card.index("## Slices") < card.index("## Calibration")


def _write_sentiment140_manual_test(path, split):
  polarity = {0: "0", 1: "4", 2: "2"}
  topics = ["topic a", "topic b", "#c"]
  path.write_bytes("\n".join(
      ",".join(f'"{f}"' for f in (polarity[int(label)], str(i), "Mon Apr 06 2009", topics[i % 3], "user", text))
      for i, (text, label) in enumerate(zip(split.texts, split.labels))).encode("latin-1"))


def test_slices_added_to_an_export_without_its_workdir(exported, tmp_path):
  source, _ = exported
  directory = tmp_path / "model"
  import shutil  # pylint: disable=import-outside-toplevel
  shutil.copytree(source, directory)
  manual_test = tmp_path / "manual.csv"
  _write_sentiment140_manual_test(manual_test, _manual_split())
  with open(directory / model_dir.EVALUATION_FILE, encoding="utf-8") as f:
    before = json.load(f)
  card_before = (directory / model_dir.CARD_FILE).read_text(encoding="utf-8")
  for _ in range(2):  # Renewing replaces the section.
    reports = exporter.add_slices(str(directory), str(manual_test), command="test")
  assert set(reports) == {"validation", "test", "manual_test"}
  topics = reports["manual_test"]["features"]["topic"]
  assert sorted(topics) == ["#c", "topic a", "topic b"] and "hashtag" in reports["manual_test"]["features"]
  with open(directory / model_dir.EVALUATION_FILE, encoding="utf-8") as f:
    after = json.load(f)
  for split in before["splits"]:  # Every number that was there stays; only the slices are new.
    for key, value in before["splits"][split].items():
      if key != "slices":
        assert after["splits"][split][key] == value
  assert after["splits"]["manual_test"]["slices"]["features"]["topic"] == json.loads(json.dumps(topics))
  card = (directory / model_dir.CARD_FILE).read_text(encoding="utf-8")
  assert card.count("## Slices") == 1 and "3 query topics" in card and "Added to this export by `test`" in card
  assert card.split("## Slices")[0] == card_before.split("## Slices")[0]
  assert card.split("## Calibration")[1] == card_before.split("## Calibration")[1]
  after["splits"]["test"]["stored"]["accuracy"] -= 0.01
  with open(directory / model_dir.EVALUATION_FILE, "w", encoding="utf-8") as f:
    json.dump(after, f)
  with pytest.raises(ValueError, match="test: accuracy .* differs"):
    exporter.add_slices(str(directory), str(manual_test))


# ---- Models of other classes ----

def test_a_file_is_read_with_the_classes_of_the_model_that_scores_it(tmp_path):
  names = ("Joy", "Anger", "neutral")
  assert labelled_file_report.reading_classes(names, "auto") == ("classes", names)  # Labels matched to the names.
  known = ("negative", "positive", "neutral")  # What a 3-class run on 0/2/4 or names labels learns.
  assert labelled_file_report.reading_classes(known, "auto") == ("auto", known)
  assert labelled_file_report.reading_classes(classes.BINARY, "auto") == ("auto", None)  # Neutral rows kept (abstention).
  path = tmp_path / "emotions.tsv"
  path.write_text("text\tlabel\nyay\tJOY\ngrr\tanger\nhm\tNeutral\nzzz\tbored\n", encoding="utf-8")
  rows = labelled_rows.read_labelled_file(str(path), text_column="text", label_column="label",
                                     labels="classes", class_names=names)
  assert rows.label_scheme == "classes" and rows.labels.tolist() == [0, 1, 2]
  assert rows.bad_rows["unknown_label"] == 1 and rows.unknown_labels == {"bored": 1} and rows.topics is None


def test_score_a_three_class_model(three_class_export, tmp_path):
  loaded = inference.load_exported(three_class_export)
  split = _manual_split()
  csv_path = tmp_path / "s140.csv"
  _write_sentiment140_manual_test(csv_path, split)
  rows = labelled_rows.read_labelled_file(str(csv_path), class_names=loaded.class_names)
  assert rows.label_scheme == "0/2/4" and rows.labels.tolist() == split.labels.tolist()  # Same names, same ids.
  report = labelled_file_report.score(loaded, rows, threshold=0.0, batch_size=64)
  probs = loaded.batch_probabilities(loaded.encode(split.texts))
  n_way = report["n_way"]
  assert n_way["accuracy"] == pytest.approx(float((probs.argmax(1) == split.labels).mean()), abs=1e-12)
  assert "binary" not in report and report["class_names"] == ["negative", "positive", "neutral"]
  matrix = np.asarray(n_way["confusion_matrix"])
  assert matrix.shape == (3, 3) and matrix.sum() == len(split) and matrix[:, 2].sum() > 0  # It says neutral.
  assert [c["support"] for c in n_way["per_class"]] == np.bincount(split.labels, minlength=3).tolist()
  assert report["label_counts"] == dict(zip(["negative", "positive", "neutral"],
                                            np.bincount(split.labels, minlength=3).tolist()))
  assert report["slices"]["scored"] == "accuracy" and report["slices"]["overall"]["count"] == len(split)
  assert report["slices"]["overall"]["accuracy"] == pytest.approx(n_way["accuracy"])
  assert set(report["slices"]["features"]["topic"]) == {"topic a", "topic b", "#c"}
  text = "\n".join(labelled_file_report.summary_lines({"data": "x", **report}))
  assert "3-way (" in text and "neutral   precision" in text and "confusion matrix" in text
  assert "slices (accuracy;" in text and "topic" in text


def test_evaluate_cli_three_class_model(three_class_export, tmp_path):
  data = tmp_path / "three.tsv"
  data.write_text("label\ttext\npositive\tgood great happy\nNEGATIVE\tbad sad awful\nneutral\tthe day\n"
                  "maybe\tthe work\n", encoding="utf-8")
  report_path = tmp_path / "report.json"
  result = run_module("train.evaluate", f"--model={three_class_export}", f"--data={data}", "--text_column=text",
                      "--label_column=label", f"--output={report_path}")
  assert result.returncode == 0, result.stderr[-3000:]
  assert "3-way (3 rows)" in result.stdout and "labels names" in result.stdout and "unknown_label 1" in result.stdout
  assert "confusion matrix" in result.stdout and "length_tokens" in result.stdout
  report = json.loads(report_path.read_text())
  assert report["n_way"]["num_examples"] == 3 and len(report["n_way"]["per_class"]) == 3
  refused = run_module("train.evaluate", f"--model={three_class_export}", f"--data={data}", "--text_column=text",
                       "--label_column=label", "--threshold=0.6", f"--output={report_path}")
  assert refused.returncode == 2 and "--threshold is for the binary" in refused.stderr
  assert "Traceback" not in refused.stderr


def test_export_copies_the_class_names(trained_workdir, tmp_path):
  import shutil  # pylint: disable=import-outside-toplevel
  from train.runs import classes  # pylint: disable=import-outside-toplevel
  workdir = tmp_path / "workdir"
  shutil.copytree(trained_workdir, workdir)
  classes.write(str(workdir), ("sad", "happy"))
  output = tmp_path / "named"
  result = exporter.export(str(workdir), str(output), "float32")
  assert classes.read(str(output)) == ("sad", "happy") and result["export"]["class_names"] == ["sad", "happy"]
  card = (output / model_dir.CARD_FILE).read_text(encoding="utf-8")
  assert "one of 2 classes: sad, happy" in card and f"| `{classes.CLASSES_FILE}` |" in card
  assert "Per class on the held-out test split" in card and "| happy |" in card
  assert "Trained on positive/negative only" not in card
  loaded = inference.load_exported(str(output))
  assert loaded.class_names == ("sad", "happy")
  from train.model_files import predictions  # pylint: disable=import-outside-toplevel
  answers = [r["label"] for r in predictions.classify(loaded, [b"good great happy", b"bad sad terrible"], 0.99)]
  assert answers == ["happy", "sad"]  # Its names, and no abstention.
