r"""Builds the prepared Sentiment140 data (TFDS array_record dataset, tokenizer, token cache).

  python -m train.prepare_data --config=configs/sent140.py [--config.data_dir=...]
  python -m train.prepare_data            # the reference config, configs/sent140.py

Prints rows per split and label, duplicates, malformed rows, truncation share and vocab size.
A second run finds everything built and only loads it. --rebuild starts from scratch;
--report=results/data_preparation.json also records wall time, CPU time and peak memory of
the build, and the time of a second get_datasets call (cache load): ``train.data.preparation``.
"""

import sys

from absl import flags
from ml_collections import config_flags

from train.command_line import errors, program
from train.data import preparation


def main(argv):
  program.no_arguments(argv)
  with errors.one_line_errors():
    lines = preparation.prepare(flags.FLAGS.config, rebuild=flags.FLAGS.rebuild, report_path=flags.FLAGS.report,
                                command="python -m " + " ".join(["train.prepare_data"] + sys.argv[1:]))
  print("\n".join(lines))


def define_flags() -> None:
  """Command-line flags (defined only when run as a program, so importing is side-effect free)."""
  config_flags.DEFINE_config_file("config", "configs/sent140.py", "Config whose data fields select the data.",
                                  lock_config=False)
  flags.DEFINE_bool("rebuild", False, "Delete this config's prepared data first.")
  flags.DEFINE_string("report", None, "Write the summary, wall time and peak memory to this JSON file.")


if __name__ == "__main__":
  program.run(main, define_flags)
