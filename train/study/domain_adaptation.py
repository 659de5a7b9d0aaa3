"""Domain adaptation, measured: the released model on a labelled tweet set that is not Sentiment140.

What ``python -m train.domain_adaptation`` runs (``run``). The source's negative and positive rows (other labels left out, so the released binary
model's head fits) are split once by a hash of the normalized text into a held-out test
part (``test_share``) and a pool; duplicates stay on one side. For each size (``sizes``;
"all" = the whole pool) and seed, the first ``size`` rows of the pool in a seeded order are
the labelled examples, written as one train file, and on exactly that file:

* ``finetune``: ``train.main --config=configs/own_data.py --config.init_from=<model>``;
* ``scratch``: the same config without init_from (its own tokenizer, random weights);
* ``tfidf``: TF-IDF + logistic regression (``train.study.tfidf_baseline``) on the same splits.

Each trains on its file's hash split (configs/own_data.py's fractions with the test file
given: 8/9 train, 1/9 validation for the best checkpoint / C) and is scored on the same
held-out file; ``zero_shot`` scores the model on it unchanged. Mamba rows are scored by
``train.scoring.labelled_file_report.score`` (binary accuracy), TF-IDF by its test split (the same rows).
Every run writes ``runs/<name>.json`` with its inputs (``run_inputs``: the source file's
digest and test share, the model's parameter digest, the architecture trained) and is skipped
when that file exists with the same inputs; an existing file with other inputs (another
released model, another source) is a one-line error, never a table mixing the two.
``table.md`` is rebuilt from the run files at the end.
"""

from __future__ import annotations

import csv
import hashlib
import json
import os
import subprocess
import sys
import time

import numpy as np

from configs import own_data
from train.data import labelled_rows, normalization, sources
from train.model_files import inference
from train.runs import model_dir, provenance
from train.scoring import labelled_file_report
from train.study import tfidf_baseline

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
METHODS = ("finetune", "scratch", "tfidf")


def run_inputs(method: str, split: dict, model: str) -> dict:
  """What a run's accuracy depends on besides its method, size and seed (JSON values)."""
  inputs = {"source_sha256": split["source_sha256"], "test_share": split["test_share"]}
  if method in ("zero_shot", "finetune"):
    inputs["model_params_sha256"] = sources.sha256_of(os.path.join(model, model_dir.PARAMS_FILE))
  if method in ("finetune", "scratch"):
    inputs["architecture"] = own_data.get_config().model.to_dict()
  return json.loads(json.dumps(inputs))


def earlier_run(path: str, inputs: dict) -> bool:
  """Whether ``path`` holds this run already; a run file of other inputs is a ValueError."""
  if not os.path.exists(path):
    return False
  with open(path, encoding="utf-8") as f:
    recorded = json.load(f).get("inputs", {})
  differing = sorted(k for k in inputs.keys() | recorded.keys() if inputs.get(k) != recorded.get(k))
  if differing:
    raise ValueError(f"{path} was made with other inputs ({', '.join(differing)} differ: another model or source); "
                     "give another --output_dir, or remove it to run it again")
  return True


def split_source(path: str, text_column: str, label_column: str, test_share: float, work_dir: str) -> dict:
  """Writes work_dir/{pool,test}.csv (text,label) of the source's negative/positive rows; their counts."""
  rows = labelled_rows.read_labelled_file(path, text_column=text_column, label_column=label_column,
                                          labels="names", class_names=("negative", "positive"))
  parts = {"pool": [], "test": []}
  for text, label in zip(rows.texts, rows.labels):
    key = hashlib.sha256(normalization.normalize(text).encode("utf-8")).digest()
    share = int.from_bytes(key[:8], "big") / 2**64
    one_line = " ".join(text.split())  # One line per row (the tokenizer sees the same words).
    parts["test" if share < test_share else "pool"].append((one_line, ("negative", "positive")[int(label)]))
  for name, part in parts.items():
    with open(os.path.join(work_dir, f"{name}.csv"), "w", encoding="utf-8", newline="") as f:
      writer = csv.writer(f)
      writer.writerow(["text", "label"])
      writer.writerows(part)
  return {"source": os.path.abspath(path), "source_sha256": sources.sha256_of(path), "rows_read": len(rows.texts),
          "unused_rows": rows.bad_rows, "pool": len(parts["pool"]), "test": len(parts["test"]),
          "test_share": test_share}


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


def score_model(workdir: str = None, model: str = None, test_file: str = "") -> dict:
  """Binary accuracy (and macro-F1) of a workdir or export on the held-out file."""
  loaded = inference.load(workdir, model)
  rows = labelled_rows.read_labelled_file(test_file, text_column="text", label_column="label")
  binary = labelled_file_report.score(loaded, rows, loaded.config.neutral_threshold)["binary"]
  return {"accuracy": binary["accuracy"], "macro_f1": binary["macro_f1"], "num_examples": binary["num_examples"]}


def train_mamba(method: str, train_file: str, test_file: str, workdir: str, seed: int, model: str) -> dict:
  """``python -m train.main`` on ``train_file`` (``finetune``: from ``model``), scored on ``test_file``."""
  command = [sys.executable, "-m", "train.main", "--config=configs/own_data.py", f"--workdir={workdir}",
             f"--config.train_file={train_file}", f"--config.test_file={test_file}",
             "--config.text_column=text", "--config.label_column=label", f"--config.seed={seed}",
             f"--config.prepared_dir={os.path.join(os.path.dirname(workdir), 'prepared')}"]
  if method == "finetune":
    command.append(f"--config.init_from={model}")
  start = time.perf_counter()
  result = subprocess.run(command, cwd=REPO, capture_output=True, text=True)
  if result.returncode != 0:
    raise RuntimeError(f"{' '.join(command)} failed:\n{result.stderr[-3000:]}")
  return {**score_model(workdir=workdir, test_file=test_file), "train_time_s": time.perf_counter() - start,
          "command": " ".join(command[1:])}


def train_tfidf(train_file: str, test_file: str, seed: int, work_dir: str) -> dict:
  """TF-IDF + logistic regression on ``train_file``'s split (configs/own_data.py's), scored on ``test_file``."""
  config = own_data.get_config()
  config.train_file, config.test_file, config.seed = train_file, test_file, seed
  config.text_column, config.label_column = "text", "label"
  config.prepared_dir = os.path.join(work_dir, "prepared")
  start = time.perf_counter()
  splits, _ = tfidf_baseline.load_texts(config)
  report = tfidf_baseline.fit_and_evaluate(splits, [0.25, 0.5, 1.0, 2.0, 4.0, 8.0], min_df=1)
  test = report["test"]
  return {"accuracy": test["accuracy"], "macro_f1": test["macro_f1"], "num_examples": test["num_examples"],
          "C": report["C"], "train_time_s": time.perf_counter() - start}


def table(runs: list[dict], split: dict) -> str:
  sizes = sorted({r["size"] for r in runs if r["method"] != "zero_shot"}, key=lambda s: (s == "all", int(s) if s != "all" else 0))
  lines = [f"# Domain adaptation: the released Sentiment140 model on `{os.path.basename(split['source'])}`", "",
           f"Source `{split['source']}` (sha256 {split['source_sha256'][:16]}...): {split['rows_read']:,} "
           f"negative/positive rows, held-out test {split['test']:,} (text-hash split, share {split['test_share']}), "
           f"pool {split['pool']:,}. Test accuracy (%), mean over seeds (+- sample std when several; n = seeds)."
           + "".join(f" Released model: parameters sha256 {d[:16]}..." for d in sorted(
               {r["inputs"]["model_params_sha256"] for r in runs if "model_params_sha256" in r.get("inputs", {})})),
           "",
           "| method | " + " | ".join(f"{s} examples" for s in sizes) + " |",
           "|---|" + "---:|" * len(sizes)]
  zero = [r for r in runs if r["method"] == "zero_shot"]
  if zero:
    lines.append(f"| released model, zero-shot | " + " | ".join(f"{100 * zero[0]['accuracy']:.2f}" for _ in sizes) + " |")
  for method, label in (("finetune", "fine-tuned from the released model"), ("scratch", "same model from scratch"),
                        ("tfidf", "TF-IDF + logistic regression")):
    cells = []
    for size in sizes:
      acc = [r["accuracy"] for r in runs if r["method"] == method and r["size"] == size]
      cells.append("-" if not acc else f"{100 * np.mean(acc):.2f}" + (f" +- {100 * np.std(acc, ddof=1):.2f}" if len(acc) > 1 else "")
                   + f" (n={len(acc)})")
    lines.append(f"| {label} | " + " | ".join(cells) + " |")
  return "\n".join(lines) + "\n"


def run(source: str, *, model: str, text_column: str = "text", label_column: str = "label",
        test_share: float = 0.2, sizes=("500", "2000", "all"), seeds=("0",), work_dir: str = "/tmp/domain_adaptation",
        output_dir: str = "results/domain_adaptation", command: str = "") -> str:
  """Splits ``source``, runs every (method, size, seed) not run yet and writes ``<output_dir>/table.md``; the table.

  ``work_dir``: the runs' files and workdirs (not results); ``output_dir``: runs/*.json and table.md.

  Raises:
    ValueError: a run file in ``output_dir`` made with other inputs (``earlier_run``).
    RuntimeError: a training run failed (its stderr's end).
  """
  os.makedirs(work_dir, exist_ok=True)
  runs_dir = os.path.join(output_dir, "runs")
  os.makedirs(runs_dir, exist_ok=True)
  split = split_source(source, text_column, label_column, test_share, work_dir)
  test_file = os.path.join(work_dir, "test.csv")
  environment = provenance.host_environment(command)
  plan = [("zero_shot", "0", 0)] + [(m, size, int(seed)) for seed in seeds for size in sizes
                                      for m in METHODS]
  inputs_by_method = {method: run_inputs(method, split, model) for method in ("zero_shot", *METHODS)}
  for method, size, seed in plan:
    name = f"{method}__{size}__seed{seed}"
    path = os.path.join(runs_dir, name + ".json")
    inputs = inputs_by_method[method]
    if earlier_run(path, inputs):
      continue
    print(f"{name} ...", flush=True)
    if method == "zero_shot":
      result = score_model(model=model, test_file=test_file)
      count = 0
    else:
      train_file, count = write_examples(work_dir, size, seed)
      result = (train_tfidf(train_file, test_file, seed, work_dir) if method == "tfidf" else
                train_mamba(method, train_file, test_file, os.path.join(work_dir, name), seed, model))
    record = {"method": method, "size": size, "seed": seed, "examples": count, **result, "inputs": inputs,
              "split": split, "environment": environment}
    with open(path, "w", encoding="utf-8") as f:
      json.dump(provenance.to_jsonable(record), f, indent=1)
    print(f"{name}: accuracy {result['accuracy']:.4f}", flush=True)
  runs = []
  for file in sorted(os.listdir(runs_dir)):
    with open(os.path.join(runs_dir, file), encoding="utf-8") as f:
      runs.append(json.load(f))
  with open(os.path.join(output_dir, "table.md"), "w", encoding="utf-8") as f:
    f.write(table(runs, split))
  return table(runs, split)
