"""A trained classifier loaded to run, and the inference engine that scores texts with it at scale.

``LoadedModel`` is a classifier read from a training workdir (``load_workdir``) or an exported model
directory (``load_exported``; its files: ``train.runs.model_dir``). ``InferenceEngine`` scores texts
(or token rows) with a ``LoadedModel``: every caller that scores a loaded model goes through it
(``train.predict`` via ``train.model_files.predictions``, ``train.evaluate``, ``train.export``'s
re-evaluation, a server); its docstring says how it batches, which threads it runs and what it
guarantees. ``LoadedModel.batch_probabilities`` (one batch, fixed padding, ``EVAL_STEP``) is the
unbucketed path the engine is checked against.

Axes (``mamba_jax.notation``): b, l, c, N, L.
"""

from __future__ import annotations

import dataclasses
import functools
import gc
import itertools
import os
import queue
import threading
from typing import Any, Callable, Iterable, Iterator, Optional, Sequence

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax

from train.data import batching
from train.data.datasets import Split
from train.loop import evaluation, models, tasks
from train.loop.train_state import TrainState
from train.runs import classes, model_dir
from train.scoring import metrics


EVAL_STEP = evaluation.jit_eval_step()  # LoadedModel.batch_probabilities' (the unbucketed reference).


@dataclasses.dataclass
class LoadedModel:
  """A classifier ready to evaluate.

  Attributes:
    config: the training config.
    tokenizer: encodes raw text as in training.
    state: TrainState holding the model's ``params`` only (no optimizer state, for both kinds).
    source: the directory it came from.
    step: the training step of the parameters (None if unknown).
    class_names: the name of each logit (``train.runs.classes.read`` of the directory; label id i is
      ``class_names[i]``).
  """

  config: ml_collections.ConfigDict
  tokenizer: Any
  state: TrainState
  source: str
  step: Optional[int]
  class_names: tuple[str, ...] = classes.BINARY

  @property
  def is_binary_sentiment(self) -> bool:
    """Whether it is a negative/positive model (neutral then comes from abstention: the threshold)."""
    return tuple(self.class_names) == classes.BINARY

  @property
  def max_length(self) -> int:
    """Tokens per text; longer texts are cut."""
    return int(self.config.max_length)

  @functools.cached_property
  def engine(self) -> InferenceEngine:
    """The model's ``InferenceEngine`` with its default batch sizes (made on first use, then shared)."""
    return InferenceEngine(self)

  def probabilities(self, split: Split, batch_size: Optional[int] = None) -> np.ndarray:
    """Softmax probabilities (N, c) of every example of ``split``, by the engine (length buckets).

    ``batch_size``: rows of every bucket's batch (default: the engine's per-bucket sizes).
    """
    engine = self.engine if batch_size is None else InferenceEngine(self, batch_rows=int(batch_size))
    return engine.token_probabilities(split.tokens)

  def encode(self, texts: list[str]) -> np.ndarray:
    """Token ids (N, max_length) int32 of ``texts`` (0: padding), as in training."""
    return np.asarray(self.tokenizer.encode(texts)).astype(np.int32)

  def batch_probabilities(self, tokens: np.ndarray) -> np.ndarray:
    """Softmax probabilities (N, c) of the rows of ``tokens`` (N, l) as one batch (no length buckets).

    The reference the engine is checked against (the path ``train.predict`` took before it).
    """
    logits = EVAL_STEP(self.state, {"tokens": tokens, "mask": (tokens != 0).astype(np.int32)})
    return metrics.softmax(np.asarray(logits))


def inference_state(model, params: Any) -> TrainState:
  """A TrainState holding ``params`` only: no optimizer state (``optax.identity``)."""
  return TrainState.create(apply_fn=model.apply, params=jax.tree_util.tree_map(jnp.asarray, params),
                           tx=optax.identity(), dropout_rng=jax.random.key_data(jax.random.key(0)))


def classifier_config(directory: str, what: str) -> ml_collections.ConfigDict:
  """The completed config of a workdir or export (``train.runs.model_dir.read_config``) that holds a classifier.

  Raises:
    FileNotFoundError: no config.json (``what`` says what the directory must be).
    ValueError: a language model's directory (it is the ``config.init_from`` of a classifier run).
  """
  config = model_dir.read_config(directory, what)
  if models.task_of(config) is not tasks.Classification:
    raise ValueError(f"{directory} holds a {config.model_type!r} model, not a classifier; a language model "
                     "workdir is used as --config.init_from of a classifier run")
  return config


def load_workdir(workdir: str, checkpoint: str = "best") -> LoadedModel:
  """The parameters of the ``checkpoint`` ("best" | "latest") of a training workdir.

  Only the parameters are read from the checkpoint (not the optimizer state).
  """
  config = classifier_config(workdir, "--workdir must be a training workdir (python -m train.main --workdir=...).")
  class_names = classes.read(workdir)
  tokenizer = model_dir.load_run_tokenizer(config, workdir)
  model = models.create_model(config, tokenizer.vocab_size, len(class_names))
  from train.runs import checkpointing  # pylint: disable=import-outside-toplevel  (Orbax: only for workdirs)
  params, step = checkpointing.restore_params(os.path.join(workdir, "checkpoints"),
                                              models.parameter_shapes(config, model), checkpoint)
  return LoadedModel(config, tokenizer, inference_state(model, params), os.path.abspath(workdir), step,
                     class_names)


def load_exported(directory: str) -> LoadedModel:
  """An exported model directory (its files: ``train.runs.model_dir``)."""
  config = classifier_config(directory, "--model must be a directory written by python -m train.export.")
  params_path = os.path.join(directory, model_dir.PARAMS_FILE)
  if not os.path.exists(params_path):
    raise FileNotFoundError(f"{params_path} not found: --model must be a directory written by "
                            "python -m train.export.")
  class_names = classes.read(directory)
  tokenizer = model_dir.load_run_tokenizer(config, directory)
  model = models.create_model(config, tokenizer.vocab_size, len(class_names))
  params, metadata = model_dir.load_params(params_path)
  expected = models.parameter_shapes(config, model)
  if jax.tree_util.tree_structure(expected) != jax.tree_util.tree_structure(params) or any(
      e.shape != p.shape for e, p in zip(jax.tree_util.tree_leaves(expected), jax.tree_util.tree_leaves(params))):
    raise ValueError(f"{params_path} does not match the model of {os.path.join(directory, model_dir.CONFIG_FILE)} "
                     f"with {len(class_names)} classes {list(class_names)}")
  step = int(metadata["step"]) if metadata.get("step", "").isdigit() else None
  return LoadedModel(config, tokenizer, inference_state(model, params), os.path.abspath(directory), step,
                     class_names)


def load(workdir: Optional[str], exported: Optional[str], checkpoint: str = "best") -> LoadedModel:
  """Exactly one of ``workdir`` (a training run) or ``exported`` (an exported model directory)."""
  if bool(workdir) == bool(exported):
    raise ValueError("give exactly one of --workdir (a training run) or --model (an exported model directory)")
  return load_workdir(workdir, checkpoint) if workdir else load_exported(exported)


# ----------------------------------------------------------------------------- the inference engine

# Compiled programs kept between runs (JAX's persistent compilation cache; keyed by the program, the
# XLA flags, the JAX version and the device, so a hit runs exactly what a compile would).
DEFAULT_COMPILATION_CACHE = os.path.join(os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache"),
                                         "mamba_jax", "xla")


def use_compilation_cache(directory: Optional[str]) -> None:
  """Keeps compiled programs in ``directory`` (made if missing) across runs; None or "": no cache. An
  already configured cache (``$JAX_COMPILATION_CACHE_DIR``, e.g. the test suite's) is left as it is."""
  if not directory or jax.config.jax_compilation_cache_dir:
    return
  jax.config.update("jax_compilation_cache_dir", directory)
  jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.0)
  jax.config.update("jax_persistent_cache_min_entry_size_bytes", 0)


def freeze_heap() -> None:
  """Runs a full garbage collection, then exempts every object alive from later ones (``gc.freeze``).

  For a process that scores for long (a server, a bulk run), once its model is loaded: a full
  collection walks every tracked object (JAX, Flax, the libraries, the model) holding the GIL, so
  without this every thread pauses for it every few seconds under load (results/serve_cpu.md).
  Frozen objects are still freed when their last reference goes; only reference cycles among them
  wait. Calling it again (after loading another model) unfreezes first, so the cycles of what was
  dropped meanwhile are collected then.
  """
  gc.unfreeze()
  gc.collect()
  gc.freeze()


CPU_TOKENS_PER_BATCH = 1024  # CPU: rows of a bucket's batch ~ this many token slots (DESIGN.md).
MIN_ROWS, MAX_ROWS = 8, 256  # CPU batch rows are a multiple of 8 in this range.
STREAM_WINDOW = 2048  # Texts read and tokenized together by ``score``'s reader thread.
MAX_WAITING = 8 * STREAM_WINDOW  # Texts read ahead of the oldest one not yet in a batch (memory bound).
QUEUED_MESSAGES = 8  # Tokenized windows and batches the reader thread may hold ready.


@dataclasses.dataclass(frozen=True)
class Scored:
  """One item of ``InferenceEngine.score``.

  Attributes:
    item: the caller's item, unchanged.
    probabilities: (c,) float64 softmax probabilities, or None: the item had no text, or its text
      has no tokens (``num_tokens`` 0).
    num_tokens: tokens of the text before cutting to max_length (0: no text or nothing to score).
  """

  item: Any
  probabilities: Optional[np.ndarray]
  num_tokens: int


@dataclasses.dataclass(frozen=True)
class TextScores:
  """``InferenceEngine.score_texts`` of N texts.

  Attributes:
    probabilities: (N, c) float64; a row of NaN where the text has no tokens.
    num_tokens: (N,) int32 tokens of each text before cutting to max_length (0: nothing scored).
  """

  probabilities: np.ndarray
  num_tokens: np.ndarray


def partial_batch_rows(full_rows: int) -> tuple[int, ...]:
  """Row counts a partial batch may be padded to: 8, 16, 32, ... below ``full_rows``, then ``full_rows``."""
  rows, options = MIN_ROWS, []
  while rows < full_rows:
    options.append(rows)
    rows *= 2
  return tuple(options) + (full_rows,)


def default_batch_rows(bounds: Sequence[int], config: ml_collections.ConfigDict,
                       backend: Optional[str] = None) -> dict[int, int]:
  """Rows of each bucket's batch: on the CPU ~``CPU_TOKENS_PER_BATCH`` token slots (a multiple of 8 in
  [MIN_ROWS, MAX_ROWS]): shorter buckets take more rows; elsewhere ``config.eval_batch_size`` rows."""
  if (backend or jax.default_backend()) != "cpu":
    return {int(bound): int(config.eval_batch_size) for bound in bounds}
  return {int(bound): int(min(MAX_ROWS, max(MIN_ROWS, 8 * round(CPU_TOKENS_PER_BATCH / bound / 8))))
          for bound in bounds}


@dataclasses.dataclass
class _Batch:
  """Rows for one program: ``keys`` (b,) int64 (the caller's row numbers, -1 = padding row) and
  ``tokens`` (b, bound) int32 (padding rows all 0)."""

  bound: int
  keys: np.ndarray
  tokens: np.ndarray


class _Buckets:
  """Rows waiting for a batch, one buffer per length bucket (see ``InferenceEngine``).

  Full buffers become batches at once; ``flush_oldest`` batches the oldest waiting row early
  (with shorter rows filling its batch), ``flush_all`` pools the remainders upwards. A batch has
  the last (largest) of its bucket's ``row_options``; a partial one has the fewest of them that hold it.
  """

  def __init__(self, bounds: Sequence[int], row_options: dict[int, tuple[int, ...]]):
    """``row_options``: bound -> the row counts of its batches, ascending (the last: a full batch)."""
    self.bounds, self.row_options = tuple(bounds), row_options
    self.rows = {bound: row_options[bound][-1] for bound in self.bounds}
    self._keys: list[list[np.ndarray]] = [[] for _ in self.bounds]
    self._tokens: list[list[np.ndarray]] = [[] for _ in self.bounds]
    self._count = [0] * len(self.bounds)

  def add(self, keys: np.ndarray, tokens: np.ndarray, lengths: np.ndarray) -> list[_Batch]:
    """Adds rows (keys ascending; tokens (k, L), real lengths (k,)); returns the batches they fill."""
    bucket = batching.bucket_of(lengths, self.bounds)
    full = []
    for k, bound in enumerate(self.bounds):
      members = np.flatnonzero(bucket == k)
      if not len(members):
        continue
      self._keys[k].append(keys[members])
      self._tokens[k].append(_pad_to(tokens[members, :bound].astype(np.int32), bound))
      self._count[k] += len(members)
      while self._count[k] >= self.rows[bound]:
        full.append(self._batch(bound, *self._take(k, self.rows[bound])))
    return full

  def oldest(self) -> Optional[int]:
    """The smallest key waiting, or None."""
    firsts = [keys[0][0] for keys in self._keys if keys]
    return int(min(firsts)) if firsts else None

  def flush_oldest(self) -> _Batch:
    """A batch holding the oldest waiting row: its bucket's rows, then rows of shorter buckets."""
    k = min((keys[0][0], k) for k, keys in enumerate(self._keys) if keys)[1]
    bound = self.bounds[k]
    return self._pooled(range(k, -1, -1), bound, self.rows[bound])

  def flush_all(self) -> list[_Batch]:
    """Every waiting row: bucket by bucket upwards, each bucket's remainder carried into the next; each
    batch padded to the bound of its longest row (so a few short rows never pay for a long bound)."""
    batches, keys, tokens = [], np.zeros(0, np.int64), np.zeros((0, self.bounds[0]), np.int32)
    for k, bound in enumerate(self.bounds):
      taken_keys, taken_tokens = self._take(k, self._count[k])
      keys, tokens = np.concatenate([keys, taken_keys]), np.concatenate([_pad_to(tokens, bound), taken_tokens])
      rows = self.rows[bound]
      while len(keys) >= rows:
        batches += self._shortest_batches(keys[:rows], tokens[:rows])
        keys, tokens = keys[rows:], tokens[rows:]
    return batches + self._shortest_batches(keys, tokens)

  def _shortest_batches(self, keys: np.ndarray, tokens: np.ndarray) -> list[_Batch]:
    """Rows as batches of the bucket of their longest row (several if that bucket's batch is smaller)."""
    if not len(keys):
      return []
    longest = int(batching.example_lengths(tokens).max())
    bound = self.bounds[int(batching.bucket_of(np.asarray([longest]), self.bounds)[0])]
    rows = self.rows[bound]
    return [self._batch(bound, keys[i:i + rows], tokens[i:i + rows, :bound]) for i in range(0, len(keys), rows)]

  def _take(self, k: int, n: int) -> tuple[np.ndarray, np.ndarray]:
    """The first ``n`` rows of bucket ``k`` (removed)."""
    keys, tokens = np.concatenate(self._keys[k] or [np.zeros(0, np.int64)]), \
        np.concatenate(self._tokens[k] or [np.zeros((0, self.bounds[k]), np.int32)])
    self._keys[k] = [keys[n:]] if len(keys) > n else []
    self._tokens[k] = [tokens[n:]] if len(keys) > n else []
    self._count[k] = len(keys) - min(n, len(keys))
    return keys[:n], tokens[:n]

  def _pooled(self, buckets, bound: int, rows: int) -> _Batch:
    keys, tokens = [], []
    for k in buckets:
      if rows - sum(map(len, keys)) <= 0:
        break
      taken_keys, taken_tokens = self._take(k, rows - sum(map(len, keys)))
      keys.append(taken_keys)
      tokens.append(_pad_to(taken_tokens, bound))
    return self._batch(bound, np.concatenate(keys), np.concatenate(tokens))

  def _batch(self, bound: int, keys: np.ndarray, tokens: np.ndarray) -> _Batch:
    rows = next(r for r in self.row_options[bound] if r >= len(keys))
    padded_keys = np.full(rows, -1, np.int64)
    padded_keys[:len(keys)] = keys
    padded_tokens = np.zeros((rows, bound), np.int32)
    padded_tokens[:len(keys)] = tokens
    return _Batch(bound, padded_keys, padded_tokens)


def _pad_to(tokens: np.ndarray, bound: int) -> np.ndarray:
  """Rows (k, l <= bound) right-padded with 0 to (k, bound)."""
  return np.pad(tokens, [(0, 0), (0, bound - tokens.shape[1])]) if tokens.shape[1] < bound else tokens


class InferenceEngine:
  """Scores texts with a loaded classifier: length buckets, one compiled program per bucket, a
  reader thread that tokenizes ahead of the device, results in input order.

  Buckets: the training loop's bounds (``config.length_bucket_bounds`` below ``max_length``, then
  ``max_length``: ``train.data.batching.resolve_bounds``). A text of t tokens (cut to max_length)
  goes to the first bucket whose bound is >= t, and its batch is padded to that bound only.
  Each bucket has one batch shape (``batch_rows[bound]`` rows; a partial batch is filled with
  all-padding rows), so one program per bucket is compiled: on first use, or all of them by
  ``warm_up``; then reused. With ``fit_partial_batches`` (a server: its calls hold tens of texts,
  far fewer than a bucket's rows) each bucket also has programs of ``partial_batch_rows`` rows,
  and a partial batch runs on the smallest that holds it. Rows are batched across inputs: a batch
  holds whichever texts of its bucket came in, in any order, and every probability is put back at
  its input's position.
  The model ignores padding (masked), so a text's probabilities do not depend on its batch or
  bucket beyond float32 rounding (~1e-7); the probabilities are the float64 softmax of the
  float32 logits, as in the evaluation reports.

  ``score`` streams: a reader thread pulls the items, tokenizes them ``STREAM_WINDOW`` at a time
  and fills the buckets, while the calling thread runs one batch on the device and hands the
  finished items back (so tokenizing and the caller's output formatting overlap the device
  step). At most ``MAX_WAITING`` items are held beyond the oldest unfinished one (when the
  oldest waits longer, its bucket is batched early, topped up with shorter texts), plus
  ``QUEUED_MESSAGES`` ready windows or batches: memory stays bounded for any input length.

  Thread safety: every public method may be called from several threads at once (programs are
  compiled once, under a lock; the tokenizer's word cache is shared safely). Runs on JAX's
  default device.

  Attributes:
    model: the ``LoadedModel``.
    bounds: the bucket bounds (the last one max_length).
    batch_rows: bound -> rows of its full batches (``default_batch_rows`` unless given).
    row_options: bound -> the row counts of its programs.
  """

  def __init__(self, model: LoadedModel, *, batch_rows: Optional[int] = None, fit_partial_batches: bool = False):
    """``batch_rows``: the same rows for every bucket (default: ``default_batch_rows``);
    ``fit_partial_batches``: see the class docstring."""
    self.model = model
    self.bounds = batching.resolve_bounds(model.config.length_bucket_bounds, model.max_length)
    if batch_rows is not None and batch_rows < 1:
      raise ValueError(f"the batch size must be >= 1, got {batch_rows}")
    self.batch_rows = (default_batch_rows(self.bounds, model.config) if batch_rows is None
                       else {bound: int(batch_rows) for bound in self.bounds})
    self.row_options = {bound: partial_batch_rows(rows) if fit_partial_batches else (rows,)
                        for bound, rows in self.batch_rows.items()}
    self._programs: dict[tuple[int, int], Any] = {}
    self._compile_lock = threading.Lock()
    self._tokenizer = model.tokenizer

  @property
  def class_names(self) -> tuple[str, ...]:
    return tuple(self.model.class_names)

  @property
  def compiled_bounds(self) -> tuple[int, ...]:
    """The bounds with a program compiled so far."""
    return tuple(sorted({bound for bound, _ in self._programs}))

  @property
  def compiled_programs(self) -> tuple[tuple[int, int], ...]:
    """The (bound, rows) batch shapes compiled so far."""
    return tuple(sorted(self._programs))

  def warm_up(self) -> None:
    """Compiles every program now (a server does this before it says it is ready)."""
    for bound in self.bounds:
      for rows in self.row_options[bound]:
        self._program(bound, rows)

  def _buckets(self) -> _Buckets:
    return _Buckets(self.bounds, self.row_options)

  def encode(self, texts: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
    """Raw texts -> (tokens (N, max_length) uint16, untruncated token counts (N,) int32), as in training."""
    if not len(texts):
      return np.zeros((0, self.model.max_length), np.uint16), np.zeros(0, np.int32)
    return self._tokenizer.encode_with_lengths(list(texts))

  def score_texts(self, texts: Sequence[str]) -> TextScores:
    """Probabilities (N, c) and token counts (N,) of ``texts`` (NaN rows: no tokens); blocks until done."""
    tokens, num_tokens = self.encode(texts)
    probabilities = np.full((len(texts), len(self.class_names)), np.nan)
    scored = np.flatnonzero(num_tokens > 0)
    probabilities[scored] = self.token_probabilities(tokens[scored])
    return TextScores(probabilities, num_tokens)

  def probabilities(self, texts: Sequence[str]) -> np.ndarray:
    """Softmax probabilities (N, c) of ``texts`` (a row of NaN where a text has no tokens)."""
    return self.score_texts(texts).probabilities

  def token_probabilities(self, tokens: np.ndarray) -> np.ndarray:
    """Softmax probabilities (N, c) of right-padded token rows (N, l <= max_length), e.g. a split's;
    an all-padding row is scored too (in the first bucket)."""
    tokens = np.asarray(tokens)
    buckets = self._buckets()
    batches = buckets.add(np.arange(len(tokens)), tokens, batching.example_lengths(tokens)) + buckets.flush_all()
    running = [(batch, self._dispatch(batch)) for batch in batches]  # Queued on the device; no waiting.
    probabilities = np.zeros((len(tokens), len(self.class_names)))
    for batch, logits in running:
      real = batch.keys >= 0
      probabilities[batch.keys[real]] = metrics.softmax(np.asarray(logits))[real]
    return probabilities

  def score(self, items: Iterable[Any], text: Callable[[Any], Optional[str]] = lambda item: item
            ) -> Iterator[Scored]:
    """One ``Scored`` per item of ``items``, in their order, streaming (see the class docstring).

    ``text(item)``: the raw text to score, or None to pass the item through unscored (e.g. a line
    that is already an error). ``items`` is read (and ``text`` called) on the reader thread; an
    exception there is raised here, after the items before it were handed back. Closing the
    iterator early stops the reader thread once its current item returns.
    """
    stream = _Stream(self, items, text)
    try:
      yield from stream.results()
    finally:
      stream.close()

  def _program(self, bound: int, rows: int):
    """The compiled forward of a (rows, bound) batch: (params, tokens) -> logits (b, c)."""
    program = self._programs.get((bound, rows))
    if program is None:
      with self._compile_lock:
        program = self._programs.get((bound, rows))
        if program is None:
          state = self.model.state
          tokens = jax.ShapeDtypeStruct((rows, bound), jnp.int32)
          program = jax.jit(functools.partial(_logits, state.apply_fn)).lower(state.params, tokens).compile()
          self._programs[(bound, rows)] = program
    return program

  def _dispatch(self, batch: _Batch) -> jax.Array:
    """Starts ``batch`` on the device; returns its logits (b, c) without waiting for them."""
    return self._program(batch.bound, len(batch.keys))(self.model.state.params, batch.tokens)


def _logits(apply_fn, params, tokens: jax.Array) -> jax.Array:
  """The classifier's float32 logits (b, c) of tokens (b, l) (0: padding), without dropout."""
  logits = apply_fn({"params": params}, tokens, (tokens != 0).astype(jnp.int32), train=False)
  return tasks.CLASSIFICATION.eval_outputs(logits, None)


class _Stream:
  """One ``InferenceEngine.score`` call: its reader thread and the in-order hand-back."""

  _END = "end"

  def __init__(self, engine: InferenceEngine, items: Iterable[Any], text: Callable[[Any], Optional[str]]):
    self._engine, self._items, self._text = engine, items, text
    self._queue: queue.Queue = queue.Queue(maxsize=QUEUED_MESSAGES)
    self._stop = threading.Event()
    self._reader = threading.Thread(target=self._read, name="inference-reader", daemon=True)
    self._reader.start()

  def _put(self, message) -> bool:
    """Queues ``message`` unless the stream was closed (then False)."""
    while not self._stop.is_set():
      try:
        self._queue.put(message, timeout=0.1)
        return True
      except queue.Full:
        continue
    return False

  def _read(self) -> None:
    """The reader thread: windows of items -> ("items", first key, items, token counts) and ("batch", _Batch);
    then ("end",), or ("error", exception) after the batches of every item read before it."""
    engine = self._engine
    buckets = engine._buckets()  # pylint: disable=protected-access
    max_length = engine.model.max_length
    next_key, failure = 0, None
    try:
      iterator = iter(self._items)
      while failure is None and not self._stop.is_set():
        window = []
        try:
          for item in itertools.islice(iterator, STREAM_WINDOW):
            window.append(item)
        except BaseException as error:  # pylint: disable=broad-except  (raised again on the caller's thread)
          failure = error
        if not window:
          break
        texts = [self._text(item) for item in window]
        with_text = np.asarray([i for i, t in enumerate(texts) if t is not None], np.int64)
        tokens, counts = engine.encode([texts[i] for i in with_text])
        num_tokens = np.zeros(len(window), np.int32)
        num_tokens[with_text] = counts
        if not self._put(("items", next_key, window, num_tokens)):
          return
        scored = counts > 0
        batches = buckets.add(next_key + with_text[scored], tokens[scored], np.minimum(counts[scored], max_length))
        next_key += len(window)
        oldest = buckets.oldest()
        while oldest is not None and next_key - oldest > MAX_WAITING:
          batches.append(buckets.flush_oldest())
          oldest = buckets.oldest()
        for batch in batches:
          if not self._put(("batch", batch)):
            return
    except BaseException as error:  # pylint: disable=broad-except
      failure = error
    try:
      for batch in buckets.flush_all():
        if not self._put(("batch", batch)):
          return
    except BaseException as error:  # pylint: disable=broad-except
      failure = failure or error
    self._put(("error", failure) if failure is not None else (self._END,))

  def results(self) -> Iterator[Scored]:
    waiting: dict[int, list] = {}  # key -> [item, num_tokens, probabilities or None]
    next_out = 0
    running: Optional[tuple[_Batch, jax.Array]] = None
    while True:
      message = self._queue.get()
      kind = message[0]
      if kind == "items":
        _, first, window, num_tokens = message
        for i, (item, count) in enumerate(zip(window, num_tokens)):
          waiting[first + i] = [item, int(count), None]
      elif kind == "batch":
        started = (message[1], self._engine._dispatch(message[1]))  # pylint: disable=protected-access
        if running is not None:
          self._finish(*running, waiting)
        running = started
      elif kind == self._END:
        if running is not None:
          self._finish(*running, waiting)
          running = None
      else:
        if running is not None:  # Hand back what is done, then raise.
          self._finish(*running, waiting)
          running = None
      while next_out in waiting and (waiting[next_out][1] == 0 or waiting[next_out][2] is not None):
        item, count, probabilities = waiting.pop(next_out)
        yield Scored(item, probabilities, count)
        next_out += 1
      if kind == self._END:
        return
      if kind == "error":
        raise message[1]

  @staticmethod
  def _finish(batch: _Batch, logits: jax.Array, waiting: dict[int, list]) -> None:
    probabilities = metrics.softmax(np.asarray(logits))
    for row, key in enumerate(batch.keys):
      if key >= 0:
        waiting[int(key)][2] = probabilities[row]

  def close(self) -> None:
    """Stops the reader thread (it ends once its current item returns; it is a daemon thread)."""
    self._stop.set()
    while True:
      try:
        self._queue.get_nowait()
      except queue.Empty:
        break
    self._reader.join(timeout=1.0)
