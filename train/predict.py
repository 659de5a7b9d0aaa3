"""Classifies tweets with a trained workdir or an exported model directory.

  python -m train.predict --workdir=workdirs/sent140 "I love this" "worst day ever"
  python -m train.predict --model=models/sent140 "I love this"
  printf 'great movie\\nmeh\\n' | python -m train.predict --workdir=workdirs/sent140
  python -m train.predict --model=models/sent140 --input=tweets.csv --text_column=text --output=scored.csv

One output line per input line (the arguments, else the lines of stdin), as
``train.model_files.predictions`` describes them (``--format=json`` for JSON lines). With ``--input``
(CSV, TSV or a .txt of lines, plain or .gz) every record goes to ``--output`` (.csv, .tsv, .jsonl, +.gz)
with its columns and the model's answer, and a progress bar goes to stderr: what
``train.model_files.prediction_files`` describes. Compiled programs are kept in a persistent cache
(``--compilation_cache``), so a second run starts without compiling.
"""

import sys

from absl import flags

from train.command_line import errors, program
from train.data import labelled_rows
from train.model_files import inference, prediction_files, predictions

FLAGS = flags.FLAGS


def main(argv):
  program.quiet_logging()
  if FLAGS.input and len(argv) > 1:
    errors.fail("give texts as arguments or --input=FILE, not both")
  if bool(FLAGS.input) != bool(FLAGS.output):
    errors.fail("--input and --output go together (file in, file out)")
  inference.use_compilation_cache(FLAGS.compilation_cache)
  with errors.one_line_errors():
    if FLAGS.input:
      prediction_files.check_files(FLAGS.input, FLAGS.output)  # Before the model is read: bad paths fail fast.
    model = inference.load(FLAGS.workdir, FLAGS.model, FLAGS.checkpoint)
    inference.freeze_heap()
    if FLAGS.input:
      summary = prediction_files.write_file_predictions(
          model, FLAGS.input, FLAGS.output, text_column=FLAGS.text_column,
          delimiter={"auto": None, "comma": ",", "tab": "\t"}[FLAGS.delimiter], encoding=FLAGS.encoding,
          threshold=FLAGS.threshold, batch_size=FLAGS.batch_size, progress=FLAGS.progress)
      failed = ", ".join(f"{reason} {count:,}" for reason, count in sorted(summary.errors.items())) or "none"
      print(f"{summary.output}: {summary.rows:,} rows, {summary.answered:,} answered, without an answer: {failed} "
            f"({summary.seconds:.1f} s, {summary.rows / max(summary.seconds, 1e-9):,.0f} rows/s)", file=sys.stderr)
      return
    lines = [predictions.argv_bytes(a) for a in argv[1:]] if len(argv) > 1 else sys.stdin.buffer
    predictions.write_predictions(model, lines, sys.stdout, threshold=FLAGS.threshold, output_format=FLAGS.format,
                                  batch_size=FLAGS.batch_size)


def define_flags() -> None:
  """Command-line flags (defined only when run as a program, so importing is side-effect free)."""
  program.define_model_choice()
  flags.DEFINE_float("threshold", None, "Binary negative/positive models: confidence under which the answer "
                     "is 'neutral' (default: the run's config.neutral_threshold; 0 never says neutral).")
  flags.DEFINE_enum("format", "text", ["text", "json"], "Output of lines to stdout: tab-separated text or JSON lines.")
  flags.DEFINE_integer("batch_size", None, "Rows of every length bucket's batch (default: the engine's, "
                       "~1024 token slots per batch on the CPU).")
  flags.DEFINE_string("input", None, "A file to score instead of arguments or stdin: CSV, TSV or .txt (one text a "
                      "line), plain or .gz; needs --output.")
  flags.DEFINE_string("output", None, "Where --input's rows go with the answers: .csv, .tsv, .jsonl (+ .gz).")
  flags.DEFINE_string("text_column", None, "--input's text column: a header name or a 0-based index (unset: the "
                      "Sentiment140 6-column CSV; a .txt file has one text per line).")
  flags.DEFINE_enum("delimiter", "auto", ["auto", "comma", "tab"], "--input's field separator; auto: tab for .tsv.")
  flags.DEFINE_enum("encoding", "auto", ["auto", *labelled_rows.ENCODINGS], "--input's encoding; auto: UTF-8 if "
                    "the whole file decodes as UTF-8, else latin-1.")
  flags.DEFINE_boolean("progress", True, "With --input: a progress bar on stderr (rows, rows/s, time left).")
  flags.DEFINE_string("compilation_cache", inference.DEFAULT_COMPILATION_CACHE, "Folder of compiled programs kept "
                      "between runs ('' for none; $JAX_COMPILATION_CACHE_DIR, when set, wins).")


if __name__ == "__main__":
  program.run(main, define_flags)
