"""One clear line for a bad training config: unknown ``--config.x`` overrides, bad types, bad ranges.

``parse_flags`` is the ``flags_parser`` of ``absl.app.run`` for the CLIs that take a
``--config`` file: an unknown override names the field and the closest valid names
(difflib), a value of the wrong type names the field and the value; both exit with code 2
and no traceback. ``check_training_config`` checks the ranges ``train.train`` relies on.
"""

from __future__ import annotations

import difflib
import importlib.util
import sys
from typing import Sequence

import ml_collections
from absl import flags

USAGE_EXIT_CODE = 2
# Loop fields that must be >= 1 (a cadence of 0 would divide by zero, a batch of 0 trains nothing).
POSITIVE_INT_FIELDS = ("batch_size", "eval_batch_size", "log_every_steps", "eval_every_steps",
                       "checkpoint_every_steps", "keep_checkpoints", "max_length", "vocab_size")


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
  """``absl.app.run`` flags_parser: parses argv; a bad ``--config.x`` override exits 2 with one line."""
  try:
    return flags.FLAGS(list(argv))
  except flags.Error as error:
    print(f"ERROR: {str(error).splitlines()[0]}", file=sys.stderr)
    sys.exit(USAGE_EXIT_CODE)
  except (AttributeError, KeyError, TypeError, ValueError) as error:
    spec = config_file_argument(argv, flag)
    config = load_config_file(spec) if spec else None
    if config is not None:
      for name in override_names(argv, flag):
        if name not in field_names(config):
          print(f"ERROR: {unknown_override_message(name, config, flag)}", file=sys.stderr)
          sys.exit(USAGE_EXIT_CODE)
    first_line = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
    print(f"ERROR: bad --{flag} argument ({type(error).__name__}: {first_line})", file=sys.stderr)
    sys.exit(USAGE_EXIT_CODE)


def check_training_config(config: ml_collections.ConfigDict) -> None:
  """Raises ValueError (one line) for a field value ``train.train`` cannot run with."""
  for name in POSITIVE_INT_FIELDS:
    value = config[name]
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
      raise ValueError(f"config.{name} must be an integer >= 1, got {value!r}")
  if config.num_train_steps <= 0 and config.num_epochs <= 0:
    raise ValueError(f"config.num_train_steps ({config.num_train_steps}) or config.num_epochs "
                     f"({config.num_epochs}) must be > 0")
  if not config.learning_rate > 0:
    raise ValueError(f"config.learning_rate must be > 0, got {config.learning_rate!r}")
  if not 0.0 <= config.label_smoothing < 1.0:
    raise ValueError(f"config.label_smoothing must be in [0, 1), got {config.label_smoothing!r}")
