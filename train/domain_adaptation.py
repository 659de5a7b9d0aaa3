r"""The transfer benchmark: released models against classical tools on a labelled tweet set that is not Sentiment140.

  python -m train.domain_adaptation --source=Tweets.csv --text_column=text \
      --label_column=airline_sentiment --classes=negative,positive,neutral --seeds=0,1,2 \
      --candidates=lm_mamba2=candidates/sent140_mamba2_lm --work_dir=/tmp/transfer_airline \
      --output_dir=results/domain_adaptation/airline

Zero-shot, fine-tuned from --model and from each candidate, the same model from scratch, TF-IDF
(plain and class-weighted) and fastText on the same drawn examples and held-out part
(``train.study.domain_adaptation``); prints and writes ``table.md``.
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
    candidates = {}
    for item in FLAGS.candidates:
      name, _, path = item.partition("=")
      if not name or not path:
        raise ValueError(f"--candidates: {item!r} is not name=path")
      candidates[name] = path
    print(domain_adaptation.run(
        FLAGS.source, model=FLAGS.model, candidates=candidates, text_column=FLAGS.text_column,
        label_column=FLAGS.label_column, classes=FLAGS.classes, methods=FLAGS.methods,
        test_share=FLAGS.test_share, sizes=FLAGS.sizes, seeds=FLAGS.seeds, work_dir=FLAGS.work_dir,
        output_dir=FLAGS.output_dir, class_weighting=FLAGS.class_weighting, command=" ".join(["python -m train.domain_adaptation"] + sys.argv[1:])))


def define_flags() -> None:
  """Command-line flags (defined only when run as a program, so importing is side-effect free)."""
  flags.DEFINE_string("source", None, "A labelled tweet CSV/TSV that is not Sentiment140.", required=True)
  flags.DEFINE_string("text_column", "text", "Its text column (header name or index).")
  flags.DEFINE_string("label_column", "label", "Its label column (negative/positive[/neutral] names).")
  flags.DEFINE_string("model", os.path.join(domain_adaptation.REPO, "models", "sent140_mamba"),
                      "The current release (zero-shot, init_from of 'finetune').")
  flags.DEFINE_list("candidates", [], "Release candidates as name=path (exported models, python -m train.export): "
                    "each is fine-tuned as method finetune_<name>.")
  flags.DEFINE_list("classes", ["negative", "positive"], "The source's classes to keep: negative,positive or "
                    "negative,positive,neutral (rows of other labels are left out).")
  flags.DEFINE_list("methods", None, "Methods to run (default: all): zero_shot, finetune, finetune_<name>, "
                    "scratch, tfidf, tfidf_balanced, fasttext.")
  flags.DEFINE_float("test_share", 0.2, "Held-out share of the rows (by text hash).")
  flags.DEFINE_list("sizes", ["500", "2000", "all"], "Labelled examples per run ('all': the whole pool).")
  flags.DEFINE_list("seeds", ["0"], "Seeds (the examples drawn, the init, the data order).")
  flags.DEFINE_enum("class_weighting", None, ["none", "balanced"],
                    "The trained runs' config.class_weighting (default: configs/own_data.py's).")
  flags.DEFINE_string("work_dir", "/tmp/domain_adaptation", "Files and workdirs of the runs (not results).")
  flags.DEFINE_string("output_dir", "results/domain_adaptation", "runs/*.json, table.md.")


if __name__ == "__main__":
  program.run(main, define_flags)
