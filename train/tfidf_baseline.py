r"""TF-IDF + logistic regression baseline on the study's splits and normalization.

  python -m train.tfidf_baseline                        # results/tfidf_baseline.{json,md}
  python -m train.tfidf_baseline --config=configs/sent140.py --config.max_train_examples=100000
  python -m train.tfidf_baseline --config=configs/tiny.py --output_dir=/tmp/tfidf   # synthetic

What it fits and measures: ``train.study.tfidf_baseline``.
"""

import os
import sys

from absl import flags
from ml_collections import config_flags

from train.command_line import errors, program
from train.study import tfidf_baseline

FLAGS = flags.FLAGS


def main(argv):
  program.no_arguments(argv)
  with errors.one_line_errors(name_kind=True):
    report = tfidf_baseline.run(FLAGS.config, FLAGS.output_dir, FLAGS.c_values, min_df=FLAGS.min_df,
                                max_iter=FLAGS.max_iter,
                                command=" ".join(["python -m train.tfidf_baseline"] + sys.argv[1:]))
  stem = os.path.join(FLAGS.output_dir, "tfidf_baseline")
  manual = (f", manual binary accuracy {report['manual_test']['binary']['accuracy']:.4f}"
            if "manual_test" in report else "")
  print(f"test accuracy {report['test']['accuracy']:.4f}{manual}; wrote {stem}.json and {stem}.md")


def define_flags() -> None:
  """Command-line flags (defined only when run as a program, so importing is side-effect free)."""
  config_flags.DEFINE_config_file(
      "config", "configs/sent140.py", "Config whose data fields (dataset, data_dir, "
      "split_fractions, max_train_examples, ...) select the data.", lock_config=False)
  flags.DEFINE_string("output_dir", "results", "Where tfidf_baseline.{json,md} go.")
  flags.DEFINE_list("c_values", ["0.25", "0.5", "1", "2", "4"],
                    "Inverse L2 strengths tried (the best on validation is kept).")
  flags.DEFINE_integer("min_df", 2, "Drop n-grams seen in fewer train tweets.")
  flags.DEFINE_integer("max_iter", 1000, "Logistic regression iterations (lbfgs).")


if __name__ == "__main__":
  program.run(main, define_flags)
