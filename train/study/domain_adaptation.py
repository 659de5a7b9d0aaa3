"""The transfer benchmark: released models against classical tools on a labelled tweet set that is not Sentiment140.

What ``python -m train.domain_adaptation`` runs (``run``). The source's rows of ``classes``
(negative, positive[, neutral]; other labels left out) are split once by a hash of the normalized
text into a held-out test part (``test_share``) and a pool; duplicates stay on one side. For each
size (``sizes``; "all" = the whole pool) and seed, the first ``size`` rows of the pool in a seeded
order are the labelled examples, written as one train file, and on exactly that file:

* ``finetune``: ``train.main --config=configs/own_data.py --config.init_from=<model>`` (the current
  release); ``finetune_<name>``: the same from each release candidate ``<name>`` (its architecture
  passed as ``--config.model.*`` overrides, read from its config.json);
* ``scratch``: configs/own_data.py without init_from (its own tokenizer, random weights);
* ``tfidf`` / ``tfidf_balanced``: TF-IDF + logistic regression (``train.study.tfidf_baseline``),
  plain and with class weights inverse to the class frequencies;
* ``fasttext``: fastText (``train.study.fasttext_baseline``).

Each trains on its file's hash split (configs/own_data.py's fractions with the test file given:
8/9 train, 1/9 validation, which picks the checkpoint, C or the fastText schedule) and is scored
on the same held-out file: accuracy, macro-averaged recall and macro-F1 over ``classes``, and the
validation macro-recall (the release rule's transfer term). ``zero_shot`` scores the current
release unchanged (a binary model: the binary rows; with neutral, neutral by abstention at the
model's threshold).

Every run writes ``runs/<method>__<size>__seed<seed>.json`` with its inputs (``run_inputs``: the
source's digest, test share and classes, the model's parameter digest, the training config) and is
skipped when that file exists with the same inputs; an existing file with other inputs is a
one-line error, never a table mixing the two. ``table.md`` is rebuilt from the run files.
"""

from __future__ import annotations

import csv
import hashlib
import json
import os
import subprocess
import sys
import time
from typing import Optional, Sequence

import numpy as np

from configs import own_data
from train.data import labelled_rows, normalization, sources
from train.model_files import inference
from train.runs import eval_report, model_dir, provenance
from train.scoring import labelled_file_report, metrics
from train.study import fasttext_baseline, tfidf_baseline

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
CLASSICAL_METHODS = ("tfidf", "tfidf_balanced", "fasttext")
METRICS = ("accuracy", "macro_recall", "macro_f1")
TFIDF_C_VALUES = (0.25, 0.5, 1.0, 2.0, 4.0, 8.0)


def check_classes(classes: Sequence[str]) -> tuple[str, ...]:
  """``classes`` as the known label ids order (negative, positive[, neutral]); else a ValueError."""
  classes = tuple(c.strip().lower() for c in classes)
  if set(classes) not in ({"negative", "positive"}, {"negative", "positive", "neutral"}):
    raise ValueError(f"--classes={','.join(classes)}: use negative,positive or negative,positive,neutral")
  return labelled_rows.KNOWN_CLASS_NAMES[:len(classes)]


def methods_of(candidates: dict) -> tuple[str, ...]:
  """Every trained method: fine-tuned from the release and from each candidate, scratch, the classical ones."""
  return ("finetune", *(f"finetune_{name}" for name in candidates), "scratch", *CLASSICAL_METHODS)


def config_file(model: Optional[str]) -> str:
  """The ``--config`` that fits the classifier ``model``: configs/own_data.py, with ``:mamba2`` for a Mamba-2 one."""
  if model is not None and model_dir.read_stored_config(model)["model"].get("mixer", "mamba1") == "mamba2":
    return "configs/own_data.py:mamba2"
  return "configs/own_data.py"


def _own_data_config(model: Optional[str]):
  """configs/own_data.py as ``config_file(model)`` builds it."""
  _, _, mixer = config_file(model).partition(":")
  return own_data.get_config(mixer or "mamba1")


def training_overrides(model: Optional[str]) -> list[str]:
  """``--config.*`` overrides that give ``config_file(model)`` the architecture of the classifier ``model``.

  None (from scratch): none, configs/own_data.py's own architecture.
  """
  if model is None:
    return []
  stored = model_dir.read_stored_config(model)
  overrides = [f"--config.model_type={stored['model_type']}"]
  reference = _own_data_config(model).model
  for key, value in sorted(stored["model"].items()):
    if key in reference and key not in ("dropout", "scan_method"):  # Those two may differ (init_from).
      overrides.append(f"--config.model.{key}={value}")
  return overrides


def run_inputs(method: str, split: dict, model: Optional[str], class_weighting: Optional[str] = None) -> dict:
  """What a run's numbers depend on besides its method, size and seed (JSON values).

  ``model``: the classifier a fine-tune starts from (zero_shot: the one scored); None otherwise.
  ``class_weighting``: the trained runs' ``config.class_weighting`` (None: configs/own_data.py's).
  """
  inputs = {"source_sha256": split["source_sha256"], "test_share": split["test_share"],
            "classes": list(split["classes"])}
  if model is not None:
    params = os.path.join(model, model_dir.PARAMS_FILE)
    if not os.path.exists(params):
      raise ValueError(f"{model}: no {model_dir.PARAMS_FILE}; a release or candidate is an exported model "
                       f"(python -m train.export --workdir={model} --output=<folder>)")
    inputs["model_params_sha256"] = sources.sha256_of(params)
  if method == "scratch" or method.startswith("finetune"):
    config = _own_data_config(model)
    if config_file(model) != "configs/own_data.py":
      inputs["config_file"] = config_file(model)
    if class_weighting is not None:
      config.class_weighting = class_weighting
    inputs["training"] = {"overrides": training_overrides(model),
                          **{k: config[k] for k in ("class_weighting", "num_epochs", "train_examples_budget", "batch_size",
                                                    "learning_rate", "best_checkpoint_metric", "label_smoothing")}}
    if model is None:  # From scratch: configs/own_data.py's architecture (a fine-tune takes its model's).
      inputs["architecture"] = config.model.to_dict()
  return json.loads(json.dumps(inputs))


def earlier_run(path: str, inputs: dict) -> bool:
  """Whether ``path`` holds this run already; a run file of other inputs is a ValueError."""
  return provenance.recorded_run(path, inputs, _differing_inputs,
                                 "give another --output_dir, or remove it to run it again") is not None


def _differing_inputs(recorded: dict, inputs: dict) -> str:
  differing = sorted(k for k in inputs.keys() | recorded.keys() if inputs.get(k) != recorded.get(k))
  return f"{', '.join(differing)} differ: another model, source or training config" if differing else ""


def split_source(path: str, text_column: str, label_column: str, test_share: float, work_dir: str,
                 classes: Sequence[str] = ("negative", "positive")) -> dict:
  """Writes work_dir/{pool,test}.csv (text,label) of the source's rows of ``classes``; their counts."""
  classes = check_classes(classes)
  rows = labelled_rows.read_labelled_file(path, text_column=text_column, label_column=label_column,
                                          labels="names", class_names=classes, neutral_allowed="neutral" in classes)
  parts = {"pool": [], "test": []}
  for text, label in zip(rows.texts, rows.labels):
    key = hashlib.sha256(normalization.normalize(text).encode("utf-8")).digest()
    share = int.from_bytes(key[:8], "big") / 2**64
    one_line = " ".join(text.split())  # One line per row (the tokenizer sees the same words).
    parts["test" if share < test_share else "pool"].append((one_line, classes[int(label)]))
  for name, part in parts.items():
    with open(os.path.join(work_dir, f"{name}.csv"), "w", encoding="utf-8", newline="") as f:
      writer = csv.writer(f)
      writer.writerow(["text", "label"])
      writer.writerows(part)
  counts = {name: {c: sum(1 for _, label in part if label == c) for c in classes} for name, part in parts.items()}
  return {"source": os.path.abspath(path), "source_sha256": sources.sha256_of(path), "rows_read": len(rows.texts),
          "unused_rows": rows.bad_rows, "pool": len(parts["pool"]), "test": len(parts["test"]),
          "test_share": test_share, "classes": list(classes), "class_counts": counts}


def write_examples(work_dir: str, size: str, seed: int) -> tuple[str, int]:
  """The train file of ``size`` pool rows (seeded order) and its row count."""
  with open(os.path.join(work_dir, "pool.csv"), encoding="utf-8", newline="") as f:
    pool = list(csv.reader(f))[1:]
  order = np.random.default_rng(seed).permutation(len(pool))
  count = len(pool) if size == "all" else min(int(size), len(pool))
  path = os.path.join(work_dir, f"train_{size}_seed{seed}.csv")
  with open(path, "w", encoding="utf-8", newline="") as f:
    writer = csv.writer(f)
    writer.writerow(["text", "label"])
    writer.writerows(pool[i] for i in order[:count])
  return path, count


def scores(numbers: dict) -> dict:
  """accuracy, macro_recall, macro_f1, per-class recall and examples of ``classification_metrics``' output."""
  return {**{k: numbers[k] for k in METRICS}, "per_class_recall": [c["recall"] for c in numbers["per_class"]],
          "num_examples": numbers["num_examples"]}


def score_model(test_file: str, workdir: Optional[str] = None, model: Optional[str] = None) -> dict:
  """Test scores of a workdir or export on the held-out file, over the file's classes.

  The binary Sentiment140 model on a file with neutral rows: neutral by abstention (``three_way``).
  """
  loaded = inference.load(workdir, model)
  scheme, class_names = labelled_file_report.reading_classes(loaded.class_names, "names")
  rows = labelled_rows.read_labelled_file(test_file, text_column="text", label_column="label", labels=scheme,
                                          class_names=class_names)
  report = labelled_file_report.score(loaded, rows, loaded.config.neutral_threshold)
  if "n_way" in report:
    return scores(report["n_way"])
  if not report["three_way"]["num_neutral"]:
    return scores(report["binary"])
  matrix = np.asarray(report["three_way"]["confusion_matrix"])
  recall = [float(matrix[c, c] / max(matrix[c].sum(), 1)) for c in range(3)]
  return {"accuracy": report["three_way"]["accuracy"], "macro_recall": metrics.macro_recall(matrix),
          "macro_f1": report["three_way"]["macro_f1"], "per_class_recall": recall,
          "num_examples": report["three_way"]["num_examples"], "neutral_threshold": report["three_way"]["threshold"]}


def train_mamba(train_file: str, test_file: str, workdir: str, seed: int, model: Optional[str],
                class_weighting: Optional[str] = None) -> dict:
  """``python -m train.main`` on ``train_file`` (from ``model`` when given), scored on ``test_file``;
  ``class_weighting``: None for configs/own_data.py's."""
  command = [sys.executable, "-m", "train.main", f"--config={config_file(model)}", f"--workdir={workdir}",
             f"--config.train_file={train_file}", f"--config.test_file={test_file}",
             "--config.text_column=text", "--config.label_column=label", "--config.label_scheme=names",
             f"--config.seed={seed}",
             f"--config.prepared_dir={os.path.join(os.path.dirname(workdir), 'prepared')}",
             *training_overrides(model)]
  if model is not None:
    command.append(f"--config.init_from={model}")
  if class_weighting is not None:
    command.append(f"--config.class_weighting={class_weighting}")
  start = time.perf_counter()
  result = subprocess.run(command, cwd=REPO, capture_output=True, text=True)
  if result.returncode != 0:
    raise RuntimeError(f"{' '.join(command)} failed:\n{result.stderr[-3000:]}")
  report = eval_report.read_eval_report(workdir)
  return {**score_model(test_file, workdir=workdir), "validation_macro_recall": report["validation"]["macro_recall"],
          "validation_accuracy": report["validation"]["accuracy"], "train_time_s": time.perf_counter() - start,
          "command": " ".join(command[1:])}


def train_classical(method: str, train_file: str, test_file: str, seed: int, work_dir: str) -> dict:
  """``method`` (tfidf, tfidf_balanced, fasttext) on ``train_file``'s split (configs/own_data.py's), scored on
  ``test_file``; every choice (C, the fastText schedule) by validation macro-recall."""
  config = own_data.get_config()
  config.train_file, config.test_file, config.seed = train_file, test_file, seed
  config.text_column, config.label_column, config.label_scheme = "text", "label", "names"
  config.prepared_dir = os.path.join(work_dir, "prepared")
  start = time.perf_counter()
  splits, _ = tfidf_baseline.load_texts(config)
  if method == "fasttext":
    report = fasttext_baseline.fit_and_evaluate(splits, seed=seed, select_by="macro_recall")
    choice = {"epochs": report["epochs"], "learning_rate": report["learning_rate"]}
  else:
    report = tfidf_baseline.fit_and_evaluate(splits, TFIDF_C_VALUES, min_df=1, select_by="macro_recall",
                                             class_weight="balanced" if method == "tfidf_balanced" else None)
    choice = {"C": report["C"]}
  return {**scores(report["test"]), "validation_macro_recall": report["validation"]["macro_recall"],
          "validation_accuracy": report["validation"]["accuracy"], **choice,
          "train_time_s": time.perf_counter() - start}


def mean_std(values: Sequence[float]) -> str:
  """"m +- s (n=k)" in percent; the sample std (ddof 1) when there are several values."""
  if not values:
    return "-"
  text = f"{100 * np.mean(values):.2f}"
  if len(values) > 1:
    text += f" +- {100 * np.std(values, ddof=1):.2f}"
  return text + f" (n={len(values)})"


def method_label(method: str) -> str:
  labels = {"zero_shot": "current release, zero-shot", "finetune": "fine-tuned from the current release",
            "scratch": "same model from scratch", "tfidf": "TF-IDF + logistic regression",
            "tfidf_balanced": "TF-IDF + logistic regression, class-weighted", "fasttext": "fastText (bigrams, dim 100)"}
  if method.startswith("finetune_"):
    return f"fine-tuned from candidate `{method.removeprefix('finetune_')}`"
  return labels[method]


def table(runs: list[dict], split: dict) -> str:
  """The markdown tables (one per metric) of ``runs`` over the sizes, mean +- std over seeds."""
  sizes = sorted({r["size"] for r in runs if r["method"] != "zero_shot"},
                 key=lambda s: (s == "all", int(s) if s != "all" else 0))
  order = ["zero_shot", "finetune"] + sorted({r["method"] for r in runs if r["method"].startswith("finetune_")}) + [
      "scratch", *CLASSICAL_METHODS]
  methods = [m for m in order if any(r["method"] == m for r in runs)]
  classes = split.get("classes", ["negative", "positive"])
  counts = split.get("class_counts", {})
  lines = [f"# Transfer: `{os.path.basename(split['source'])}`, {len(classes)} classes", "",
           f"Source `{os.path.basename(split['source'])}` (sha256 {split['source_sha256'][:16]}...): "
           f"{split['rows_read']:,} rows of {', '.join(classes)}; held-out test {split['test']:,} (text-hash split, "
           f"share {split['test_share']}), pool {split['pool']:,}."
           + (f" Class counts: test {counts['test']}, pool {counts['pool']}." if counts else "")
           + " Mean over seeds, +- the sample std (n = seeds)."
           + "".join(f" Current release: parameters sha256 {d[:16]}..." for d in sorted(
               {r["inputs"]["model_params_sha256"] for r in runs
                if r["method"] in ("zero_shot", "finetune") and "model_params_sha256" in r.get("inputs", {})}))]
  for metric, title in (("macro_recall", "Test macro-averaged recall (%)"), ("accuracy", "Test accuracy (%)"),
                        ("macro_f1", "Test macro-F1 (%)")):
    lines += ["", f"## {title}", "", "| method | " + " | ".join(f"{s} examples" for s in sizes) + " |",
              "|---|" + "---:|" * len(sizes)]
    for method in methods:
      if method == "zero_shot":
        value = next(r[metric] for r in runs if r["method"] == "zero_shot")
        cells = [f"{100 * value:.2f}"] * len(sizes)
      else:
        cells = [mean_std([r[metric] for r in runs if r["method"] == method and r["size"] == size]) for size in sizes]
      lines.append(f"| {method_label(method)} | " + " | ".join(cells) + " |")
  return "\n".join(lines) + "\n"


def read_runs(runs_dir: str) -> list[dict]:
  runs = []
  for file in sorted(os.listdir(runs_dir)):
    with open(os.path.join(runs_dir, file), encoding="utf-8") as f:
      runs.append(json.load(f))
  return runs


def run(source: str, *, model: str, candidates: Optional[dict] = None, text_column: str = "text",
        label_column: str = "label", classes: Sequence[str] = ("negative", "positive"), test_share: float = 0.2,
        sizes=("500", "2000", "all"), seeds=("0",), methods: Optional[Sequence[str]] = None,
        work_dir: str = "/tmp/domain_adaptation", output_dir: str = "results/domain_adaptation",
        class_weighting: Optional[str] = None, command: str = "") -> str:
  """Splits ``source``, runs every (method, size, seed) not run yet and writes ``<output_dir>/table.md``; the table.

  ``model``: the current release; ``candidates``: {name: model directory} of release candidates;
  ``methods``: a subset of ``methods_of(candidates)`` (None: all); ``work_dir``: the runs' files and
  workdirs (not results); ``output_dir``: runs/*.json and table.md; ``class_weighting``: the trained
  runs' (None: configs/own_data.py's default).

  Raises:
    ValueError: a run file in ``output_dir`` made with other inputs (``earlier_run``), or unknown methods.
    RuntimeError: a training run failed (its stderr's end).
  """
  candidates = dict(candidates or {})
  known = methods_of(candidates)
  methods = known if methods is None else tuple(methods)
  unknown = sorted(set(methods) - set(known) - {"zero_shot"})
  if unknown:
    raise ValueError(f"unknown methods {', '.join(unknown)}; known: zero_shot, {', '.join(known)}")
  os.makedirs(work_dir, exist_ok=True)
  runs_dir = os.path.join(output_dir, "runs")
  os.makedirs(runs_dir, exist_ok=True)
  split = split_source(source, text_column, label_column, test_share, work_dir, classes)
  test_file = os.path.join(work_dir, "test.csv")
  environment = provenance.host_environment(command)
  start_models = {"zero_shot": model, "finetune": model, **{f"finetune_{n}": p for n, p in candidates.items()}}
  plan = [("zero_shot", "0", 0)] + [(m, size, int(seed)) for seed in seeds for size in sizes
                                      for m in methods if m != "zero_shot"]
  inputs_by_method = {m: run_inputs(m, split, start_models.get(m), class_weighting) for m in ("zero_shot", *methods)}
  for method, size, seed in plan:
    name = f"{method}__{size}__seed{seed}"
    path = os.path.join(runs_dir, name + ".json")
    inputs = inputs_by_method[method]
    if earlier_run(path, inputs):
      continue
    print(f"{name} ...", flush=True)
    if method == "zero_shot":
      result, count = score_model(test_file, model=model), 0
    else:
      train_file, count = write_examples(work_dir, size, seed)
      if method in CLASSICAL_METHODS:
        result = train_classical(method, train_file, test_file, seed, work_dir)
      else:
        result = train_mamba(train_file, test_file, os.path.join(work_dir, name), seed, start_models.get(method),
                             class_weighting)
    record = {"method": method, "size": size, "seed": seed, "examples": count, **result, "inputs": inputs,
              "split": split, "environment": environment}
    with open(path, "w", encoding="utf-8") as f:
      json.dump(provenance.to_jsonable(record), f, indent=1)
    print(f"{name}: accuracy {result['accuracy']:.4f}, macro-recall {result['macro_recall']:.4f}", flush=True)
  text = table(read_runs(runs_dir), split)
  with open(os.path.join(output_dir, "table.md"), "w", encoding="utf-8") as f:
    f.write(text)
  return text
