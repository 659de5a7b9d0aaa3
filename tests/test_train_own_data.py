"""Training on the user's own files: N classes end to end, init_from an export or a classifier workdir
(tokenizer reused, head kept or replaced), and the one-line errors (exit 2)."""

import json
import os
import shutil
import subprocess
import sys

import jax
import numpy as np
import pytest

from configs import own_data
from train.data import pipeline
from train.loop import models, pretrained_init
from train.loop import trainer as training
from train.model_files import exporter
from train.runs import classes, eval_report, model_dir
from train.runs import workdir as workdir_lib

from tests.test_data_labelled_files import _write_tsv

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
HF_DIR = os.path.join(REPO, "tests", "fixtures", "hf_mamba_tiny")
RELEASED = os.path.join(REPO, "models", "sent140_mamba")
THREE = ["negative", "positive", "neutral"]


def _tiny(tmp_path, train_file, **overrides):
  """configs/own_data.py at the scale of configs/tiny.py."""
  config = own_data.get_config()
  config.train_file = train_file
  config.text_column, config.label_column = "text", "label"
  config.prepared_dir = str(tmp_path / "cache")
  config.vocab_size = 300
  config.max_length = 16
  config.model.d_model, config.model.n_layers, config.model.d_state = 16, 1, 4
  config.model.scan_method = "sequential"
  config.batch_size, config.eval_batch_size = 32, 64
  config.num_epochs = 2
  config.learning_rate, config.warmup_steps = 1e-2, 2
  config.length_bucket_bounds = (6, 10)
  config.async_checkpointing = False
  config.train_data_on_device = False
  config.log_every_steps = config.eval_every_steps = config.checkpoint_every_steps = 8
  config.update(overrides)
  return config


def _export(folder, config, params, tokenizer_path, class_names, step=7):
  """An exported model directory as train.export writes it (config.json, params, tokenizer, classes.json)."""
  os.makedirs(folder)
  model_dir.save_params(os.path.join(folder, model_dir.PARAMS_FILE), params, "float32", {"step": str(step)})
  with open(os.path.join(folder, model_dir.CONFIG_FILE), "w") as f:
    json.dump(workdir_lib.as_json_dict(config), f)
  shutil.copyfile(tokenizer_path, os.path.join(folder, "tokenizer.model"))
  classes.write(folder, class_names)
  return str(folder)


def _leaves(params):
  return {"/".join(k): np.asarray(v) for k, v in
          __import__("mamba_jax").pretrained.flatten_tree(jax.device_get(params)).items()}


def test_init_from_an_export_keeps_or_replaces_the_head(tmp_path, capsys):
  config = _tiny(tmp_path, _write_tsv(tmp_path / "three.tsv", THREE, 40, seed=1))
  datasets = pipeline.get_datasets(config, log=lambda _: None)
  vocab = datasets.vocab_size
  source_model = models.create_model(config, vocab, 3)
  source_params = models.init_params(config, source_model, jax.random.key(7))
  export = _export(str(tmp_path / "export"), config, source_params, datasets.tokenizer_path, THREE)
  source = pretrained_init.classifier_source(export)
  assert (source.kind, source.class_names, source.tokenizer_path) == ("export", tuple(THREE),
                                                                       os.path.join(export, "tokenizer.model"))
  pretrained_init.check_classifier_source(config, source)
  expected = _leaves(source_params)

  # Same classes: every tensor, the head included.
  fresh_three = models.init_params(config, source_model, jax.random.key(0))
  loaded = _leaves(pretrained_init.init_from_pretrained(export, source_model, fresh_three, tuple(THREE)))
  assert "loaded 14 of 14 tensors, head included" in capsys.readouterr().out
  assert loaded.keys() == expected.keys() and all(np.array_equal(v, expected[k]) for k, v in loaded.items())

  # Other classes: the backbone loaded, the head fresh (as initialized), one line naming both sets.
  binary_model = models.create_model(config, vocab, 2)
  fresh_binary = models.init_params(config, binary_model, jax.random.key(0))
  loaded = _leaves(pretrained_init.init_from_pretrained(export, binary_model, fresh_binary, ("negative", "positive")))
  out = capsys.readouterr().out
  assert ("its classes ['negative', 'positive', 'neutral'] differ from this data's ['negative', 'positive']: "
          "the head is replaced") in out and "loaded 12 of 14 tensors" in out
  fresh = _leaves(fresh_binary)
  for name, value in loaded.items():
    np.testing.assert_array_equal(value, fresh[name] if name.startswith("head/") else expected[name])
  assert loaded["head/kernel"].shape == (16, 2)

  # Another architecture, another kind of tokenizer, a vocabulary the weights do not have: one line each.
  with pytest.raises(ValueError, match=r"another architecture \(model.d_model: 16 there, 32 here\).*"
                                       r"set --config.model.d_model=16"):
    wider = _tiny(tmp_path, "x")
    wider.model.d_model = 32
    pretrained_init.check_classifier_source(wider, source)
  with pytest.raises(ValueError, match="tokenizers \\(vocabularies\\) differ"):
    pretrained_init.check_classifier_source(_tiny(tmp_path, "x", dataset="synthetic"), source)
  other_vocab = models.create_model(config, vocab + 64, 3)
  with pytest.raises(ValueError, match="the tokenizer and the weights do not match"):
    pretrained_init.load_classifier(source, other_vocab, jax.tree_util.tree_map(
        lambda leaf: np.zeros(leaf.shape, leaf.dtype), models.parameter_shapes(config, other_vocab)), THREE)
  assert pretrained_init.classifier_source(HF_DIR) is None  # An LM folder: the backbone path.


def test_the_released_model_fits_configs_own_data():
  source = pretrained_init.classifier_source(RELEASED)
  assert source.kind == "export" and source.class_names == classes.BINARY and source.tokenizer_path
  pretrained_init.check_classifier_source(own_data.get_config(), source)  # The documented fine-tuning command.


def test_three_classes_from_scratch_then_fine_tuned_on_two(tmp_path, capsys):
  three = _write_tsv(tmp_path / "three.tsv", THREE, 60, seed=1)
  scratch_dir = str(tmp_path / "scratch")
  report = training.train_and_evaluate(_tiny(tmp_path, three), scratch_dir)
  assert classes.read(scratch_dir) == tuple(THREE)
  assert "manual_test" not in report and len(report["test"]["confusion_matrix"]) == 3
  assert report["data_summary"]["class_names"] == THREE
  assert report["test"]["accuracy"] > 0.5  # Learnable: each class has its own words.
  assert "3 classes" in models.task_of(_tiny(tmp_path, three)).summary(report)
  exported_dir = str(tmp_path / "export")
  evaluation = exporter.export(scratch_dir, exported_dir, "float32")  # The export keeps the classes.
  assert classes.read(exported_dir) == tuple(THREE) and "manual_test" not in evaluation["splits"]
  assert evaluation["splits"]["test"]["stored"]["accuracy"] == pytest.approx(report["test"]["accuracy"], abs=1e-6)
  with open(os.path.join(exported_dir, "README.md")) as f:
    card = f.read()
  assert all(name in card for name in THREE) and "three.tsv" in card

  # Fine-tune the workdir on a 2-class file with its own test file: its tokenizer, a new head.
  two = _write_tsv(tmp_path / "two.tsv", THREE[:2], 60, seed=2)
  test = _write_tsv(tmp_path / "test.tsv", THREE[:2], 7, seed=3)
  tuned_dir = str(tmp_path / "tuned")
  capsys.readouterr()
  config = _tiny(tmp_path, two, test_file=test, init_from=scratch_dir, vocab_size=999)
  tuned = training.train_and_evaluate(config, tuned_dir)
  out = capsys.readouterr().out
  assert f"init_from {scratch_dir} (workdir, step" in out and "the head is replaced" in out
  assert "config.vocab_size 999 is not used" in out
  assert tuned["test"]["num_examples"] == 14 and classes.read(tuned_dir) == ("negative", "positive")
  with open(os.path.join(scratch_dir, "tokenizer.model"), "rb") as a, open(os.path.join(tuned_dir, "tokenizer.model"), "rb") as b:
    assert a.read() == b.read()
  assert eval_report.read_eval_report(tuned_dir)["test"] == tuned["test"]

  # The same workdir with other classes in the data (the file changed under the same name): refused.
  _write_tsv(tmp_path / "two.tsv", THREE, 60, seed=2)
  with pytest.raises(ValueError, match="holds checkpoints of the classes \\['negative', 'positive'\\]"):
    training.train_and_evaluate(config, tuned_dir)


def _main(tmp_path, *args):
  return subprocess.run(
      [sys.executable, "-m", "train.main", "--config=configs/own_data.py", f"--workdir={tmp_path / 'cli'}",
       f"--config.prepared_dir={tmp_path / 'cache'}", "--config.text_column=text", "--config.label_column=label",
       *args], cwd=REPO, env={**os.environ, "JAX_PLATFORMS": "cpu"}, capture_output=True, text=True, timeout=300)


@pytest.mark.parametrize("case, expected", [
    ("one_class", "a classifier needs rows of at least 2 classes"),
    ("unknown_label", "rows have a label outside the label scheme"),
    ("too_few_rows", "fewer than one batch of 32 (config.batch_size)"),
    ("vocab_too_small", "vocab_size 100 is smaller than the"),
    ("architecture", "has another architecture (model.d_model: 128 there, 64 here)"),
])
def test_bad_input_is_one_line_and_exit_2(tmp_path, case, expected):
  """Through the CLI (the other messages: tests/test_data_labelled_files.py, test_faults.py)."""
  train = _write_tsv(tmp_path / "train.tsv", THREE, 12, seed=1)
  args = {
      "one_class": [f"--config.train_file={_write_tsv(tmp_path / 'one.tsv', ['neutral'], 30)}"],
      "unknown_label": [f"--config.train_file={train}", "--config.label_scheme=0/1"],
      "too_few_rows": [f"--config.train_file={train}", "--config.vocab_size=400"],
      "vocab_too_small": [f"--config.train_file={train}", "--config.vocab_size=100"],
      "architecture": [f"--config.train_file={train}", f"--config.init_from={RELEASED}", "--config.model.d_model=64"],
  }[case]
  result = _main(tmp_path, *args)
  assert result.returncode == 2, result.stderr[-3000:]
  lines = result.stderr.strip().splitlines()
  assert lines[-1].startswith("ERROR: ") and expected in lines[-1], result.stderr[-3000:]
  assert "Traceback" not in result.stderr


def test_own_data_epochs_are_capped_by_the_examples_budget():
  """10 epochs of a few thousand rows; a large file stops at configs/own_data.py's examples budget."""
  config = own_data.get_config()
  budget_steps = config.train_examples_budget // config.batch_size
  assert training.total_train_steps(config, 50) == 10 * 50  # 1,600 rows: 10 epochs.
  assert training.total_train_steps(config, 1250) == budget_steps < 10 * 1250  # 40,000 rows: the budget.
  config.train_examples_budget = 0  # No cap.
  assert training.total_train_steps(config, 1250) == 10 * 1250
  config.num_train_steps = 7  # An explicit step count wins.
  assert training.total_train_steps(config, 1250) == 7
