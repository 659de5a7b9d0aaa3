"""What machine a benchmark ran on: device tag, host CPU, versions, commit, load."""

from __future__ import annotations

import datetime
import os
import platform
import re
from typing import Any, Dict

import jax

from train import provenance


def device_tag(device: jax.Device) -> str:
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


def environment(device: jax.Device, command: str) -> Dict[str, Any]:
  """Device, host, versions, commit, the command and the load average when it started."""
  kind = host_cpu() if device.platform == "cpu" else device.device_kind
  return {
      "device": f"{device.platform}: {kind}",
      "device_count": jax.device_count(),
      "host_cpu": host_cpu(),
      "cpu_count": os.cpu_count(),
      "jax_version": jax.__version__,
      "commit": provenance.git_commit(),
      "command": command,
      "date_utc": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M"),
      "load_average_at_start": os.getloadavg()[0],
  }
