"""The review database: deferred texts and the labels people gave them, in one SQLite file (WAL).

Tables (``SCHEMA``; ``PRAGMA user_version`` = ``SCHEMA_VERSION``):

  deferred  one row per distinct text the service deferred (identical texts once: ``text`` is
            UNIQUE): the model version, label, confidence and probabilities (JSON {class: p}) of the
            latest model that deferred it, first/last time seen (Unix seconds) and how often.
  reviews   at most one label per deferred text (its id is the primary key): label, reviewer, time.

Every write is its own transaction, committed before the call returns (``store_deferred`` one per
scored batch, ``add_review`` one per label). The database runs in WAL mode, so readers (the page's
queue, ``python -m train.review export``) never block the writer. Reviews are written with
``synchronous=FULL`` (a committed label survives a crash of the process and of the machine); the
deferred texts with ``synchronous=NORMAL`` (they survive a crash of the process).

Two reviewers labelling the same text: the first label is kept, the second ``add_review`` raises
``AlreadyReviewed`` (the service's 409).
"""

from __future__ import annotations

import json
import sqlite3
import threading
import time
from typing import Iterable, Sequence

SCHEMA_VERSION = 1
SCHEMA = """
CREATE TABLE IF NOT EXISTS deferred (
  id INTEGER PRIMARY KEY,
  text TEXT NOT NULL UNIQUE,
  model_version TEXT NOT NULL,
  label TEXT NOT NULL,
  confidence REAL NOT NULL,
  probabilities TEXT NOT NULL,
  first_seen REAL NOT NULL,
  last_seen REAL NOT NULL,
  times_seen INTEGER NOT NULL DEFAULT 1
);
CREATE INDEX IF NOT EXISTS deferred_by_confidence ON deferred (confidence, id);
CREATE TABLE IF NOT EXISTS reviews (
  deferred_id INTEGER PRIMARY KEY REFERENCES deferred (id),
  label TEXT NOT NULL,
  reviewer TEXT NOT NULL,
  reviewed_at REAL NOT NULL
);
"""
UPSERT_DEFERRED = """
INSERT INTO deferred (text, model_version, label, confidence, probabilities, first_seen, last_seen)
VALUES (?, ?, ?, ?, ?, ?, ?)
ON CONFLICT (text) DO UPDATE SET model_version = excluded.model_version, label = excluded.label,
  confidence = excluded.confidence, probabilities = excluded.probabilities, last_seen = excluded.last_seen,
  times_seen = times_seen + 1
"""
PENDING = "FROM deferred d LEFT JOIN reviews r ON r.deferred_id = d.id WHERE r.deferred_id IS NULL"


class AlreadyReviewed(Exception):
  """The text has a label already; ``existing`` holds it (label, reviewer, reviewed_at)."""

  def __init__(self, deferred_id: int, existing: dict):
    super().__init__(f"item {deferred_id} was labelled already ({existing['label']!r} by {existing['reviewer']!r})")
    self.existing = existing


class UnknownItem(KeyError):
  """No deferred text has this id."""


def connect(path: str, synchronous: str = "NORMAL", read_only: bool = False) -> sqlite3.Connection:
  """A connection in autocommit mode (transactions are explicit), WAL, a 10 s busy timeout."""
  if read_only:
    connection = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=10.0, isolation_level=None,
                                 check_same_thread=False)
  else:
    connection = sqlite3.connect(path, timeout=10.0, isolation_level=None, check_same_thread=False)
    connection.execute("PRAGMA journal_mode=WAL")
    connection.execute(f"PRAGMA synchronous={synchronous}")
  connection.execute("PRAGMA foreign_keys=ON")
  connection.row_factory = sqlite3.Row
  return connection


def check_schema(connection: sqlite3.Connection, path: str) -> None:
  """ValueError unless ``path`` is a review database of this schema version (or a new, empty file)."""
  version = connection.execute("PRAGMA user_version").fetchone()[0]
  tables = {row[0] for row in connection.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
  if version != SCHEMA_VERSION or not {"deferred", "reviews"} <= tables:
    raise ValueError(f"{path} is not a review database of schema version {SCHEMA_VERSION} "
                     f"(user_version {version}, tables {sorted(tables)})")


class ReviewDatabase:
  """The service's connections to one review database file (created with its schema when new).

  Thread-safe: one connection for deferred texts, one for reviews and reads, each behind a lock.
  """

  def __init__(self, path: str):
    self.path = path
    try:
      self._ingest = connect(path, "NORMAL")
      self._reviews = connect(path, "FULL")
      version = self._ingest.execute("PRAGMA user_version").fetchone()[0]
      if not version and not self._ingest.execute("SELECT 1 FROM sqlite_master").fetchone():  # A new file.
        self._ingest.executescript(f"BEGIN IMMEDIATE; {SCHEMA} PRAGMA user_version = {SCHEMA_VERSION}; COMMIT;")
      check_schema(self._reviews, path)
    except sqlite3.DatabaseError as e:
      raise ValueError(f"{path} is not a usable review database: {e}") from None
    self._ingest_lock, self._reviews_lock = threading.Lock(), threading.Lock()

  @staticmethod
  def _transaction(connection: sqlite3.Connection):
    return _Transaction(connection)

  def store_deferred(self, model_version: str, items: Iterable[tuple[str, dict]]) -> int:
    """Stores (text, answer) pairs in one transaction (a text seen before is updated); how many."""
    now = time.time()
    rows = [(text, model_version, answer["label"], answer["confidence"], json.dumps(answer["probabilities"]),
             now, now) for text, answer in items]
    if rows:
      with self._ingest_lock, self._transaction(self._ingest):
        self._ingest.executemany(UPSERT_DEFERRED, rows)
    return len(rows)

  def add_review(self, deferred_id: int, label: str, reviewer: str) -> dict:
    """Stores one label (one transaction, durable on return); the stored review.

    Raises ``UnknownItem`` for an id no deferred text has, ``AlreadyReviewed`` when it has a label.
    """
    now = time.time()
    with self._reviews_lock:
      try:
        with self._transaction(self._reviews):
          if self._reviews.execute("SELECT 1 FROM deferred WHERE id = ?", (deferred_id,)).fetchone() is None:
            raise UnknownItem(deferred_id)
          self._reviews.execute("INSERT INTO reviews (deferred_id, label, reviewer, reviewed_at) VALUES (?, ?, ?, ?)",
                                (deferred_id, label, reviewer, now))
      except sqlite3.IntegrityError:
        existing = self._reviews.execute("SELECT label, reviewer, reviewed_at FROM reviews WHERE deferred_id = ?",
                                         (deferred_id,)).fetchone()
        raise AlreadyReviewed(deferred_id, dict(existing)) from None
    return {"id": deferred_id, "label": label, "reviewer": reviewer, "reviewed_at": now}

  def pending(self, limit: int, exclude: Sequence[int] = ()) -> list[dict]:
    """Up to ``limit`` unlabelled texts, least confident first (ties: oldest first), without ``exclude``."""
    exclude = [int(i) for i in exclude][:1000]
    clause = f" AND d.id NOT IN ({','.join('?' * len(exclude))})" if exclude else ""
    with self._reviews_lock:
      rows = self._reviews.execute(
          f"SELECT d.id, d.text, d.model_version, d.label, d.confidence, d.probabilities, d.first_seen, "
          f"d.times_seen {PENDING}{clause} ORDER BY d.confidence, d.id LIMIT ?", (*exclude, int(limit))).fetchall()
    return [{**dict(row), "probabilities": json.loads(row["probabilities"])} for row in rows]

  def counts(self) -> dict:
    """{"pending": unlabelled texts, "reviewed": labels}."""
    with self._reviews_lock:
      pending = self._reviews.execute(f"SELECT COUNT(*) {PENDING}").fetchone()[0]
      reviewed = self._reviews.execute("SELECT COUNT(*) FROM reviews").fetchone()[0]
    return {"pending": int(pending), "reviewed": int(reviewed)}

  def close(self) -> None:
    with self._ingest_lock, self._reviews_lock:
      self._ingest.close()
      self._reviews.close()


class _Transaction:
  """``with``: BEGIN IMMEDIATE ... COMMIT, or ROLLBACK when the block raises."""

  def __init__(self, connection: sqlite3.Connection):
    self.connection = connection

  def __enter__(self):
    self.connection.execute("BEGIN IMMEDIATE")
    return self.connection

  def __exit__(self, kind, value, traceback):
    self.connection.execute("COMMIT" if kind is None else "ROLLBACK")
    return False


def reviewed_rows(path: str) -> list[dict]:
  """Every labelled text of the database at ``path`` (opened read-only), oldest label first:
  {text, label, reviewer, reviewed_at, model_version, confidence}."""
  try:
    connection = connect(path, read_only=True)
    try:
      check_schema(connection, path)
      rows = connection.execute(
          "SELECT d.text, r.label, r.reviewer, r.reviewed_at, d.model_version, d.confidence "
          "FROM reviews r JOIN deferred d ON d.id = r.deferred_id ORDER BY r.reviewed_at, r.deferred_id").fetchall()
    finally:
      connection.close()
  except sqlite3.DatabaseError as e:
    raise ValueError(f"{path} is not a readable review database: {e}") from None
  return [dict(row) for row in rows]

