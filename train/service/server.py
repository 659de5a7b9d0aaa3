"""Running the service: load the model, open the database, listen, compile, answer; reload on SIGHUP.

``run(options)`` is all of ``python -m train.serve``: it loads the model first (a model that does not
load is a ``ValueError``/``FileNotFoundError`` before anything listens), opens (or creates) the review
database, binds the socket (port 0: any free port), prints one line with the address, and serves
until SIGINT/SIGTERM; ``/healthz`` says ready once every program is compiled. SIGHUP reloads the
served source (``Service.reload``), as ``POST /v1/reload`` does.
"""

from __future__ import annotations

import asyncio
import dataclasses
import ipaddress
import logging
import os
import secrets
import signal
import socket
import sys
import threading
from typing import Optional

import uvicorn

from train.model_files import inference
from train.service import app as app_lib
from train.service import review_database, served_model

TOKEN_ENVIRONMENT_VARIABLE = "MAMBA_JAX_REVIEW_TOKEN"
log = logging.getLogger("train.service")


@dataclasses.dataclass
class ServeOptions:
  """``python -m train.serve``'s flags."""

  model: Optional[str] = None
  workdir: Optional[str] = None
  checkpoint: str = "best"
  host: str = "127.0.0.1"
  port: int = 8000
  db: str = "reviews.sqlite"
  review_token: Optional[str] = None
  defer_below: Optional[float] = None
  max_texts: int = 1000
  max_request_bytes: int = 4 * 2**20
  batch_window_ms: float = 3.0
  max_batch_rows: int = 1024
  max_pending_texts: int = 100_000
  compilation_cache: Optional[str] = inference.DEFAULT_COMPILATION_CACHE
  access_log: bool = False


def model_loader(defer_below: Optional[float], checkpoint: str = "best"):
  """{"model": DIR} | {"workdir": DIR} -> ``served_model.load_served_model`` of it."""
  def load(source: dict) -> served_model.ServedModel:
    return served_model.load_served_model(workdir=source.get("workdir"), model=source.get("model"),
                                          defer_below=defer_below, checkpoint=checkpoint)
  return load


def listening_socket(host: str, port: int) -> socket.socket:
  """A bound, listening TCP socket (IPv4 or IPv6 by ``host``); OSError when the address is taken."""
  family = socket.AF_INET6 if ":" in host else socket.AF_INET
  sock = socket.socket(family, socket.SOCK_STREAM)
  sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
  try:
    sock.bind((host, port))
  except OSError as e:
    sock.close()
    raise OSError(f"cannot listen on {host}:{port}: {e.strerror}") from None
  sock.listen(2048)
  sock.setblocking(False)
  return sock


def is_loopback(host: str) -> bool:
  try:
    return ipaddress.ip_address(host).is_loopback
  except ValueError:
    return host == "localhost"


def uvicorn_server(application, access_log: bool = False) -> uvicorn.Server:
  """A uvicorn server of ``application`` (sockets given at ``serve``), warnings only."""
  config = uvicorn.Config(application, log_level="warning", access_log=access_log, lifespan="off",
                          timeout_keep_alive=30, server_header=False, proxy_headers=False)
  return uvicorn.Server(config)


def _event_loop_factory():
  try:
    import uvloop  # pylint: disable=import-outside-toplevel
    return uvloop.new_event_loop
  except ImportError:
    return asyncio.new_event_loop


def run(options: ServeOptions) -> None:
  """Serves until SIGINT/SIGTERM (see the module docstring)."""
  logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(name)s: %(message)s", stream=sys.stderr)
  if bool(options.workdir) == bool(options.model):
    raise ValueError("give exactly one of --workdir (a training run) or --model (an exported model directory)")
  source = {"workdir": options.workdir} if options.workdir else {"model": options.model}
  inference.use_compilation_cache(options.compilation_cache)
  load = model_loader(options.defer_below, options.checkpoint)
  model = load(source)
  database = review_database.ReviewDatabase(options.db)
  token = options.review_token or os.environ.get(TOKEN_ENVIRONMENT_VARIABLE)
  generated = not token
  token = token or secrets.token_urlsafe(24)
  settings = app_lib.ServiceSettings(review_token=token, max_texts=options.max_texts,
                                     max_request_bytes=options.max_request_bytes,
                                     batch_window_s=options.batch_window_ms / 1000.0,
                                     max_batch_rows=options.max_batch_rows, defer_below=options.defer_below,
                                     max_pending_texts=options.max_pending_texts)
  service = app_lib.Service(model, source, database, settings, load)
  sock = listening_socket(options.host, options.port)
  host, port = sock.getsockname()[:2]
  server = uvicorn_server(app_lib.create_app(service), options.access_log)
  print(f"serving {model.version} from {model.loaded.source} on http://{host if ':' not in host else f'[{host}]'}:"
        f"{port}/ (review database {os.path.abspath(options.db)}); compiling, GET /healthz says when ready",
        flush=True)
  if generated:
    print(f"review token (none was given: --review_token or ${TOKEN_ENVIRONMENT_VARIABLE}): {token}",
          file=sys.stderr, flush=True)
  if not is_loopback(host):
    print(f"warning: listening on {host}, not only this machine: plain HTTP, anyone who can reach it can "
          "classify; the review and reload endpoints need the token", file=sys.stderr, flush=True)

  async def serve() -> None:
    service.start()
    loop = asyncio.get_running_loop()
    if threading.current_thread() is threading.main_thread():
      loop.add_signal_handler(signal.SIGHUP, lambda: loop.create_task(_reload_on_signal(service)))
    try:
      await server.serve(sockets=[sock])
    finally:
      service.stop()

  with asyncio.Runner(loop_factory=_event_loop_factory()) as runner:
    runner.run(serve())


async def _reload_on_signal(service: app_lib.Service) -> None:
  try:
    result = await service.reload()
    print(f"SIGHUP: now serving {result['version']} (was {result['previous_version']})", file=sys.stderr, flush=True)
  except app_lib.ApiError as e:
    print(f"SIGHUP: {e.message}", file=sys.stderr, flush=True)
