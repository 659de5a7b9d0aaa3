"""Exports a training workdir as a self-contained model directory with a model card.

  python -m train.export --workdir=workdirs/sent140 --output=models/sent140 [--dtype=bfloat16]

Writes parameters only (no optimizer state) as safetensors, the tokenizer, the training
config and ``evaluation.json`` + ``README.md`` (the model card); the layout is documented in
``train/model_dir.py``. The exported weights are loaded back (``train.inference``) and evaluated on the run's
validation, test and manual-test splits (so the data must be available, as for training):
the card reports the accuracy of the stored weights next to the training run's own report,
and the largest probability change that casting to ``--dtype`` caused.
"""

from __future__ import annotations

import json
import math
import os
import shutil
import sys

import numpy as np
from absl import app, flags, logging

from train import eval_report, inference, metrics, model_dir, models, pretrained_init, provenance
from train.data import pipeline

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


def compare_weights(original: inference.LoadedModel, stored: inference.LoadedModel, splits) -> dict:
  """split -> {float32: metrics, stored: metrics, max_abs_probability_difference}."""
  result = {}
  for name in EVALUATED_SPLITS:
    split = splits[name]
    p_original, p_stored = original.probabilities(split), stored.probabilities(split)
    result[name] = {
        "float32": metrics.split_metrics(name, p_original, split.labels, original.config.neutral_threshold,
                                         original.config.ece_bins),
        "stored": metrics.split_metrics(name, p_stored, split.labels, stored.config.neutral_threshold,
                                        stored.config.ece_bins),
        "max_abs_probability_difference": float(np.max(np.abs(p_original - p_stored))) if len(split) else 0.0,
    }
  return result


def _percent(x: float) -> str:
  return f"{100 * x:.2f}%"


def _model_summary(config, vocab_size: int, num_params: int) -> str:
  m = models.create_model(config, vocab_size).config  # Fields a run's config.json omits take their defaults.
  if config.model_type == "mamba":
    shape = (f"{m.n_layers}-layer Mamba (d_model {m.d_model}, d_state {m.d_state}, expand {m.expand}, "
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
  labels = summary["rows_per_label"]["manual_test"]
  used = summary.get("train_rows_used", rows["train"])  # Present when max_train_examples cut the train split.
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
  return [
      "- Tweets from April to June 2009: slang, topics and emoji use of later years are out of distribution.",
      "- Labels come from emoticons, not from people: they are noisy, and tweets without emoticons, sarcasm "
      "and mixed feelings are underrepresented.",
  ]


def model_card(name: str, report: dict, config, comparison: dict, export_info: dict) -> str:
  """The README.md of an exported model (markdown), from the run's report and the re-evaluation."""
  dtype = export_info["dtype"]
  threshold = float(config.neutral_threshold)
  lines = [
      f"# {name}",
      "",
      f"A {_model_summary(config, export_info['vocab_size'], export_info['num_params'])}, trained with mamba-jax "
      f"(`python -m train.main`). It classifies a tweet as negative or positive, and as neutral "
      f"when its confidence (the larger of the two probabilities) is below {threshold}.",
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
  for split in EVALUATED_SPLITS:
    stored = binary_part(comparison[split]["stored"])
    reported = binary_part(report[split])
    lines.append(
        f"| {SPLIT_DESCRIPTIONS[split]} | {stored['num_examples']:,} | {_percent(reported['accuracy'])} | "
        f"{_percent(stored['accuracy'])} | {stored['macro_f1']:.4f} | {stored['ece']:.4f} | "
        f"{comparison[split]['max_abs_probability_difference']:.2e} |")
  manual = comparison["manual_test"]["stored"]
  best_threshold, best_accuracy = max(manual["three_way"]["curve"], key=lambda point: point[1])
  n = manual["binary"]["num_examples"]
  p = manual["binary"]["accuracy"]
  margin = 1.96 * math.sqrt(max(p * (1 - p), 1e-12) / max(n, 1))
  lines += [
      "",
      f"Three-way on all {manual['three_way']['num_examples']} manual-test tweets "
      f"({manual['three_way']['num_neutral']} neutral) with the neutral threshold {threshold}: "
      f"{_percent(manual['three_way']['accuracy'])} (best on the threshold curve: {best_accuracy * 100:.2f}% at "
      f"{best_threshold}; the curve is in `{model_dir.EVALUATION_FILE}`).",
      "",
      "## Calibration",
      "",
      f"ECE is the expected calibration error of the confidence over {config.ece_bins} equal-width bins "
      "(0 = confidences match accuracies). Label smoothing "
      f"({config.label_smoothing}) during training keeps confidences away from 1.",
      "",
      "## Known limits",
      "",
      *_data_limits(report["data_summary"]["dataset"]),
      "- Trained on positive/negative only; 'neutral' is only low confidence under a threshold, not a learned class.",
      f"- Inputs longer than {config.max_length} tokens are cut to their first {config.max_length} tokens.",
      f"- The manual test is small: {n} binary tweets, so its accuracy is known to about "
      f"+-{100 * margin:.1f} points (95% normal interval).",
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
  tokenizer = model_dir.tokenizer_file(workdir)
  if tokenizer:
    shutil.copyfile(tokenizer, os.path.join(staging, os.path.basename(tokenizer)))
  elif original.config.dataset != "synthetic":
    raise FileNotFoundError(f"no tokenizer.* file in {workdir}")

  stored = inference.load_exported(staging)
  splits = pipeline.get_datasets(original.config, log=lambda message: print(message, file=sys.stderr),
                                 given_tokenizer=pretrained_init.given_tokenizer_of_run(original.config, workdir)).splits
  comparison = compare_weights(original, stored, splits)
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


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f"Unexpected arguments: {' '.join(argv[1:])}")
  if not FLAGS.workdir or not FLAGS.output:
    raise app.UsageError("--workdir and --output are required.")
  if not FLAGS["verbosity"].present:
    logging.set_verbosity(logging.WARNING)
  command = "python -m train.export " + " ".join(sys.argv[1:])
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


if __name__ == "__main__":
  _define_flags()
  app.run(main)
