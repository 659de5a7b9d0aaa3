r"""Builds the prepared Sentiment140 data (TFDS array_record dataset, tokenizer, token cache).

  python -m train.prepare_data --config=configs/sent140.py [--config.data_dir=...]
  python -m train.prepare_data            # the reference config, configs/sent140.py

Prints rows per split and label, duplicates, malformed rows, truncation share and vocab size.
A second run finds everything built and only loads it. --rebuild starts from scratch;
--report=results/data_preparation.json also records wall time, CPU time and peak memory of
the build, and the time of a second get_datasets call (cache load).
"""

import json
import os
import platform
import resource
import shutil
import sys
import time

from absl import app, flags
from ml_collections import config_flags

from train.data import labelled_files, pipeline, prepared_paths, sources
from train.data import summary as summary_lib
from train.data.datasets import SPLIT_NAMES


def format_summary(summary: dict) -> str:
  class_names = summary.get("class_names") or ["negative", "positive", "neutral"]  # Own files: theirs.
  widths = [max(8, len(name)) + (1 if i < 2 and "class_names" not in summary else 0)
            for i, name in enumerate(class_names)]
  lines = [f"{'split':<12} {'rows':>9} " + " ".join(f"{name:>{w}}" for name, w in zip(class_names, widths))
           + f" {'truncated':>10}"]
  for name in (n for n in SPLIT_NAMES if n in summary["rows"]):
    rows = summary["rows"][name]
    labels = summary["rows_per_label"][name]
    truncated = summary.get("truncated_share_by_split", {}).get(name, 0.0)
    lines.append(f"{name:<12} {rows:>9,} " + " ".join(f"{labels.get(c, 0):>{w},}" for c, w in zip(class_names, widths))
                 + f" {truncated:>9.3%}")
  details = summary.get("duplicate_details", {})
  lines += [
      f"duplicates (rows repeating an earlier normalized text): {summary['duplicates']:,}"
      + (f" in {details['duplicate_groups']:,} texts, {details['conflicting_label_texts']:,} with both labels"
         if details else ""),
      summary_lib.describe_unused_rows(summary, "malformed rows skipped"),
      f"train tweets longer than max_length={summary['max_length']}: {summary['truncated_share']:.3%}",
      f"vocab size: {summary['vocab_size']:,}",
  ]
  if summary.get("prepared_dir"):
    lines.append(f"prepared data: {summary['prepared_dir']}")
  return "\n".join(lines)


def main(argv):
  del argv
  config = flags.FLAGS.config
  start = time.perf_counter()
  try:
    if flags.FLAGS.rebuild and config.dataset in ("sentiment140", "labelled_files"):
      files = (labelled_files.find_files(config) if config.dataset == "labelled_files"
               else sources.find_sources(sources.resolve_data_dir(config.data_dir), download=False))
      shutil.rmtree(prepared_paths.PreparedPaths.for_sources(config, files).data_dir, ignore_errors=True)
    datasets = pipeline.get_datasets(config)
  except (FileNotFoundError, ValueError) as error:
    sys.exit(f"prepare_data: {error}")
  wall_s = time.perf_counter() - start
  usage = resource.getrusage(resource.RUSAGE_SELF)
  peak_rss_mib = usage.ru_maxrss / 1024
  cpu_s = usage.ru_utime + usage.ru_stime
  print(format_summary(datasets.summary))
  print(f"wall time {wall_s:.1f} s, CPU time {cpu_s:.1f} s, peak RSS {peak_rss_mib:.0f} MiB")
  if flags.FLAGS.report:
    reload_start = time.perf_counter()
    pipeline.get_datasets(config)  # What every later run (and training start-up) pays.
    reload_s = time.perf_counter() - reload_start
    print(f"second get_datasets call (loads the cache): {reload_s:.1f} s")
    report = {
        "command": "python -m " + " ".join(["train.prepare_data"] + sys.argv[1:]),
        "machine": f"{os.cpu_count()}-core CPU, {platform.processor() or platform.machine()}, {platform.platform()}",
        "wall_time_s": round(wall_s, 1),
        "cpu_time_s": round(cpu_s, 1),  # User + system; less affected by other jobs on the machine.
        "load_average_1_5_15_min_at_end": [round(x, 2) for x in os.getloadavg()],
        "peak_rss_mib": round(peak_rss_mib),
        "reload_wall_time_s": round(reload_s, 1),
        "summary": datasets.summary,
    }
    os.makedirs(os.path.dirname(flags.FLAGS.report) or ".", exist_ok=True)
    with open(flags.FLAGS.report, "w") as f:
      json.dump(report, f, indent=2)
    print(f"wrote {flags.FLAGS.report}")


def _define_flags() -> None:
  """Command-line flags (defined only when run as a program, so importing is side-effect free)."""
  config_flags.DEFINE_config_file("config", "configs/sent140.py", "Config whose data fields select the data.",
                                  lock_config=False)
  flags.DEFINE_bool("rebuild", False, "Delete this config's prepared data first.")
  flags.DEFINE_string("report", None, "Write the summary, wall time and peak memory to this JSON file.")


if __name__ == "__main__":
  _define_flags()
  app.run(main)
