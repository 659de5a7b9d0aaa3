"""Classifying lines of text (train.predict): never a crash, one answer per line, in order, nothing raw.

Promises: good and bad lines each get their answer or error, in order; control characters never
reach the output raw; the command reads stdin or arguments, from a workdir or an exported model,
and fails in one line; a CSV/TSV/.txt file (plain or gzipped) in gives every row, in order, with its
columns and the answer, out (CSV, TSV, JSON lines). The tiny run and its exports are fixtures of tests/conftest.py.
"""

import gzip
import json
import os
import subprocess
import sys

import pytest

from train.model_files import inference, prediction_files, predictions

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
ENV = {**os.environ, "JAX_PLATFORMS": "cpu"}


def run_predict(*args, **kwargs):
  return subprocess.run([sys.executable, "-m", "train.predict", *args], cwd=REPO, env=ENV, capture_output=True,
                        timeout=300, **kwargs)


@pytest.fixture(scope="module")
def predictor(trained_workdir):
  return inference.load_workdir(trained_workdir)


# ---- Lines in, answers out ----

def test_classify_lines_in_order_with_errors_and_notes(predictor):
  lines = [
      b"good great happy\n",
      b"\n",
      b"   \r\n",
      b"\xff\xfe bad awful",
      "\U0001F600\U0001F622".encode("utf-8"),
      b"good " * 5000,
      b"bad sad terrible",
  ]
  results = list(predictions.classify(predictor, lines, threshold=0.0, batch_size=2))
  assert [r["line"] for r in results] == list(range(1, len(lines) + 1))
  assert results[1]["error"] == "empty line" and results[2]["error"] == "empty line"
  assert results[0]["label"] == "positive" and results[6]["label"] == "negative"
  assert "invalid UTF-8" in results[3]["note"] and results[3]["label"] in ("negative", "positive")
  assert results[4]["label"] in ("negative", "positive")
  assert "cut to" in results[5]["note"] and "first 16 tokens" in results[5]["note"]
  for r in results:
    if "error" not in r:
      assert 0.5 <= r["probability"] <= 1.0
  # Threshold 1.0: every answered line is neutral.
  assert {r.get("label") for r in predictions.classify(predictor, lines, threshold=1.0) if "label" in r} == {"neutral"}


PREDICT_CORPUS = [
    (b"", "error", "empty line"),
    (b" \t  ", "error", "empty line"),
    (b"good " * 2_000_000, "label", "cut to 10000"),  # A 10 MB line.
    (b"\xff\xfe good \xc3\x28", "label", "invalid UTF-8"),
    (b"\x00\x00\x00", "error", "empty line (only control characters)"),
    ("good \x1b[31mred\x1b[0m \x07\x9b".encode(), "label", None),  # ANSI colours, BEL, C1 CSI.
    ("\U0001F600\U0001F622".encode(), "label", None),
    ("\u202egood \u05e9\u05dc\u05d5\u05dd \u0645\u0631\u062d\u0628\u0627".encode(), "label", None),
]


def test_predict_bad_input_corpus(predictor):
  results = list(predictions.classify(predictor, [raw for raw, _, _ in PREDICT_CORPUS], threshold=0.0))
  assert [r["line"] for r in results] == list(range(1, len(PREDICT_CORPUS) + 1))
  for result, (_, kind, note) in zip(results, PREDICT_CORPUS):
    assert kind in result, result
    if note:
      assert note in (result.get("error") or result.get("note") or ""), result
    for output_format in ("text", "json"):
      line = predictions.format_result(result, output_format)
      assert not predictions.UNSAFE_CHARACTERS.search(line.replace("\t", "")), repr(line[:200])  # Tabs: our columns.
      assert "\n" not in line
  ansi = predictions.format_result(results[5], "text")
  assert "\\x1b[31mred\\x1b[0m \\x07\\x9b" in ansi
  assert json.loads(predictions.format_result(results[5], "json"))["text"] == "good \x1b[31mred\x1b[0m \x07\x9b"
  assert "\\u202egood \u05e9\u05dc\u05d5\u05dd" in predictions.format_result(results[7], "text")  # RTL letters kept.


# ---- The command ----

def test_cli_stdin_and_arguments(trained_workdir):
  stdin = b"good great happy\n\n\xc3\x28 invalid\n\xf0\x9f\x98\x80\nbad sad\n"
  result = run_predict(f"--workdir={trained_workdir}", "--format=json", input=stdin)
  assert result.returncode == 0, result.stderr.decode()[-3000:]
  rows = [json.loads(line) for line in result.stdout.decode().splitlines()]
  assert [r["line"] for r in rows] == [1, 2, 3, 4, 5]
  assert rows[1] == {"line": 2, "error": "empty line"}
  assert rows[0]["label"] == "positive" and rows[4]["label"] == "negative"

  result = run_predict(f"--workdir={trained_workdir}", "--threshold=0.5", "good happy", "", "bad sad", text=True)
  assert result.returncode == 0, result.stderr[-3000:]
  out = result.stdout.splitlines()
  assert len(out) == 3
  assert out[0].startswith("positive\t") and out[1].startswith("error\t") and out[2].startswith("negative\t")


def test_cli_with_an_exported_model(exported_bfloat16):
  result = run_predict(f"--model={exported_bfloat16}", "--threshold=0", "good great happy", "bad sad terrible",
                       text=True)
  assert result.returncode == 0, result.stderr[-3000:]
  out = result.stdout.splitlines()
  assert out[0].startswith("positive\t") and out[1].startswith("negative\t")
  both = run_predict(f"--model={exported_bfloat16}", f"--workdir={exported_bfloat16}", "x", text=True)
  assert both.returncode != 0 and "exactly one" in both.stderr


def test_cli_missing_workdir_is_a_clear_error(tmp_path):
  result = run_predict(f"--workdir={tmp_path}", "x", text=True)
  assert result.returncode == 2
  assert "config.json not found" in result.stderr
  assert "Traceback" not in result.stderr


# ---- Models of other classes (classes.json) ----

def test_three_class_model_answers_a_class_with_every_probability(three_class_export):
  model = inference.load_exported(three_class_export)
  assert model.class_names == ("negative", "positive", "neutral") and not model.is_binary_sentiment
  lines = [b"good great happy fun love", b"bad sad terrible awful", b"", b"the day my work"]
  results = list(predictions.classify(model, lines, threshold=0.99))  # No abstention: the threshold is unused.
  assert [r["line"] for r in results] == [1, 2, 3, 4] and results[2]["error"] == "empty line"
  answered = [results[i] for i in (0, 1, 3)]
  for r in answered:
    assert set(r["probabilities"]) == {"negative", "positive", "neutral"} and "p_positive" not in r
    assert sum(r["probabilities"].values()) == pytest.approx(1.0, abs=1e-6)
    assert r["label"] == max(r["probabilities"], key=r["probabilities"].get)
    assert r["probability"] == pytest.approx(max(r["probabilities"].values()))
  assert [r["label"] for r in answered[:2]] == ["positive", "negative"]
  text = predictions.format_result(answered[0], "text").split("\t")
  assert text[0] == "positive" and text[3] == "good great happy fun love"
  assert text[2].split(" ")[0].startswith("negative=") and text[2].split(" ")[2].startswith("neutral=")
  assert json.loads(predictions.format_result(answered[0], "json"))["probabilities"].keys() == {
      "negative", "positive", "neutral"}


def test_binary_model_keeps_its_output_and_adds_probabilities(predictor):
  result, = predictions.classify(predictor, [b"good great happy"], threshold=0.0)
  assert result["p_positive"] == pytest.approx(result["probabilities"]["positive"])
  assert set(result["probabilities"]) == {"negative", "positive"}
  assert len(predictions.format_result(result, "text").split("\t")) == 3  # label, probability, text: as always.


def test_cli_three_class_model(three_class_export):
  result = run_predict(f"--model={three_class_export}", "good great happy fun love", "bad sad terrible awful",
                       text=True)
  assert result.returncode == 0, result.stderr[-3000:]
  out = [line.split("\t") for line in result.stdout.splitlines()]
  assert [row[0] for row in out] == ["positive", "negative"] and all(len(row) == 4 for row in out)
  assert all(" neutral=" in row[2] for row in out)
  refused = run_predict(f"--model={three_class_export}", "--threshold=0.5", "good", text=True)
  assert refused.returncode == 2 and "--threshold is for the binary" in refused.stderr
  assert "Traceback" not in refused.stderr


# ---- File in, file out ----

FILE_ROWS = [("1", "good great happy"), ("2", "bad sad terrible"), ("3", ""), ("4", "a text with a\nline break"),
             ("5", "the day my work is fun")]


def write_csv(path, delimiter=","):
  import csv  # pylint: disable=import-outside-toplevel
  opener = gzip.open if str(path).endswith(".gz") else open
  with opener(path, "wt", encoding="utf-8", newline="") as f:
    writer = csv.writer(f, delimiter=delimiter, lineterminator="\n")
    writer.writerow(["id", "text", "label"])  # A label column is kept, not needed: the answer is predicted_label.
    writer.writerows([(i, text, "x") for i, text in FILE_ROWS])
    f.write("6\n\n")  # A row without its text column, then a blank line.


def read_output(path):
  import csv  # pylint: disable=import-outside-toplevel
  opener = gzip.open if str(path).endswith(".gz") else open
  with opener(path, "rt", encoding="utf-8", newline="") as f:
    if ".jsonl" in str(path):
      return [json.loads(line) for line in f]
    return list(csv.DictReader(f, delimiter="\t" if ".tsv" in str(path) else ","))


@pytest.mark.parametrize("source, output", [("in.csv", "out.csv"), ("in.tsv.gz", "out.jsonl"), ("in.csv.gz", "out.tsv.gz")])
def test_file_in_file_out_keeps_every_row_in_order(predictor, tmp_path, source, output):
  write_csv(tmp_path / source, "\t" if ".tsv" in source else ",")
  summary = prediction_files.write_file_predictions(predictor, str(tmp_path / source), str(tmp_path / output),
                                                    text_column="text", threshold=0.0, progress=False)
  rows = read_output(tmp_path / output)
  assert summary.rows == len(rows) == 7 and summary.answered == 4
  assert summary.errors == {"empty_text": 1, "wrong_column_count": 1, "blank_line": 1}
  assert [r["id"] for r in rows] == ["1", "2", "3", "4", "5", "6", ""]
  assert list(rows[0])[:3] == ["id", "text", "label"] and "predicted_label" in rows[0] and "p_positive" in rows[0]
  assert [r["predicted_label"] for r in rows[:2]] == ["positive", "negative"]
  assert rows[3]["text"] == "a text with a\nline break" and rows[3]["label"] == "x"  # The input's own columns.
  expected = predictor.engine.probabilities([text for _, text in FILE_ROWS if text])
  answered = [r for r in rows if not r["error"]]
  for row, p in zip(answered, expected):
    assert float(row["p_positive"]) == pytest.approx(p[1], abs=1e-6)
    assert float(row["confidence"]) == pytest.approx(p.max(), abs=1e-6)
  assert [r["error"] for r in rows if r["error"]] == ["empty_text", "wrong_column_count", "blank_line"]
  assert all(r["predicted_label"] in ("", None) for r in rows if r["error"])
  assert not (tmp_path / (output + ".partial")).exists()


def test_file_of_lines_and_a_headerless_csv(predictor, tmp_path):
  with gzip.open(tmp_path / "tweets.txt.gz", "wt", encoding="utf-8") as f:
    f.write("good great happy\n\n   \nbad sad terrible\r\n")
  prediction_files.write_file_predictions(predictor, str(tmp_path / "tweets.txt.gz"), str(tmp_path / "out.csv"),
                                          progress=False)
  rows = read_output(tmp_path / "out.csv")
  assert [(r["text"], r["label"], r["error"]) for r in rows] == [
      ("good great happy", "positive", ""), ("", "", "blank_line"), ("   ", "", "empty_text"),
      ("bad sad terrible", "negative", "")]
  (tmp_path / "plain.csv").write_text("7,good great happy,z\n8,bad sad terrible,z\n", encoding="utf-8")
  prediction_files.write_file_predictions(predictor, str(tmp_path / "plain.csv"), str(tmp_path / "plain_out.csv"),
                                          text_column="1", progress=False)
  rows = read_output(tmp_path / "plain_out.csv")
  assert list(rows[0])[:3] == ["column_0", "column_1", "column_2"] and [r["column_0"] for r in rows] == ["7", "8"]


def test_file_errors_are_one_line_exit_2(exported, tmp_path):
  model_dir, _ = exported
  write_csv(tmp_path / "in.csv")
  result = run_predict(f"--model={model_dir}", f"--input={tmp_path / 'in.csv'}", "--text_column=text",
                       f"--output={tmp_path / 'out.csv'}", text=True)
  assert result.returncode == 0, result.stderr[-3000:]
  assert "rows/s" in result.stderr and "7 rows, 4 answered" in result.stderr  # The progress bar, then the summary.
  assert len(read_output(tmp_path / "out.csv")) == 7
  for args, message in [(["--text_column=nope", f"--output={tmp_path / 'o.csv'}"], "column 'nope' not in the header"),
                        (["--text_column=text", f"--output={tmp_path / 'o.xlsx'}"], "the extension must be one of"),
                        (["--text_column=text"], "--input and --output go together")]:
    failed = run_predict(f"--model={model_dir}", f"--input={tmp_path / 'in.csv'}", *args, text=True)
    assert failed.returncode == 2 and message in failed.stderr and "Traceback" not in failed.stderr, failed.stderr
  with pytest.raises(FileNotFoundError, match="no such file"):
    prediction_files.check_files(str(tmp_path / "none.csv"), str(tmp_path / "o.csv"))
  with pytest.raises(ValueError, match="is the input file"):
    prediction_files.check_files(str(tmp_path / "in.csv"), str(tmp_path / "in.csv"))
