"""Exports a training workdir as a self-contained model directory with a model card.

  python -m train.export --workdir=workdirs/sent140 --output=models/sent140 [--dtype=bfloat16]

Writes parameters only (no optimizer state) as safetensors, the tokenizer, the training config, the
class names and ``evaluation.json`` + ``README.md`` (the model card): ``train.model_files.exporter.export``
(the layout: ``train/runs/model_dir.py``). The data must be available, as for training: the stored
weights are evaluated again.

  python -m train.export --slices_of=models/sent140 --manual_test=testdata.manual.2009.06.14.csv

adds (or renews) the slices of an existing export without its training workdir
(``train.model_files.exporter.add_slices``).

  python -m train.export --transfer_of=models/sent140_mamba \
      --transfer_results=results/domain_adaptation/airline,results/domain_adaptation/gop_debate

adds (or renews) its card's transfer tables (``train.model_files.exporter.add_transfer``).
"""

import sys

from absl import flags

from train.command_line import errors, program
from train.model_files import exporter, model_card
from train.runs import model_dir
from train.scoring import slices

FLAGS = flags.FLAGS


def main(argv):
  program.no_arguments(argv)
  program.quiet_logging()
  command = "python -m train.export " + " ".join(sys.argv[1:])
  if FLAGS.slices_of:
    if FLAGS.workdir or FLAGS.output or not FLAGS.manual_test:
      errors.fail("--slices_of takes --manual_test, not --workdir or --output.")
    with errors.one_line_errors():
      reports = exporter.add_slices(FLAGS.slices_of, FLAGS.manual_test, command)
    print(f"added slices to {FLAGS.slices_of}")
    for name, report in reports.items():
      print(f"{name}:")
      for line in slices.table_lines(report, skip=("topic",)):
        print(line)
    return
  if FLAGS.transfer_of:
    if FLAGS.workdir or FLAGS.output or not FLAGS.transfer_results:
      errors.fail("--transfer_of takes --transfer_results, not --workdir or --output.")
    with errors.one_line_errors():
      path = exporter.add_transfer(FLAGS.transfer_of, FLAGS.transfer_results, command)
    print(f"added the transfer tables of {', '.join(FLAGS.transfer_results)} to {path}")
    return
  if not FLAGS.workdir or not FLAGS.output:
    errors.fail("--workdir and --output are required.")
  with errors.one_line_errors():
    result = exporter.export(FLAGS.workdir, FLAGS.output, FLAGS.dtype, FLAGS.checkpoint, FLAGS.name, command)
  info = result["export"]
  print(f"wrote {FLAGS.output} ({info['params_bytes'] / 2**20:.2f} MiB of {info['dtype']} parameters)")
  for split, numbers in result["splits"].items():
    float32, stored = model_card.binary_part(numbers["float32"]), model_card.binary_part(numbers["stored"])
    print(f"  {split}: accuracy float32 {float32['accuracy']:.4f}, stored {stored['accuracy']:.4f}, "
          f"max abs change of p {numbers['max_abs_probability_difference']:.2e}")


def define_flags() -> None:
  """Command-line flags (defined only when run as a program, so importing is side-effect free)."""
  flags.DEFINE_string("workdir", None, "Workdir of a finished training run.")
  flags.DEFINE_string("output", None, "Model directory to write (replaced if it is an earlier export).")
  flags.DEFINE_enum("dtype", "float32", sorted(model_dir.DISK_DTYPES), "dtype of the stored weights.")
  flags.DEFINE_enum("checkpoint", "best", ["best", "latest"], "Which checkpoint of --workdir to export.")
  flags.DEFINE_string("name", "", "Title of the model card (default: the output folder's name).")
  flags.DEFINE_string("slices_of", None, "Instead of exporting: add the slices to this exported model "
                      "directory (with --manual_test; its held-out splits are prepared from its config.json).")
  flags.DEFINE_string("manual_test", None, "With --slices_of: the raw Sentiment140 manual-test CSV.")
  flags.DEFINE_string("transfer_of", None, "Instead of exporting: add the transfer tables to this exported model's "
                      "card.")
  flags.DEFINE_list("transfer_results", [], "With --transfer_of: train.domain_adaptation --output_dir folders.")


if __name__ == "__main__":
  program.run(main, define_flags)
