r"""Domain adaptation, measured: the released model on a labelled tweet set that is not Sentiment140.

  python -m train.domain_adaptation --source=Tweets.csv --text_column=text \
      --label_column=airline_sentiment --work_dir=/tmp/domain_adaptation \
      --output_dir=results/domain_adaptation

Zero-shot, fine-tuned from --model, the same model from scratch and TF-IDF on the same drawn examples
and held-out part (``train.study.domain_adaptation``); prints and writes ``table.md``.
"""

import os
import sys

from absl import flags

from train.command_line import errors, program
from train.study import domain_adaptation

FLAGS = flags.FLAGS


def main(argv):
  program.no_arguments(argv)
  with errors.one_line_errors():
    print(domain_adaptation.run(
        FLAGS.source, model=FLAGS.model, text_column=FLAGS.text_column, label_column=FLAGS.label_column,
        test_share=FLAGS.test_share, sizes=FLAGS.sizes, seeds=FLAGS.seeds, work_dir=FLAGS.work_dir,
        output_dir=FLAGS.output_dir, command=" ".join(["python -m train.domain_adaptation"] + sys.argv[1:])))


def define_flags() -> None:
  """Command-line flags (defined only when run as a program, so importing is side-effect free)."""
  flags.DEFINE_string("source", None, "A labelled tweet CSV/TSV that is not Sentiment140.", required=True)
  flags.DEFINE_string("text_column", "text", "Its text column (header name or index).")
  flags.DEFINE_string("label_column", "label", "Its label column (negative/positive[/neutral] names).")
  flags.DEFINE_string("model", os.path.join(domain_adaptation.REPO, "models", "sent140_mamba"),
                      "The released model (zero-shot, init_from).")
  flags.DEFINE_float("test_share", 0.2, "Held-out share of the rows (by text hash).")
  flags.DEFINE_list("sizes", ["500", "2000", "all"], "Labelled examples per run ('all': the whole pool).")
  flags.DEFINE_list("seeds", ["0"], "Seeds (the examples drawn, the init, the data order).")
  flags.DEFINE_string("work_dir", "/tmp/domain_adaptation", "Files and workdirs of the runs (not results).")
  flags.DEFINE_string("output_dir", "results/domain_adaptation", "runs/*.json, table.md.")


if __name__ == "__main__":
  program.run(main, define_flags)
