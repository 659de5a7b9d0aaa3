"""Trains and evaluates a sentiment classifier.

  python -m train.main --config=configs/sent140.py --workdir=workdirs/sent140 [--config.num_epochs=1]

Re-running the same command resumes from the latest checkpoint in the workdir. A workdir
belongs to the config that made it (train/workdir.py): a config that differs in a field
that changes the trained result stops with exit code 2 and lists the fields; use a new
--workdir, or --start_over to delete the old checkpoints and train from step 0.

Exit codes (README, "What survives what"): 0 done; 2 bad usage, config or data, another run
is training in the workdir (train/workdir_lock.py), or the disk filled up while saving a
checkpoint; 3 the loss became NaN/inf; 4 trained, but the final evaluation could not use
the best checkpoint (see eval_report.json "evaluated_checkpoint"); 75 stopped by SIGTERM or
SIGINT after saving the step it had reached (train/preemption.py): run the same command again.
"""

import os
import sys

from absl import app, flags, logging
from ml_collections import config_flags

from train import checkpointing, config_checks, eval_report, models, preemption, train, workdir_lock

FLAGS = flags.FLAGS
config_flags.DEFINE_config_file("config", None, "Training configuration file (configs/*.py).",
                                lock_config=True)
flags.DEFINE_string("workdir", None, "Checkpoints, metrics and the eval report go here "
                    "(default: ./workdirs/<config file name>).")
flags.DEFINE_bool("start_over", False, "Delete the workdir's checkpoints, metrics and report first and "
                  "train from step 0 (needed when the config changed in a field that changes the result).")

NOT_INTENDED_CHECKPOINT_EXIT_CODE = 4


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
    config_checks.check_training_config(FLAGS.config)
    report = train.train_and_evaluate(FLAGS.config, workdir, start_over=FLAGS.start_over)
  except preemption.Preempted as e:
    print(f"STOPPED: {e}", file=sys.stderr)
    sys.exit(preemption.PREEMPTED_EXIT_CODE)
  except train.NonFiniteLossError as e:
    print(f"ERROR: {e}", file=sys.stderr)
    sys.exit(3)
  except (workdir_lock.WorkdirInUse, checkpointing.CheckpointDiskFull) as e:
    print(f"ERROR: {e}", file=sys.stderr)
    sys.exit(2)
  except (ValueError, FileNotFoundError) as e:
    print(f"ERROR: {type(e).__name__}: {e}", file=sys.stderr)
    sys.exit(2)
  except OSError as e:  # Disk full outside a checkpoint save (metrics, report, prepared data).
    if not checkpointing.is_disk_full(e):
      raise
    print(f"ERROR: no space left on the device: {checkpointing.one_line(e)}", file=sys.stderr)
    sys.exit(2)
  print(f"{models.task_of(FLAGS.config).summary(report)}, {report['examples_per_s']:.0f} examples/s; "
        f"report: {eval_report.report_path(os.path.abspath(workdir))}")
  evaluated = report["evaluated_checkpoint"]
  if not evaluated["is_intended"]:
    print(f"ERROR: the best checkpoint was unreadable; the figures above are of the {evaluated['used']} "
          f"checkpoint (step {evaluated['step']}), see evaluated_checkpoint in the report.", file=sys.stderr)
    sys.exit(NOT_INTENDED_CHECKPOINT_EXIT_CODE)


if __name__ == "__main__":
  app.run(main, flags_parser=config_checks.parse_flags)
