"""The human-oversight loop, simulated and measured: deferred-first labels against random ones.

A labelled tweet set of another topic than Sentiment140 (its negative and positive rows; split once by a
hash of the normalized text into a held-out test part and a pool, as ``train.study.domain_adaptation`` splits
it) stands in for the texts a deployment sees. For each seed the pool, in a seeded order, is a stream of
``rounds`` equal chunks. Each round, for each strategy:

1. the current model (round 1: the released ``model``) scores the round's chunk (``ServedModel``);
2. a simulated reviewer labels ``per_round`` texts of the chunk with their gold labels, chosen by the
   strategy: ``deferred_first`` the least confident ones (those the service defers, most uncertain
   first: what the review page shows), ``random`` a seeded random choice of the chunk; the labels go
   through the service's own path: the review database (``review_database``) and its export
   (``review_export``: reviewed.tsv);
3. the released model is fine-tuned on every label so far (``configs/own_data.py`` with ``init_from`` =
   the released model, the reviewed file as train file, the held-out file as test file, the seed), and
   becomes the current model;
4. the new model's accuracy and macro-recall (the mean of the per-class recalls: the airline set is
   mostly negative) on the held-out part are recorded with the number of labels.

Both strategies of a seed see the same stream. Every fine-tune starts from the released model (not
from the previous round's), so a round's model depends only on the labels chosen so far.

``run_strategy`` is one (seed, strategy); ``summary`` / ``markdown`` / ``plot`` aggregate the runs.
"""

from __future__ import annotations

import csv
import dataclasses
import json
import os
import shutil
import time
from typing import Optional, Sequence

import numpy as np

from train.service import review_database, review_export, served_model

STRATEGIES = ("deferred_first", "random")
CLASS_NAMES = ("negative", "positive")


def read_part(path: str) -> tuple[list[str], np.ndarray]:
  """(texts, label ids 0 negative / 1 positive) of a text,label CSV written by ``split_source``."""
  with open(path, encoding="utf-8", newline="") as f:
    rows = list(csv.reader(f))[1:]
  return [r[0] for r in rows], np.asarray([CLASS_NAMES.index(r[1]) for r in rows], np.int32)


def stream_chunks(pool_size: int, rounds: int, seed: int, stream_size: Optional[int] = None) -> list[np.ndarray]:
  """The pool indices of each round: the first ``stream_size`` (default all) of a seeded order, in ``rounds``
  nearly equal chunks."""
  order = np.random.default_rng([seed, 1]).permutation(pool_size)[:stream_size or pool_size]
  return np.array_split(order, rounds)


def choose(strategy: str, confidences: np.ndarray, count: int, rng: np.random.Generator) -> np.ndarray:
  """Positions (into ``confidences``) of the ``count`` texts the reviewer labels (see the module docstring)."""
  if count > len(confidences):
    raise ValueError(f"cannot label {count} texts of a chunk of {len(confidences)}; fewer --per_round or rounds")
  if strategy == "deferred_first":
    return np.argsort(confidences, kind="stable")[:count]
  if strategy == "random":
    return np.sort(rng.choice(len(confidences), size=count, replace=False))
  raise ValueError(f"unknown strategy {strategy!r}; one of {STRATEGIES}")


def binary_scores(probabilities: np.ndarray, labels: np.ndarray) -> dict:
  """Accuracy and macro-recall (mean per-class recall) of argmax predictions (a NaN row, a text the model
  cannot read, counts as wrong); per-class recall."""
  predictions = np.where(np.isnan(probabilities).any(axis=1), -1, np.nan_to_num(probabilities).argmax(axis=1))
  recalls = [float((predictions[labels == c] == c).mean()) if (labels == c).any() else float("nan")
             for c in range(len(CLASS_NAMES))]
  return {"accuracy": float((predictions == labels).mean()), "macro_recall": float(np.nanmean(recalls)),
          "recall": dict(zip(CLASS_NAMES, recalls))}


def evaluate(model: served_model.ServedModel, texts: Sequence[str], labels: np.ndarray) -> dict:
  return binary_scores(model.engine.probabilities(texts), labels)


@dataclasses.dataclass
class LoopSettings:
  """What one (seed, strategy) run needs. ``prepared_dir``: the data cache the fine-tunes share."""

  model: str
  pool_file: str
  test_file: str
  work_dir: str
  per_round: int
  rounds: int
  stream_size: Optional[int] = None
  keep_workdirs: bool = False


def fine_tune(settings: LoopSettings, train_file: str, workdir: str, seed: int) -> dict:
  """``configs/own_data.py`` fine-tuning ``settings.model`` on ``train_file`` in this process; the run's report."""
  # pylint: disable=import-outside-toplevel
  from configs import own_data
  from train.loop import config_checks, trainer

  config = own_data.get_config()
  config.train_file, config.test_file = train_file, settings.test_file
  config.text_column, config.label_column = "text", "label"
  config.init_from, config.seed = settings.model, seed
  config.prepared_dir = os.path.join(settings.work_dir, "prepared")
  config_checks.check_training_config(config)
  return trainer.train_and_evaluate(config, workdir, start_over=True)


def run_strategy(settings: LoopSettings, strategy: str, seed: int, baseline: Optional[dict] = None,
                 log=print) -> dict:
  """One strategy and seed through every round (see the module docstring): its rounds' records."""
  pool_texts, pool_labels = read_part(settings.pool_file)
  test_texts, test_labels = read_part(settings.test_file)
  chunks = stream_chunks(len(pool_texts), settings.rounds, seed, settings.stream_size)
  run_dir = os.path.join(settings.work_dir, f"{strategy}__seed{seed}")
  shutil.rmtree(run_dir, ignore_errors=True)
  os.makedirs(run_dir)
  database = review_database.ReviewDatabase(os.path.join(run_dir, "reviews.sqlite"))
  rng = np.random.default_rng([seed, 2])
  model = served_model.load_served_model(model=settings.model)
  released_version = model.version
  records = [{"round": 0, "labels": 0, **(baseline or evaluate(model, test_texts, test_labels))}]
  try:
    for number, chunk in enumerate(chunks, start=1):
      start = time.perf_counter()
      answers = model.classify([pool_texts[i] for i in chunk])
      readable = [k for k, answer in enumerate(answers) if "error" not in answer]  # Texts with tokens.
      chunk, answers = chunk[readable], [answers[k] for k in readable]
      confidences = np.asarray([answer["confidence"] for answer in answers])
      deferred = int(sum(answer["deferred"] for answer in answers))
      chosen = choose(strategy, confidences, settings.per_round, rng)
      database.store_deferred(model.version, [(pool_texts[chunk[k]], answers[k]) for k in chosen])
      gold = {pool_texts[chunk[k]]: CLASS_NAMES[pool_labels[chunk[k]]] for k in chosen[::-1]}  # First one wins.
      for item in database.pending(len(chosen)):  # The queue, least confident first, as the page shows it.
        database.add_review(item["id"], gold[item["text"]], "simulated reviewer")
      train_file = os.path.join(run_dir, f"reviewed_round{number}.tsv")
      exported = review_export.export_reviews(database.path, train_file)
      workdir = os.path.join(run_dir, f"round{number}")
      report = fine_tune(settings, train_file, workdir, seed)
      model = served_model.load_served_model(workdir=workdir)
      scores = evaluate(model, test_texts, test_labels)
      records.append({"round": number, "labels": exported["rows"], **scores,
                      "deferred_in_chunk": deferred, "chunk": len(chunk),
                      "chosen_labels": {name: int((pool_labels[chunk[chosen]] == c).sum())
                                        for c, name in enumerate(CLASS_NAMES)},
                      "chosen_mean_confidence": float(confidences[chosen].mean()),
                      "best_step": report.get("evaluated_checkpoint", {}).get("step"),
                      "seconds": time.perf_counter() - start})
      log(f"{strategy} seed {seed} round {number}: {exported['rows']} labels, accuracy {scores['accuracy']:.4f}, "
          f"macro-recall {scores['macro_recall']:.4f} ({time.perf_counter() - start:.0f} s)")
      if not settings.keep_workdirs:
        shutil.rmtree(workdir, ignore_errors=True)
  finally:
    database.close()
  return {"strategy": strategy, "seed": seed, "released_version": released_version, "rounds": records}


def summary(runs: Sequence[dict]) -> dict:
  """strategy -> one row per round: mean labels, mean and sample std (over seeds) of accuracy and macro-recall."""
  table = {}
  for strategy in STRATEGIES:
    chosen = [run for run in runs if run["strategy"] == strategy]
    if not chosen:
      continue
    rows = []
    for number in range(min(len(run["rounds"]) for run in chosen)):
      records = [run["rounds"][number] for run in chosen]
      row = {"round": number, "labels": float(np.mean([r["labels"] for r in records])), "seeds": len(records)}
      for metric in ("accuracy", "macro_recall"):
        values = [r[metric] for r in records]
        row[metric] = float(np.mean(values))
        row[f"{metric}_std"] = float(np.std(values, ddof=1)) if len(values) > 1 else None
      rows.append(row)
    table[strategy] = rows
  return table


def labels_to_match(table: dict, metric: str = "accuracy") -> Optional[dict]:
  """The fewest labels with which deferred-first's mean ``metric`` reaches random's at its most labels."""
  if not all(s in table for s in STRATEGIES):
    return None
  random_last = table["random"][-1]
  reached = next((row for row in table["deferred_first"] if row[metric] >= random_last[metric]), None)
  return {"metric": metric, "random_labels": random_last["labels"], "random_value": random_last[metric],
          "deferred_first_labels": None if reached is None else reached["labels"],
          "deferred_first_value": None if reached is None else reached[metric]}


def _cell(row: dict, metric: str) -> str:
  std = row[f"{metric}_std"]
  return f"{100 * row[metric]:.2f}" + ("" if std is None else f" +- {100 * std:.2f}")


def markdown(report: dict) -> str:
  """The results table of ``report`` (``run_benchmark``'s)."""
  split, env, table = report["split"], report["environment"], report["summary"]
  lines = [
      "# The oversight loop, measured: deferred-first labels vs random labels", "",
      f"`{env['command']}` on {env.get('host_cpu', '?')} ({env.get('cpu_count', '?')} cores), commit "
      f"{str(env.get('commit', '?'))[:10]}, {env.get('date_utc', '?')}; load average at start "
      f"{env.get('load_average_at_start', '?')}. {report['note']}", "",
      f"Source `{os.path.basename(split['source'])}` (sha256 {split['source_sha256'][:16]}...): negative/positive rows, "
      f"held-out test {split['test']:,} (text-hash split, share {split['test_share']}), pool {split['pool']:,} streamed "
      f"in {report['rounds']} rounds of {report['stream_per_round']:,} tweets; {report['per_round']} labels per round "
      f"(a simulated reviewer: the gold label); each round the released model "
      f"(`{report['model']}`, {report['released_version'][:19]}...) is fine-tuned on every label so far "
      f"(`configs/own_data.py`). Accuracy and macro-recall (%) on the held-out test, mean over seeds "
      f"{', '.join(str(s) for s in report['seeds'])} (+- sample std).", "",
      "| labels | deferred-first accuracy | random accuracy | deferred-first macro-recall | random macro-recall |",
      "|---:|---:|---:|---:|---:|"]
  deferred, random = table.get("deferred_first", []), table.get("random", [])
  for a, b in zip(deferred, random):
    lines.append(f"| {a['labels']:.0f} | {_cell(a, 'accuracy')} | {_cell(b, 'accuracy')} | "
                 f"{_cell(a, 'macro_recall')} | {_cell(b, 'macro_recall')} |")
  for metric in ("accuracy", "macro_recall"):
    match = labels_to_match(table, metric)
    if match is None:
      continue
    name = metric.replace("_", "-")
    if match["deferred_first_labels"] is None:
      lines += ["", f"Deferred-first does not reach random's {name} at {match['random_labels']:.0f} labels "
                f"({100 * match['random_value']:.2f}%) within {deferred[-1]['labels']:.0f} labels."]
    else:
      lines += ["", f"Deferred-first reaches random's {name} at {match['random_labels']:.0f} labels "
                f"({100 * match['random_value']:.2f}%) with {match['deferred_first_labels']:.0f} labels "
                f"({100 * match['deferred_first_value']:.2f}%)."]
  lines += ["", "Target (issue 35): deferred-first reaches with 500 labels what random reaches with 1,000.",
            "", f"![accuracy and macro-recall vs labels]({os.path.basename(report['plot'])})"]
  return "\n".join(lines) + "\n"


def plot(table: dict, path: str) -> None:
  """Accuracy and macro-recall vs labels, one line per strategy (mean; a band of +- one std)."""
  import matplotlib  # pylint: disable=import-outside-toplevel
  matplotlib.use("Agg")
  import matplotlib.pyplot as plt  # pylint: disable=import-outside-toplevel

  figure, axes = plt.subplots(1, 2, figsize=(10, 4))
  for axis, metric in zip(axes, ("accuracy", "macro_recall")):
    for strategy, style in zip(STRATEGIES, ("o-", "s--")):
      rows = table.get(strategy, [])
      if not rows:
        continue
      labels = np.asarray([r["labels"] for r in rows])
      mean = 100 * np.asarray([r[metric] for r in rows])
      std = 100 * np.asarray([r[f"{metric}_std"] or 0.0 for r in rows])
      axis.plot(labels, mean, style, label=strategy.replace("_", "-"))
      axis.fill_between(labels, mean - std, mean + std, alpha=0.2)
    axis.set_xlabel("labels")
    axis.set_ylabel(f"{metric.replace('_', '-')} (%)")
    axis.grid(alpha=0.3)
    axis.legend()
  figure.suptitle("Fine-tuning on reviewed tweets: deferred-first vs random selection")
  figure.tight_layout()
  figure.savefig(path, dpi=120)
  plt.close(figure)


@dataclasses.dataclass
class BenchmarkOptions:
  """``python -m train.oversight_benchmark``'s flags."""

  source: str
  text_column: str = "text"
  label_column: str = "airline_sentiment"
  model: str = os.path.join("models", "sent140_mamba")
  test_share: float = 0.2
  per_round: int = 125
  rounds: int = 8
  stream_size: Optional[int] = None
  seeds: Sequence[int] = (0, 1, 2)
  strategies: Sequence[str] = STRATEGIES
  work_dir: str = "/tmp/oversight_benchmark"
  output_dir: str = os.path.join("results", "oversight")
  note: str = ""
  keep_workdirs: bool = False


def run_benchmark(options: BenchmarkOptions, command: str, log=print) -> dict:
  """Every (seed, strategy) run, reusing the run files of ``output_dir/runs`` made with the same inputs; writes
  ``oversight.json``, ``oversight.md`` and ``oversight.png`` to ``output_dir``; the report."""
  # pylint: disable=import-outside-toplevel
  import jax
  from configs import own_data
  from train.runs import provenance
  from train.study import domain_adaptation

  unknown = sorted(set(options.strategies) - set(STRATEGIES))
  if unknown or options.per_round < 1 or options.rounds < 1:
    raise ValueError(f"strategies must be among {STRATEGIES} (got {list(options.strategies)}); per_round and "
                     f"rounds >= 1 (got {options.per_round}, {options.rounds})")
  if not os.path.isfile(options.source):
    raise FileNotFoundError(f"{options.source}: no such file (the README's oversight section says how to fetch it)")
  os.makedirs(options.work_dir, exist_ok=True)
  runs_dir = os.path.join(options.output_dir, "runs")
  os.makedirs(runs_dir, exist_ok=True)
  if not jax.config.jax_compilation_cache_dir:  # The fine-tunes compile the same programs: compile them once.
    jax.config.update("jax_compilation_cache_dir", os.path.join(options.work_dir, "xla_cache"))
  split = domain_adaptation.split_source(options.source, options.text_column, options.label_column,
                                         options.test_share, options.work_dir)
  settings = LoopSettings(model=options.model, pool_file=os.path.join(options.work_dir, "pool.csv"),
                          test_file=os.path.join(options.work_dir, "test.csv"), work_dir=options.work_dir,
                          per_round=options.per_round, rounds=options.rounds, stream_size=options.stream_size,
                          keep_workdirs=options.keep_workdirs)
  released = served_model.load_served_model(model=options.model)
  test_texts, test_labels = read_part(settings.test_file)
  baseline = evaluate(released, test_texts, test_labels)
  inputs = {"source_sha256": split["source_sha256"], "test_share": options.test_share,
            "model_version": released.version, "per_round": options.per_round, "rounds": options.rounds,
            "stream_size": options.stream_size, "architecture": own_data.get_config().model.to_dict()}
  environment = provenance.host_environment(command)
  runs = []
  for seed in options.seeds:
    for strategy in options.strategies:
      path = os.path.join(runs_dir, f"{strategy}__seed{seed}.json")
      if not domain_adaptation.earlier_run(path, inputs):
        log(f"{strategy} seed {seed} ...")
        run = {**run_strategy(settings, strategy, int(seed), baseline, log), "inputs": inputs,
               "environment": environment}
        with open(path, "w", encoding="utf-8") as f:
          json.dump(provenance.to_jsonable(run), f, indent=1)
      with open(path, encoding="utf-8") as f:
        runs.append(json.load(f))
  table = summary(runs)
  plot_path = os.path.join(options.output_dir, "oversight.png")
  plot(table, plot_path)
  stream = options.stream_size or split["pool"]
  report = {"model": options.model, "released_version": released.version, "split": split,
            "per_round": options.per_round, "rounds": options.rounds, "stream_per_round": stream // options.rounds,
            "seeds": [int(s) for s in options.seeds], "summary": table,
            "labels_to_match": {m: labels_to_match(table, m) for m in ("accuracy", "macro_recall")},
            "plot": plot_path, "note": options.note, "environment": environment}
  provenance.write_report(os.path.join(options.output_dir, "oversight"), report, markdown(report))
  return report
