"""Where a result came from, and result values as JSON.

Every script that writes into ``results/`` (training reports, the study, the
baselines, the benchmarks) records the commit and time through these functions.
"""

from __future__ import annotations

import datetime
import json
import os
import platform
import re
import subprocess
from typing import Any, Callable, Dict, Optional, Sequence

import numpy as np

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def git_commit(paths: Sequence[str] = ()) -> str:
  """HEAD, plus "+dirty" when the working tree differs from it; "unknown" outside git.

  Args:
    paths: only changes under these repository paths count (untracked files
      included); by default any change to a tracked file counts.
  """
  try:
    head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=REPO_ROOT, capture_output=True,
                          text=True, check=True).stdout.strip()
    status = ["git", "status", "--porcelain"]
    status += ["--", *paths] if paths else ["--untracked-files=no"]
    dirty = subprocess.run(status, cwd=REPO_ROOT, capture_output=True, text=True,
                           check=True).stdout.strip()
  except (OSError, subprocess.CalledProcessError):
    return "unknown"
  return head + ("+dirty" if dirty else "")


def utc_now() -> str:
  """The current time as "YYYY-MM-DD HH:MM" UTC."""
  return datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M")


def to_jsonable(value: Any) -> Any:
  """Tuples, numpy scalars and arrays -> lists and Python numbers; other leaves -> str."""
  if isinstance(value, dict):
    return {str(k): to_jsonable(v) for k, v in value.items()}
  if isinstance(value, (list, tuple)):
    return [to_jsonable(v) for v in value]
  if isinstance(value, np.ndarray):
    return value.tolist()
  if isinstance(value, np.generic):
    return value.item()
  if value is None or isinstance(value, (bool, int, float, str)):
    return value
  return str(value)


def device_tag(device) -> str:
  """'cpu', or a short accelerator name such as 'h100' from 'NVIDIA H100 80GB HBM3'."""
  if device.platform == "cpu":
    return "cpu"
  kind = device.device_kind.lower()
  match = re.search(r"\b([a-z]+\d+[a-z]*)\b", kind.replace("nvidia", ""))
  return match.group(1) if match else re.sub(r"[^a-z0-9]+", "_", kind).strip("_")


def host_cpu() -> str:
  """The host CPU model from /proc/cpuinfo (Linux), else platform's guess."""
  try:
    with open("/proc/cpuinfo") as f:
      for line in f:
        if line.startswith("model name"):
          return line.split(":", 1)[1].strip()
  except OSError:
    pass
  return platform.processor() or platform.machine()


def host_environment(command: str, commit_paths: Sequence[str] = ()) -> Dict[str, Any]:
  """Host, commit, the command and the load average when it started (no JAX needed).

  Args:
    command: the command line that made the result.
    commit_paths: only changes under these paths make the commit "+dirty" (see git_commit).
  """
  return {
      "host_cpu": host_cpu(),
      "cpu_count": os.cpu_count(),
      "commit": git_commit(commit_paths),
      "command": command,
      "date_utc": utc_now(),
      "load_average_at_start": os.getloadavg()[0],
  }


def environment(device, command: str, commit_paths: Sequence[str] = ()) -> Dict[str, Any]:
  """Device, versions, and host_environment: what a result that ran on JAX records."""
  import jax  # Imported here: the rest of this module is used without JAX (e.g. by the TF-IDF baseline).

  kind = host_cpu() if device.platform == "cpu" else device.device_kind
  return {
      "device": f"{device.platform}: {kind}",
      "device_count": jax.device_count(),
      "jax_version": jax.__version__,
      **host_environment(command, commit_paths),
  }


def write_report(stem: str, report: dict, markdown: str) -> None:
  """Writes ``<stem>.json`` (``report`` made JSON-safe) and ``<stem>.md``; prints the markdown
  and where both went (every benchmark's last step)."""
  os.makedirs(os.path.dirname(stem) or ".", exist_ok=True)
  with open(stem + ".json", "w", encoding="utf-8") as f:
    json.dump(to_jsonable(report), f, indent=1)
  with open(stem + ".md", "w", encoding="utf-8") as f:
    f.write(markdown)
  print(markdown)
  print(f"Wrote {stem}.json and {stem}.md")


def recorded_run(path: str, inputs: dict, differences: Callable[[dict, dict], str], remedy: str) -> Optional[dict]:
  """The run record at ``path`` (JSON with its ``inputs``) if it was made with ``inputs``; None when there is none.

  ``differences(recorded inputs ({} when none), inputs)``: what differs, in words ("" when nothing).

  Raises:
    ValueError: the record was made with other inputs: "<path> was made with other inputs (<what>); <remedy>".
  """
  if not os.path.exists(path):
    return None
  with open(path, encoding="utf-8") as f:
    record = json.load(f)
  differing = differences(record.get("inputs", {}), inputs)
  if differing:
    raise ValueError(f"{path} was made with other inputs ({differing}); {remedy}")
  return record
