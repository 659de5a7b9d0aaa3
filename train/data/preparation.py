"""What ``python -m train.prepare_data`` does: build a config's prepared data, measured.

``prepare`` builds what is missing (``train.data.pipeline.get_datasets``), after deleting the config's
prepared data first when asked to rebuild, and returns the summary table with the wall time, CPU time
and peak memory of the build; with a report path it also times a second ``get_datasets`` call (the
cache load every later run pays) and writes everything as JSON (``results/data_preparation.json``).
"""

from __future__ import annotations

import json
import os
import platform
import resource
import shutil
import time
from typing import Optional

import ml_collections

from train.data import labelled_files, pipeline, prepared_paths, sources
from train.data import summary as summary_lib


def delete_prepared(config: ml_collections.ConfigDict) -> None:
  """Deletes the prepared data of ``config``'s files (Sentiment140 or the user's; the synthetic task has none)."""
  if config.dataset not in ("sentiment140", "labelled_files"):
    return
  files = (labelled_files.find_files(config) if config.dataset == "labelled_files"
           else sources.find_sources(sources.resolve_data_dir(config.data_dir), download=False))
  shutil.rmtree(prepared_paths.PreparedPaths.for_sources(config, files).data_dir, ignore_errors=True)


def prepare(config: ml_collections.ConfigDict, *, rebuild: bool = False, report_path: Optional[str] = None,
            command: str = "") -> list[str]:
  """Builds the prepared data of ``config`` (``rebuild``: from scratch); returns the lines to print.

  ``report_path``: also write the summary, the timings, the machine and ``command`` there as JSON.

  Raises:
    FileNotFoundError, ValueError: no data, or data the pipeline refuses.
  """
  start = time.perf_counter()
  if rebuild:
    delete_prepared(config)
  datasets = pipeline.get_datasets(config)
  wall_s = time.perf_counter() - start
  usage = resource.getrusage(resource.RUSAGE_SELF)
  peak_rss_mib = usage.ru_maxrss / 1024
  cpu_s = usage.ru_utime + usage.ru_stime
  lines = [summary_lib.format_summary(datasets.summary),
           f"wall time {wall_s:.1f} s, CPU time {cpu_s:.1f} s, peak RSS {peak_rss_mib:.0f} MiB"]
  if report_path:
    reload_start = time.perf_counter()
    pipeline.get_datasets(config)  # What every later run (and training start-up) pays.
    reload_s = time.perf_counter() - reload_start
    lines.append(f"second get_datasets call (loads the cache): {reload_s:.1f} s")
    report = {
        "command": command,
        "machine": f"{os.cpu_count()}-core CPU, {platform.processor() or platform.machine()}, {platform.platform()}",
        "wall_time_s": round(wall_s, 1),
        "cpu_time_s": round(cpu_s, 1),  # User + system; less affected by other jobs on the machine.
        "load_average_1_5_15_min_at_end": [round(x, 2) for x in os.getloadavg()],
        "peak_rss_mib": round(peak_rss_mib),
        "reload_wall_time_s": round(reload_s, 1),
        "summary": datasets.summary,
    }
    os.makedirs(os.path.dirname(report_path) or ".", exist_ok=True)
    with open(report_path, "w") as f:
      json.dump(report, f, indent=2)
    lines.append(f"wrote {report_path}")
  return lines
