"""Trains and evaluates a sentiment classifier.

  python -m train.main --config=configs/sent140.py --workdir=workdirs/sent140 [--config.num_epochs=1]

Re-running the same command resumes from the latest checkpoint in the workdir. A workdir
belongs to the config that made it (train/runs/workdir.py): a config that differs in a field
that changes the trained result stops with exit code 2 and lists the fields; use a new
--workdir, or --start_over to delete the old checkpoints and train from step 0.

Exit codes (README, "What survives what"): 0 done; 2 bad usage, config or data, another run
is training in the workdir (train/runs/workdir_lock.py), or the disk filled up while saving a
checkpoint; 3 the loss became NaN/inf; 4 trained, but the final evaluation could not use
the best checkpoint (see eval_report.json "evaluated_checkpoint"); 75 stopped by SIGTERM or
SIGINT after saving the step it had reached (train/runs/preemption.py): run the same command again.
"""

import os

from absl import flags, logging
from ml_collections import config_flags

from train.command_line import errors, program
from train.loop import config_checks, models, trainer
from train.runs import checkpointing, eval_report, preemption, workdir_lock

FLAGS = flags.FLAGS

NON_FINITE_LOSS_EXIT_CODE = 3
NOT_INTENDED_CHECKPOINT_EXIT_CODE = 4


def main(argv):
  program.no_arguments(argv)
  if FLAGS.config is None:
    errors.fail("--config is required, e.g. --config=configs/sent140.py")
  program.quiet_logging()
  config_file = FLAGS["config"].config_filename
  workdir = FLAGS.workdir or os.path.join("workdirs", os.path.splitext(os.path.basename(config_file))[0])
  logging.info("Workdir: %s", workdir)
  try:
    config_checks.check_training_config(FLAGS.config)
    report = trainer.train_and_evaluate(FLAGS.config, workdir, start_over=FLAGS.start_over)
  except preemption.Preempted as e:
    errors.fail(str(e), preemption.PREEMPTED_EXIT_CODE, label="STOPPED")
  except trainer.NonFiniteLossError as e:
    errors.fail(str(e), NON_FINITE_LOSS_EXIT_CODE)
  except (workdir_lock.WorkdirInUse, checkpointing.CheckpointDiskFull) as e:
    errors.fail(str(e))
  except errors.BAD_INPUT as e:
    errors.fail(f"{type(e).__name__}: {e}")
  except OSError as e:  # Disk full outside a checkpoint save (metrics, report, prepared data).
    if not checkpointing.is_disk_full(e):
      raise
    errors.fail(f"no space left on the device: {checkpointing.one_line(e)}")
  print(f"{models.task_of(FLAGS.config).summary(report)}, {report['examples_per_s']:.0f} examples/s; "
        f"report: {eval_report.report_path(os.path.abspath(workdir))}")
  evaluated = report["evaluated_checkpoint"]
  if not evaluated["is_intended"]:
    errors.fail(f"the best checkpoint was unreadable; the figures above are of the {evaluated['used']} "
                f"checkpoint (step {evaluated['step']}), see evaluated_checkpoint in the report.",
                NOT_INTENDED_CHECKPOINT_EXIT_CODE)


def define_flags() -> None:
  """Command-line flags (defined only when run as a program, so importing is side-effect free)."""
  config_flags.DEFINE_config_file("config", None, "Training configuration file (configs/*.py).",
                                  lock_config=True)
  flags.DEFINE_string("workdir", None, "Checkpoints, metrics and the eval report go here "
                      "(default: ./workdirs/<config file name>).")
  flags.DEFINE_bool("start_over", False, "Delete the workdir's checkpoints, metrics and report first and "
                    "train from step 0 (needed when the config changed in a field that changes the result).")


if __name__ == "__main__":
  program.run(main, define_flags)
