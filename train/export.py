"""Exports a training workdir as a self-contained model directory with a model card.

  python -m train.export --workdir=workdirs/sent140 --output=models/sent140 [--dtype=bfloat16]

Writes parameters only (no optimizer state) as safetensors, the tokenizer, the training
config, the class names (``classes.json`` when the workdir has one, ``train.classes``) and
``evaluation.json`` + ``README.md`` (the model card); the layout is documented in
``train/model_dir.py``. The exported weights are loaded back (``train.inference``) and evaluated on the run's
validation, test and manual-test splits (so the data must be available, as for training):
the card reports the accuracy of the stored weights next to the training run's own report,
the largest probability change that casting to ``--dtype`` caused, and the accuracy per slice
(``train.slices``) of each split.

  python -m train.export --slices_of=models/sent140 --manual_test=testdata.manual.2009.06.14.csv

adds (or renews) the slices of an existing export without its training workdir: the stored
weights are evaluated on the prepared held-out splits (its config.json's data, prepared as for
training) and on the raw manual-test file (whose query column gives the topic slice); every
accuracy must match the one in its evaluation.json, and only the slices are added to it and to
the card.
"""

from __future__ import annotations

import json
import math
import os
import shutil
import sys
from typing import Optional

import numpy as np
from absl import app, flags, logging

from train import classes, eval_report, inference, metrics, model_dir, models, pretrained_init, provenance, slices
from train.data import held_out_texts, pipeline, sources

FLAGS = flags.FLAGS

EVALUATED_SPLITS = metrics.REPORTED_SPLITS
SPLIT_DESCRIPTIONS = {
    "validation": "held-out validation (picks the best checkpoint)",
    "test": "held-out test",
    "manual_test": "manual test, positive/negative tweets (binary)",
}


def binary_part(split_report: dict) -> dict:
  """The positive/negative metrics of a split report (the manual test nests them under "binary")."""
  return split_report["binary"] if "binary" in split_report else split_report


def split_slices(split, probs: np.ndarray, raw: Optional[list[str]] = None) -> dict:
  """``train.slices.classification_slices`` of ``probs`` (N, c) on ``split``: of its ``raw`` texts when
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


def _percent(x: float) -> str:
  return f"{100 * x:.2f}%"


def _model_summary(config, vocab_size: int, num_params: int) -> str:
  m = models.create_model(config, vocab_size).config  # Fields a run's config.json omits take their defaults.
  if config.model_type == "mamba":
    mixer = (f"Mamba-2 (SSD mixer, {m.num_heads} heads of {m.head_dim} channels, {m.n_groups} group(s) of B and C; "
             if m.mixer == "mamba2" else "Mamba-1 (selective-scan mixer; ")
    shape = (f"{m.n_layers}-layer {mixer}d_model {m.d_model}, d_state {m.d_state}, expand {m.expand}, "
             f"{'bidirectional' if m.bidirectional else 'unidirectional'}, {m.pooling} pooling)")
  else:
    shape = f"{config.model_type} classifier ({', '.join(f'{k} {v}' for k, v in config.model.to_dict().items())})"
  return f"{shape}, {num_params:,} parameters"


def _data_section(report: dict) -> list[str]:
  summary = report["data_summary"]
  rows = summary["rows"]
  if summary["dataset"] == "synthetic":
    return ["The synthetic toy task of `train/data/synthetic.py` (filler words plus sentiment words, "
            f"some negated): {rows['train']:,} train, {rows['validation']:,} validation, {rows['test']:,} test "
            f"and {rows['manual_test']:,} manual-test examples. Not a model of real text."]
  used = summary.get("train_rows_used", rows["train"])  # Present when max_train_examples cut the train split.
  if summary["dataset"] == "labelled_files":
    files = summary["sources"]  # Role ("train_file", ...) -> path.
    per_label = summary["rows_per_label"]
    return [
        "The user's own labelled files (`config.dataset = \"labelled_files\"`, read by "
        "`train/data/labelled_rows.py`): " + ", ".join(f"{role} `{os.path.basename(path)}`" for role, path in files.items()) + ".",
        "",
        f"- Classes: {', '.join(summary.get('class_names', []))}.",
        *[f"- {name.capitalize()}: {(used if name == 'train' else rows[name]):,} examples "
          "(" + ", ".join(f"{count:,} {label}" for label, count in per_label[name].items()) + ")."
          for name in ("train", "validation", "test") if name in rows],
        f"- Normalization version {summary['normalization_version']} (`train/data/normalization.py`), "
        f"SentencePiece with {summary['vocab_size']:,} pieces, {summary['max_length']} tokens per text.",
    ]
  labels = summary["rows_per_label"]["manual_test"]
  return [
      "Sentiment140 (Go, Bhayani & Huang 2009): 1.6M English tweets from April to June 2009, labelled "
      "positive or negative by the emoticons they contained (distant supervision; the emoticons were "
      "then removed from the text).",
      "",
      f"- Train: {used:,} of the {rows['train']:,} tweets of the train split "
      f"(split fractions {tuple(summary['split_fractions'])}).",
      f"- Held-out validation / test: {rows['validation']:,} / {rows['test']:,} tweets, 1% each, chosen by a "
      "hash of the normalized text, stratified by label (duplicates never straddle splits).",
      f"- Manual test: the {rows['manual_test']} hand-labelled tweets of the original test set "
      f"({labels['negative']} negative, {labels['positive']} positive, {labels['neutral']} neutral), "
      "collected with different queries than the training tweets.",
      f"- Normalization version {summary['normalization_version']} (`train/data/normalization.py`), "
      f"SentencePiece BPE with {summary['vocab_size']:,} pieces, {summary['max_length']} tokens per tweet.",
  ]


def _data_limits(dataset: str) -> list[str]:
  if dataset == "synthetic":
    return ["- Trained on a synthetic toy task: it says nothing about real text."]
  if dataset == "labelled_files":
    return ["- Trained on the user's files only: texts from other sources, years or topics may be out of "
            "distribution; check the slices below and measure on a labelled sample of the texts it will see."]
  return [
      "- Tweets from April to June 2009: slang, topics and emoji use of later years are out of distribution.",
      "- Labels come from emoticons, not from people: they are noisy, and tweets without emoticons, sarcasm "
      "and mixed feelings are underrepresented.",
  ]


SLICES_HEADING = "## Slices"


def _interval(stats: dict) -> str:
  return f"{100 * stats['interval'][0]:.1f}-{100 * stats['interval'][1]:.1f}%"


def slices_section(split_reports: dict, how: str) -> list[str]:
  """The card's "Slices" section: one table per split of ``split_reports`` (split -> its numbers with a
  "slices" ``train.slices.slice_report``); flagged slices in bold with "(!)"; the topic slice, when
  there, in a collapsed table of its own. ``how``: what produced them (a sentence)."""
  lines = [SLICES_HEADING, "", how + " Accuracy per slice with its 95% Wilson interval; **(!)**: the interval "
           "lies below the split's overall accuracy. Slices (`train/slices.py`): length in tokens the model saw; "
           "contains an @mention, a URL, a #hashtag, an emoji (Unicode emoji ranges or an ASCII emoticon), a "
           "negation (not, no, never, ..., n't); has an all-caps word (2+ letters); the query topic. "
           "Small slices have wide intervals.", ""]
  for split, numbers in split_reports.items():
    if "slices" not in numbers:
      continue
    report = numbers["slices"]
    overall = report["overall"]
    lines += [f"### {SPLIT_DESCRIPTIONS.get(split, split)}", "",
              f"{report['scored'].capitalize()}: {_percent(overall['accuracy'])} of {overall['count']:,} "
              f"({_interval(overall)}).", "",
              "| slice | value | examples | accuracy | 95% interval |", "|---|---|---:|---:|---:|"]
    for feature, table in report["features"].items():
      if feature == "topic":
        continue
      for value, stats in table.items():
        mark = " **(!)**" if stats["flagged"] else ""
        lines.append(f"| {feature} | {value} | {stats['count']:,} | {_percent(stats['accuracy'])}{mark} | "
                     f"{_interval(stats)} |")
    for feature, reason in report["omitted"].items():
      lines.append(f"| {feature} | not measured: {reason} | | | |")
    topics = report["features"].get("topic")
    if topics:
      flagged = [value for value, stats in topics.items() if stats["flagged"]]
      lines += ["", f"<details><summary>{len(topics)} query topics (flagged: {', '.join(flagged) or 'none'})"
                "</summary>", "", "| topic | examples | accuracy | 95% interval |", "|---|---:|---:|---:|"]
      for value, stats in sorted(topics.items(), key=lambda item: (-item[1]["count"], item[0])):
        mark = " **(!)**" if stats["flagged"] else ""
        lines.append(f"| {value.replace('|', '/')} | {stats['count']} | {_percent(stats['accuracy'])}{mark} | "
                     f"{_interval(stats)} |")
      lines += ["", "</details>"]
    lines.append("")
  return lines


def _texts_note(reports: dict) -> str:
  """Which text the splits' slices were computed from (raw, or normalized without hashtags and capitals)."""
  normalized = [name for name, report in reports.items() if "all_caps" in report["omitted"]]
  if not normalized:
    return "sliced on their raw text (read back from the prepared dataset)"
  if len(normalized) == len(reports):
    return "sliced on their normalized text (lower-cased, '#' dropped: no hashtag or all-caps slices)"
  return (f"sliced on their raw text, but {', '.join(normalized)} on its normalized text (lower-cased, '#' "
          "dropped: no hashtag or all-caps slices)")


def _classes_sentence(class_names, threshold: float) -> str:
  if tuple(class_names) == classes.BINARY:
    return (f"It classifies a tweet as negative or positive, and as neutral when its confidence (the larger of "
            f"the two probabilities) is below {threshold}.")
  return (f"It classifies a tweet as one of {len(class_names)} classes: {', '.join(class_names)} "
          f"(`{classes.CLASSES_FILE}`; the answer is the most probable class).")


def _per_class_table(split: str, numbers: dict, class_names) -> list[str]:
  lines = [f"Per class on the {SPLIT_DESCRIPTIONS.get(split, split)} split (confusion matrix in "
           f"`{model_dir.EVALUATION_FILE}`):", "", "| class | precision | recall | F1 | examples |",
           "|---|---:|---:|---:|---:|"]
  for name, c in zip(class_names, numbers["per_class"]):
    lines.append(f"| {name} | {c['precision']:.4f} | {c['recall']:.4f} | {c['f1']:.4f} | {c['support']:,} |")
  return lines + [""]


def model_card(name: str, report: dict, config, comparison: dict, export_info: dict) -> str:
  """The README.md of an exported model (markdown), from the run's report and the re-evaluation."""
  dtype = export_info["dtype"]
  threshold = float(config.neutral_threshold)
  class_names = tuple(export_info.get("class_names") or classes.BINARY)
  binary = class_names == classes.BINARY
  lines = [
      f"# {name}",
      "",
      f"A {_model_summary(config, export_info['vocab_size'], export_info['num_params'])}, trained with mamba-jax "
      f"(`python -m train.main`). {_classes_sentence(class_names, threshold)}",
      "",
      "```bash",
      f"./run.sh python -m train.predict --model={export_info['model_dir']} \"I love this\" \"worst day ever\"",
      f"./run.sh python -m train.evaluate --model={export_info['model_dir']} --data=labelled.csv",
      "```",
      "",
      "## Files",
      "",
      "| file | content |",
      "|---|---|",
      f"| `{model_dir.PARAMS_FILE}` | parameters only, {dtype}, {export_info['params_bytes'] / 2**20:.2f} MiB "
      "([safetensors](https://github.com/huggingface/safetensors); tensor names are Flax paths joined "
      "with `/`, layout in `train/model_dir.py`) |",
      f"| `{model_dir.CONFIG_FILE}` | the training config (model fields under `model`) |",
  ]
  if export_info["tokenizer"]:
    lines.append(f"| `{export_info['tokenizer']}` | SentencePiece tokenizer model (normalization is in code) |")
  if export_info.get("classes_file"):
    lines.append(f"| `{classes.CLASSES_FILE}` | the class names, in logit order: {', '.join(class_names)} |")
  lines += [
      f"| `{model_dir.EVALUATION_FILE}` | every number below, and more (confusion matrices, threshold curve) |",
      "",
      "## Data and splits",
      "",
      *_data_section(report),
      "",
      f"## Accuracy (weights as stored: {dtype})",
      "",
      f"Measured by `train.export` after loading `{model_dir.PARAMS_FILE}` back, next to the training "
      f"run's own report (float32, step {report['evaluated_step']}).",
      "",
      f"| split | examples | accuracy (training run) | accuracy ({dtype}) | macro-F1 | ECE | max abs change of p |",
      "|---|---:|---:|---:|---:|---:|---:|",
  ]
  for split in comparison:
    stored = binary_part(comparison[split]["stored"])
    reported = binary_part(report[split])
    lines.append(
        f"| {SPLIT_DESCRIPTIONS.get(split, split)} | {stored['num_examples']:,} | {_percent(reported['accuracy'])} | "
        f"{_percent(stored['accuracy'])} | {stored['macro_f1']:.4f} | {stored['ece']:.4f} | "
        f"{comparison[split]['max_abs_probability_difference']:.2e} |")
  lines.append("")
  manual = comparison["manual_test"]["stored"] if "manual_test" in comparison else None
  if manual is not None and "three_way" in manual:
    best_threshold, best_accuracy = max(manual["three_way"]["curve"], key=lambda point: point[1])
    lines += [
        f"Three-way on all {manual['three_way']['num_examples']} manual-test tweets "
        f"({manual['three_way']['num_neutral']} neutral) with the neutral threshold {threshold}: "
        f"{_percent(manual['three_way']['accuracy'])} (best on the threshold curve: {best_accuracy * 100:.2f}% at "
        f"{best_threshold}; the curve is in `{model_dir.EVALUATION_FILE}`).",
        "",
    ]
  if not binary and "test" in comparison:
    lines += _per_class_table("test", comparison["test"]["stored"], class_names)
  sliced = {split: numbers["slices"] for split, numbers in comparison.items() if "slices" in numbers}
  lines += [
      *slices_section({split: {"slices": report} for split, report in sliced.items()},
                      f"Measured by `train.export` on the stored weights, {_texts_note(sliced)}."),
      "## Calibration",
      "",
      f"ECE is the expected calibration error of the confidence over {config.ece_bins} equal-width bins "
      "(0 = confidences match accuracies). Label smoothing "
      f"({config.label_smoothing}) during training keeps confidences away from 1.",
      "",
      "## Known limits",
      "",
      *_data_limits(report["data_summary"]["dataset"]),
  ]
  if binary:
    lines.append("- Trained on positive/negative only; 'neutral' is only low confidence under a threshold, "
                 "not a learned class.")
  lines.append(f"- Inputs longer than {config.max_length} tokens are cut to their first {config.max_length} tokens.")
  if manual is not None:
    n, p = binary_part(manual)["num_examples"], binary_part(manual)["accuracy"]
    margin = 1.96 * math.sqrt(max(p * (1 - p), 1e-12) / max(n, 1))
    lines.append(f"- The manual test is small: {n} {'binary ' if binary else ''}tweets, so its accuracy is known "
                 f"to about +-{100 * margin:.1f} points (95% normal interval).")
  lines += [
      "",
      "## Provenance",
      "",
      f"- Training workdir: `{export_info['workdir']}`; parameters of step {report['evaluated_step']} of "
      f"{report['steps']} (best validation accuracy), trained on {report['devices']} x "
      f"{report['device_kind']} in {report['train_time_s'] / 60:.1f} min.",
      f"- Exported with `{export_info['command']}` at commit {export_info['commit']} on "
      f"{export_info['date_utc']} UTC.",
      "",
  ]
  return "\n".join(lines)


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
  card = model_card(name or os.path.basename(os.path.abspath(output)), report, original.config, comparison,
                    export_info)
  with open(os.path.join(staging, model_dir.CARD_FILE), "w", encoding="utf-8") as f:
    f.write(card)
  if os.path.exists(output):
    shutil.rmtree(output)
  os.replace(staging, output)
  return evaluation_dict


def _replace_section(card: str, heading: str, section: list[str], before: str) -> str:
  """``card`` with its ``heading`` section (up to the next "## ") replaced by ``section``, or
  ``section`` inserted before the ``before`` heading."""
  text = "\n".join(section)
  lines = card.split("\n")
  if heading in lines:
    start = lines.index(heading)
    end = next((i for i in range(start + 1, len(lines)) if lines[i].startswith("## ")), len(lines))
    return "\n".join(lines[:start] + section + lines[end:])
  if before not in lines:
    raise ValueError(f"the card has no {before!r} section to put the slices before")
  at = lines.index(before)
  return "\n".join(lines[:at] + text.split("\n") + lines[at:])


def add_slices(directory: str, manual_test_path: str, command: str = "") -> dict:
  """Adds the slices of an exported model to its evaluation.json and card (see the module docstring).

  The held-out splits are those its config.json's data fields prepare (as for training;
  ``$SENT140_DATA_DIR`` when data_dir is unset). Returns {split: slice report}.

  Raises:
    FileNotFoundError: no export, or no manual-test file.
    ValueError: an accuracy differs from the one in evaluation.json (other data or weights).
  """
  from train import evaluate  # pylint: disable=import-outside-toplevel  (evaluate reads labelled files)
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
  labels, class_names = evaluate.reading_classes(model.class_names, "auto")
  rows = evaluate.read_labelled_file(manual_test_path, labels=labels, class_names=class_names)
  manual = evaluate.score(model, rows, float(model.config.neutral_threshold))
  reports["manual_test"] = manual["slices"]
  for name, report in reports.items():
    recorded = binary_part(evaluation["splits"][name]["stored"])
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
         f"{_texts_note({n: r for n, r in reports.items() if n != 'manual_test'})}, and on the raw manual-test file, "
         "whose query column gives the topics; every split's accuracy matched the table above.")
  with open(card_path, encoding="utf-8") as f:
    card = f.read()
  card = _replace_section(card, SLICES_HEADING, slices_section(
      {name: evaluation["splits"][name] for name in reports}, how), "## Calibration")
  with open(evaluation_path + ".tmp", "w", encoding="utf-8") as f:
    json.dump(provenance.to_jsonable(evaluation), f, indent=2)
  with open(card_path + ".tmp", "w", encoding="utf-8") as f:
    f.write(card)
  os.replace(evaluation_path + ".tmp", evaluation_path)
  os.replace(card_path + ".tmp", card_path)
  return reports


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f"Unexpected arguments: {' '.join(argv[1:])}")
  if not FLAGS["verbosity"].present:
    logging.set_verbosity(logging.WARNING)
  command = "python -m train.export " + " ".join(sys.argv[1:])
  if FLAGS.slices_of:
    if FLAGS.workdir or FLAGS.output or not FLAGS.manual_test:
      raise app.UsageError("--slices_of takes --manual_test, not --workdir or --output.")
    try:
      reports = add_slices(FLAGS.slices_of, FLAGS.manual_test, command)
    except (FileNotFoundError, ValueError) as e:
      print(f"ERROR: {e}", file=sys.stderr)
      sys.exit(2)
    print(f"added slices to {FLAGS.slices_of}")
    for name, report in reports.items():
      print(f"{name}:")
      for line in slices.table_lines(report, skip=("topic",)):
        print(line)
    return
  if not FLAGS.workdir or not FLAGS.output:
    raise app.UsageError("--workdir and --output are required.")
  try:
    result = export(FLAGS.workdir, FLAGS.output, FLAGS.dtype, FLAGS.checkpoint, FLAGS.name, command)
  except (FileNotFoundError, ValueError) as e:
    print(f"ERROR: {e}", file=sys.stderr)
    sys.exit(2)
  info = result["export"]
  print(f"wrote {FLAGS.output} ({info['params_bytes'] / 2**20:.2f} MiB of {info['dtype']} parameters)")
  for split, numbers in result["splits"].items():
    float32, stored = binary_part(numbers["float32"]), binary_part(numbers["stored"])
    print(f"  {split}: accuracy float32 {float32['accuracy']:.4f}, stored {stored['accuracy']:.4f}, "
          f"max abs change of p {numbers['max_abs_probability_difference']:.2e}")


def _define_flags() -> None:
  """Command-line flags (defined only when run as a program, so importing is side-effect free)."""
  flags.DEFINE_string("workdir", None, "Workdir of a finished training run.")
  flags.DEFINE_string("output", None, "Model directory to write (replaced if it is an earlier export).")
  flags.DEFINE_enum("dtype", "float32", sorted(model_dir.DISK_DTYPES), "dtype of the stored weights.")
  flags.DEFINE_enum("checkpoint", "best", ["best", "latest"], "Which checkpoint of --workdir to export.")
  flags.DEFINE_string("name", "", "Title of the model card (default: the output folder's name).")
  flags.DEFINE_string("slices_of", None, "Instead of exporting: add the slices to this exported model "
                      "directory (with --manual_test; its held-out splits are prepared from its config.json).")
  flags.DEFINE_string("manual_test", None, "With --slices_of: the raw Sentiment140 manual-test CSV.")


if __name__ == "__main__":
  _define_flags()
  app.run(main)
