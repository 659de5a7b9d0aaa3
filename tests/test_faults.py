"""What survives what: the project's promises when things go wrong, one test per promise.

The README's section "What survives what" is the same list, with the exit codes.

Signals
  - SIGTERM during training (then SIGTERM and SIGINT again while it saves): the step reached is
    saved, one line, exit 75; the same command resumes to the uninterrupted parameters.
kill -9
  - kill -9 at random points (one of them during an async save) x3, then resume: the same
    parameters as an uninterrupted run, no finished step lost, the dead run's lock taken over.
Disk full
  - a checkpoint save on a full disk: one line (step, folder, space), exit 2, no half-written
    step; with space freed the same command resumes to the uninterrupted parameters.
Damaged files
  - a truncated or deleted checkpoint file: moved aside, reported once, the step saved again; a
    half-written step is ignored;
  - a damaged best checkpoint: eval_report.json says what was evaluated, exit code 4;
  - a restore failure prints one line, not a traceback;
  - a truncated params.safetensors of an export: train.predict and init_from name it in one line, exit 2;
  - a truncated token cache, tokenizer model or TFDS shard: moved aside, one line, rebuilt.
Concurrent runs
  - a second train.main on a workdir in use stops before touching it (one line naming the
    running process, exit 2); predict, evaluate and export still work there; a lock left by a
    process that no longer runs is taken over in one line.
Workdirs
  - a config that changes the result stops before training (exit 2, the fields, both values, how
    to proceed); --start_over clears the old run; result-independent fields may differ;
  - a finished run started again keeps its measured figures and logs no duplicate rows.
NaN
  - a NaN loss stops training with one line, exit 3, the last good checkpoint intact.
Bad input
  - the malformed-CSV corpus: every valid row kept, every other line counted by reason;
  - files with a UTF-8, UTF-16 or UTF-32 byte order mark keep their first row (training reader
    and train.evaluate);
  - train.main and prepare_data print the unused rows as one line of non-zero reasons;
  - a vocab_size the data cannot support is an error naming both numbers;
  - $SENT140_DATA_DIR naming a missing folder is not created; a prepared cache used instead is named;
  - an unknown --config.x names the closest fields, type and range errors are one line, exit 2;
  - predict's bad-input corpus: one answer per line, control characters escaped (in
    tests/test_predict.py, with the other predict tests).
Progress
  - early loss on the bar, evaluation bars, no TFDS "Unknown size" line.
"""

import codecs
import glob
import json
import os
import random
import re
import shutil
import signal
import socket
import subprocess
import sys
import time

import jax
import numpy as np
import pytest

from configs import tiny
from train.command_line import flag_parsing
from train.data import batching, pipeline, sources, tokenizer as tokenizer_lib
from train.loop import trainer
from train.model_files import predictions
from train.runs import checkpointing, preemption, workdir as workdir_lib, workdir_lock

from tests import train_tiny_run

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
STEPS = train_tiny_run.STEPS
CHECKPOINT_EVERY = train_tiny_run.OVERRIDES["checkpoint_every_steps"]
LOG_EVERY = train_tiny_run.OVERRIDES["log_every_steps"]


def _env(tmp_cache=None):
  env = {**os.environ, "JAX_PLATFORMS": "cpu"}
  if tmp_cache:  # Later processes reuse the compiled steps of the first.
    env.update(JAX_COMPILATION_CACHE_DIR=tmp_cache, JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS="0")
  return env


def _run(args, timeout=600, **kwargs):
  return subprocess.run([sys.executable, "-m", *args], cwd=REPO, env=kwargs.pop("env", _env()),
                        capture_output=True, text=True, timeout=timeout, **kwargs)


def _train_command(workdir, **overrides):
  """train.main of the tiny run (``train_tiny_run``) into ``workdir`` (None: no --workdir flag)."""
  return [sys.executable, "-m", "train.main", "--config=configs/tiny.py",
          *([f"--workdir={workdir}"] if workdir else []), *train_tiny_run.cli_overrides(**overrides)]


def _copy_workdir(trained, tmp_path):
  target = str(tmp_path / "copy")
  shutil.copytree(trained[0], target)
  return target


def _latest_steps(workdir):
  folder = os.path.join(workdir, "checkpoints", "latest")
  return sorted(int(s) for s in os.listdir(folder) if s.isdigit()) if os.path.isdir(folder) else []


def _saving(workdir):
  """Whether a save is in flight: an Orbax temporary directory exists."""
  folder = os.path.join(workdir, "checkpoints", "latest")
  return os.path.isdir(folder) and any(checkpointing.TEMPORARY_MARKER in name for name in os.listdir(folder))


def _when(process, ready, timeout=600):
  """Waits until ``ready()`` while ``process`` runs; returns whether it was still running then."""
  deadline = time.time() + timeout
  while time.time() < deadline and process.poll() is None:
    if ready():
      return True
    time.sleep(0.005)
  return False


def _latest_params(workdir, config):
  """(params as numpy arrays, progress) of the latest checkpoint in ``workdir``."""
  from train.data import synthetic  # pylint: disable=import-outside-toplevel
  from train.loop import models  # pylint: disable=import-outside-toplevel
  model = models.create_model(config, synthetic.make_datasets(config).tokenizer.vocab_size)
  target = trainer.create_train_state(config, model, jax.random.key(0), STEPS)
  checkpointer = checkpointing.Checkpointer(os.path.join(workdir, "checkpoints"), keep=5, async_save=False)
  state, progress = checkpointer.restore_latest(target)
  checkpointer.close()
  return jax.tree_util.tree_map(np.asarray, state.params), progress


def _assert_uninterrupted_parameters(reference, workdir, config):
  """The latest checkpoint of ``workdir`` is the last step, bit-identical to the uninterrupted run's."""
  (expected, expected_progress), (got, got_progress) = (_latest_params(w, config) for w in (reference, workdir))
  assert expected_progress["step"] == got_progress["step"] == STEPS
  for (path, a), b in zip(jax.tree_util.tree_flatten_with_path(expected)[0], jax.tree_util.tree_leaves(got)):
    np.testing.assert_array_equal(a, b, err_msg=jax.tree_util.keystr(path))


def _train_rows(workdir):
  with open(os.path.join(workdir, "metrics.jsonl")) as f:
    return [json.loads(line)["step"] for line in f if '"train"' in line]


def _damage(step_dir, how):
  """Truncates every file of a checkpoint's state, or deletes them."""
  for root, _, files in os.walk(os.path.join(step_dir, "state")):
    for name in files:
      path = os.path.join(root, name)
      if how == "truncate":
        open(path, "wb").close()
      else:
        os.remove(path)


# ---------------------------------------------------------------- signals

@pytest.mark.slow
def test_sigterm_saves_the_step_reached_and_the_same_command_resumes_to_the_uninterrupted_parameters(
    trained, tmp_path):
  reference, config, _ = trained
  workdir = str(tmp_path / "preempted")
  command = _train_command(workdir, async_checkpointing=True)
  env = _env(str(tmp_path / "xla_cache"))
  with open(tmp_path / "out", "w") as out, open(tmp_path / "err", "w") as err:
    process = subprocess.Popen(command, cwd=REPO, env=env, stdout=out, stderr=err)
    try:
      assert _when(process, lambda: _latest_steps(workdir)), "the run ended before its first checkpoint"
      process.send_signal(signal.SIGTERM)
      # The step's save (if not already done) ... Wait for it: signals still pending together (the main
      # thread busy in XLA under load) would be handled in signal-number order, SIGINT first.
      _when(process, lambda: _saving(workdir), timeout=120)
      process.send_signal(signal.SIGTERM)  # ... is not disturbed by more signals.
      process.send_signal(signal.SIGINT)
      process.wait(timeout=300)
    finally:
      if process.poll() is None:
        process.kill()
  stderr = (tmp_path / "err").read_text()
  assert process.returncode == preemption.PREEMPTED_EXIT_CODE, stderr[-3000:]
  assert "Traceback" not in stderr
  stopped = [line for line in stderr.splitlines() if "STOPPED" in line]
  # One stop, named after the first signal handled: SIGTERM, or SIGINT when the main thread was still busy in
  # XLA with both pending (the periodic async save seen in flight was not the stop's), handled in number order.
  assert len(stopped) == 1 and re.match(r"STOPPED: stopped by SIG(TERM|INT) after step ", stopped[0]), stopped
  step = int(re.search(r"after step (\d+);", stopped[0]).group(1))
  assert CHECKPOINT_EVERY <= step < STEPS and _latest_steps(workdir)[-1] == step
  assert f"in {os.path.join(workdir, 'checkpoints')}" in stopped[0]
  assert not _saving(workdir) and not os.path.exists(os.path.join(workdir, "eval_report.json"))

  resumed = subprocess.run(command, cwd=REPO, env=env, capture_output=True, text=True, timeout=600)
  assert resumed.returncode == 0, resumed.stderr[-3000:]
  assert f"Resuming from step {step} " in resumed.stdout
  assert "took over the lock" not in resumed.stdout  # The stopped run released it.
  assert _train_rows(workdir) == sorted(set(range(LOG_EVERY, STEPS + 1, LOG_EVERY)) | {step})
  _assert_uninterrupted_parameters(reference, workdir, config)


# ---------------------------------------------------------------- kill -9

@pytest.mark.slow
def test_kill_9_three_times_then_resume_gives_the_uninterrupted_parameters(trained, tmp_path):
  reference, config, _ = trained
  assert len(batching.config_bounds(config, config.max_length)) > 1  # Length-bucketed batches.
  workdir = str(tmp_path / "killed")
  command = _train_command(workdir, async_checkpointing=True)
  env = _env(str(tmp_path / "xla_cache"))
  rng = random.Random(12)

  killed_at = []
  for attempt in range(3):
    before = _latest_steps(workdir)
    delay = rng.uniform(0.0, 1.5)
    process = subprocess.Popen(command, cwd=REPO, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
      if attempt == 0:
        ready = lambda: _saving(workdir)  # pylint: disable=unnecessary-lambda-assignment  # An async save in flight.
      else:
        start = [None]

        def ready(before=before, delay=delay, start=start):  # A random moment after a new step is saved ...
          steps = _latest_steps(workdir)
          if start[0] is None and steps != before:
            start[0] = time.time()
          # ... but mid-training on any machine: at once when the second-to-last save appears
          # (on a fast machine the rest of the run, report included, takes less than `delay`).
          near_end = bool(steps) and steps[-1] >= STEPS - 2 * CHECKPOINT_EVERY
          return start[0] is not None and (time.time() - start[0] >= delay or near_end)
      assert _when(process, ready), "the run ended before it could be killed"
      process.send_signal(signal.SIGKILL)
      process.wait(timeout=60)
    finally:
      if process.poll() is None:
        process.kill()
    killed_at.append(_latest_steps(workdir))
    assert not os.path.exists(os.path.join(workdir, "eval_report.json"))
  assert killed_at[-1] and killed_at[-1][-1] < STEPS, killed_at

  resumed = subprocess.run(command, cwd=REPO, env=env, capture_output=True, text=True, timeout=600)
  assert resumed.returncode == 0, resumed.stderr[-3000:]
  assert f"Resuming from step {killed_at[-1][-1]} " in resumed.stdout
  assert resumed.stdout.count("WARNING: took over the lock") == 1  # The killed run's.
  report = json.load(open(os.path.join(workdir, "eval_report.json")))
  assert report["resumed_from_step"] == killed_at[-1][-1]
  assert f"test accuracy {report['test']['accuracy']:.4f}, manual_test binary accuracy" in resumed.stdout
  assert _train_rows(workdir) == list(range(LOG_EVERY, STEPS + 1, LOG_EVERY))  # No step lost, none twice.
  _assert_uninterrupted_parameters(reference, workdir, config)


# ---------------------------------------------------------------- disk full

# Runs inside a private mount namespace (unshare): a small tmpfs holds the workdir. The first run
# fills the disk once its first checkpoint exists, leaving $LEAVE_KB free; the second runs the
# same command with the space freed. Both workdirs are copied out for the test to read.
DISK_FULL_SCRIPT = r"""
set -u
mount -t tmpfs -o size=32m tmpfs "$MNT"
"$@" --workdir="$MNT/run" > "$OUT/first.out" 2> "$OUT/first.err" &
pid=$!
while [ ! -d "$MNT/run/checkpoints/latest/8" ] && kill -0 $pid 2>/dev/null; do sleep 0.005; done
free_kb=$(df -k --output=avail "$MNT" | tail -1)
dd if=/dev/zero of="$MNT/filler" bs=1k count=$((free_kb - LEAVE_KB)) 2>/dev/null
wait $pid; echo $? > "$OUT/first.rc"
cp -a "$MNT/run" "$OUT/after_failure"
rm "$MNT/filler"
"$@" --workdir="$MNT/run" > "$OUT/second.out" 2> "$OUT/second.err"; echo $? > "$OUT/second.rc"
cp -a "$MNT/run" "$OUT/resumed"
"""
# What TensorStore's own threads may print when a write fails mid-way (no logger carries it).
# TensorStore's own threads may still call into Orbax's closed asyncio loop after the one-line
# error: their "Event loop is closed" tracebacks go straight to stderr (no logger to filter), at
# any point of the output (after a progress bar's \r, or chained to another exception).
TENSORSTORE_NOISE = re.compile(r"Traceback \(most recent call last\):\n(?:.*\n)*?RuntimeError: Event loop is closed(?:\n|$)")


def test_disk_full_at_the_last_tensorboard_flush_is_one_line_and_no_traceback_at_exit(tmp_path):
  """metrics.jsonl is flushed per row; a TensorBoard flush that fails at close is one WARNING line."""
  script = f"""
import errno
from train.loop.metric_logging import MetricWriter
writer = MetricWriter({str(tmp_path)!r})
writer.write(1, "train", {{"loss": 0.5}})
def full(*args):
  raise OSError(errno.ENOSPC, "No space left on device")
writer._tensorboard.file_writer.event_writer._ev_writer.flush = full
writer.close()
print("closed")
"""
  result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120,
                          cwd=os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
  assert result.returncode == 0 and "closed" in result.stdout, result.stderr[-2000:]
  assert "Traceback" not in result.stderr and "Exception ignored" not in result.stderr, result.stderr[-2000:]
  warnings = [line for line in result.stderr.splitlines() if "WARNING: TensorBoard events" in line]
  assert len(warnings) == 1 and "No space left" in warnings[0]
  assert json.loads((tmp_path / "metrics.jsonl").read_text())["loss"] == 0.5


@pytest.mark.slow
@pytest.mark.parametrize("space", ["less than the state", "more than the state"])
def test_disk_full_during_a_save_is_one_line_exit_2_and_the_run_resumes_after(trained, tmp_path, space):
  """Less free space than the state's bytes: refused before writing; more: a write fails mid-way."""
  if subprocess.run(["unshare", "-rm", "true"], capture_output=True).returncode != 0:
    pytest.skip("needs unshare -rm (unprivileged mount namespaces) for a small tmpfs")
  reference, config, _ = trained
  from train.data import synthetic  # pylint: disable=import-outside-toplevel
  from train.loop import models  # pylint: disable=import-outside-toplevel
  model = models.create_model(config, synthetic.make_datasets(config).tokenizer.vocab_size)
  state_kb = checkpointing.tree_bytes(trainer.create_train_state(config, model, jax.random.key(0), STEPS)) // 1024
  leave_kb = 16 if space == "less than the state" else state_kb + 16
  (tmp_path / "mnt").mkdir()
  env = {**_env(str(tmp_path / "xla_cache")), "MNT": str(tmp_path / "mnt"), "OUT": str(tmp_path),
         "LEAVE_KB": str(leave_kb)}
  subprocess.run(["unshare", "-rm", "sh", "-c", DISK_FULL_SCRIPT, "sh", *_train_command(None)], cwd=REPO, env=env,
                 timeout=900, check=True)
  first_err = (tmp_path / "first.err").read_text()
  assert (tmp_path / "first.rc").read_text().strip() == "2", first_err[-3000:]
  assert "Traceback" not in TENSORSTORE_NOISE.sub("", first_err.replace("\r", "\n")), first_err[-3000:]
  errors = [line for line in first_err.splitlines() if "ERROR" in line]
  assert len(errors) == 1, first_err[-3000:]
  match = re.search(r"ERROR: no space left on the device to save (latest|best) checkpoint step (\d+) in "
                    r"\S+/run/checkpoints/(latest|best) \(about [\d.]+ [KMG]iB needed, [\d.]+ [KMG]iB free\); "
                    r"nothing of step \d+ is left on disk and the latest complete checkpoint is step (\d+)", errors[0])
  assert match, errors[0]
  failed = tmp_path / "after_failure"
  for kind in ("latest", "best"):  # No half-written step: every entry is a complete step.
    names = os.listdir(failed / "checkpoints" / kind) if (failed / "checkpoints" / kind).is_dir() else []
    assert all(name.isdigit() for name in names), names
  assert int(match.group(2)) not in _latest_steps(str(failed))
  assert _latest_steps(str(failed))[-1] == int(match.group(4))

  second_err = (tmp_path / "second.err").read_text()
  assert (tmp_path / "second.rc").read_text().strip() == "0", second_err[-3000:]
  assert "WARNING" not in second_err  # The previous checkpoint restores as it is.
  assert f"Resuming from step {match.group(4)} " in (tmp_path / "second.out").read_text()
  _assert_uninterrupted_parameters(reference, str(tmp_path / "resumed"), config)


# ---------------------------------------------------------------- damaged files

@pytest.mark.parametrize("how", ["truncate", "delete"])
def test_damaged_checkpoint_is_moved_aside_reported_once_and_saved_again(tmp_path, capsys, how):
  import jax.numpy as jnp  # pylint: disable=import-outside-toplevel
  checkpointer = checkpointing.Checkpointer(str(tmp_path), keep=3, async_save=False, repair=True)
  for step in (1, 2, 3):
    checkpointer.save_latest(step, {"w": jnp.full((4,), float(step))}, {"step": step})
  checkpointer.close()
  _damage(str(tmp_path / "latest" / "3"), how)
  # A partial write (killed before the rename) is ignored altogether.
  os.makedirs(tmp_path / "latest" / "4.orbax-checkpoint-tmp-1234" / "state")

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
  from train.model_files import inference  # pylint: disable=import-outside-toplevel
  workdir = _copy_workdir(trained, tmp_path)
  loaded = inference.load_workdir(workdir, "latest")
  assert jax.tree_util.tree_leaves(loaded.state.opt_state) == []  # No optimizer state in memory.
  expected = _latest_params(workdir, loaded.config)[0]
  assert jax.tree_util.tree_all(jax.tree_util.tree_map(
      np.array_equal, jax.tree_util.tree_map(np.asarray, loaded.state.params), expected))


def test_damaged_model_directory_is_one_line_naming_the_file(exported, tmp_path):
  """A truncated params.safetensors of an export: train.predict --model and train.main's init_from say so in
  one line naming the file, exit 2, no traceback."""
  from train.runs import model_dir  # pylint: disable=import-outside-toplevel
  model = str(tmp_path / "damaged_export")
  shutil.copytree(exported[0], model)
  params = os.path.join(model, model_dir.PARAMS_FILE)
  _truncate(params)
  predicted = _run(["train.predict", f"--model={model}", "good"])
  assert predicted.returncode == 2 and predicted.stdout == "", predicted.stderr[-3000:]
  assert predicted.stderr.strip().splitlines() == [predicted.stderr.strip()]  # One line.
  started = subprocess.run(_train_command(str(tmp_path / "fine_tuned"), init_from=model), cwd=REPO, env=_env(),
                           capture_output=True, text=True, timeout=600)
  assert started.returncode == 2, started.stderr[-3000:]
  assert not os.path.exists(tmp_path / "fine_tuned" / "checkpoints")
  for result in (predicted, started):
    assert "Traceback" not in result.stderr
    errors = [line for line in result.stderr.splitlines() if line.startswith("ERROR")]
    assert len(errors) == 1 and params in errors[0] and "damaged" in errors[0], result.stderr[-3000:]


def _truncate(path):
  with open(path, "rb") as f:
    data = f.read()
  with open(path, "wb") as f:
    f.write(data[:len(data) // 3])


def _prepared_config(tmp_path, **fields):
  config = tiny.get_config()
  config.update(dataset="sentiment140", prepared_dir=str(tmp_path / "cache"), vocab_size=300,
                split_fractions=(0.8, 0.1, 0.1), data_dir=str(tmp_path / "raw"), **fields)
  return config


def test_damaged_prepared_files_are_moved_aside_reported_in_one_line_and_rebuilt(tmp_path):
  _tiny_csv_folder(tmp_path / "raw")
  clean = pipeline.get_datasets(_prepared_config(tmp_path), log=lambda _: None)
  data_dir = os.path.dirname(os.path.dirname(clean.tokenizer_path))
  token_cache = glob.glob(os.path.join(os.path.dirname(clean.tokenizer_path), "tokens_L*.npz"))[0]
  shards = glob.glob(os.path.join(data_dir, "tfds", "**", "*.array_record-*"), recursive=True)
  assert shards
  damages = [  # (what is damaged, the config that reads it next)
      ([token_cache], _prepared_config(tmp_path)),
      ([clean.tokenizer_path], _prepared_config(tmp_path)),
      (shards, _prepared_config(tmp_path, max_length=24)),  # A new max_length reads the TFDS dataset.
  ]
  for number, (paths, config) in enumerate(damages, start=1):
    for path in paths:
      _truncate(path)
    messages = []
    rebuilt = pipeline.get_datasets(config, log=messages.append)
    warnings = [m for m in messages if m.startswith("WARNING")]
    assert len(warnings) == 1 and "cannot be read" in warnings[0] and "building it again" in warnings[0], messages
    assert "\n" not in warnings[0]
    assert len(os.listdir(os.path.join(data_dir, "unreadable"))) == number  # Moved aside, nothing deleted.
    if config.max_length == clean.splits["train"].tokens.shape[1]:
      for name in ("train", "validation", "test", "manual_test"):
        np.testing.assert_array_equal(rebuilt.splits[name].tokens, clean.splits[name].tokens)
    else:
      assert len(rebuilt.splits["train"]) == len(clean.splits["train"])


# ---------------------------------------------------------------- concurrent runs

def _hold_lock(workdir):
  """A live process holding ``workdir``'s training lock (it waits for its stdin to close)."""
  holder = subprocess.Popen(
      [sys.executable, "-c", "import sys; from train.runs import workdir_lock; lock = workdir_lock.WorkdirLock(sys.argv[1]); "
       "print('locked', flush=True); sys.stdin.read()", workdir],
      cwd=REPO, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
  assert holder.stdout.readline().strip() == "locked"
  return holder


def test_second_run_on_a_workdir_in_use_stops_before_touching_it(tmp_path):
  workdir = str(tmp_path / "busy")
  holder = _hold_lock(workdir)
  try:
    result = _run(["train.main", "--config=configs/tiny.py", f"--workdir={workdir}", "--start_over",
                   *train_tiny_run.cli_overrides()])
  finally:
    holder.kill()
    holder.wait()
  assert result.returncode == 2, result.stderr[-3000:]
  assert result.stderr.strip().splitlines() == [result.stderr.strip()], result.stderr[-3000:]
  assert f"is in use by another training run: process {holder.pid} on {socket.gethostname()} (started " in result.stderr
  assert os.listdir(workdir) == [workdir_lock.LOCK_FILE]  # Nothing touched, --start_over included.


def test_evaluation_commands_work_on_a_workdir_in_use_and_a_dead_runs_lock_is_taken_over(
    trained, tmp_path, capsys):
  from train.data import labelled_rows  # pylint: disable=import-outside-toplevel
  from train.model_files import exporter, inference
  from train.runs import model_dir
  from train.scoring import labelled_file_report
  workdir = _copy_workdir(trained, tmp_path)
  holder = _hold_lock(workdir)
  try:
    assert [r["line"] for r in predictions.classify(inference.load_workdir(workdir), [b"good", b"bad"], threshold=0.0)] == [1, 2]
    labelled = tmp_path / "labelled.csv"
    labelled.write_text("".join(GOOD.format(label=label, i=i, text=f"text {i}") for i, label in enumerate("0404")))
    report = labelled_file_report.score(inference.load(workdir, None), labelled_rows.read_labelled_file(str(labelled)), 0.0)
    assert report["rows"]["scored"] == 4
    exporter.export(workdir, str(tmp_path / "exported"), "float32")
    assert os.path.isfile(tmp_path / "exported" / model_dir.PARAMS_FILE)
  finally:
    holder.kill()  # kill -9: the lock file still names it.
    holder.wait()
  capsys.readouterr()
  trainer.train_and_evaluate(trained[1], workdir)
  taken_over = [line for line in capsys.readouterr().out.splitlines() if "took over the lock" in line]
  assert len(taken_over) == 1 and f"process {holder.pid} on {socket.gethostname()}" in taken_over[0], taken_over
  assert taken_over[0].endswith("which no longer runs.")
  assert open(os.path.join(workdir, workdir_lock.LOCK_FILE)).read() == ""  # Released at the end.


# ---------------------------------------------------------------- workdirs

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


def test_finished_run_started_again_keeps_figures_and_prints_unused_rows(trained, tmp_path, capsys, monkeypatch):
  workdir = _copy_workdir(trained, tmp_path)
  before = json.load(open(os.path.join(workdir, "eval_report.json")))
  metrics_before = open(os.path.join(workdir, "metrics.jsonl")).read()
  events_before = sorted(os.listdir(os.path.join(workdir, "tensorboard")))
  real_get_datasets = pipeline.get_datasets

  def with_unused_rows(config, **kwargs):
    datasets = real_get_datasets(config, **kwargs)
    datasets.summary.update(malformed_rows=3, malformed_by_reason={"training_file": {"unterminated_quote": 3}},
                            malformed_first_lines={"training_file": {"unterminated_quote": [4, 9, 12]}})
    return datasets

  monkeypatch.setattr(pipeline, "get_datasets", with_unused_rows)
  report = trainer.train_and_evaluate(trained[1], workdir)
  assert "unused source rows: 3 (training_file: 3 unterminated_quote (lines 4, 9, 12))" in capsys.readouterr().out
  assert report["train_time_s"] == before["train_time_s"] > 0
  assert report["examples_per_s"] == before["examples_per_s"] > 0
  assert report["test"] == before["test"] and report["evaluated_step"] == before["evaluated_step"]
  assert open(os.path.join(workdir, "metrics.jsonl")).read() == metrics_before  # No duplicate rows.
  new_events = set(os.listdir(os.path.join(workdir, "tensorboard"))) - set(events_before)
  for name in new_events:  # A new (empty) event file at most: no scalar was written again.
    assert os.path.getsize(os.path.join(workdir, "tensorboard", name)) < 200


# ---------------------------------------------------------------- NaN

def test_nan_loss_stops_with_one_line_and_keeps_the_last_good_checkpoint(tmp_path):
  workdir = str(tmp_path / "nan")
  overrides = dict(num_train_steps=24, debug_nan_after_step=20, eval_every_steps=100)
  result = subprocess.run(_train_command(workdir, **overrides), cwd=REPO, env=_env(),
                          capture_output=True, text=True, timeout=300)
  assert result.returncode == 3, result.stderr[-3000:]
  assert "ERROR: training loss became nan" in result.stderr
  assert "at step 21 " in result.stderr
  assert "last good checkpoint is step 16" in result.stderr
  assert "Traceback" not in result.stderr
  assert not os.path.exists(os.path.join(workdir, "eval_report.json"))
  assert _latest_steps(workdir)[-1] == 16
  params, progress = _latest_params(workdir, train_tiny_run.tiny_config(**overrides))
  assert progress["step"] == 16
  assert all(np.isfinite(p).all() for p in jax.tree_util.tree_leaves(params))


# ---------------------------------------------------------------- bad input

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
      "wrong_column_count": 2, "unknown_label": 1, "empty_text": 1, "unterminated_quote": 1,
      "field_too_large": 1}
  assert rows.malformed_lines == {"wrong_column_count": [2, 9], "unknown_label": [4], "empty_text": [5],
                                  "unterminated_quote": [6], "field_too_large": [11]}
  assert len(rows.texts) + rows.num_malformed == 16 - 1  # Every line is used or counted (13-14 is one row).


@pytest.mark.parametrize("encoding, mark", [
    ("utf-8", codecs.BOM_UTF8), ("utf-16-le", codecs.BOM_UTF16_LE), ("utf-16-be", codecs.BOM_UTF16_BE),
    ("utf-32-le", codecs.BOM_UTF32_LE), ("utf-32-be", codecs.BOM_UTF32_BE)])
def test_a_byte_order_mark_keeps_the_first_row(tmp_path, encoding, mark):
  from train.data import labelled_rows  # pylint: disable=import-outside-toplevel
  text = _good(1) + GOOD.format(label="4", i=2, text="caf\u00e9 \U0001F600") + _good(3, "2")
  path = tmp_path / "spreadsheet.csv"
  path.write_bytes(mark + text.encode(encoding))
  rows = sources.read_csv(str(path), allow_neutral=True)
  assert rows.texts == ["valid tweet 1", "caf\u00e9 \U0001F600", "valid tweet 3"]
  assert rows.row_numbers.tolist() == [1, 2, 3] and rows.num_malformed == 0
  labelled = labelled_rows.read_labelled_file(str(path))
  assert labelled.texts == rows.texts and labelled.labels.tolist() == [0, 1, 2]
  assert sum(labelled.bad_rows.values()) == 0
  assert (labelled.encoding, labelled.encoding_detected) == (encoding[:6], True)


def test_unused_rows_are_one_line_of_the_reasons_that_occurred():
  from train.data import summary as summary_lib  # pylint: disable=import-outside-toplevel
  summary = {
      "malformed_rows": 3,
      "malformed_by_reason": {"training_file": dict.fromkeys(sources.MALFORMED_REASONS, 0),
                              "manual_test": {**dict.fromkeys(sources.MALFORMED_REASONS, 0),
                                              "wrong_column_count": 1, "empty_text": 2}},
      "malformed_first_lines": {"manual_test": {"wrong_column_count": [7], "empty_text": [3, 9]}},
  }
  assert summary_lib.describe_unused_rows(summary) == (
      "unused source rows: 3 (manual_test: 2 empty_text (lines 3, 9); 1 wrong_column_count (line 7))")
  summary.update(rows={name: 0 for name in ("train", "validation", "test", "manual_test")},
                 rows_per_label={name: {} for name in ("train", "validation", "test", "manual_test")},
                 duplicates=0, truncated_share=0.0, max_length=64, vocab_size=300)
  lines = summary_lib.format_summary(summary).splitlines()
  assert "malformed rows skipped: 3 (manual_test: 2 empty_text (lines 3, 9); 1 wrong_column_count (line 7))" in lines
  assert not any("{" in line for line in lines)  # No raw dict.


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
  assert flag_parsing.unknown_override_message("learnig_rate", tiny.get_config()).startswith(
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
    trainer._show_first_losses(bar, step, 0, {"loss": np.float32(0.5)}, log_every_steps=16)  # pylint: disable=protected-access
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
