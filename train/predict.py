"""Classifies tweets with a trained workdir or an exported model directory.

  python -m train.predict --workdir=workdirs/sent140 "I love this" "worst day ever"
  python -m train.predict --model=models/sent140 "I love this"
  printf 'great movie\\nmeh\\n' | python -m train.predict --workdir=workdirs/sent140

One output line per input line (the arguments, else the lines of stdin), as
``train.model_files.predictions`` describes them (``--format=json`` for JSON lines).
"""

import sys

from absl import flags

from train.command_line import errors, program
from train.model_files import inference, predictions

FLAGS = flags.FLAGS


def main(argv):
  program.quiet_logging()
  lines = [predictions.argv_bytes(a) for a in argv[1:]] if len(argv) > 1 else sys.stdin.buffer
  with errors.one_line_errors():
    predictions.write_predictions(inference.load(FLAGS.workdir, FLAGS.model, FLAGS.checkpoint), lines, sys.stdout,
                                  threshold=FLAGS.threshold, output_format=FLAGS.format,
                                  batch_size=FLAGS.batch_size)


def define_flags() -> None:
  """Command-line flags (defined only when run as a program, so importing is side-effect free)."""
  program.define_model_choice()
  flags.DEFINE_float("threshold", None, "Binary negative/positive models: confidence under which the answer "
                     "is 'neutral' (default: the run's config.neutral_threshold; 0 never says neutral).")
  flags.DEFINE_enum("format", "text", ["text", "json"], "Output: tab-separated text or JSON lines.")
  flags.DEFINE_integer("batch_size", None, "Rows of every length bucket's batch (default: the engine's, "
                       "~1024 token slots per batch on the CPU).")


if __name__ == "__main__":
  program.run(main, define_flags)
