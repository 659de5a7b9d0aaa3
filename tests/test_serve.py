"""The sentiment service (python -m train.serve): answers, bad input, batching, reviews, reload, crashes, the page.

Promises: every text gets its answer with the model's version, the same probabilities train.predict
gives; every bad request is a 4xx with a one-line JSON error and the service keeps answering;
concurrent requests share scoring calls; deferred texts are stored once; the review and reload
endpoints do nothing without the token; of two labels for one text the first is kept and the second
is a 409; a reload under load fails no request; kill -9 loses no acknowledged label; the reviewed
file trains (labelled_rows reads it back); a real browser classifies and labels through the page.
The served model is the tiny run's export (tests/conftest.py); servers bind 127.0.0.1.
"""

import asyncio
import gc
import http.client
import json
import os
import re
import shutil
import signal
import sqlite3
import subprocess
import sys
import threading
import time

import numpy as np
import pytest

from benchmarks import command_line, serve_load
from tests import chromium_page, test_install
from train.model_files import inference, predictions
from train.data import labelled_rows
from train.service import app as app_lib
from train.service import request_batcher, review_database, review_export, served_model, server as server_lib

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TOKEN = "test-token-123"
DEFER_BELOW = 0.99
MAX_TEXTS = 50
MAX_REQUEST_BYTES = 2 * 2**20
FILLER = ("the day my work", "it is what it is", "so just now today", "we go home at time", "they get out up")


class Running:
  """A service running in this process on a thread: its URL, Service, database path, model directory."""

  def __init__(self, model_dir: str, db_path: str, defer_below: float = DEFER_BELOW):
    load = server_lib.model_loader(defer_below)
    self.model_dir, self.db_path = model_dir, db_path
    settings = app_lib.ServiceSettings(review_token=TOKEN, max_texts=MAX_TEXTS, max_request_bytes=MAX_REQUEST_BYTES,
                                       defer_below=defer_below)
    self.service = app_lib.Service(load({"model": model_dir}), {"model": model_dir},
                                   review_database.ReviewDatabase(db_path), settings, load)
    self.service.start()
    sock = server_lib.listening_socket("127.0.0.1", 0)
    self.host, self.port = sock.getsockname()[:2]
    self.url = f"http://{self.host}:{self.port}"
    self.server = server_lib.uvicorn_server(app_lib.create_app(self.service))
    self.thread = threading.Thread(target=lambda: asyncio.run(self.server.serve(sockets=[sock])), daemon=True)
    self.thread.start()
    deadline = time.monotonic() + 120
    while not (self.server.started and self.service.ready.is_set()):
      assert time.monotonic() < deadline, "the service did not get ready"
      time.sleep(0.05)

  def stop(self):
    self.server.should_exit = True
    self.thread.join(30)
    self.service.stop()
    gc.unfreeze()  # The service froze the heap once ready; the rest of the test session collects as usual.


def request(url_or_running, method, path, body=None, raw=None, token=None, headers=None, timeout=60):
  """(status, parsed JSON or raw bytes, response headers) of one request on a fresh connection."""
  url = url_or_running.url if isinstance(url_or_running, Running) else url_or_running
  host, port = url.rsplit("/", 1)[-1].rsplit(":", 1)
  connection = http.client.HTTPConnection(host, int(port), timeout=timeout)
  data = raw if raw is not None else (None if body is None else json.dumps(body).encode())
  all_headers = dict(headers or {})
  if token:
    all_headers["Authorization"] = f"Bearer {token}"
  try:
    connection.request(method, path, body=data, headers=all_headers)
    response = connection.getresponse()
    content = response.read()
  finally:
    connection.close()
  try:
    return response.status, json.loads(content), dict(response.getheaders())
  except ValueError:
    return response.status, content, dict(response.getheaders())


def classify(running, texts):
  status, body, _ = request(running, "POST", "/v1/classify", {"texts": texts})
  assert status == 200, body
  return body


def deferred_row(db_path, text):
  connection = sqlite3.connect(db_path)
  connection.row_factory = sqlite3.Row
  try:
    row = connection.execute("SELECT * FROM deferred WHERE text = ?", (text,)).fetchone()
    return dict(row) if row else None
  finally:
    connection.close()


def review_of(db_path, item_id):
  connection = sqlite3.connect(db_path)
  try:
    return connection.execute("SELECT label, reviewer FROM reviews WHERE deferred_id = ?", (item_id,)).fetchone()
  finally:
    connection.close()


@pytest.fixture(scope="module")
def service(exported, tmp_path_factory):
  running = Running(exported[0], str(tmp_path_factory.mktemp("service") / "reviews.sqlite"))
  yield running
  running.stop()


# ---- Answers ----

def test_answers_carry_label_confidence_probabilities_deferral_and_version(service, exported):
  texts = ["good great love happy", "bad sad awful worst", *FILLER, "good " * 40]
  body = classify(service, texts)
  version = served_model.parameters_digest(inference.load_exported(exported[0]).state.params)
  assert body["model_version"] == version and version.startswith("sha256:")
  results = body["results"]
  assert len(results) == len(texts)
  expected = list(predictions.classify(inference.load_exported(exported[0]), [t.encode() for t in texts], threshold=0.0))
  for text, result, reference in zip(texts, results, expected):
    assert result["model_version"] == version
    assert set(result["probabilities"]) == {"negative", "positive"}
    assert sum(result["probabilities"].values()) == pytest.approx(1.0, abs=1e-5)
    assert result["confidence"] == pytest.approx(max(result["probabilities"].values()))
    assert result["deferred"] == (result["confidence"] < DEFER_BELOW)
    assert result["label"] == ("neutral" if result["deferred"] else reference["label"])
    assert result["probabilities"]["positive"] == pytest.approx(reference["p_positive"], abs=1e-5), text
  assert results[0]["probabilities"]["positive"] > 0.5 > results[1]["probabilities"]["positive"]
  assert "only the first 16 of its 40 tokens were used" in results[-1]["note"] and results[0]["note"] is None
  assert any(r["deferred"] for r in results)


def test_health_and_model_description(service):
  status, health, _ = request(service, "GET", "/healthz")
  assert status == 200 and health["status"] == "ready"
  assert gc.get_freeze_count() > 0  # Ready means the heap is frozen: no full collection pauses the requests.
  status, model, _ = request(service, "GET", "/v1/model")
  assert status == 200
  assert health["programs_compiled"] == sum(map(len, model["batch_rows"].values())) > 3  # Partial batches too.
  assert model["batch_rows"]["16"] == list(inference.partial_batch_rows(64))
  assert model["classes"] == ["negative", "positive"] and model["review_labels"] == ["negative", "neutral", "positive"]
  assert model["defer_below"] == DEFER_BELOW and model["threshold"] == 0.7 and model["length_buckets"] == [6, 10, 16]
  assert model["version"] == health["model_version"] and model["source"] == os.path.abspath(service.model_dir)
  assert model["card"]["description"].startswith("A 1-layer Mamba")
  assert set(model["card"]["accuracy"]) == {"validation", "test", "manual_test"}


# ---- Bad input: 4xx, one line of JSON, and the service keeps answering ----

BAD_REQUESTS = [
    ("not JSON", b"{texts: [", {}, 400, "not JSON"),
    ("empty body", b"", {}, 400, "empty request body"),
    ("invalid UTF-8", b'{"texts": ["caf\xe9 \xff"]}', {}, 400, "not valid UTF-8"),
    ("raw control character", b'{"texts": ["a\x01b"]}', {}, 400, "not JSON"),
    ("nested too deeply", b"[" * 100_000 + b"]" * 100_000, {}, 400, "nested too deeply"),
    ("a list, not an object", b'["hello"]', {}, 422, "JSON object"),
    ("no texts", b'{"text": ["hello"]}', {}, 422, "unknown field"),
    ("no texts at all", b"{}", {}, 422, 'no "texts"'),
    ("texts a string", b'{"texts": "hello"}', {}, 422, "must be an array of strings, got string"),
    ("texts null", b'{"texts": null}', {}, 422, "got null"),
    ("a number among texts", b'{"texts": ["ok", 3]}', {}, 422, '"texts"[1] must be a string, got number'),
    ("a nested list", b'{"texts": [["ok"]]}', {}, 422, "got array"),
    ("empty list", b'{"texts": []}', {}, 422, "is empty"),
    ("too many texts", json.dumps({"texts": ["ok"] * (MAX_TEXTS + 1)}).encode(), {}, 413, f"at most {MAX_TEXTS}"),
    ("body too large", json.dumps({"texts": ["x" * (MAX_REQUEST_BYTES + 10)]}).encode(), {}, 413, "request body"),
    ("lone surrogate", b'{"texts": ["ok \\ud800 there"]}', {}, 422, "lone surrogate \\ud800"),
    ("only control characters", b'{"texts": ["\\u0000\\u001b \\u200f"]}', {}, 422, "nothing but whitespace"),
    ("only whitespace", b'{"texts": ["ok", "  \\n\\t "]}', {}, 422, '"texts"[1] is empty'),
    ("bad content length", b'{"texts": ["ok"]}', {"Content-Length": "abc"}, 400, None),
]


@pytest.mark.parametrize("name,raw,headers,status,message", BAD_REQUESTS, ids=[b[0] for b in BAD_REQUESTS])
def test_bad_requests_get_a_one_line_json_error_and_the_service_keeps_serving(service, name, raw, headers, status,
                                                                              message):
  del name
  got, body, response_headers = request(service, "POST", "/v1/classify", raw=raw, headers=headers)
  assert got == status, body
  if message is not None:  # http.client's own answer to a malformed header is not ours to shape.
    assert response_headers["content-type"] == "application/json"
    assert set(body) == {"error"} and message in body["error"], body
    assert "\n" not in json.dumps(body)
  assert classify(service, ["good happy"])["results"][0]["probabilities"]["positive"] > 0.5


def test_a_megabyte_text_is_cut_and_noted(service):
  result = classify(service, ["good " * 200_000])["results"][0]  # 1 MB.
  assert "text of 1,000,000 characters cut to 10,000" in result["note"]
  assert "only the first 16 of its 2,000 tokens were used" in result["note"]  # Of the cut text.
  assert result["probabilities"]["positive"] > 0.5


def test_escaped_control_characters_and_other_scripts_are_classified(service):
  results = classify(service, ["good \u001b[31mred\u001b[0m \u0007", "\u202egood \u05e9\u05dc\u05d5\u05dd",
                               "\U0001F600 happy"])["results"]
  assert all(r["label"] in ("negative", "neutral", "positive") for r in results)


@pytest.mark.parametrize("method,path,status", [("GET", "/v1/classify", 405), ("POST", "/v1/nothing", 404),
                                                ("GET", "/static/../app.py", 404), ("GET", "/static/x.py", 404)])
def test_unknown_routes_answer_one_line_json(service, method, path, status):
  got, body, _ = request(service, method, path)
  assert got == status and set(body) == {"error"}


# ---- Batching ----

class FakeModel:
  """What the batcher needs of a ServedModel: a version and classify (slow on purpose; "boom" raises)."""

  def __init__(self, version, seconds=0.0):
    self.version, self.seconds, self.calls = version, seconds, []

  def classify(self, texts):
    self.calls.append(list(texts))
    time.sleep(self.seconds)
    if any("boom" in t for t in texts):
      raise RuntimeError("boom")
    return [f"{self.version}:{t}" for t in texts]


def test_the_batcher_joins_requests_within_its_window_and_swaps_only_between_batches():
  old, new = FakeModel("old", seconds=0.4), FakeModel("new")
  batcher = request_batcher.RequestBatcher(old, window_s=0.1, max_rows=100).start()

  async def requests():
    first = [asyncio.ensure_future(batcher.classify([f"a{i}", f"b{i}"])) for i in range(5)]
    await asyncio.sleep(0.2)  # Window closed: the five requests are one call, running for 0.4 s on the old model.
    assert batcher.swap(new) is old
    later = asyncio.ensure_future(batcher.classify(["c"]))
    return await asyncio.gather(*first, later)

  try:
    answers = asyncio.run(requests())
  finally:
    batcher.stop()
  assert old.calls == [[t for i in range(5) for t in (f"a{i}", f"b{i}")]] and new.calls == [["c"]]
  for i, (model, texts) in enumerate(answers[:5]):
    assert model is old and texts == [f"old:a{i}", f"old:b{i}"]
  assert answers[5][0] is new and answers[5][1] == ["new:c"] and batcher.pending_texts == 0


def test_a_failing_batch_fails_its_own_requests_and_the_batcher_goes_on():
  batcher = request_batcher.RequestBatcher(FakeModel("m"), window_s=0.0).start()
  try:
    with pytest.raises(RuntimeError, match="boom"):
      asyncio.run(batcher.classify(["boom"]))
    assert asyncio.run(batcher.classify(["fine"]))[1] == ["m:fine"]
  finally:
    batcher.stop()


def test_an_overloaded_batcher_refuses_at_once():
  batcher = request_batcher.RequestBatcher(FakeModel("m", seconds=0.3), window_s=0.0, max_pending_texts=3).start()

  async def requests():
    running = asyncio.ensure_future(batcher.classify(["a", "b"]))
    await asyncio.sleep(0.05)
    with pytest.raises(request_batcher.Overloaded, match="2 texts are waiting"):
      await batcher.classify(["c", "d"])
    assert (await batcher.classify(["e"]))[1] == ["m:e"]  # 3 texts fit.
    return await running

  try:
    assert asyncio.run(requests())[1] == ["m:a", "m:b"] and batcher.pending_texts == 0
  finally:
    batcher.stop()


def test_concurrent_requests_share_scoring_calls_and_each_gets_its_own_answers(service):
  texts = [f"{w} {i}" for i, w in enumerate(("good day", "bad day", "the work", "happy", "sad") * 8)]
  alone = {t: classify(service, [t])["results"][0]["probabilities"]["positive"] for t in texts[:5]}
  batches_before = service.service.batcher.batches

  async def all_at_once():
    connections = [serve_load.HttpConnection(service.host, service.port) for _ in texts]
    try:
      return await asyncio.gather(*(c.request("POST", "/v1/classify", json.dumps({"texts": [t]}).encode())
                                    for c, t in zip(connections, texts)))
    finally:
      for c in connections:
        c.close()

  answers = asyncio.run(all_at_once())
  assert all(status == 200 for status, _ in answers)
  batches = service.service.batcher.batches - batches_before
  assert batches < len(texts), f"{len(texts)} concurrent requests took {batches} scoring calls"
  for text, (_, content) in zip(texts[:5], answers[:5]):
    assert json.loads(content)["results"][0]["probabilities"]["positive"] == pytest.approx(alone[text], abs=1e-5)


def test_bounded_load_has_no_errors(service, tmp_path):
  tweets = tmp_path / "tweets.txt"
  tweets.write_text("\n".join(["good day at work", "bad sad day", "the time we go home", "happy fun"] * 5) + "\n")
  report = command_line.run_in_process(
      "benchmarks.serve_load", serve_load.define_flags, serve_load.benchmark,
      [f"--url={service.url}", "--seconds=1.5", "--single_clients=8", "--batch_clients=2", f"--batch_size={MAX_TEXTS}",
       f"--texts={tweets}", f"--output_dir={tmp_path}", "--name=load"])
  for name in ("single", "batch"):
    phase = report["phases"][name]
    assert phase["errors"] == 0, phase["first_errors"]
    assert phase["requests"] > 0 and phase["p99_ms"] >= phase["p50_ms"] > 0
  assert report["phases"]["batch"]["tweets"] == MAX_TEXTS * report["phases"]["batch"]["requests"]
  assert (tmp_path / "load.json").exists() and "| single | 8 | 1 |" in (tmp_path / "load.md").read_text()


# ---- The review database and the review endpoints ----

def test_deferred_texts_are_stored_once_with_version_time_and_probabilities(service):
  text = "so just now today the day 17"
  first = classify(service, [text, text])["results"]
  assert first[0]["deferred"], first  # A filler-only tweet: the tiny model is unsure.
  classify(service, [text])
  row = deferred_row(service.db_path, text)
  assert row["times_seen"] == 3 and row["model_version"] == first[0]["model_version"]
  assert json.loads(row["probabilities"]) == pytest.approx(first[0]["probabilities"])
  assert row["confidence"] == pytest.approx(first[0]["confidence"]) and abs(row["first_seen"] - time.time()) < 120
  confident = [t for t, r in zip(["good great love happy fun"], classify(service, ["good great love happy fun"])["results"])
               if not r["deferred"]]
  for t in confident:
    assert deferred_row(service.db_path, t) is None


@pytest.mark.parametrize("headers", [{}, {"Authorization": "Bearer wrong"}, {"Authorization": f"Basic {TOKEN}"},
                                     {"Authorization": TOKEN}, {"Authorization": "Bearer "}])
def test_review_and_reload_endpoints_need_the_token(service, headers):
  classify(service, ["the day my work 401"])
  item = deferred_row(service.db_path, "the day my work 401")
  counts = service.service.database.counts()
  version = service.service.model.version
  for method, path, body in (("GET", "/v1/review/queue", None), ("POST", f"/v1/review/{item['id']}", {"label": "negative"}),
                             ("POST", "/v1/reload", {}), ("POST", "/v1/reload", {"model": "/nonexistent"})):
    status, answer, response_headers = request(service, method, path, body, headers=headers)
    assert status == 401 and "review token" in answer["error"] and response_headers["www-authenticate"] == "Bearer"
  assert service.service.database.counts() == counts and review_of(service.db_path, item["id"]) is None
  assert service.service.model.version == version and service.service.reloads == 0


def test_queue_is_least_confident_first_and_labels_are_checked(service):
  texts = [f"{f} queue" for f in FILLER]
  classify(service, texts)
  status, queue, _ = request(service, "GET", "/v1/review/queue?limit=200", token=TOKEN)
  assert status == 200 and queue["labels"] == ["negative", "neutral", "positive"]
  confidences = [item["confidence"] for item in queue["items"]]
  assert confidences == sorted(confidences) and {t for t in texts} <= {item["text"] for item in queue["items"]}
  item = deferred_row(service.db_path, texts[0])
  for body, status in (({"label": "angry"}, 422), ({"label": "negative", "reviewer": "x" * 65}, 422),
                       ({"label": "negative", "reviewer": "a\u001bb"}, 422), ({"label": "negative", "extra": 1}, 422)):
    got, answer, _ = request(service, "POST", f"/v1/review/{item['id']}", body, token=TOKEN)
    assert got == status and set(answer) == {"error"}
  assert request(service, "POST", "/v1/review/999999999", {"label": "negative"}, token=TOKEN)[0] == 404
  assert request(service, "POST", "/v1/review/abc", {"label": "negative"}, token=TOKEN)[0] == 404
  assert request(service, "GET", "/v1/review/queue?limit=0", token=TOKEN)[0] == 422
  status, answer, _ = request(service, "POST", f"/v1/review/{item['id']}", {"label": "neutral", "reviewer": "ana"},
                              token=TOKEN)
  assert status == 200 and answer["review"]["label"] == "neutral"
  status, queue, _ = request(service, "GET", f"/v1/review/queue?limit=200&exclude={item['id']}", token=TOKEN)
  assert item["id"] not in [i["id"] for i in queue["items"]]


def test_two_reviewers_on_one_tweet_one_label_is_kept_the_other_gets_409(service):
  text = "we go home at time race"
  classify(service, [text])
  item = deferred_row(service.db_path, text)
  barrier, answers = threading.Barrier(2), {}

  def label(reviewer, value):
    barrier.wait()
    answers[reviewer] = request(service, "POST", f"/v1/review/{item['id']}", {"label": value, "reviewer": reviewer},
                                token=TOKEN)

  threads = [threading.Thread(target=label, args=("ana", "positive")), threading.Thread(target=label, args=("bo", "negative"))]
  for t in threads:
    t.start()
  for t in threads:
    t.join()
  statuses = sorted(answer[0] for answer in answers.values())
  assert statuses == [200, 409], answers
  winner = next(name for name, answer in answers.items() if answer[0] == 200)
  loser = next(name for name, answer in answers.items() if answer[0] == 409)
  assert "labelled already" in answers[loser][1]["error"]
  assert review_of(service.db_path, item["id"]) == ({"ana": "positive", "bo": "negative"}[winner], winner)


def test_the_reviewed_file_is_a_training_file(tmp_path):
  db_path = str(tmp_path / "reviews.sqlite")
  database = review_database.ReviewDatabase(db_path)
  texts = ["plain text", 'a "quoted" one, with a comma', "a\ttab and a\nline break", "ünïcödé \U0001F600", "x"]
  database.store_deferred("sha256:abc", [(t, {"label": "neutral", "confidence": 0.5,
                                              "probabilities": {"negative": 0.5, "positive": 0.5}}) for t in texts])
  for i, label in zip(range(1, 6), ("negative", "positive", "neutral", "positive", "negative")):
    database.add_review(i, label, "ana")
  database.close()
  output = tmp_path / "reviewed.tsv"
  counts = review_export.export_reviews(db_path, str(output))
  assert counts["rows"] == 5 and counts["labels"] == {"negative": 2, "positive": 2, "neutral": 1}
  rows = labelled_rows.read_labelled_file(str(output), text_column="text", label_column="label", labels="names")
  assert rows.texts == ["plain text", 'a "quoted" one, with a comma', "a tab and a line break", "ünïcödé \U0001F600", "x"]
  assert [("negative", "positive", "neutral")[i] for i in rows.labels] == ["negative", "positive", "neutral",
                                                                           "positive", "negative"]
  header = output.read_text().splitlines()[0].split("\t")
  assert header == ["text", "label", "reviewer", "reviewed_at"]
  assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", output.read_text().splitlines()[1].split("\t")[-1])
  binary = review_export.export_reviews(db_path, str(tmp_path / "binary.tsv"), ["negative", "positive"])
  assert binary["rows"] == 4 and binary["left_out"] == {"neutral": 1}
  result = subprocess.run([sys.executable, "-m", "train.review", "export", f"--db={db_path}",
                           f"--output={tmp_path / 'cli.tsv'}"], cwd=REPO, capture_output=True, text=True, timeout=120)
  assert result.returncode == 0 and "5 reviewed texts" in result.stdout, result.stderr[-2000:]
  assert (tmp_path / "cli.tsv").read_text() == output.read_text()
  for args, message in (([f"--db={tmp_path / 'missing.sqlite'}"], "no such review database"), ([], "give one command")):
    result = subprocess.run([sys.executable, "-m", "train.review", *(["export"] if args else []), *args,
                             f"--output={tmp_path / 'x.tsv'}"], cwd=REPO, capture_output=True, text=True, timeout=120)
    assert result.returncode == 2 and message in result.stderr and len(result.stderr.strip().splitlines()) == 1


def test_a_file_that_is_not_a_review_database_is_refused(tmp_path):
  (tmp_path / "junk.sqlite").write_bytes(b"not a database at all" * 100)
  with pytest.raises(ValueError, match="not a usable review database"):
    review_database.ReviewDatabase(str(tmp_path / "junk.sqlite"))
  other = sqlite3.connect(tmp_path / "other.sqlite")
  other.execute("CREATE TABLE t (x)")
  other.close()
  with pytest.raises(ValueError, match="not a review database"):
    review_database.ReviewDatabase(str(tmp_path / "other.sqlite"))


# ---- Reload ----

def test_reload_under_load_fails_no_request(service, exported_bfloat16):
  old = service.service.model.version
  result, stop = {}, threading.Event()

  def load():
    result.update(asyncio.run(serve_load.run_phase(service.host, service.port, ["good day", "bad day", "the work"],
                                                   clients=8, texts_per_request=3, seconds=120.0, stop=stop)))

  thread = threading.Thread(target=load)
  thread.start()
  time.sleep(1.0)
  try:
    status, answer, _ = request(service, "POST", "/v1/reload", {"model": exported_bfloat16}, token=TOKEN)
    time.sleep(0.5)  # Requests on the new model too.
  finally:
    stop.set()
    thread.join()
  assert status == 200, answer
  assert answer["previous_version"] == old and answer["version"] != old
  assert result["errors"] == 0, result["first_errors"]
  assert set(result["model_versions"]) == {old, answer["version"]}, result["model_versions"]
  assert request(service, "GET", "/v1/model")[1]["version"] == answer["version"]
  status, answer, _ = request(service, "POST", "/v1/reload", {"model": "/nonexistent/model"}, token=TOKEN)
  assert status == 422 and "still serving" in answer["error"]
  assert request(service, "POST", "/v1/reload", {"model": 3}, token=TOKEN)[0] == 422
  status, answer, _ = request(service, "POST", "/v1/reload", {"model": service.model_dir}, token=TOKEN)
  assert status == 200 and answer["version"] == old
  status, answer, _ = request(service, "POST", "/v1/reload", token=TOKEN)  # No body: the served source again.
  assert status == 200 and answer["version"] == old and answer["source"] == {"model": service.model_dir}
  assert classify(service, ["good"])["model_version"] == old


# ---- The command: start, SIGHUP, kill -9 during reviews ----

@pytest.mark.slow
def test_cli_serves_reloads_on_sighup_and_kill_9_loses_no_acknowledged_label(exported, exported_bfloat16, tmp_path):
  model_dir = tmp_path / "served_model"
  shutil.copytree(exported[0], model_dir)
  db_path = str(tmp_path / "reviews.sqlite")
  process = subprocess.Popen([sys.executable, "-m", "train.serve", f"--model={model_dir}", "--port=0",
                              f"--db={db_path}", "--defer_below=1.0"], cwd=REPO, text=True,
                             env={**os.environ, "JAX_PLATFORMS": "cpu", server_lib.TOKEN_ENVIRONMENT_VARIABLE: TOKEN},
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE)
  try:
    line = process.stdout.readline()
    url = "http://" + re.search(r"http://([\d.]+:\d+)/", line).group(1)
    assert "127.0.0.1" in url
    asyncio.run(serve_load.wait_ready(url, 120))
    old = request(url, "GET", "/v1/model")[1]["version"]
    texts = [f"{f} {i}" for i in range(12) for f in FILLER]
    assert all(r["deferred"] for r in request(url, "POST", "/v1/classify", {"texts": texts})[1]["results"])
    # SIGHUP: the served directory now holds the bfloat16 export.
    for name in os.listdir(exported_bfloat16):
      shutil.copy(os.path.join(exported_bfloat16, name), model_dir / name)
    process.send_signal(signal.SIGHUP)
    deadline = time.monotonic() + 60
    while request(url, "GET", "/v1/model")[1]["version"] == old:
      assert time.monotonic() < deadline, "SIGHUP did not reload"
      time.sleep(0.1)
    # Reviews, then kill -9 while they go on.
    items = request(url, "GET", "/v1/review/queue?limit=200", token=TOKEN)[1]["items"]
    assert len(items) == len(texts)
    acknowledged = {}

    def review_all():
      for n, item in enumerate(items):
        label = ("negative", "neutral", "positive")[n % 3]
        try:
          status, _, _ = request(url, "POST", f"/v1/review/{item['id']}", {"label": label, "reviewer": "ana"},
                                 token=TOKEN, timeout=10)
        except OSError:
          return
        if status == 200:
          acknowledged[item["id"]] = label

    reviewer = threading.Thread(target=review_all)
    reviewer.start()
    while len(acknowledged) < 15:
      time.sleep(0.005)
    os.kill(process.pid, signal.SIGKILL)
    reviewer.join(30)
    process.wait(30)
  finally:
    if process.poll() is None:
      process.kill()
      process.wait(30)
  assert 15 <= len(acknowledged) < len(items), "the kill came after every review"
  connection = sqlite3.connect(db_path)
  try:
    assert connection.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    stored = dict(connection.execute("SELECT deferred_id, label FROM reviews").fetchall())
  finally:
    connection.close()
  assert {i: stored.get(i) for i in acknowledged} == acknowledged
  assert review_export.export_reviews(db_path, str(tmp_path / "after_crash.tsv"))["rows"] == len(stored)


def test_cli_errors_are_one_line_exit_2(tmp_path):
  result = subprocess.run([sys.executable, "-m", "train.serve", "--model=/nonexistent/model",
                           f"--db={tmp_path / 'r.sqlite'}", "--port=0"], cwd=REPO, capture_output=True, text=True,
                          timeout=120, env={**os.environ, "JAX_PLATFORMS": "cpu"})
  assert result.returncode == 2 and "config.json not found" in result.stderr, result.stderr[-2000:]
  assert [line for line in result.stderr.splitlines() if line.startswith("ERROR")] == [result.stderr.strip().splitlines()[-1]]
  assert not (tmp_path / "r.sqlite").exists()  # Nothing is created before the model loads.
  for options, message in ((server_lib.ServeOptions(), "exactly one of --workdir"),
                           (server_lib.ServeOptions(model="m", workdir="w"), "exactly one of --workdir")):
    with pytest.raises(ValueError, match=message):
      server_lib.run(options)
  with pytest.raises(ValueError, match="defer_below must be within"):
    served_model.load_served_model(model="m", defer_below=1.5)


def test_the_installed_wheel_holds_the_page(request, tmp_path):
  python = test_install.installed_wheel_python(request)
  env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME")}
  shown = subprocess.run([str(python), "-c", "import os; from train.service import app; "
                          "print(app.STATIC_DIR); print(' '.join(sorted(os.listdir(app.STATIC_DIR))))"],
                         cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
  assert shown.returncode == 0, shown.stderr[-2000:]
  folder, files = shown.stdout.splitlines()
  assert folder.startswith(str(python.parent.parent)) and files.split() == ["review.css", "review.html", "review.js"]


# ---- The page, in a real browser ----

@pytest.fixture
def browser(tmp_path):
  binary = chromium_page.chromium_binary()
  if binary is None:
    pytest.skip("no Chromium installed (Debian: apt-get install chromium; .ci/run installs it)")
  chromium = chromium_page.HeadlessChromium(binary, str(tmp_path / "profile"))
  yield chromium
  chromium.close()


def test_the_page_classifies_a_tweet_and_labels_a_deferred_one(service, browser):
  page = browser
  page.navigate(service.url + "/")
  page.wait_for("document.getElementById('model-version').textContent.startsWith('sha256:')")
  tweet, trap = "the day my work browser", '<img src=x onerror="window.pwned=1"> bad day'
  page.evaluate(f"document.getElementById('classify-input').value = {json.dumps(tweet + chr(10) + trap)}")
  page.evaluate("document.getElementById('classify-button').click()")
  cells = page.wait_for("(() => { const rows = document.querySelectorAll('#classify-results tbody tr');"
                        " return rows.length === 2 && Array.from(rows, r => Array.from(r.cells, c => c.textContent)); })()")
  expected = classify(service, [tweet])["results"][0]
  assert cells[0] == [tweet, expected["label"], f"{expected['confidence']:.3f}", "yes" if expected["deferred"] else "no"]
  assert cells[1][0] == trap and page.evaluate("document.querySelectorAll('#classify-results img').length") == 0
  assert page.evaluate("window.pwned === undefined")
  assert expected["deferred"] and deferred_row(service.db_path, tweet) is not None

  reviewed_before = service.service.database.counts()["reviewed"]
  page.evaluate(f"document.getElementById('token-input').value = {json.dumps(TOKEN)}")
  page.evaluate("document.getElementById('reviewer-input').value = 'chromium'")
  page.evaluate("document.getElementById('start-button').click()")
  first_id = int(page.wait_for("document.getElementById('review-text').dataset.id"))
  first_text = page.evaluate("document.getElementById('review-text').textContent")
  assert deferred_row(service.db_path, first_text)["id"] == first_id
  assert page.evaluate("document.getElementById('pending-count').textContent") != "?"
  page.evaluate("document.activeElement.blur()")
  page.press("1")  # negative
  page.wait_for(f"document.getElementById('review-text').dataset.id !== '{first_id}'")
  assert review_of(service.db_path, first_id) == ("negative", "chromium")
  page.wait_for(f"document.getElementById('reviewed-count').textContent === '{reviewed_before + 1}'")
  second_id = page.evaluate("document.getElementById('review-text').dataset.id")
  page.press("s")  # skip: shown no more, not labelled
  page.wait_for(f"document.getElementById('review-text').dataset.id !== '{second_id}'")
  assert review_of(service.db_path, int(second_id)) is None
  page.evaluate("document.getElementById('label-buttons').querySelector('[data-label=positive]').click()")
  page.wait_for(f"document.getElementById('reviewed-count').textContent === '{reviewed_before + 2}'")
  assert page.exceptions == []
