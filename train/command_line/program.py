"""How a ``python -m train.X`` command runs: its flags defined and parsed, its logging quiet, its model chosen.

A command module is its flags (a ``define_flags`` function, called only when it runs as a program, so
importing it defines nothing) and a ``main`` that makes one call into the library, with bad input
turned into one line by ``train.command_line.errors``; ``run(main, define_flags)`` is its
``if __name__ == "__main__":``. Flags are parsed by ``train.command_line.flag_parsing.parse_flags``
(one line, exit code 2 for a bad flag or ``--config.x`` override).
"""

from __future__ import annotations

from typing import Callable, Sequence

from absl import app, flags, logging

from train.command_line import errors, flag_parsing


def run(main: Callable[[list[str]], None], define_flags: Callable[[], None]) -> None:
  """Defines the command's flags, parses argv (``flag_parsing.parse_flags``) and runs ``main(argv)``."""
  define_flags()
  app.run(main, flags_parser=flag_parsing.parse_flags)


def quiet_logging() -> None:
  """Logs warnings and errors only (Orbax logs every save at INFO), unless ``--verbosity`` was given."""
  if not flags.FLAGS["verbosity"].present:
    logging.set_verbosity(logging.WARNING)


def no_arguments(argv: Sequence[str]) -> None:
  """A command that takes flags only: positional arguments are a usage error (one line, exit code 2)."""
  if len(argv) > 1:
    errors.fail(f"unexpected arguments: {' '.join(argv[1:])}")


def define_model_choice(checkpoint_help: str = "Which checkpoint of --workdir to load.") -> None:
  """``--workdir`` (a training run) or ``--model`` (an exported model directory), and ``--checkpoint``.

  Exactly one of the two is given; ``train.model_files.inference.load`` says so (ValueError) otherwise.
  """
  flags.DEFINE_string("workdir", None, "Workdir of a training run (holds config.json and checkpoints/).")
  flags.DEFINE_string("model", None, "An exported model directory (python -m train.export); instead of --workdir.")
  flags.DEFINE_enum("checkpoint", "best", ["best", "latest"], checkpoint_help)
