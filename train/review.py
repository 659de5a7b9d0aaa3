r"""The review database's labels as a training file.

  python -m train.review export --db=reviews.sqlite --output=reviewed.tsv [--only_labels=negative,positive]

Writes text, label, reviewer, reviewed_at (TSV; ``train/service/review_export.py``), the file
``configs/own_data.py`` fine-tunes the served model on:

  python -m train.main --config=configs/own_data.py --workdir=workdirs/reviewed \
      --config.train_file=reviewed.tsv --config.text_column=text --config.label_column=label \
      --config.init_from=models/sent140_mamba
"""

from absl import flags

from train.command_line import errors, program
from train.service import review_export

FLAGS = flags.FLAGS
COMMANDS = ("export",)


def main(argv):
  if len(argv) != 2 or argv[1] not in COMMANDS:
    errors.fail(f"give one command, one of {list(COMMANDS)}: python -m train.review export --db=... "
                f"--output=reviewed.tsv (got {argv[1:]})")
  with errors.one_line_errors((FileNotFoundError, ValueError, OSError)):
    print(review_export.export_summary(FLAGS.output, review_export.export_reviews(FLAGS.db, FLAGS.output,
                                                                                   FLAGS.only_labels)))


def define_flags() -> None:
  """Command-line flags (defined only when run as a program, so importing is side-effect free)."""
  flags.DEFINE_string("db", "reviews.sqlite", "The review database of python -m train.serve.")
  flags.DEFINE_string("output", "reviewed.tsv", "The TSV to write (replaced whole).")
  flags.DEFINE_list("only_labels", None, "Keep only these labels (default: all).")


if __name__ == "__main__":
  program.run(main, define_flags)
