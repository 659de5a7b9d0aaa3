r"""Load test of the sentiment service (``python -m train.serve``): bounded, loopback only, stops by itself.

  python -m benchmarks.serve_load                       # writes results/serve_cpu.{json,md}
  python -m benchmarks.serve_load --seconds=5 --output_dir=/tmp/serve_load
  python -m benchmarks.serve_load --url=http://127.0.0.1:8000   # a service already running (loopback only)

Starts ``python -m train.serve --model=<--model> --port=0`` with a fresh review database in a temporary
folder (unless ``--url``), waits until ``/healthz`` says ready (the start-up time is reported), then runs
two phases of ``--seconds`` each, one after the other:

* ``single``: ``--single_clients`` clients (32), each sending one-tweet ``POST /v1/classify`` requests
  back to back on its own keep-alive connection;
* ``batch``: ``--batch_clients`` clients (8), each sending requests of ``--batch_size`` tweets (100).

Tweets are drawn in a seeded order from ``--texts`` (default: the Sentiment140 manual test set, 498
hand-labelled tweets, from the data folder training reads). Per phase: requests, tweets, errors (any answer other than 200 with one result per
tweet, or a broken connection), requests/s, tweets/s and the latency percentiles (p50, p90, p99, max; from
sending a request to reading its whole answer). The clients are a small HTTP/1.1 client on asyncio in
this process (a few tens of microseconds per request), so they take part of the same CPU: the numbers
are those of server and clients sharing the machine.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import subprocess
import sys
import tempfile
import threading
import time
import urllib.parse
from typing import Optional, Sequence

import numpy as np
from absl import flags

from benchmarks import command_line
from train.runs import provenance

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
READY_TIMEOUT_S = 600.0


class HttpConnection:
  """One keep-alive HTTP/1.1 connection: ``request`` -> (status, body bytes)."""

  def __init__(self, host: str, port: int):
    self.host, self.port = host, port
    self.reader: Optional[asyncio.StreamReader] = None
    self.writer: Optional[asyncio.StreamWriter] = None

  async def request(self, method: str, path: str, body: bytes = b"", headers: Optional[dict] = None) -> tuple[int, bytes]:
    if self.writer is None:
      self.reader, self.writer = await asyncio.open_connection(self.host, self.port)
    head = [f"{method} {path} HTTP/1.1", f"Host: {self.host}:{self.port}", f"Content-Length: {len(body)}"]
    if body:
      head.append("Content-Type: application/json")
    head += [f"{k}: {v}" for k, v in (headers or {}).items()]
    self.writer.write(("\r\n".join(head) + "\r\n\r\n").encode("latin-1") + body)
    try:
      status_line = await self.reader.readline()
      if not status_line:
        raise ConnectionError("the server closed the connection")
      status = int(status_line.split()[1])
      length, close = None, False
      while True:
        line = await self.reader.readline()
        if line in (b"\r\n", b"\n", b""):
          break
        name, _, value = line.decode("latin-1").partition(":")
        name = name.strip().lower()
        if name == "content-length":
          length = int(value.strip())
        elif name == "connection" and value.strip().lower() == "close":
          close = True
      content = await self.reader.readexactly(length) if length is not None else await self.reader.read()
    except BaseException:
      self.close()
      raise
    if close or length is None:
      self.close()
    return status, content

  def close(self) -> None:
    if self.writer is not None:
      self.writer.close()
    self.reader = self.writer = None


def read_texts(path: Optional[str]) -> list[str]:
  """The texts to send: of a plain .txt file (one per line), of a labelled CSV/TSV with a ``text`` column
  (``train/data/labelled_rows.py``), or without a path the Sentiment140 manual test set (its data folder,
  as training finds it: ``train.data.sources``)."""
  # pylint: disable=import-outside-toplevel
  from train.data import labelled_rows, sources
  if path is None:
    files = sources.find_sources(sources.resolve_data_dir(), download=False)
    return list(sources.read_csv(files.manual_test, files.manual_test_member, allow_neutral=True).texts)
  if path.endswith(".txt"):
    with open(path, encoding="utf-8") as f:
      return [line.strip() for line in f if line.strip()]
  rows = labelled_rows.read_labelled_file(path, text_column="text", label_column="label", labels="classes")
  return list(rows.texts)


def latency_summary(latencies_s: Sequence[float]) -> dict:
  """p50/p90/p99/max/mean latency in ms (None without requests)."""
  if not len(latencies_s):
    return {"p50_ms": None, "p90_ms": None, "p99_ms": None, "max_ms": None, "mean_ms": None}
  ms = np.asarray(latencies_s) * 1000.0
  return {"p50_ms": float(np.percentile(ms, 50)), "p90_ms": float(np.percentile(ms, 90)),
          "p99_ms": float(np.percentile(ms, 99)), "max_ms": float(ms.max()), "mean_ms": float(ms.mean())}


async def run_phase(host: str, port: int, texts: Sequence[str], clients: int, texts_per_request: int,
                    seconds: float, seed: int = 0, stop: Optional[threading.Event] = None) -> dict:
  """``clients`` clients sending ``texts_per_request``-tweet classify requests for ``seconds`` (or until
  ``stop`` is set); the summary.

  An error: an answer other than 200 with one result per text, or a broken connection (the client then
  reconnects). Every answer's model versions are counted (``versions``).
  """
  deadline = time.perf_counter() + seconds
  latencies: list[float] = []
  errors: list[str] = []
  versions: dict[str, int] = {}
  rng = np.random.default_rng(seed)
  bodies = [json.dumps({"texts": [texts[int(i)] for i in rng.integers(0, len(texts), texts_per_request)]}).encode()
            for _ in range(256)]

  async def client(index: int) -> None:
    connection = HttpConnection(host, port)
    n = index
    while time.perf_counter() < deadline and not (stop is not None and stop.is_set()):
      body = bodies[n % len(bodies)]
      n += clients
      start = time.perf_counter()
      try:
        status, content = await connection.request("POST", "/v1/classify", body)
      except (OSError, asyncio.IncompleteReadError, ConnectionError, ValueError) as e:
        errors.append(f"{type(e).__name__}: {e}")
        connection.close()
        continue
      latencies.append(time.perf_counter() - start)
      if status != 200:
        errors.append(f"HTTP {status}: {content[:200]!r}")
        continue
      answer = json.loads(content)
      if len(answer.get("results", ())) != texts_per_request:
        errors.append(f"{len(answer.get('results', ()))} results for {texts_per_request} texts")
      versions[answer["model_version"]] = versions.get(answer["model_version"], 0) + 1
    connection.close()

  start = time.perf_counter()
  await asyncio.gather(*(client(i) for i in range(clients)))
  elapsed = time.perf_counter() - start
  requests = len(latencies)
  return {"clients": clients, "texts_per_request": texts_per_request, "seconds": elapsed, "requests": requests,
          "tweets": requests * texts_per_request, "errors": len(errors), "first_errors": errors[:5],
          "requests_per_s": requests / elapsed, "tweets_per_s": requests * texts_per_request / elapsed,
          **latency_summary(latencies), "model_versions": versions}


def start_server(model: str, work_dir: str, extra_flags: Sequence[str] = ()) -> tuple[subprocess.Popen, str, float]:
  """``python -m train.serve`` on a free loopback port: (process, base URL, seconds until /healthz is ready)."""
  start = time.perf_counter()
  process = subprocess.Popen([sys.executable, "-m", "train.serve", f"--model={model}", "--port=0",
                              f"--db={os.path.join(work_dir, 'reviews.sqlite')}", "--review_token=load-test",
                              *extra_flags], cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
  line = process.stdout.readline()
  match = re.search(r"http://([\d.]+):(\d+)/", line)
  if not match:
    process.kill()
    raise RuntimeError(f"python -m train.serve did not start: {line!r}")
  url = f"http://{match.group(1)}:{match.group(2)}"
  asyncio.run(wait_ready(url, READY_TIMEOUT_S))
  return process, url, time.perf_counter() - start


async def wait_ready(url: str, timeout_s: float) -> None:
  parsed = urllib.parse.urlparse(url)
  deadline = time.perf_counter() + timeout_s
  while time.perf_counter() < deadline:
    connection = HttpConnection(parsed.hostname, parsed.port)
    try:
      status, _ = await connection.request("GET", "/healthz")
      if status == 200:
        return
    except OSError:
      pass
    finally:
      connection.close()
    await asyncio.sleep(0.2)
  raise TimeoutError(f"{url}/healthz not ready after {timeout_s:.0f} s")


def markdown(report: dict) -> str:
  env = report["environment"]
  lines = [
      "# Sentiment service under load (`python -m train.serve`)", "",
      f"`{env['command']}` on {env.get('host_cpu', '?')} ({env.get('cpu_count', '?')} cores), commit "
      f"{str(env.get('commit', '?'))[:10]}, {env.get('date_utc', '?')}; load average at start "
      f"{env.get('load_average_at_start', '?')}. {report['note']}", "",
      f"Model `{report['model']}` ({report['model_version'][:19]}...), loopback HTTP/1.1 keep-alive clients in "
      f"one asyncio process on the same machine; tweets from `{os.path.basename(report['texts'] or 'testdata.manual.2009.06.14.csv')}`; server "
      f"start-up until `/healthz` ready: {report['startup_s']:.1f} s." if report.get("startup_s") is not None else
      f"Service at {report['url']} (started elsewhere).", "",
      "| phase | clients | tweets/request | seconds | requests | errors | requests/s | tweets/s | p50 ms | p90 ms "
      "| p99 ms | max ms |", "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
  for name, phase in report["phases"].items():
    lines.append(f"| {name} | {phase['clients']} | {phase['texts_per_request']} | {phase['seconds']:.1f} | "
                 f"{phase['requests']:,} | {phase['errors']} | {phase['requests_per_s']:,.0f} | "
                 f"{phase['tweets_per_s']:,.0f} | {_ms(phase['p50_ms'])} | {_ms(phase['p90_ms'])} | "
                 f"{_ms(phase['p99_ms'])} | {_ms(phase['max_ms'])} |")
  lines += ["", "Targets (issue 35, 2-core CPU): >= 1,000 single-tweet requests/s with p99 <= 100 ms; >= 4,000 "
            "tweets/s in 100-tweet requests; no error."]
  return "\n".join(lines) + "\n"


def _ms(value: Optional[float]) -> str:
  return "-" if value is None else f"{value:.1f}"


def benchmark(settings: flags.FlagValues, command: str) -> dict:
  texts = read_texts(settings.texts)
  process = None
  with tempfile.TemporaryDirectory(prefix="serve_load_") as work_dir:
    try:
      if settings.url:
        url, startup_s = settings.url.rstrip("/"), None
        parsed = urllib.parse.urlparse(url)
        if parsed.hostname not in ("127.0.0.1", "localhost", "::1"):
          raise ValueError(f"--url must be a loopback address (this is a load test), got {parsed.hostname}")
        asyncio.run(wait_ready(url, 30.0))
      else:
        process, url, startup_s = start_server(settings.model, work_dir, [f"--batch_window_ms={settings.window_ms}"])
      parsed = urllib.parse.urlparse(url)
      environment = provenance.host_environment(command)
      phases = {}
      for name, clients, per_request in (("single", settings.single_clients, 1),
                                         ("batch", settings.batch_clients, settings.batch_size)):
        phases[name] = asyncio.run(run_phase(parsed.hostname, parsed.port, texts, clients, per_request,
                                             settings.seconds, seed=settings.seed))
        print(f"{name}: {phases[name]['requests_per_s']:,.0f} requests/s, {phases[name]['tweets_per_s']:,.0f} "
              f"tweets/s, p50 {_ms(phases[name]['p50_ms'])} ms, p99 {_ms(phases[name]['p99_ms'])} ms, "
              f"{phases[name]['errors']} errors", flush=True)
    finally:
      if process is not None:
        process.terminate()
        try:
          process.wait(30)
        except subprocess.TimeoutExpired:
          process.kill()
  versions = {v for phase in phases.values() for v in phase["model_versions"]}
  report = {"model": settings.model, "url": settings.url or None, "model_version": ",".join(sorted(versions)),
            "texts": settings.texts, "startup_s": startup_s, "window_ms": settings.window_ms, "phases": phases,
            "note": settings.note, "environment": environment}
  stem = os.path.join(settings.output_dir, settings.name)
  os.makedirs(settings.output_dir, exist_ok=True)
  provenance.write_report(stem, report, markdown(report))
  return report


def define_flags(flag_values: flags.FlagValues) -> None:
  flags.DEFINE_string("model", os.path.join("models", "sent140_mamba"), "The exported model to serve.",
                      flag_values=flag_values)
  flags.DEFINE_string("url", None, "Load a service already running at this loopback URL instead.",
                      flag_values=flag_values)
  flags.DEFINE_float("seconds", 30.0, "Seconds per phase.", flag_values=flag_values)
  flags.DEFINE_integer("single_clients", 32, "Clients of one-tweet requests.", flag_values=flag_values)
  flags.DEFINE_integer("batch_clients", 8, "Clients of --batch_size-tweet requests.", flag_values=flag_values)
  flags.DEFINE_integer("batch_size", 100, "Tweets per request of the batch phase.", flag_values=flag_values)
  flags.DEFINE_float("window_ms", 3.0, "The server's --batch_window_ms.", flag_values=flag_values)
  flags.DEFINE_string("texts", None, "Tweets to send: a .txt (one per line) or a CSV/TSV with text and label "
                      "columns; default the Sentiment140 manual test set ($SENT140_DATA_DIR).",
                      flag_values=flag_values)
  flags.DEFINE_integer("seed", 0, "Order of the tweets.", flag_values=flag_values)
  flags.DEFINE_string("note", "", "What else ran on the machine (written into the report).", flag_values=flag_values)
  flags.DEFINE_string("output_dir", "results", "Where <name>.json/.md go.", flag_values=flag_values)
  flags.DEFINE_string("name", "serve_cpu", "File stem of the report.", flag_values=flag_values)


if __name__ == "__main__":
  command_line.run_as_program("benchmarks.serve_load", define_flags, benchmark)
