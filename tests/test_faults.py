"""What the project promises when things go wrong (issue 12), one test per promise.

Workdirs and checkpoints
  - a config that changes the result stops before training (exit 2, the fields, both values, how
    to proceed); --start_over clears the old run; result-independent fields may differ;
  - kill -9 at random points (one of them during an async save) x3, then resume: the same
    parameters as an uninterrupted run, no finished step lost;
  - a truncated or deleted checkpoint file: moved aside, reported once, the step saved again;
  - a damaged best checkpoint: eval_report.json says what was evaluated, exit code 4;
  - a finished run started again keeps its measured figures and logs no duplicate rows;
  - a restore failure prints one line, not a traceback.
Data
  - the malformed-CSV corpus: every valid row kept, every other line counted by reason;
  - train.main prints the unused-row counts;
  - a vocab_size the data cannot support is an error naming both numbers;
  - $SENT140_DATA_DIR naming a missing folder is not created; a prepared cache used instead is named.
Command line
  - an unknown --config.x names the closest fields, type and range errors are one line, exit 2;
  - progress: early loss on the bar, evaluation bars, no TFDS "Unknown size" line.
"""

import json
import os
import random
import shutil
import signal
import subprocess
import sys
import time

import jax
import numpy as np
import pytest

from configs import tiny
from train import checkpointing, config_checks, train, workdir as workdir_lib
from train.data import pipeline, sources, tokenizer as tokenizer_lib

from tests import train_tiny_run

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _env(tmp_cache=None):
  env = {**os.environ, "JAX_PLATFORMS": "cpu"}
  if tmp_cache:  # Later processes reuse the compiled steps of the first.
    env.update(JAX_COMPILATION_CACHE_DIR=tmp_cache, JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS="0")
  return env


def _run(args, timeout=600, **kwargs):
  return subprocess.run([sys.executable, "-m", *args], cwd=REPO, env=kwargs.pop("env", _env()),
                        capture_output=True, text=True, timeout=timeout, **kwargs)


@pytest.fixture(scope="module")
def trained():
  return train_tiny_run.trained_tiny_run()


def _copy_workdir(trained, tmp_path):
  target = str(tmp_path / "copy")
  shutil.copytree(trained[0], target)
  return target


# ---------------------------------------------------------------- workdirs and checkpoints

def _fake_run(tmp_path, config):
  """A workdir that config made (its config.json and one checkpoint step directory)."""
  folder = str(tmp_path / "run")
  workdir_lib.claim(config, folder)
  os.makedirs(os.path.join(folder, "checkpoints", "latest", "8"))
  return folder


def test_changed_config_stops_before_training_and_names_fields(tmp_path):
  folder = _fake_run(tmp_path, tiny.get_config())
  changed = tiny.get_config()
  changed.model.d_model = 32
  changed.num_epochs = 1
  with pytest.raises(workdir_lib.WorkdirConfigMismatch) as error:
    workdir_lib.claim(changed, folder)
  message = str(error.value)
  assert "model.d_model: 16 in the workdir, 32 now" in message
  assert "num_epochs: 2 in the workdir, 1 now" in message
  assert "--workdir" in message and "--start_over" in message
  assert json.load(open(os.path.join(folder, "config.json")))["model"]["d_model"] == 16  # Not overwritten.

  cadence = tiny.get_config()
  for name in workdir_lib.RESULT_INDEPENDENT_FIELDS:
    if isinstance(cadence[name], bool):
      cadence[name] = not cadence[name]
    elif isinstance(cadence[name], (int, float)):
      cadence[name] = cadence[name] * 2 + 1
  workdir_lib.claim(cadence, folder)  # Allowed to differ: no error, the stored config follows.
  assert json.load(open(os.path.join(folder, "config.json")))["log_every_steps"] == cadence.log_every_steps

  workdir_lib.claim(changed, folder, start_over=True)
  assert not os.path.exists(os.path.join(folder, "checkpoints"))
  assert json.load(open(os.path.join(folder, "config.json")))["model"]["d_model"] == 32


def test_stored_config_of_an_older_version_is_completed_only_where_results_cannot_change():
  reference = tiny.get_config()
  stored = workdir_lib.as_json_dict(reference)
  del stored["download"]  # A config.json written before the field existed.
  completed = workdir_lib.complete_stored_config(stored, reference, "old/config.json")
  assert completed.download == reference.download
  assert completed.model.to_dict() == reference.model.to_dict()
  del stored["batch_size"]
  with pytest.raises(ValueError, match=r"old/config.json lacks the config fields batch_size"):
    workdir_lib.complete_stored_config(stored, reference, "old/config.json")


def test_cli_changed_config_exits_2_with_the_fields(tmp_path):
  folder = _fake_run(tmp_path, tiny.get_config())
  result = _run(["train.main", "--config=configs/tiny.py", f"--workdir={folder}", "--config.seed=7"])
  assert result.returncode == 2, result.stderr[-2000:]
  assert "seed: 0 in the workdir, 7 now" in result.stderr and "--start_over" in result.stderr
  assert "Traceback" not in result.stderr
  assert os.path.isdir(os.path.join(folder, "checkpoints", "latest", "8"))  # Nothing deleted.


def _latest_steps(workdir):
  folder = os.path.join(workdir, "checkpoints", "latest")
  return sorted(int(s) for s in os.listdir(folder) if s.isdigit()) if os.path.isdir(folder) else []


CHECKPOINT_EVERY = train_tiny_run.OVERRIDES["checkpoint_every_steps"]


def _kill_when(process, ready, timeout=600):
  """SIGKILLs ``process`` once ``ready()`` is true; returns whether it was still running then."""
  deadline = time.time() + timeout
  while time.time() < deadline and process.poll() is None:
    if ready():
      process.send_signal(signal.SIGKILL)
      process.wait(timeout=60)
      return True
    time.sleep(0.01)
  return False


def test_kill_9_three_times_then_resume_gives_the_uninterrupted_parameters(trained, tmp_path):
  reference, config, _ = trained
  workdir = str(tmp_path / "killed")
  command = [sys.executable, "-m", "train.main", "--config=configs/tiny.py", f"--workdir={workdir}",
             *train_tiny_run.cli_overrides(async_checkpointing=True)]
  env = _env(str(tmp_path / "xla_cache"))
  rng = random.Random(12)
  latest = os.path.join(workdir, "checkpoints", "latest")

  def saving():  # An async save in flight: Orbax's temporary directory exists.
    return os.path.isdir(latest) and any("tmp" in name for name in os.listdir(latest))

  killed_at = []
  for attempt in range(3):
    before = _latest_steps(workdir)
    delay = rng.uniform(0.0, 1.5)
    process = subprocess.Popen(command, cwd=REPO, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
      if attempt == 0:
        ready = saving
      else:
        start = [None]

        def ready(before=before, delay=delay, start=start):  # A random moment after a new step is saved ...
          steps = _latest_steps(workdir)
          if start[0] is None and steps != before:
            start[0] = time.time()
          # ... but mid-training on any machine: at once when the second-to-last save appears
          # (on a fast machine the rest of the run, report included, takes less than `delay`).
          near_end = bool(steps) and steps[-1] >= train_tiny_run.STEPS - 2 * CHECKPOINT_EVERY
          return start[0] is not None and (time.time() - start[0] >= delay or near_end)
      assert _kill_when(process, ready), "the run ended before it could be killed"
    finally:
      if process.poll() is None:
        process.kill()
    killed_at.append(_latest_steps(workdir))
    assert not os.path.exists(os.path.join(workdir, "eval_report.json"))
  assert killed_at[-1] and killed_at[-1][-1] < train_tiny_run.STEPS, killed_at

  resumed = subprocess.run(command, cwd=REPO, env=env, capture_output=True, text=True, timeout=600)
  assert resumed.returncode == 0, resumed.stderr[-3000:]
  with open(os.path.join(workdir, "metrics.jsonl")) as f:
    train_steps = [json.loads(line)["step"] for line in f if '"train"' in line]
  assert train_steps == list(range(8, train_tiny_run.STEPS + 1, 8))  # No step lost, none twice.
  expected, got = (_latest_params(w, config) for w in (reference, workdir))
  for a, b in zip(jax.tree_util.tree_leaves(expected), jax.tree_util.tree_leaves(got)):
    np.testing.assert_array_equal(a, b)


def _latest_params(workdir, config):
  from train import models  # pylint: disable=import-outside-toplevel
  from train.data import synthetic  # pylint: disable=import-outside-toplevel
  model = models.create_model(config, synthetic.make_datasets(config).tokenizer.vocab_size)
  target = train.create_train_state(config, model, jax.random.key(0), train_tiny_run.STEPS)
  checkpointer = checkpointing.Checkpointer(os.path.join(workdir, "checkpoints"), keep=5, async_save=False)
  state, progress = checkpointer.restore_latest(target)
  checkpointer.close()
  assert progress["step"] == train_tiny_run.STEPS
  return jax.tree_util.tree_map(np.asarray, state.params)


def _damage(step_dir, how):
  """Truncates every file of a checkpoint's state, or deletes them."""
  for root, _, files in os.walk(os.path.join(step_dir, "state")):
    for name in files:
      path = os.path.join(root, name)
      if how == "truncate":
        open(path, "wb").close()
      else:
        os.remove(path)


@pytest.mark.parametrize("how", ["truncate", "delete"])
def test_damaged_checkpoint_is_moved_aside_reported_once_and_saved_again(tmp_path, capsys, how):
  import jax.numpy as jnp  # pylint: disable=import-outside-toplevel
  checkpointer = checkpointing.Checkpointer(str(tmp_path), keep=3, async_save=False, repair=True)
  for step in (1, 2, 3):
    checkpointer.save_latest(step, {"w": jnp.full((4,), float(step))}, {"step": step})
  checkpointer.close()
  _damage(str(tmp_path / "latest" / "3"), how)

  checkpointer = checkpointing.Checkpointer(str(tmp_path), keep=3, async_save=False, repair=True)
  state, progress = checkpointer.restore_latest({"w": jnp.zeros((4,))})
  assert progress == {"step": 2} and float(state["w"][0]) == 2.0
  err = capsys.readouterr().err
  assert err.count("WARNING: latest checkpoint step 3 unreadable") == 1 and len(err.splitlines()) == 1
  assert os.path.isdir(tmp_path / "unreadable" / "latest-3")  # Renamed, nothing deleted.
  assert checkpointer.problems[0]["step"] == 3 and checkpointer.latest_step() == 2
  checkpointer.save_latest(3, {"w": jnp.full((4,), 3.0)}, {"step": 3})  # The run saves step 3 again.
  state, progress = checkpointer.restore_latest({"w": jnp.zeros((4,))})
  checkpointer.close()
  assert progress == {"step": 3} and float(state["w"][0]) == 3.0


def test_finished_run_started_again_keeps_figures_and_prints_unused_rows(trained, tmp_path, capsys, monkeypatch):
  workdir = _copy_workdir(trained, tmp_path)
  before = json.load(open(os.path.join(workdir, "eval_report.json")))
  metrics_before = open(os.path.join(workdir, "metrics.jsonl")).read()
  events_before = sorted(os.listdir(os.path.join(workdir, "tensorboard")))
  real_get_datasets = pipeline.get_datasets

  def with_unused_rows(config):
    datasets = real_get_datasets(config)
    datasets.summary.update(malformed_rows=3, malformed_by_reason={"training_file": {"unterminated_quote": 3}},
                            malformed_first_lines={"training_file": {"unterminated_quote": [4, 9, 12]}})
    return datasets

  monkeypatch.setattr(pipeline, "get_datasets", with_unused_rows)
  report = train.train_and_evaluate(trained[1], workdir)
  assert "unused source rows: 3 (training_file: 3 unterminated_quote (lines 4, 9, 12))" in capsys.readouterr().out
  assert report["train_time_s"] == before["train_time_s"] > 0
  assert report["examples_per_s"] == before["examples_per_s"] > 0
  assert report["test"] == before["test"] and report["evaluated_step"] == before["evaluated_step"]
  assert open(os.path.join(workdir, "metrics.jsonl")).read() == metrics_before  # No duplicate rows.
  new_events = set(os.listdir(os.path.join(workdir, "tensorboard"))) - set(events_before)
  for name in new_events:  # A new (empty) event file at most: no scalar was written again.
    assert os.path.getsize(os.path.join(workdir, "tensorboard", name)) < 200


def test_damaged_best_checkpoint_is_in_the_report_and_the_exit_code(trained, tmp_path):
  workdir = _copy_workdir(trained, tmp_path)
  best_dir = os.path.join(workdir, "checkpoints", "best")
  best_step = max(int(s) for s in os.listdir(best_dir) if s.isdigit())
  _damage(os.path.join(best_dir, str(best_step)), "truncate")
  result = _run(["train.main", "--config=configs/tiny.py", f"--workdir={workdir}",
                 *train_tiny_run.cli_overrides()])
  assert result.returncode == 4, result.stderr[-3000:]
  assert "the best checkpoint was unreadable" in result.stderr
  assert "Traceback" not in result.stderr + result.stdout
  assert result.stderr.count("WARNING: ") == 1  # One line per unreadable checkpoint.
  assert f"WARNING: best checkpoint step {best_step} unreadable" in result.stderr
  evaluated = json.load(open(os.path.join(workdir, "eval_report.json")))["evaluated_checkpoint"]
  assert evaluated["used"] == "latest" and evaluated["step"] == train_tiny_run.STEPS
  assert not evaluated["is_intended"]
  assert evaluated["problems"][0]["kind"] == "best" and evaluated["problems"][0]["step"] == best_step


def test_predict_restore_failure_is_one_line(trained, tmp_path):
  workdir = _copy_workdir(trained, tmp_path)
  for kind in ("best", "latest"):
    for step in os.listdir(os.path.join(workdir, "checkpoints", kind)):
      _damage(os.path.join(workdir, "checkpoints", kind, step), "truncate")
  result = _run(["train.predict", f"--workdir={workdir}", "good"])
  assert result.returncode == 2
  lines = result.stderr.strip().splitlines()
  assert "Traceback" not in result.stderr and result.stdout == ""
  assert len(lines) == 1 + len(os.listdir(os.path.join(workdir, "checkpoints", "latest"))) + 1, lines
  assert lines[-1].startswith("ERROR: no readable checkpoint")


def test_predict_loads_only_the_parameters_of_a_workdir(trained, tmp_path):
  from train import inference  # pylint: disable=import-outside-toplevel
  workdir = _copy_workdir(trained, tmp_path)
  loaded = inference.load_workdir(workdir, "latest")
  assert jax.tree_util.tree_leaves(loaded.state.opt_state) == []  # No optimizer state in memory.
  expected = _latest_params(workdir, loaded.config)
  assert jax.tree_util.tree_all(jax.tree_util.tree_map(
      np.array_equal, jax.tree_util.tree_map(np.asarray, loaded.state.params), expected))


# ---------------------------------------------------------------- data

GOOD = '"{label}","{i}","Mon Apr 06 22:19:45 PDT 2009","NO_QUERY","user","{text}"\n'


def _good(i, label="0"):
  return GOOD.format(label=label, i=i, text=f"valid tweet {i}")


def test_malformed_csv_corpus_loses_no_valid_row(tmp_path):
  lines = [
      _good(1),
      '"0","2","d","NO_QUERY","c"\n',  # 2: wrong column count.
      _good(3, "4"),
      '"7","4","d","NO_QUERY","c","unknown label"\n',  # 4.
      '"4","5","d","NO_QUERY","c",""\n',  # 5: empty text.
      '"0","6","d","NO_QUERY","c","unterminated quote\n',  # 6: must not swallow 7 and 8.
      _good(7),
      _good(8, "4"),
      "\x00\x01\xfe\xff binary junk \x9b\n",  # 9 (latin-1 bytes).
      _good(10),
      '"0","11","d","NO_QUERY","c","' + "x" * (1 << 20) + '"\n',  # 11: a 1 MB field.
      _good(12),
      '"4","13","d","NO_QUERY","c","a text with a\n', 'line break"\n',  # 13-14: one row.
  ]
  utf8_bad = GOOD.format(label="4", i=15, text="caf\u00e9 ").encode("utf-8")[:-3] + b"\xc3\x28 tail\"\n"
  path = tmp_path / "training.corpus.csv"
  path.write_bytes("".join(lines).encode("latin-1") + utf8_bad + _good(16).encode())
  rows = sources.read_csv(str(path), allow_neutral=False)
  assert rows.texts == ["valid tweet 1", "valid tweet 3", "valid tweet 7", "valid tweet 8", "valid tweet 10",
                        "valid tweet 12", "a text with a\nline break", "caf\u00c3\u00a9\u00c3( tail",
                        "valid tweet 16"]
  assert rows.row_numbers.tolist() == [1, 3, 7, 8, 10, 12, 13, 15, 16]
  assert {k: v for k, v in rows.malformed.items() if v} == {
      "wrong_column_count": 2, "unknown_polarity": 1, "empty_text": 1, "unterminated_quote": 1,
      "field_too_large": 1}
  assert rows.malformed_lines == {"wrong_column_count": [2, 9], "unknown_polarity": [4], "empty_text": [5],
                                  "unterminated_quote": [6], "field_too_large": [11]}
  assert len(rows.texts) + rows.num_malformed == 16 - 1  # Every line is used or counted (13-14 is one row).


def test_vocab_size_the_data_cannot_support_is_an_error():
  sentences = ["good bad day", "sad happy night"] * 50
  with pytest.raises(ValueError, match=r"vocab_size 5000 was requested, but .* support only \d+"):
    tokenizer_lib.train_tokenizer(sentences, 5000, max_sentences=100, max_length=8)


def _tiny_csv_folder(folder):
  folder.mkdir()
  words = "good bad day night love hate phone work home movie".split()
  rng = np.random.default_rng(0)
  train_lines = [GOOD.format(label="0" if i % 2 else "4", i=i, text=" ".join(rng.choice(words, 6)))
                 for i in range(200)]
  (folder / "training.tiny.csv").write_text("".join(train_lines), encoding="latin-1")
  (folder / sources.MANUAL_TEST_CSV).write_text(GOOD.format(label="2", i=1, text="a phone"), encoding="latin-1")
  return str(folder)


def test_missing_data_folder_is_not_created_and_a_cache_used_instead_is_named(tmp_path, monkeypatch):
  missing = tmp_path / "typo"
  monkeypatch.setenv(sources.ENV_DATA_DIR, str(missing))
  config = tiny.get_config()
  config.dataset = "sentiment140"
  config.prepared_dir = str(tmp_path / "cache")
  config.vocab_size = 300
  config.split_fractions = (0.8, 0.1, 0.1)
  with pytest.raises(sources.DataNotFoundError, match=f"{missing} \\(from \\$SENT140_DATA_DIR\\) does not exist"):
    pipeline.get_datasets(config, log=lambda _: None)
  assert not missing.exists()

  built = config.copy_and_resolve_references()
  built.data_dir = _tiny_csv_folder(tmp_path / "other")
  pipeline.get_datasets(built, log=lambda _: None)
  messages = []
  pipeline.get_datasets(config, log=messages.append)
  assert not missing.exists()
  assert len(messages) == 1 and messages[0].startswith(f"WARNING: the data folder {missing} (from $SENT140_DATA_DIR)")
  assert "training.tiny.csv" in messages[0]  # Which data the cache was built from.


# ---------------------------------------------------------------- command line

@pytest.mark.parametrize("override, message", [
    ("--config.bach_size=3", "ERROR: --config.bach_size: no such config field; closest valid names: batch_size"),
    ("--config.model.d_modle=3", "closest valid names: model.d_model"),
    ("--config.batch_size=abc", "ERROR: flag --config.batch_size=abc: invalid literal"),
    ("--config.eval_every_steps=0", "ERROR: ValueError: config.eval_every_steps must be an integer >= 1, got 0"),
])
def test_bad_config_override_is_one_line_and_exit_2(tmp_path, override, message):
  result = _run(["train.main", "--config=configs/tiny.py", f"--workdir={tmp_path}", override])
  assert result.returncode == 2
  assert result.stderr.strip().splitlines() == [result.stderr.strip()] and message in result.stderr
  assert not os.path.exists(tmp_path / "checkpoints")


def test_unknown_override_message_lists_close_names():
  assert config_checks.unknown_override_message("learnig_rate", tiny.get_config()).startswith(
      "--config.learnig_rate: no such config field; closest valid names: learning_rate, ")


# ---------------------------------------------------------------- progress

class _Bar:
  def __init__(self):
    self.postfixes = []

  def set_postfix(self, **values):
    self.postfixes.append(values)


def test_training_bar_shows_loss_from_the_first_steps():
  bar = _Bar()
  for step in range(1, 21):
    train._show_first_losses(bar, step, 0, {"loss": np.float32(0.5)}, log_every_steps=16)  # pylint: disable=protected-access
  assert len(bar.postfixes) == 4 and bar.postfixes[0] == {"loss": "0.5000"}  # Steps 1, 2, 4, 8; 16 logs.


def test_no_misleading_tfds_size_line(capsys):
  from train.data import sentiment140_builder  # pylint: disable=import-outside-toplevel
  builder = sentiment140_builder.Sentiment140Mamba.__new__(sentiment140_builder.Sentiment140Mamba)
  builder._log_download_bytes()  # pylint: disable=protected-access
  assert "Downloading and preparing" not in capsys.readouterr().out


def test_retired_write_tfds_field_still_loads_and_is_ignored():
  reference = tiny.get_config()
  stored = workdir_lib.as_json_dict(reference)
  stored["write_tfds"] = False  # A config.json written while the field existed.
  completed = workdir_lib.complete_stored_config(stored, reference, "old/config.json")
  assert "write_tfds" not in completed
  assert workdir_lib.result_differences(stored, workdir_lib.as_json_dict(reference)) == []
  from train.study import runs  # pylint: disable=import-outside-toplevel
  options = runs.StudyOptions(overrides=runs.parse_overrides(["write_tfds=False"]), quick=True)
  assert "write_tfds" not in runs.build_config(runs.RUNS_BY_NAME["mamba"], 0, options)
