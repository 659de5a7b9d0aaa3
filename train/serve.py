r"""Serves a classifier over HTTP, defers uncertain texts to people, and takes their labels.

  python -m train.serve --model=models/sent140_mamba [--port=8000] [--db=reviews.sqlite]
  python -m train.serve --workdir=workdirs/mine_ft --review_token=... --defer_below=0.8

Listens on 127.0.0.1 (``--host`` to change), answers ``POST /v1/classify`` {"texts": [...]} with
label, confidence, per-class probabilities, ``deferred`` and the model version, stores the deferred
texts in the review database, and serves the review page at ``/``; ``kill -HUP`` or
``POST /v1/reload`` swaps in a new export. Endpoints and errors: ``train/service/app.py``; running it:
``train/service/server.py``.
"""

from absl import flags

from train.command_line import errors, program
from train.model_files import inference
from train.service import server

FLAGS = flags.FLAGS


def main(argv):
  program.no_arguments(argv)
  program.quiet_logging()
  with errors.one_line_errors((FileNotFoundError, ValueError, OSError)):
    server.run(server.ServeOptions(
        model=FLAGS.model, workdir=FLAGS.workdir, checkpoint=FLAGS.checkpoint, host=FLAGS.host, port=FLAGS.port,
        db=FLAGS.db, review_token=FLAGS.review_token, defer_below=FLAGS.defer_below, max_texts=FLAGS.max_texts,
        max_request_bytes=FLAGS.max_request_bytes, batch_window_ms=FLAGS.batch_window_ms,
        max_batch_rows=FLAGS.max_batch_rows, max_pending_texts=FLAGS.max_pending_texts,
        compilation_cache=FLAGS.compilation_cache, access_log=FLAGS.access_log))


def define_flags() -> None:
  """Command-line flags (defined only when run as a program, so importing is side-effect free)."""
  program.define_model_choice("Which checkpoint of --workdir to serve.")
  flags.DEFINE_string("host", "127.0.0.1", "Address to listen on (default: this machine only).")
  flags.DEFINE_integer("port", 8000, "Port (0: any free port; the address is printed).")
  flags.DEFINE_string("db", "reviews.sqlite", "The review database (SQLite; created when missing).")
  flags.DEFINE_string("review_token", None, "Token of the review and reload endpoints (default: $"
                      f"{server.TOKEN_ENVIRONMENT_VARIABLE}, else a random one, printed at start).")
  flags.DEFINE_float("defer_below", None, "Defer answers whose confidence is below this (default: the model's "
                     "neutral_threshold, the one its card states).")
  flags.DEFINE_integer("max_texts", 1000, "Texts per request at most (more: 413).")
  flags.DEFINE_integer("max_request_bytes", 4 * 2**20, "Request body size at most (more: 413).")
  flags.DEFINE_float("batch_window_ms", 3.0, "How long a scoring call waits for more requests to join it.")
  flags.DEFINE_integer("max_batch_rows", 1024, "Texts per scoring call at most (a bigger request goes alone).")
  flags.DEFINE_integer("max_pending_texts", 100_000, "Texts waiting to be scored at most; more: 503 at once.")
  flags.DEFINE_string("compilation_cache", inference.DEFAULT_COMPILATION_CACHE, "Folder of compiled programs kept "
                      "across runs (start-up and reloads then compile nothing new); '' for none.")
  flags.DEFINE_bool("access_log", False, "Log every request (slower).")


if __name__ == "__main__":
  program.run(main, define_flags)
