r"""The human-oversight loop, measured: K deferred-first labels per round against K random ones.

  python -m train.oversight_benchmark --source=/work/data/airline/Tweets.csv \
      --label_column=airline_sentiment --seeds=0,1,2 --output_dir=results/oversight
  python -m train.oversight_benchmark --source=Tweets.csv --per_round=40 --rounds=2 --seeds=0 \
      --stream_size=800 --output_dir=/tmp/oversight   # minutes: the whole path, small

On a labelled tweet set of another topic than Sentiment140 (the Twitter US Airline Sentiment set:
README "The loop, measured"), a simulated reviewer labels --per_round tweets per round from a stream,
chosen deferred-first (least confident first, as the review page shows them) or at random; the
released model is fine-tuned on the labels so far and scored on a held-out part. Accuracy and
macro-recall vs the number of labels, per seed -> <output_dir>/oversight.{json,md,png} and
runs/<strategy>__seed<seed>.json (a run file made with the same inputs is reused).
How: ``train/service/oversight_loop.py``.
"""

import os
import sys

from absl import flags

from train.command_line import errors, program
from train.service import oversight_loop

FLAGS = flags.FLAGS


def main(argv):
  program.no_arguments(argv)
  program.quiet_logging()
  with errors.one_line_errors():
    oversight_loop.run_benchmark(oversight_loop.BenchmarkOptions(
        source=FLAGS.source, text_column=FLAGS.text_column, label_column=FLAGS.label_column, model=FLAGS.model,
        test_share=FLAGS.test_share, per_round=FLAGS.per_round, rounds=FLAGS.rounds, stream_size=FLAGS.stream_size,
        seeds=[int(s) for s in FLAGS.seeds], strategies=FLAGS.strategies, work_dir=FLAGS.work_dir,
        output_dir=FLAGS.output_dir, note=FLAGS.note, keep_workdirs=FLAGS.keep_workdirs),
        " ".join(["python -m train.oversight_benchmark"] + sys.argv[1:]))


def define_flags() -> None:
  """Command-line flags (defined only when run as a program, so importing is side-effect free)."""
  flags.DEFINE_string("source", None, "A labelled tweet CSV/TSV that is not Sentiment140.", required=True)
  flags.DEFINE_string("text_column", "text", "Its text column (header name or index).")
  flags.DEFINE_string("label_column", "airline_sentiment", "Its label column (negative/positive[/neutral]).")
  flags.DEFINE_string("model", os.path.join("models", "sent140_mamba"), "The released model (served, fine-tuned).")
  flags.DEFINE_float("test_share", 0.2, "Held-out share of the rows (by text hash).")
  flags.DEFINE_integer("per_round", 125, "Labels per round (K).")
  flags.DEFINE_integer("rounds", 8, "Rounds (the stream is cut into this many chunks).")
  flags.DEFINE_integer("stream_size", None, "Pool tweets streamed (default: the whole pool).")
  flags.DEFINE_list("seeds", ["0", "1", "2"], "Seeds (the stream order, the random choice, the fine-tunes).")
  flags.DEFINE_list("strategies", list(oversight_loop.STRATEGIES), "Which selections to run.")
  flags.DEFINE_string("work_dir", "/tmp/oversight_benchmark", "Split files, review databases, workdirs.")
  flags.DEFINE_string("output_dir", os.path.join("results", "oversight"), "oversight.{json,md,png}, runs/.")
  flags.DEFINE_string("note", "", "What else ran on the machine (written into the results).")
  flags.DEFINE_bool("keep_workdirs", False, "Keep each round's training workdir.")


if __name__ == "__main__":
  program.run(main, define_flags)
