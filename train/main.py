"""Trains and evaluates a sentiment classifier.

  python -m train.main --config=configs/sent140.py --workdir=workdirs/sent140 [--config.num_epochs=1]

Re-running the same command resumes from the latest checkpoint in the workdir.
"""

import os
import sys

from absl import app, flags, logging
from ml_collections import config_flags

from train import train

FLAGS = flags.FLAGS
config_flags.DEFINE_config_file("config", None, "Training configuration file (configs/*.py).",
                                lock_config=True)
flags.DEFINE_string("workdir", None, "Checkpoints, metrics and the eval report go here "
                    "(default: ./workdirs/<config file name>).")


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f"Unexpected arguments: {' '.join(argv[1:])}")
  if FLAGS.config is None:
    raise app.UsageError("--config is required, e.g. --config=configs/sent140.py")
  if not FLAGS["verbosity"].present:
    logging.set_verbosity(logging.WARNING)  # Orbax logs every save at INFO.
  config_file = flags.FLAGS["config"].config_filename
  workdir = FLAGS.workdir or os.path.join(
      "workdirs", os.path.splitext(os.path.basename(config_file))[0])
  logging.info("Workdir: %s", workdir)
  try:
    report = train.train_and_evaluate(FLAGS.config, workdir)
  except train.NonFiniteLossError as e:
    print(f"ERROR: {e}", file=sys.stderr)
    sys.exit(3)
  except (ValueError, FileNotFoundError) as e:
    print(f"ERROR: {type(e).__name__}: {e}", file=sys.stderr)
    sys.exit(2)
  manual = report["manual_test"]
  print(f"test accuracy {report['test']['accuracy']:.4f}, manual_test binary accuracy "
        f"{manual['binary']['accuracy']:.4f}, three-way {manual['three_way']['accuracy']:.4f} "
        f"(threshold {manual['three_way']['threshold']}), {report['examples_per_s']:.0f} examples/s; "
        f"report: {os.path.join(os.path.abspath(workdir), 'eval_report.json')}")


if __name__ == "__main__":
  app.run(main)
