"""absl's flags parsed with one-line errors; a bad ``--config.x`` override names the field.

``parse_flags`` is the ``flags_parser`` of every ``python -m train.X`` command (``train.command_line.
program.run``): a flag error is one line, exit code 2. For the commands that take a ``--config`` file,
an unknown override names the field and the closest valid names (difflib), a value of the wrong type
names the field and the value; both exit with code 2 and no traceback.
"""

from __future__ import annotations

import difflib
import importlib.util
from typing import Sequence

import ml_collections
from absl import flags

from train.command_line import errors


def field_names(config: ml_collections.ConfigDict, prefix: str = "") -> list[str]:
  """Every dotted field name of ``config``, nested ConfigDicts included (``model``, ``model.d_model``)."""
  names = []
  for key, value in config.items():
    names.append(prefix + key)
    if isinstance(value, ml_collections.ConfigDict):
      names += field_names(value, f"{prefix}{key}.")
  return names


def unknown_override_message(name: str, config: ml_collections.ConfigDict, flag: str = "config") -> str:
  """``--config.<name>`` is not a field: one line with the closest valid names."""
  valid = field_names(config)
  close = difflib.get_close_matches(name, valid, n=3, cutoff=0.6)
  hint = f"; closest valid names: {', '.join(close)}" if close else f"; valid names: {', '.join(sorted(valid))}"
  return f"--{flag}.{name}: no such config field{hint}"


def override_names(argv: Sequence[str], flag: str = "config") -> list[str]:
  """The field names of every ``--config.<name>[=value]`` argument, in order."""
  names = []
  for arg in argv[1:]:
    if arg == "--":
      break
    for dashes in ("--", "-"):
      head = f"{dashes}{flag}."
      if arg.startswith(head):
        names.append(arg[len(head):].split("=", 1)[0])
        break
  return names


def config_file_argument(argv: Sequence[str], flag: str = "config") -> str | None:
  """The value of ``--config=FILE`` (or ``--config FILE``) in argv, or None."""
  for index, arg in enumerate(argv[1:], start=1):
    if arg.startswith(f"--{flag}="):
      return arg.split("=", 1)[1]
    if arg == f"--{flag}" and index + 1 < len(argv):
      return argv[index + 1]
  return None


def load_config_file(spec: str) -> ml_collections.ConfigDict:
  """``configs/x.py`` or ``configs/x.py:arg`` -> its get_config() (as config_flags loads it)."""
  path, _, arg = spec.partition(":")
  module_spec = importlib.util.spec_from_file_location("_config_being_checked", path)
  module = importlib.util.module_from_spec(module_spec)
  module_spec.loader.exec_module(module)
  return module.get_config(arg) if arg else module.get_config()


def parse_flags(argv: Sequence[str], flag: str = "config") -> list[str]:
  """``absl.app.run`` flags_parser: parses argv; a bad flag or ``--config.x`` override exits 2 with one line."""
  try:
    return flags.FLAGS(list(argv))
  except flags.Error as error:
    errors.fail(str(error).splitlines()[0])
  except (AttributeError, KeyError, TypeError, ValueError) as error:
    spec = config_file_argument(argv, flag)
    config = load_config_file(spec) if spec else None
    if config is not None:
      for name in override_names(argv, flag):
        if name not in field_names(config):
          errors.fail(unknown_override_message(name, config, flag))
    first_line = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
    errors.fail(f"bad --{flag} argument ({type(error).__name__}: {first_line})")
