r"""Bulk scoring: ~100k held-out tweets through the inference engine, whole process and steady state.

  SENT140_DATA_DIR=... MAMBA_JAX_DATA_CACHE=... python -m benchmarks.scoring   # -> results/scoring_<device>.{json,md}
  python -m benchmarks.scoring --texts=tweets.txt --num_tweets=5000 --rounds=2 --output_dir=/tmp/scoring

Tweets: the raw texts of the prepared Sentiment140 held-out splits (validation + test, 32,000 tweets,
read back from the prepared TFDS dataset: ``train.data.tfds_dataset.read_raw_texts``), repeated in
order to ``--num_tweets`` lines (line breaks inside a tweet become spaces); or the lines of ``--texts``.

Models (``--models``): ``released`` (models/sent140_mamba) and each study model type at the study's size
(``configs.BY_MODEL``: mamba, mamba2, ssm, transformer, lstm), written as exported model directories with
random parameters (seed 0) and the released model's tokenizer: speed does not depend on the weights.

For each model, in ``--rounds`` rounds that alternate the order of the models (the machine may be
shared, so the models are interleaved in one run):

* whole process: ``python -m train.predict --model=DIR --format=json < tweets.txt > /dev/null``, as a
  user runs it (start-up, reading the model, compiling or loading the compiled programs, scoring,
  formatting), timed from start to exit. Round 1 compiles into an empty compilation cache (``cold``);
  later rounds find their programs there (``warm``: a user's second run).
* steady state: in this process, the model's engine compiled (``warm_up``), then ``--steady_tweets``
  tweets streamed through ``InferenceEngine.score`` (tokenizing included, formatting not).

And once per model, on the steady-state tweets: the largest probability difference and the number of
different labels between the engine and the path ``train.predict`` took before it (every text padded
to max_length, 256 per batch, the scan's forward as computed under differentiation: the chunked scan
used before the forward-only one); for the released model that old path's steady-state rate too.

Axes (``mamba_jax.notation``): b, l.
"""

from __future__ import annotations

import itertools
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from typing import Any, Optional

from absl import app, flags
import jax
import jax.numpy as jnp
import numpy as np

import configs
from train.data import pipeline, tfds_dataset
from train.loop import models as model_factory
from train.model_files import inference
from train.runs import classes, model_dir, provenance, workdir as workdir_lib
from train.scoring import metrics

FLAGS = flags.FLAGS

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
RELEASED = os.path.join(REPO, "models", "sent140_mamba")
MODEL_CHOICES = ("released", *configs.BY_MODEL)
OLD_BATCH = 256  # train.predict's batch before the engine.
HELD_OUT_SPLITS = ("validation", "test")


def held_out_tweets() -> list[str]:
  """The raw texts of the prepared Sentiment140 validation and test splits (as the data cache holds them)."""
  config = configs.BY_MODEL["mamba"].get_config()
  dataset_dir = tfds_dataset.find(pipeline.build(config).tfds_dir, config.split_fractions)
  if dataset_dir is None:
    raise FileNotFoundError("no prepared Sentiment140 TFDS dataset: run python -m train.prepare_data (with "
                            "SENT140_DATA_DIR and MAMBA_JAX_DATA_CACHE as for training), or pass --texts")
  read = tfds_dataset.read_raw_texts(dataset_dir, HELD_OUT_SPLITS)
  return [text for name in HELD_OUT_SPLITS for text in read[name]]


def tweets_to_score() -> tuple[list[str], str]:
  """(``--num_tweets`` one-line tweets, where they came from)."""
  if FLAGS.texts:
    with open(FLAGS.texts, encoding="utf-8") as f:
      texts, source = [line.rstrip("\n") for line in f if line.strip()], FLAGS.texts
  else:
    texts, source = held_out_tweets(), "Sentiment140 held-out splits (validation + test)"
  if not texts:
    raise ValueError(f"no tweets in {source}")
  one_line = [" ".join(text.splitlines()) or "." for text in texts]
  repeats = -(-FLAGS.num_tweets // len(one_line))
  return list(itertools.islice(itertools.cycle(one_line), FLAGS.num_tweets)), (
      f"{source}: {len(one_line):,} tweets" + (f", repeated to {FLAGS.num_tweets:,} lines" if repeats > 1 else ""))


def write_study_model(name: str, folder: str) -> str:
  """An exported model directory of the study's ``name`` model, random parameters, the released tokenizer."""
  directory = os.path.join(folder, name)
  os.makedirs(directory)
  config = configs.BY_MODEL[name].get_config()
  released = inference.load_exported(RELEASED)
  model = model_factory.create_model(config, released.tokenizer.vocab_size, len(released.class_names))
  params = model_factory.init_params(config, model, jax.random.key(0))
  model_dir.save_params(os.path.join(directory, model_dir.PARAMS_FILE), params, "float32", {"step": "0"})
  with open(os.path.join(directory, model_dir.CONFIG_FILE), "w", encoding="utf-8") as f:
    json.dump(workdir_lib.as_json_dict(config), f, indent=2)
  shutil.copy(model_dir.tokenizer_file(RELEASED), directory)
  classes.write(directory, released.class_names)
  return directory


def whole_process(directory: str, tweets_file: str, cache: str) -> float:
  """Seconds of ``python -m train.predict --model=directory --format=json < tweets_file`` (output discarded)."""
  start = time.perf_counter()
  with open(tweets_file, "rb") as stdin:
    result = subprocess.run([sys.executable, "-m", "train.predict", f"--model={directory}", "--format=json",
                             f"--compilation_cache={cache}"], stdin=stdin, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, cwd=REPO, check=False,
                            env={k: v for k, v in os.environ.items() if k != "JAX_COMPILATION_CACHE_DIR"})
  seconds = time.perf_counter() - start
  if result.returncode != 0:
    raise RuntimeError(f"train.predict --model={directory} failed: {result.stderr.decode()[-2000:]}")
  return seconds


def steady_state(engine: inference.InferenceEngine, texts: list[str]) -> float:
  """Seconds to stream ``texts`` through a warmed-up engine (every probability handed back)."""
  start = time.perf_counter()
  count = sum(1 for scored in engine.score(texts) if scored.probabilities is not None)
  seconds = time.perf_counter() - start
  if count != len(texts):
    raise RuntimeError(f"{len(texts) - count} of the tweets got no probabilities")
  return seconds


class OldPath:
  """``train.predict`` before the engine: every text padded to max_length, ``OLD_BATCH`` per batch, the scan's
  forward as computed under differentiation (``jax.vjp``: the chunked sequential scan it used to run)."""

  def __init__(self, model: inference.LoadedModel):
    self.model = model
    state = model.state

    def logits(params, tokens):
      forward = lambda p: inference.tasks.CLASSIFICATION.eval_outputs(
          state.apply_fn({"params": p}, tokens, (tokens != 0).astype(jnp.int32), train=False), None)
      return jax.vjp(forward, params)[0]

    self._program = jax.jit(logits).lower(
        state.params, jax.ShapeDtypeStruct((OLD_BATCH, model.max_length), jnp.int32)).compile()

  def probabilities(self, texts: list[str]) -> np.ndarray:
    tokens = np.asarray(self.model.tokenizer.encode(texts), np.int32)
    out = np.zeros((len(texts), len(self.model.class_names)))
    for start in range(0, len(texts), OLD_BATCH):
      batch = np.zeros((OLD_BATCH, self.model.max_length), np.int32)
      rows = tokens[start:start + OLD_BATCH]
      batch[:len(rows)] = rows
      out[start:start + len(rows)] = metrics.softmax(np.asarray(self._program(self.model.state.params, batch)))[:len(rows)]
    return out


def run_benchmark() -> dict[str, Any]:
  unknown = [m for m in FLAGS.models if m not in MODEL_CHOICES]
  if unknown:
    raise app.UsageError(f"unknown --models {unknown}; choose from {', '.join(MODEL_CHOICES)}")
  tweets, source = tweets_to_score()
  steady_texts = tweets[:FLAGS.steady_tweets]
  device = jax.devices()[0]
  results: dict[str, Any] = {
      "environment": provenance.environment(device, " ".join(["python -m benchmarks.scoring"] + sys.argv[1:])),
      "tweets": {"source": source, "num_tweets": len(tweets), "steady_tweets": len(steady_texts),
                 "mean_chars": float(np.mean([len(t) for t in tweets]))},
      "rounds": FLAGS.rounds, "models": {},
  }
  with tempfile.TemporaryDirectory(prefix="scoring_") as folder:
    tweets_file = os.path.join(folder, "tweets.txt")
    with open(tweets_file, "w", encoding="utf-8") as f:
      f.write("\n".join(tweets) + "\n")
    directories = {name: RELEASED if name == "released" else write_study_model(name, folder) for name in FLAGS.models}
    engines, old_paths = {}, {}
    for name, directory in directories.items():
      loaded = inference.load_exported(directory)
      engines[name] = inference.InferenceEngine(loaded)
      engines[name].warm_up()
      old_paths[name] = OldPath(loaded)
      engine_p = engines[name].probabilities(steady_texts)
      old_p = old_paths[name].probabilities(steady_texts)
      results["models"][name] = {
          "directory": os.path.relpath(directory, REPO) if name == "released" else f"(study config {name}, random)",
          "model_type": loaded.config.model_type, "mixer": loaded.config.model.get("mixer", None),
          "num_params": model_factory.count_params(loaded.state.params),
          "max_abs_probability_difference_vs_old_path": float(np.abs(engine_p - old_p).max()),
          "labels_different_from_old_path": int(np.sum(engine_p.argmax(1) != old_p.argmax(1))),
          "whole_process_s": {"cold": [], "warm": []}, "steady_state_s": [], "old_path_steady_state_s": [],
          "batch_rows": engines[name].batch_rows,
      }
      print(f"{name}: max |p - p_old| {results['models'][name]['max_abs_probability_difference_vs_old_path']:.2e}",
            flush=True)
    cache = os.path.join(folder, "xla_cache")
    for round_index in range(FLAGS.rounds):
      order = list(directories) if round_index % 2 == 0 else list(directories)[::-1]
      for name in order:
        seconds = whole_process(directories[name], tweets_file, cache)
        results["models"][name]["whole_process_s"]["cold" if round_index == 0 else "warm"].append(seconds)
        print(f"round {round_index + 1} {name}: whole process {seconds:.1f} s ({len(tweets) / seconds:,.0f} tweets/s)",
              flush=True)
      for name in order:
        seconds = steady_state(engines[name], steady_texts)
        results["models"][name]["steady_state_s"].append(seconds)
        if name == "released" or FLAGS.old_path_steady_state == "all":
          old_start = time.perf_counter()
          old_paths[name].probabilities(steady_texts)
          results["models"][name]["old_path_steady_state_s"].append(time.perf_counter() - old_start)
        print(f"round {round_index + 1} {name}: steady state {len(steady_texts) / seconds:,.0f} tweets/s", flush=True)
  for entry in results["models"].values():
    entry["summary"] = summarize(entry, len(tweets), len(steady_texts))
  results["load_average_at_end"] = os.getloadavg()[0]
  return results


def _rate(count: int, seconds: list[float]) -> Optional[float]:
  return count / statistics.median(seconds) if seconds else None


def summarize(entry: dict, num_tweets: int, steady_tweets: int) -> dict:
  """Tweets/s (from the median seconds of the rounds) of each measurement."""
  return {"whole_process_cold_tweets_per_s": _rate(num_tweets, entry["whole_process_s"]["cold"]),
          "whole_process_warm_tweets_per_s": _rate(num_tweets, entry["whole_process_s"]["warm"]),
          "steady_state_tweets_per_s": _rate(steady_tweets, entry["steady_state_s"]),
          "old_path_steady_state_tweets_per_s": _rate(steady_tweets, entry["old_path_steady_state_s"])}


def _number(value: Optional[float]) -> str:
  return "-" if value is None else f"{value:,.0f}"


def markdown(results: dict) -> str:
  env, tweets = results["environment"], results["tweets"]
  lines = [
      f"# Bulk scoring through the inference engine ({env['device']})", "",
      f"- jax {env['jax_version']}, commit `{env['commit']}`, {env['date_utc']} UTC, {env['cpu_count']} host CPUs "
      f"(1-min load average at start {env.get('load_average_at_start', float('nan')):.1f}, at end "
      f"{results.get('load_average_at_end', float('nan')):.1f}: other work on a shared host lowers every rate)",
      f"- command: `{env['command']}`",
      f"- tweets: {tweets['source']} ({tweets['num_tweets']:,} lines, {tweets['mean_chars']:.0f} characters on "
      f"average); steady state on the first {tweets['steady_tweets']:,}",
      f"- {results['rounds']} rounds, models interleaved; rates from the median of the rounds. Whole process: "
      "`python -m train.predict --model=DIR --format=json < tweets.txt` from start to exit; cold: its programs "
      "compiled (empty compilation cache), warm: loaded from the cache. Steady state: the engine warmed up, "
      "tokenizing included, output formatting not.",
      "- old path: every tweet padded to max_length, 256 per batch, the chunked scan (`train.predict` before "
      "the engine); probability difference and label changes measured on the steady-state tweets.", "",
      "| model | params | whole process, cold (tweets/s) | whole process, warm (tweets/s) | steady state (tweets/s) "
      "| old path, steady (tweets/s) | max abs. probability difference vs old path | labels changed |",
      "|---|---:|---:|---:|---:|---:|---:|---:|",
  ]
  for name, entry in results["models"].items():
    s = entry["summary"]
    label = f"{name} (`{entry['directory']}`)" if name == "released" else name
    lines.append(f"| {label} | {entry['num_params']:,} | {_number(s['whole_process_cold_tweets_per_s'])} | "
                 f"{_number(s['whole_process_warm_tweets_per_s'])} | {_number(s['steady_state_tweets_per_s'])} | "
                 f"{_number(s['old_path_steady_state_tweets_per_s'])} | "
                 f"{entry['max_abs_probability_difference_vs_old_path']:.1e} | {entry['labels_different_from_old_path']} |")
  lines += ["", "Study models: the study configs' sizes (`configs.BY_MODEL`) with random parameters and the released "
            "model's tokenizer (speed does not depend on the weights; their probabilities mean nothing)."]
  return "\n".join(lines) + "\n"


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f"unexpected arguments: {argv[1:]}")
  results = run_benchmark()
  tag = FLAGS.device_tag or provenance.device_tag(jax.devices()[0])
  provenance.write_report(os.path.join(FLAGS.output_dir, f"scoring_{tag}"), results, markdown(results))


def _define_flags() -> None:
  """Command-line flags (defined only when run as a program, so importing is side-effect free)."""
  flags.DEFINE_list("models", list(MODEL_CHOICES), f"Models to score with: {', '.join(MODEL_CHOICES)}.")
  flags.DEFINE_integer("num_tweets", 100_000, "Lines of the whole-process runs.")
  flags.DEFINE_integer("steady_tweets", 20_000, "Tweets of each steady-state measurement (the first ones).")
  flags.DEFINE_integer("rounds", 3, "Rounds (the first one compiles: cold; the others: warm).")
  flags.DEFINE_string("texts", None, "A file of tweets, one a line, instead of the prepared held-out splits.")
  flags.DEFINE_enum("old_path_steady_state", "released", ["released", "all"],
                    "Which models' old path is timed in steady state too.")
  flags.DEFINE_string("output_dir", "results", "Where scoring_<device>.{json,md} go.")
  flags.DEFINE_string("device_tag", None, "File name tag; default 'cpu' or the accelerator kind.")


if __name__ == "__main__":
  _define_flags()
  app.run(main)
