"""The model card of an exported model: ``README.md`` of the model directory, written as markdown.

``model_card`` renders the whole card from the run's eval report, the re-evaluation of the stored
weights (``train.model_files.exporter.compare_weights``) and what the export wrote; ``slices_section``
and ``replace_section`` renew its slices section alone (``train.model_files.exporter.add_slices``).
Pure functions of their arguments: nothing is read or written here.
"""

from __future__ import annotations

import math
import os

from train.loop import models
from train.runs import classes, model_dir

SPLIT_DESCRIPTIONS = {
    "validation": "held-out validation (picks the best checkpoint)",
    "test": "held-out test",
    "manual_test": "manual test, positive/negative tweets (binary)",
}


def binary_part(split_report: dict) -> dict:
  """The positive/negative metrics of a split report (the manual test nests them under "binary")."""
  return split_report["binary"] if "binary" in split_report else split_report


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
  "slices" ``train.scoring.slices.slice_report``); flagged slices in bold with "(!)"; the topic slice, when
  there, in a collapsed table of its own. ``how``: what produced them (a sentence)."""
  lines = [SLICES_HEADING, "", how + " Accuracy per slice with its 95% Wilson interval; **(!)**: the interval "
           "lies below the split's overall accuracy. Slices (`train/scoring/slices.py`): length in tokens the model saw; "
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


def texts_note(reports: dict) -> str:
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
      f"./run.sh python -m train.predict --model={export_info['model_dir']} --input=tweets.csv --text_column=text "
      "--output=scored.csv",
      "```",
      "",
      "Both score through mamba-jax's inference engine (`train/model_files/inference.py`: length buckets, one "
      "compiled program per bucket, kept in a compilation cache between runs); its probabilities are those of "
      "padding every text to max_length up to float32 rounding.",
      "",
      "## Files",
      "",
      "| file | content |",
      "|---|---|",
      f"| `{model_dir.PARAMS_FILE}` | parameters only, {dtype}, {export_info['params_bytes'] / 2**20:.2f} MiB "
      "([safetensors](https://github.com/huggingface/safetensors); tensor names are Flax paths joined "
      "with `/`, layout in `train/runs/model_dir.py`) |",
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
      f"| split | examples | accuracy (training run) | accuracy ({dtype}) | macro-recall | macro-F1 | ECE | "
      "max abs change of p |",
      "|---|---:|---:|---:|---:|---:|---:|---:|",
  ]
  for split in comparison:
    stored = binary_part(comparison[split]["stored"])
    reported = binary_part(report[split])
    lines.append(
        f"| {SPLIT_DESCRIPTIONS.get(split, split)} | {stored['num_examples']:,} | {_percent(reported['accuracy'])} | "
        f"{_percent(stored['accuracy'])} | {stored['macro_recall']:.4f} | {stored['macro_f1']:.4f} | {stored['ece']:.4f} | "
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
                      f"Measured by `train.export` on the stored weights, {texts_note(sliced)}."),
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


TRANSFER_HEADING = "## Transfer to other tweets"
TRANSFER_TABLE = "## Test macro-averaged recall (%)"  # The section of a transfer table.md the card shows.


def transfer_section(tables: dict, how: str) -> list[str]:
  """The card's transfer section: for each transfer benchmark folder -> its table.md text
  (``train.study.domain_adaptation.table``), the table's opening paragraph and its macro-recall table."""
  lines = [TRANSFER_HEADING, "", how]
  for folder, text in tables.items():
    parts = text.split("\n")
    if TRANSFER_TABLE not in parts:
      raise ValueError(f"{folder}/table.md has no {TRANSFER_TABLE!r} section (not a transfer benchmark table)")
    start = parts.index(TRANSFER_TABLE) + 1
    end = next((i for i in range(start, len(parts)) if parts[i].startswith("## ")), len(parts))
    intro = next((line for line in parts[1:start] if line.strip() and not line.startswith("#")), "")
    lines += ["", f"### {parts[0].lstrip('# ').strip()}", "", intro, "",
              "Test macro-averaged recall (%):", "", *[line for line in parts[start:end] if line.strip()]]
  return lines + [""]


def replace_section(card: str, heading: str, section: list[str], before: str) -> str:
  """``card`` with its ``heading`` section (up to the next "## ") replaced by ``section``, or
  ``section`` inserted before the ``before`` heading."""
  text = "\n".join(section)
  lines = card.split("\n")
  if heading in lines:
    start = lines.index(heading)
    end = next((i for i in range(start + 1, len(lines)) if lines[i].startswith("## ")), len(lines))
    return "\n".join(lines[:start] + section + lines[end:])
  if before not in lines:
    raise ValueError(f"the card has no {before!r} section to put the {heading!r} section before")
  at = lines.index(before)
  return "\n".join(lines[:at] + text.split("\n") + lines[at:])
