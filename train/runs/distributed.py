"""Multi-process (multi-host) setup: which process this is, then JAX's own distributed runtime.

One process runs per host (or per GPU); ``jax.distributed.initialize`` connects them
through a coordinator (process 0's host and a free port), after which ``jax.devices()``
lists the devices of every process and one jitted step spans all of them. Nothing here
coordinates processes itself: it only decides the three settings and hands them to JAX.

Each setting comes from the config (``--config.coordinator_address``,
``--config.num_processes``, ``--config.process_id``) or the environment:

* JAX's variables: ``JAX_COORDINATOR_ADDRESS`` (read by JAX itself too),
  ``JAX_NUM_PROCESSES`` and ``JAX_PROCESS_ID``;
* SLURM: ``SLURM_NTASKS`` and ``SLURM_PROCID`` (JAX derives the coordinator from
  the job's first node);
* on a Cloud TPU pod slice nothing needs to be set: JAX asks the TPU metadata.

Sources that give different values for one setting are an error, and so is an
environment of several processes with ``config.distributed`` off (each would train alone
into the same workdir).

``wait_for_all`` is a barrier of JAX's coordination service, for the one place where the
processes must not arrive far apart: their first computation together (see its docstring).
"""

from __future__ import annotations

import dataclasses
import os
from typing import Mapping, Optional

import jax
import ml_collections
import orbax.checkpoint as ocp


# How long a process waits at a barrier for the slowest one (data loading, compilation).
BARRIER_TIMEOUT_S = 30 * 60


class DistributedSettingsError(ValueError):
  """The process settings are contradictory or malformed (one line)."""


@dataclasses.dataclass(frozen=True)
class ProcessSettings:
  """What to pass to ``jax.distributed.initialize``; None: left to JAX's cluster detection."""

  coordinator_address: Optional[str]
  num_processes: Optional[int]
  process_id: Optional[int]


# Setting (also the config field's name) -> the environment variables that give it too.
_VARIABLES = {
    "coordinator_address": ("JAX_COORDINATOR_ADDRESS",),
    "num_processes": ("JAX_NUM_PROCESSES", "SLURM_NTASKS"),
    "process_id": ("JAX_PROCESS_ID", "SLURM_PROCID"),
}


def _config_value(config: ml_collections.ConfigDict, field: str):
  """The config's value of ``field``, or None where it holds the unset marker ("" or -1)."""
  value = config[field]
  return None if value in ("", -1) else value


def _parse(setting: str, source: str, raw) -> object:
  if setting == "coordinator_address":
    host, _, port = str(raw).rpartition(":")
    if not host or not port.isdigit():
      raise DistributedSettingsError(f"{source}={raw!r} is not a host:port coordinator address")
    return str(raw)
  try:
    return int(raw)
  except (TypeError, ValueError):
    raise DistributedSettingsError(f"{source}={raw!r} is not an integer") from None


def _candidates(config: ml_collections.ConfigDict, environ: Mapping[str, str], setting: str) -> dict:
  """{source name: parsed value} of every source that gives ``setting``."""
  found = {}
  value = _config_value(config, setting)
  if value is not None:
    found[f"--config.{setting}"] = _parse(setting, f"--config.{setting}", value)
  for variable in _VARIABLES[setting]:
    if environ.get(variable, "") != "":
      found[variable] = _parse(setting, variable, environ[variable])
  return found


def resolve_process_settings(config: ml_collections.ConfigDict,
                             environ: Mapping[str, str]) -> Optional[ProcessSettings]:
  """The settings of this process, or None for a single-process run (``config.distributed`` off).

  Raises:
    DistributedSettingsError: two sources disagree, a value is malformed or out of range, or
      the settings ask for several processes while ``config.distributed`` is off.
  """
  found = {setting: _candidates(config, environ, setting) for setting in _VARIABLES}
  for setting, values in found.items():
    if len(set(values.values())) > 1:
      told = " but ".join(f"{value!r} from {source}" for source, value in values.items())
      raise DistributedSettingsError(f"the process settings disagree: {setting} is {told}")
  resolved = {setting: next(iter(values.values()), None) for setting, values in found.items()}
  if not config.distributed:
    explicit = [source for values in found.values() for source in values if source.startswith("--config.")]
    several = [source for source, count in found["num_processes"].items() if count != 1]
    if explicit or several:
      source = (explicit or several)[0]
      raise DistributedSettingsError(
          f"{source} asks for a multi-process run but config.distributed is False "
          "(set --config.distributed=True, or run a single process)")
    return None
  count, index = resolved["num_processes"], resolved["process_id"]
  if count is not None and count < 1:
    raise DistributedSettingsError(f"num_processes is {count}; it must be at least 1")
  if index is not None and (index < 0 or (count is not None and index >= count)):
    upper = count - 1 if count is not None else "num_processes - 1"
    raise DistributedSettingsError(f"process_id is {index}; it must be in 0..{upper}")
  return ProcessSettings(**resolved)


def initialize(config: ml_collections.ConfigDict, environ: Optional[Mapping[str, str]] = None) -> None:
  """Connects this process to the others with ``jax.distributed.initialize`` (no-op if not distributed).

  Must run before anything touches a JAX device. On CPU, cross-process collectives use
  ``config.cpu_collectives`` (gloo).
  """
  settings = resolve_process_settings(config, os.environ if environ is None else environ)
  if settings is None:
    return
  jax.config.update("jax_cpu_collectives_implementation", config.cpu_collectives)
  jax.distributed.initialize(coordinator_address=settings.coordinator_address,
                             num_processes=settings.num_processes, process_id=settings.process_id)


def wait_for_all(name: str) -> None:
  """Blocks until every process has called ``wait_for_all(name)``; a no-op in a single process.

  A barrier of JAX's coordination service (through Orbax), not a collective. On CPU,
  XLA's gloo collectives give the processes only 30 s to join the first collective between
  them ("Gloo context initialization failed: DEADLINE_EXCEEDED"), while processes that load
  data or compile at different speeds, or find different programs in a compilation cache,
  drift further apart than that. Call it right before the first cross-process computation.
  """
  ocp.multihost.get_barrier_sync_fn()(key=name, timeout_ms=BARRIER_TIMEOUT_S * 1000)
