"""The HTTP application: classify, health, model, review queue and labels, reload, and the review page.

Endpoints (JSON in and out; every error is a 4xx/5xx whose body is one line, ``{"error": "..."}``):

  POST /v1/classify       ``{"texts": ["a tweet", ...]}`` -> ``{"model_version", "results": [{label,
                          confidence, probabilities, deferred, note, model_version} | {error}, ...]}``
                          (``ServedModel.classify``); the deferred texts are in the review database
                          when the answer arrives. 400: a body that is not UTF-8 or not JSON; 413: a body
                          over ``max_request_bytes`` or more than ``max_texts`` texts; 422: no ``texts``,
                          not a list, empty, a text that is not a string, not valid Unicode (a lone
                          surrogate) or has nothing but whitespace and control characters, an unknown
                          field; 503: the model's programs are still compiling, or the service is
                          overloaded (more than ``max_pending_texts`` texts wait).
  GET  /healthz           200 ``{"status": "ready", ...}`` once every program is compiled, else 503.
  GET  /v1/model          the served model's ``ServedModel.description()``.
  GET  /v1/review/queue   ``?limit=N&exclude=1,2``: unlabelled deferred texts, least confident first,
                          the counts (pending, reviewed) and the labels a reviewer may give.
  POST /v1/review/{id}    ``{"label": ..., "reviewer": ...}``: 200 stored; 404 no such item; 409 labelled
                          already (the first label is kept); 422 a label the model does not offer.
  POST /v1/reload         ``{}`` (the served source again), ``{"model": DIR}`` or ``{"workdir": DIR}``:
                          loads and compiles the new model beside the old one, then swaps (requests keep
                          being answered throughout, none fails); 422 a source that does not load (the old
                          model stays).
  GET  /                  the review page (``static/``: plain HTML, CSS and JS; no inline script).

The review endpoints and reload need ``Authorization: Bearer <review token>``: without it, or with
another, they answer 401 and change nothing (compared in constant time).
"""

from __future__ import annotations

import asyncio
import dataclasses
import hmac
import json
import logging
import os
import re
import threading
import time
from typing import Any, AsyncIterator, Callable, Optional

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import Response
from starlette.exceptions import HTTPException as StarletteHTTPException

from train.model_files import inference, predictions
from train.service import review_database
from train.service.request_batcher import Overloaded, RequestBatcher
from train.service.served_model import ServedModel

STATIC_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "static")
PAGE_HEADERS = {
    "Content-Security-Policy": "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; "
                               "img-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-store",
}
STATIC_TYPES = {".html": "text/html; charset=utf-8", ".js": "text/javascript; charset=utf-8",
                ".css": "text/css; charset=utf-8"}
MAX_REVIEWER_CHARS = 64
MAX_QUEUE_LIMIT = 200
LONE_SURROGATE = re.compile("[\ud800-\udfff]")

log = logging.getLogger("train.service")


class ApiError(Exception):
  """An answer other than 200: its status and one-line message."""

  def __init__(self, status: int, message: str, headers: Optional[dict] = None):
    super().__init__(message)
    self.status, self.message, self.headers = status, message, headers


def _error_line(message: str) -> bytes:
  """``{"error": message}`` on one line (whitespace runs, newlines included, become one space)."""
  return json.dumps({"error": " ".join(str(message).split())}).encode()


def error_response(status: int, message: str, headers: Optional[dict] = None) -> Response:
  """The response of ``_error_line(message)``."""
  return Response(_error_line(message), status_code=status, media_type="application/json", headers=headers)


def json_response(value: Any, status: int = 200, headers: Optional[dict] = None) -> Response:
  return Response(json.dumps(value, allow_nan=False), status_code=status, media_type="application/json",
                  headers=headers)


def _type_name(value: Any) -> str:
  return {dict: "object", list: "array", str: "string", bool: "boolean", type(None): "null",
          int: "number", float: "number"}.get(type(value), type(value).__name__)


def check_texts(body: Any, max_texts: int) -> list[str]:
  """The texts of a classify body, or ApiError (see the module docstring for which)."""
  if not isinstance(body, dict):
    raise ApiError(422, f'the body must be a JSON object {{"texts": [...]}}, got {_type_name(body)}')
  unknown = sorted(set(body) - {"texts"})
  if unknown:
    raise ApiError(422, f"unknown field(s) {unknown}: the body is {{\"texts\": [...]}}")
  if "texts" not in body:
    raise ApiError(422, 'no "texts": the body is {"texts": ["a tweet", ...]}')
  texts = body["texts"]
  if not isinstance(texts, list):
    raise ApiError(422, f'"texts" must be an array of strings, got {_type_name(texts)}')
  if not texts:
    raise ApiError(422, '"texts" is empty: give at least one text')
  if len(texts) > max_texts:
    raise ApiError(413, f'"texts" holds {len(texts):,} texts; at most {max_texts:,} per request (--max_texts)')
  for i, text in enumerate(texts):
    if not isinstance(text, str):
      raise ApiError(422, f'"texts"[{i}] must be a string, got {_type_name(text)}')
    surrogate = LONE_SURROGATE.search(text)
    if surrogate:
      raise ApiError(422, f'"texts"[{i}] is not valid Unicode: a lone surrogate \\u{ord(surrogate.group()):04x} '
                          f"at character {surrogate.start()}")
    if not predictions.has_visible_text(text):
      raise ApiError(422, f'"texts"[{i}] is empty (nothing but whitespace or control characters)')
  return texts


async def read_json(request: Request, limit: int, if_empty: Any = None) -> Any:
  """The request's JSON body, at most ``limit`` bytes, strict UTF-8; else ApiError 400 / 413.

  An empty body is ``if_empty`` when given, else a 400.
  """
  return await parse_json_body(request.headers.get("content-length"), request.stream(), limit, if_empty)


async def parse_json_body(declared: Optional[str], stream: AsyncIterator[bytes], limit: int,
                          if_empty: Any = None) -> Any:
  """``read_json`` of a body's Content-Length header (None: absent) and its chunks."""
  if declared is not None:
    if not declared.isdigit():
      raise ApiError(400, f"bad Content-Length {declared[:40]!r}")
    if int(declared) > limit:
      raise ApiError(413, f"request body of {int(declared):,} bytes; at most {limit:,} (--max_request_bytes)")
  chunks, size = [], 0
  async for chunk in stream:
    size += len(chunk)
    if size > limit:
      raise ApiError(413, f"request body over {limit:,} bytes (--max_request_bytes)")
    chunks.append(chunk)
  raw = b"".join(chunks)
  try:
    text = raw.decode("utf-8")
  except UnicodeDecodeError as e:
    raise ApiError(400, f"the request body is not valid UTF-8 (byte {e.start}: {raw[e.start:e.start + 1]!r})") from None
  if not text.strip():
    if if_empty is not None:
      return if_empty
    raise ApiError(400, 'empty request body: send JSON, e.g. {"texts": ["a tweet"]}')
  try:
    return json.loads(text)
  except json.JSONDecodeError as e:
    raise ApiError(400, f"the request body is not JSON: {e.msg} at line {e.lineno} column {e.colno}") from None
  except RecursionError:
    raise ApiError(400, "the request body is not JSON this service reads: nested too deeply") from None


@dataclasses.dataclass
class ServiceSettings:
  """How the service answers (``python -m train.serve``'s flags)."""

  review_token: str
  max_texts: int = 1000
  max_request_bytes: int = 4 * 2**20
  batch_window_s: float = 0.003
  max_batch_rows: int = 1024
  defer_below: Optional[float] = None
  max_pending_texts: int = 100_000


ModelLoader = Callable[[dict], ServedModel]  # {"model": DIR} | {"workdir": DIR} -> loaded (``server.model_loader``).


class Service:
  """The running service's state: the batcher (and so the served model), the database, readiness, reloads.

  ``load_model(source)`` loads a model of a source dict; ``source`` is the served one (reload's default).
  """

  def __init__(self, model: ServedModel, source: dict, database: review_database.ReviewDatabase,
               settings: ServiceSettings, load_model: ModelLoader):
    if not settings.review_token:
      raise ValueError("the review token must not be empty")
    self.source, self.database, self.settings, self.load_model = dict(source), database, settings, load_model
    self.batcher = RequestBatcher(model, settings.batch_window_s, settings.max_batch_rows, self._store_deferred,
                                  settings.max_pending_texts)
    self.ready = threading.Event()
    self.programs = 0
    self.started = time.time()
    self._reload_lock: Optional[asyncio.Lock] = None
    self.reloads = 0

  @property
  def model(self) -> ServedModel:
    return self.batcher.model

  def _store_deferred(self, model: ServedModel, texts: list, answers: list) -> None:
    deferred = [(text, answer) for text, answer in zip(texts, answers) if answer.get("deferred")]
    self.database.store_deferred(model.version, deferred)

  def start(self) -> None:
    """Starts the batcher and compiles the model's programs in the background (``ready`` when done)."""
    self.batcher.start()
    threading.Thread(target=self._warm_up, name="warm-up", daemon=True).start()

  def _warm_up(self) -> None:
    start = time.perf_counter()
    self.programs = self.model.warm_up()
    inference.freeze_heap()  # No full garbage collection pauses the requests from here on.
    log.warning("ready: %d programs compiled in %.1f s (model %s)", self.programs, time.perf_counter() - start,
                self.model.version)
    self.ready.set()

  def stop(self) -> None:
    self.batcher.stop()
    self.database.close()

  async def reload(self, source: Optional[dict] = None) -> dict:
    """Loads ``source`` (default: the served one), compiles it, swaps it in; what changed.

    One reload at a time (a second waits). Raises ApiError 422 when the source does not load.
    """
    if self._reload_lock is None:
      self._reload_lock = asyncio.Lock()
    async with self._reload_lock:
      source = dict(source or self.source)
      start = time.perf_counter()
      loop = asyncio.get_running_loop()
      try:
        new = await loop.run_in_executor(None, self.load_model, source)
        programs = await loop.run_in_executor(None, new.warm_up)
      except (FileNotFoundError, ValueError, OSError) as e:
        raise ApiError(422, f"reload failed, still serving {self.model.version}: {e}") from None
      previous = self.batcher.swap(new)
      self.source = source
      await loop.run_in_executor(None, inference.freeze_heap)  # The new model's objects, the old one's cycles.
      self.reloads += 1
      seconds = time.perf_counter() - start
      log.warning("reloaded %s: %s -> %s in %.1f s", source, previous.version, new.version, seconds)
      return {"version": new.version, "previous_version": previous.version, "source": source,
              "programs_compiled": programs, "seconds": seconds}

  def check_token(self, request: Request) -> None:
    """ApiError 401 unless the request carries ``Authorization: Bearer <the review token>``."""
    header = request.headers.get("authorization", "")
    scheme, _, given = header.partition(" ")
    if scheme.lower() != "bearer" or not hmac.compare_digest(given.strip().encode("utf-8", "surrogateescape"),
                                                             self.settings.review_token.encode("utf-8")):
      raise ApiError(401, "this endpoint needs the review token: Authorization: Bearer <token> "
                          "(python -m train.serve --review_token, or its environment variable)",
                     {"WWW-Authenticate": "Bearer"})


def _static_files() -> dict[str, tuple[bytes, str]]:
  files = {}
  for name in sorted(os.listdir(STATIC_DIR)):
    extension = os.path.splitext(name)[1]
    if extension in STATIC_TYPES:
      with open(os.path.join(STATIC_DIR, name), "rb") as f:
        files[name] = (f.read(), STATIC_TYPES[extension])
  return files


def _review_body(body: Any, labels: tuple[str, ...]) -> tuple[str, str]:
  if not isinstance(body, dict):
    raise ApiError(422, f'the body must be a JSON object {{"label": ..., "reviewer": ...}}, got {_type_name(body)}')
  unknown = sorted(set(body) - {"label", "reviewer"})
  if unknown:
    raise ApiError(422, f'unknown field(s) {unknown}: the body is {{"label": ..., "reviewer": ...}}')
  label, reviewer = body.get("label"), body.get("reviewer", "reviewer")
  if label not in labels:
    raise ApiError(422, f"label must be one of {list(labels)}, got {str(label)[:40]!r}")
  if (not isinstance(reviewer, str) or not reviewer.strip() or len(reviewer) > MAX_REVIEWER_CHARS
      or predictions.UNSAFE_CHARACTERS.search(reviewer) or LONE_SURROGATE.search(reviewer)):
    raise ApiError(422, f"reviewer must be a name of 1-{MAX_REVIEWER_CHARS} printable characters")
  return label, reviewer.strip()


async def classify_body(service: "Service", declared: Optional[str], stream: AsyncIterator[bytes]) -> bytes:
  """The JSON answer of ``POST /v1/classify`` (a body's Content-Length and chunks); ApiError else."""
  settings = service.settings
  texts = check_texts(await parse_json_body(declared, stream, settings.max_request_bytes), settings.max_texts)
  if not service.ready.is_set():
    raise ApiError(503, "the model's programs are still compiling; GET /healthz says when it is ready",
                   {"Retry-After": "2"})
  try:
    model, answers = await service.batcher.classify(texts)
  except Overloaded as e:
    raise ApiError(503, f"busy: {e}; try again shortly", {"Retry-After": "1"}) from None
  for answer in answers:
    answer["model_version"] = model.version
  return json.dumps({"model_version": model.version, "results": answers}, allow_nan=False).encode()


class _ClientGone(Exception):
  """The client disconnected before its request body was read."""


async def _request_body(receive) -> AsyncIterator[bytes]:
  """An ASGI request's body chunks."""
  while True:
    message = await receive()
    if message["type"] == "http.disconnect":
      raise _ClientGone()
    yield message.get("body", b"")
    if not message.get("more_body", False):
      return


class ServiceApp:
  """The service's ASGI application: ``/v1/classify`` is answered here, in plain ASGI; every other
  request goes to the FastAPI application (``routes``).

  Classify is the hot path: per one-tweet request the framework's layers of middleware, routing and
  dependency solving take more Python time than the request itself, on the event loop's thread,
  holding the GIL that the scoring thread needs too. Its answers and errors are the same as the
  other endpoints' (one-line JSON errors; 405 for other methods).
  """

  def __init__(self, service: "Service", routes: FastAPI):
    self.service, self.routes = service, routes

  async def __call__(self, scope, receive, send) -> None:
    if scope["type"] != "http" or scope["path"] != "/v1/classify":
      await self.routes(scope, receive, send)
      return
    headers = {}
    try:
      if scope["method"] != "POST":
        raise ApiError(405, f"{scope['method']} is not allowed on /v1/classify", {"Allow": "POST"})
      declared = next((value.decode("latin-1") for name, value in scope["headers"] if name == b"content-length"),
                      None)
      status, body = 200, await classify_body(self.service, declared, _request_body(receive))
    except _ClientGone:
      return
    except ApiError as error:
      status, body, headers = error.status, _error_line(error.message), error.headers or {}
    except Exception as error:  # pylint: disable=broad-except
      log.exception("internal error")
      status, body = 500, _error_line(f"internal error ({type(error).__name__}); the service keeps running")
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()),
                            *((k.lower().encode("latin-1"), v.encode("latin-1")) for k, v in headers.items())]})
    await send({"type": "http.response.body", "body": body})


def create_app(service: Service) -> ServiceApp:
  """The ASGI application of ``service`` (see the module docstring and ``ServiceApp``)."""
  app = FastAPI(title="mamba-jax sentiment service", docs_url=None, redoc_url=None, openapi_url=None)
  static = _static_files()

  @app.exception_handler(ApiError)
  async def _api_error(request: Request, error: ApiError):  # pylint: disable=unused-argument
    return error_response(error.status, error.message, error.headers)

  @app.exception_handler(StarletteHTTPException)
  async def _http_error(request: Request, error: StarletteHTTPException):
    message = {404: f"no such endpoint: {request.method} {request.url.path}",
               405: f"{request.method} is not allowed on {request.url.path}"}.get(error.status_code, str(error.detail))
    return error_response(error.status_code, message, getattr(error, "headers", None))

  @app.exception_handler(RequestValidationError)
  async def _validation_error(request: Request, error: RequestValidationError):  # pylint: disable=unused-argument
    first = error.errors()[0] if error.errors() else {}
    return error_response(422, f"bad request: {'.'.join(str(p) for p in first.get('loc', ()))} {first.get('msg', '')}")

  @app.exception_handler(Exception)
  async def _internal_error(request: Request, error: Exception):  # pylint: disable=unused-argument
    log.exception("internal error")
    return error_response(500, f"internal error ({type(error).__name__}); the service keeps running")

  @app.get("/healthz")
  async def healthz():
    body = {"status": "ready" if service.ready.is_set() else "starting", "model_version": service.model.version,
            "programs_compiled": service.programs, "uptime_s": round(time.time() - service.started, 3)}
    return json_response(body, 200 if service.ready.is_set() else 503)

  @app.get("/v1/model")
  async def model_description():
    return json_response(service.model.description())

  @app.get("/v1/review/queue")
  async def review_queue(request: Request):
    service.check_token(request)
    try:
      limit = int(request.query_params.get("limit", "20"))
      exclude = [int(i) for i in request.query_params.get("exclude", "").split(",") if i.strip()]
    except ValueError:
      raise ApiError(422, "limit and exclude must be integers (exclude: comma-separated ids)") from None
    if not 1 <= limit <= MAX_QUEUE_LIMIT:
      raise ApiError(422, f"limit must be within 1-{MAX_QUEUE_LIMIT}, got {limit}")
    loop = asyncio.get_running_loop()
    items = await loop.run_in_executor(None, service.database.pending, limit, exclude)
    counts = await loop.run_in_executor(None, service.database.counts)
    return json_response({"items": items, "counts": counts, "labels": list(service.model.review_labels)})

  @app.post("/v1/review/{item_id}")
  async def review(item_id: str, request: Request):
    service.check_token(request)
    if not item_id.isdigit() or len(item_id) > 18:
      raise ApiError(404, f"no deferred text has the id {item_id[:40]!r}")
    label, reviewer = _review_body(await read_json(request, 64 * 1024), service.model.review_labels)
    loop = asyncio.get_running_loop()
    try:
      stored = await loop.run_in_executor(None, service.database.add_review, int(item_id), label, reviewer)
    except review_database.UnknownItem:
      raise ApiError(404, f"no deferred text has the id {item_id}") from None
    except review_database.AlreadyReviewed as e:
      raise ApiError(409, f"item {item_id} was labelled already ({e.existing['label']} by "
                          f"{e.existing['reviewer']}); that label is kept") from None
    counts = await loop.run_in_executor(None, service.database.counts)
    return json_response({"review": stored, "counts": counts})

  @app.post("/v1/reload")
  async def reload(request: Request):
    service.check_token(request)
    body = await read_json(request, 64 * 1024, if_empty={})
    if not isinstance(body, dict) or set(body) - {"model", "workdir"} or len(body) > 1 or any(
        not isinstance(v, str) or not v for v in body.values()):
      raise ApiError(422, 'the body is {}, {"model": "DIR"} or {"workdir": "DIR"}')
    return json_response(await service.reload(body or None))

  def static_response(name: str) -> Response:
    content, media_type = static[name]
    return Response(content, media_type=media_type, headers=PAGE_HEADERS)

  @app.get("/")
  async def page():
    return static_response("review.html")

  @app.get("/static/{name}")
  async def static_file(name: str):
    if name not in static:
      raise ApiError(404, f"no such file: /static/{name[:60]}")
    return static_response(name)

  return ServiceApp(service, app)
