"""Exports a training workdir as a self-contained model directory, and renews an export's slices.

``export`` writes parameters only (no optimizer state) as safetensors, the tokenizer, the training
config, the class names (``classes.json`` when the workdir has one, ``train.scoring.classes``) and
``evaluation.json`` + ``README.md`` (the model card, ``train.model_files.model_card``); the layout is
documented in ``train/runs/model_dir.py``. The exported weights are loaded back
(``train.model_files.inference``) and evaluated on the run's validation, test and manual-test splits (so
the data must be available, as for training): the card reports the accuracy of the stored weights next to
the training run's own report, the largest probability change that casting to the stored dtype caused,
and the accuracy per slice (``train.scoring.slices``) of each split.

``add_slices`` adds (or renews) the slices of an existing export without its training workdir: the
stored weights are evaluated on the prepared held-out splits (its config.json's data, prepared as for
training) and on the raw manual-test file (whose query column gives the topic slice); every accuracy must
match the one in its evaluation.json, and only the slices are added to it and to the card.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
from typing import Optional

import numpy as np

from train.data import held_out_texts, labelled_rows, pipeline, sources
from train.loop import models, pretrained_init
from train.model_files import inference, model_card
from train.runs import classes, eval_report, model_dir, provenance
from train.scoring import labelled_file_report, metrics, slices

EVALUATED_SPLITS = metrics.REPORTED_SPLITS


def split_slices(split, probs: np.ndarray, raw: Optional[list[str]] = None) -> dict:
  """``train.scoring.slices.classification_slices`` of ``probs`` (N, c) on ``split``: of its ``raw`` texts when
  given (``train.data.held_out_texts``), else of its normalized texts (no hashtag or all-caps slices)."""
  return slices.classification_slices(probs, split.labels, split.texts if raw is None else raw,
                                      (np.asarray(split.tokens) != 0).sum(axis=1), normalized=raw is None)


def compare_weights(original: inference.LoadedModel, stored: inference.LoadedModel, splits,
                    raw: Optional[dict[str, list[str]]] = None) -> dict:
  """split -> {float32: metrics, stored: metrics, max_abs_probability_difference, [slices of the stored
  weights, when the split keeps its texts: of its ``raw`` texts where given]}, for the splits of
  ``EVALUATED_SPLITS`` present."""
  result = {}
  for name in (n for n in EVALUATED_SPLITS if n in splits):
    split = splits[name]
    p_original, p_stored = original.probabilities(split), stored.probabilities(split)
    result[name] = {
        "float32": metrics.split_metrics(name, p_original, split.labels, original.config.neutral_threshold,
                                         original.config.ece_bins),
        "stored": metrics.split_metrics(name, p_stored, split.labels, stored.config.neutral_threshold,
                                        stored.config.ece_bins),
        "max_abs_probability_difference": float(np.max(np.abs(p_original - p_stored))) if len(split) else 0.0,
    }
    if split.texts is not None:
      result[name]["slices"] = split_slices(split, p_stored, (raw or {}).get(name))
  return result


def export(workdir: str, output: str, dtype: str, checkpoint: str = "best", name: str = "",
           command: str = "") -> dict:
  """Writes the model directory ``output`` from ``workdir``; returns the evaluation dict it wrote."""
  report_path = eval_report.report_path(workdir)
  if not os.path.exists(report_path):
    raise FileNotFoundError(f"{report_path} not found: export a workdir whose training run has finished "
                            "(python -m train.main writes it at the end).")
  if dtype not in model_dir.DISK_DTYPES:
    raise ValueError(f"--dtype must be one of {sorted(model_dir.DISK_DTYPES)}, got {dtype!r}")
  if os.path.exists(output) and os.listdir(output) and not os.path.exists(
      os.path.join(output, model_dir.PARAMS_FILE)):
    raise ValueError(f"{output} exists and is not an exported model directory; not overwriting it.")
  report = eval_report.read_eval_report(workdir)
  original = inference.load_workdir(workdir, checkpoint)
  staging = output.rstrip("/") + ".partial"
  shutil.rmtree(staging, ignore_errors=True)
  os.makedirs(staging)
  params_path = os.path.join(staging, model_dir.PARAMS_FILE)
  model_dir.save_params(params_path, original.state.params, dtype,
                        {"model_type": str(original.config.model_type), "step": str(original.step)})
  shutil.copyfile(os.path.join(workdir, model_dir.CONFIG_FILE), os.path.join(staging, model_dir.CONFIG_FILE))
  has_classes = os.path.isfile(os.path.join(workdir, classes.CLASSES_FILE))
  if has_classes:
    shutil.copyfile(os.path.join(workdir, classes.CLASSES_FILE), os.path.join(staging, classes.CLASSES_FILE))
  tokenizer = model_dir.tokenizer_file(workdir)
  if tokenizer:
    shutil.copyfile(tokenizer, os.path.join(staging, os.path.basename(tokenizer)))
  elif original.config.dataset != "synthetic":
    raise FileNotFoundError(f"no tokenizer.* file in {workdir}")

  stored = inference.load_exported(staging)
  log = lambda message: print(message, file=sys.stderr)
  splits = pipeline.get_datasets(original.config, log=log,
                                 given_tokenizer=pretrained_init.given_tokenizer_of_run(original.config, workdir)).splits
  comparison = compare_weights(original, stored, splits,
                               held_out_texts.raw_texts(original.config, splits, EVALUATED_SPLITS, log))
  export_info = {
      "dtype": dtype,
      "model_dir": output,
      "workdir": os.path.abspath(workdir),
      "checkpoint": checkpoint,
      "step": original.step,
      "num_params": models.count_params(original.state.params),
      "vocab_size": int(original.tokenizer.vocab_size),
      "params_bytes": os.path.getsize(params_path),
      "tokenizer": os.path.basename(tokenizer) if tokenizer else None,
      "class_names": list(original.class_names),
      "classes_file": classes.CLASSES_FILE if has_classes else None,
      "command": command or f"python -m train.export --workdir={workdir} --output={output} --dtype={dtype}",
      "commit": provenance.git_commit(),
      "date_utc": provenance.utc_now(),
  }
  evaluation_dict = provenance.to_jsonable({"export": export_info, "splits": comparison})
  with open(os.path.join(staging, model_dir.EVALUATION_FILE), "w", encoding="utf-8") as f:
    json.dump(evaluation_dict, f, indent=2)
  card = model_card.model_card(name or os.path.basename(os.path.abspath(output)), report, original.config, comparison,
                    export_info)
  with open(os.path.join(staging, model_dir.CARD_FILE), "w", encoding="utf-8") as f:
    f.write(card)
  if os.path.exists(output):
    shutil.rmtree(output)
  os.replace(staging, output)
  return evaluation_dict


def add_slices(directory: str, manual_test_path: str, command: str = "") -> dict:
  """Adds the slices of an exported model to its evaluation.json and card (see the module docstring).

  The held-out splits are those its config.json's data fields prepare (as for training;
  ``$SENT140_DATA_DIR`` when data_dir is unset). Returns {split: slice report}.

  Raises:
    FileNotFoundError: no export, or no manual-test file.
    ValueError: an accuracy differs from the one in evaluation.json (other data or weights).
  """
  evaluation_path = os.path.join(directory, model_dir.EVALUATION_FILE)
  card_path = os.path.join(directory, model_dir.CARD_FILE)
  if not os.path.isfile(evaluation_path) or not os.path.isfile(card_path):
    raise FileNotFoundError(f"{directory} has no {model_dir.EVALUATION_FILE} and {model_dir.CARD_FILE}: "
                            "--slices_of must be a directory written by python -m train.export")
  if not os.path.isfile(manual_test_path):
    raise FileNotFoundError(f"--manual_test={manual_test_path}: no such file")
  with open(evaluation_path, encoding="utf-8") as f:
    evaluation = json.load(f)
  model = inference.load_exported(directory)
  log = lambda message: print(message, file=sys.stderr)
  splits = pipeline.get_datasets(model.config, log=log).splits
  raw = held_out_texts.raw_texts(model.config, splits, ("validation", "test"), log)
  reports = {name: split_slices(splits[name], model.probabilities(splits[name]), raw.get(name))
             for name in ("validation", "test")}
  labels, class_names = labelled_file_report.reading_classes(model.class_names, "auto")
  rows = labelled_rows.read_labelled_file(manual_test_path, labels=labels, class_names=class_names)
  manual = labelled_file_report.score(model, rows, float(model.config.neutral_threshold))
  reports["manual_test"] = manual["slices"]
  for name, report in reports.items():
    recorded = model_card.binary_part(evaluation["splits"][name]["stored"])
    if report["overall"]["count"] != recorded["num_examples"] or abs(
        report["overall"]["accuracy"] - recorded["accuracy"]) > 1e-9:
      raise ValueError(f"{name}: accuracy {report['overall']['accuracy']:.6f} of {report['overall']['count']} "
                       f"differs from {recorded['accuracy']:.6f} of {recorded['num_examples']} in {evaluation_path}; "
                       "not the data or weights the card was made with")
  for name, report in reports.items():
    evaluation["splits"][name]["slices"] = report
  evaluation["slices_provenance"] = {
      "command": command or f"python -m train.export --slices_of={directory} --manual_test={manual_test_path}",
      "commit": provenance.git_commit(), "date_utc": provenance.utc_now(),
      "manual_test_file": os.path.abspath(manual_test_path)}
  how = (f"Added to this export by `{evaluation['slices_provenance']['command']}` "
         f"(`${sources.ENV_DATA_DIR}` set to the Sentiment140 folder) at commit "
         f"{evaluation['slices_provenance']['commit']} on {evaluation['slices_provenance']['date_utc']} UTC, "
         f"without the training workdir: the stored weights on the prepared held-out splits, "
         f"{model_card.texts_note({n: r for n, r in reports.items() if n != 'manual_test'})}, and on the raw manual-test file, "
         "whose query column gives the topics; every split's accuracy matched the table above.")
  with open(card_path, encoding="utf-8") as f:
    card = f.read()
  card = model_card.replace_section(card, model_card.SLICES_HEADING, model_card.slices_section(
      {name: evaluation["splits"][name] for name in reports}, how), "## Calibration")
  with open(evaluation_path + ".tmp", "w", encoding="utf-8") as f:
    json.dump(provenance.to_jsonable(evaluation), f, indent=2)
  with open(card_path + ".tmp", "w", encoding="utf-8") as f:
    f.write(card)
  os.replace(evaluation_path + ".tmp", evaluation_path)
  os.replace(card_path + ".tmp", card_path)
  return reports


def add_transfer(directory: str, result_dirs: list, command: str = "") -> str:
  """Adds (or renews) the transfer section of an export's card from transfer benchmark folders
  (``python -m train.domain_adaptation --output_dir``: their table.md); the card's path."""
  card_path = os.path.join(directory, model_dir.CARD_FILE)
  if not os.path.exists(card_path):
    raise ValueError(f"{directory}: no {model_dir.CARD_FILE} (not an exported model)")
  tables = {}
  for folder in result_dirs:
    path = os.path.join(folder, "table.md")
    if not os.path.exists(path):
      raise ValueError(f"{path}: not found (run python -m train.domain_adaptation --output_dir={folder} first)")
    with open(path, encoding="utf-8") as f:
      tables[folder] = f.read()
  how = (f"Fine-tuned with `configs/own_data.py` on labelled tweets of other topics and years, against the classical "
         f"tools on the same rows (`python -m train.domain_adaptation`; every method, seed and size in "
         f"{', '.join(f'`{folder}`' for folder in result_dirs)}). Added by `{command or 'python -m train.export'}` at "
         f"commit {provenance.git_commit()} on {provenance.utc_now()} UTC.")
  with open(card_path, encoding="utf-8") as f:
    card = f.read()
  card = model_card.replace_section(card, model_card.TRANSFER_HEADING, model_card.transfer_section(tables, how),
                                    "## Known limits")
  with open(card_path + ".tmp", "w", encoding="utf-8") as f:
    f.write(card)
  os.replace(card_path + ".tmp", card_path)
  return card_path
