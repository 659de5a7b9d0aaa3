"""Scores a trained model on any labelled file of tweets.

  python -m train.evaluate --model=models/sent140 --data=testdata.manual.2009.06.14.csv
  python -m train.evaluate --workdir=workdirs/sent140 --data=mine.tsv --text_column=text --label_column=label

The file is the Sentiment140 6-column CSV (no header: polarity, id, date, query, user, text)
unless ``--text_column`` / ``--label_column`` name the columns of another CSV or TSV (a header
name, or a 0-based index; with names the first row is the header). Labels are 0/2/4
(Sentiment140), negative/neutral/positive, or 0/1 (negative/positive); ``--labels=auto``
picks the scheme from the values found. A model of other classes (its classes.json,
``train.runs.classes``) reads its class names (case-insensitive; scheme "classes"), or the numeric
schemes' values where its classes carry their names (e.g. 0/2/4 for negative/neutral/positive).
The encoding is UTF-8 if the whole file decodes as UTF-8, else latin-1 (the official Sentiment140
files), unless ``--encoding`` says; a byte order mark (UTF-8, UTF-16, UTF-32:
``train.data.byte_order_marks``) names the encoding and is removed. The report says which encoding
was used. Rows that cannot be scored are skipped and counted by reason.

Prints a summary and writes JSON (``--output``): what ``train.scoring.labelled_file_report`` measures.
"""

from absl import flags

from train.command_line import errors, program
from train.data import labelled_rows
from train.model_files import inference
from train.scoring import labelled_file_report

FLAGS = flags.FLAGS


def main(argv):
  program.no_arguments(argv)
  program.quiet_logging()
  inference.use_compilation_cache(FLAGS.compilation_cache)
  with errors.one_line_errors():
    report, output = labelled_file_report.evaluate_file(
        inference.load(FLAGS.workdir, FLAGS.model, FLAGS.checkpoint), FLAGS.data, FLAGS.output,
        text_column=FLAGS.text_column, label_column=FLAGS.label_column,
        delimiter={"auto": None, "comma": ",", "tab": "\t"}[FLAGS.delimiter], encoding=FLAGS.encoding,
        labels=FLAGS.labels, threshold=FLAGS.threshold, batch_size=FLAGS.batch_size)
  for line in labelled_file_report.summary_lines(report):
    print(line)
  print(f"report: {output}")


def define_flags() -> None:
  """Command-line flags (defined only when run as a program, so importing is side-effect free)."""
  program.define_model_choice()
  flags.DEFINE_string("data", None, "Labelled CSV/TSV file (plain or .gz).", required=True)
  flags.DEFINE_string("text_column", None, "Text column: header name or 0-based index "
                      "(unset with --label_column: the Sentiment140 6-column CSV).")
  flags.DEFINE_string("label_column", None, "Label column: header name or 0-based index.")
  flags.DEFINE_enum("delimiter", "auto", ["auto", "comma", "tab"], "Field separator; auto: tab for .tsv/.tab.")
  flags.DEFINE_enum("encoding", "auto", ["auto", *labelled_rows.ENCODINGS], "Text encoding; auto: UTF-8 if the "
                    "file decodes as UTF-8, else latin-1.")
  flags.DEFINE_enum("labels", "auto", ["auto", *labelled_rows.LABEL_SCHEMES, "classes"], "Label scheme; auto: "
                    "from the values; classes: the model's class names (a model with a classes.json).")
  flags.DEFINE_float("threshold", None, "Neutral threshold (default: the model's config.neutral_threshold).")
  flags.DEFINE_integer("batch_size", None, "Rows of every length bucket's batch (default: the inference engine's).")
  flags.DEFINE_string("output", None, "JSON report path (default: ./<data file name>.evaluation.json).")
  flags.DEFINE_string("compilation_cache", inference.DEFAULT_COMPILATION_CACHE, "Folder of compiled programs kept "
                      "between runs ('' for none; $JAX_COMPILATION_CACHE_DIR, when set, wins).")


if __name__ == "__main__":
  program.run(main, define_flags)
