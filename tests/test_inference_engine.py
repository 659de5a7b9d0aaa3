"""The inference engine (train.model_files.inference.InferenceEngine): the unbucketed path's answers, in input order,
every item handed back, bounded read-ahead, errors raised after the items before them, threads.

The tiny run is a fixture of tests/conftest.py (its model: max_length 16, buckets 6 / 10 / 16).
"""

import threading

import numpy as np
import pytest

from train.data import synthetic
from train.model_files import inference

from tests import train_tiny_run


@pytest.fixture(scope="module")
def model(trained_workdir):
  return inference.load_workdir(trained_workdir)


@pytest.fixture(scope="module")
def texts():
  """Synthetic sentences of every length bucket, plus long and odd ones."""
  splits = synthetic.make_datasets(train_tiny_run.tiny_config()).splits
  return list(splits["test"].texts) + list(splits["manual_test"].texts[:150]) + [
      "good " * 40, "bad", "the day my work is not good at all but fun", "UNKNOWN words here"]


def unbucketed(model, texts):
  return model.batch_probabilities(model.encode(texts))


def test_probabilities_are_those_of_the_unbucketed_path(model, texts):
  engine = model.engine
  assert engine.bounds == (6, 10, 16)
  probabilities = engine.probabilities(texts)
  reference = unbucketed(model, texts)
  assert (probabilities.argmax(axis=1) == reference.argmax(axis=1)).all()
  assert np.abs(probabilities - reference).max() <= 1e-3
  np.testing.assert_allclose(probabilities, reference, rtol=0, atol=1e-5)  # In fact float32 rounding.


def test_score_texts_counts_tokens_and_leaves_empty_texts_unscored(model):
  scores = model.engine.score_texts(["good great happy", "", "   ", "good " * 40])
  assert scores.num_tokens.tolist() == [3, 0, 0, 40]
  assert np.isnan(scores.probabilities[1:3]).all() and not np.isnan(scores.probabilities[[0, 3]]).any()
  assert scores.probabilities[0].argmax() == 1 and scores.probabilities[0].sum() == pytest.approx(1.0)
  assert model.engine.score_texts([]).probabilities.shape == (0, 2)


def test_one_short_text_compiles_only_its_bucket(model):
  engine = inference.InferenceEngine(model)
  engine.probabilities(["good day"])
  assert engine.compiled_bounds == (6,)
  engine.warm_up()
  assert engine.compiled_bounds == (6, 10, 16)


@pytest.mark.parametrize("rows, window, waiting", [(None, 2048, 16384), (3, 5, 7), (8, 1, 2)])
def test_score_streams_every_item_in_input_order(model, texts, monkeypatch, rows, window, waiting):
  """Items without text pass through; the rest get the probabilities of score_texts, in order, with small
  windows and an early flush of the oldest bucket (waiting > MAX_WAITING) as well as the defaults."""
  monkeypatch.setattr(inference, "STREAM_WINDOW", window)
  monkeypatch.setattr(inference, "MAX_WAITING", waiting)
  engine = inference.InferenceEngine(model, batch_rows=rows)
  items = [{"id": i, "text": text if i % 7 else None} for i, text in enumerate(texts)]
  results = list(engine.score(items, text=lambda item: item["text"]))
  assert [r.item["id"] for r in results] == list(range(len(items)))
  expected = model.engine.score_texts([t or "" for t in (item["text"] for item in items)])
  for result, item, p, count in zip(results, items, expected.probabilities, expected.num_tokens):
    assert result.item is item
    if item["text"] is None:
      assert result.probabilities is None and result.num_tokens == 0
    else:
      assert result.num_tokens == count
      np.testing.assert_allclose(result.probabilities, p, rtol=0, atol=1e-6)


def test_score_reads_a_bounded_number_of_items_ahead(model, monkeypatch):
  """An endless input: the reader never runs more than MAX_WAITING + the queued windows ahead of the caller."""
  monkeypatch.setattr(inference, "STREAM_WINDOW", 16)
  monkeypatch.setattr(inference, "MAX_WAITING", 64)
  read = [0]

  def endless():
    rng = np.random.default_rng(0)
    while True:
      read[0] += 1
      yield " ".join(rng.choice(synthetic.FILLER_WORDS, size=rng.integers(1, 15)))

  stream = inference.InferenceEngine(model, batch_rows=4).score(endless())
  ahead = []
  for handed_back, _ in enumerate(stream, start=1):
    ahead.append(read[0] - handed_back)
    if handed_back == 600:
      break
  stream.close()
  assert max(ahead) <= 64 + 16 * (inference.QUEUED_MESSAGES + 3)


def test_an_error_of_the_input_is_raised_after_the_items_before_it(model, monkeypatch):
  monkeypatch.setattr(inference, "STREAM_WINDOW", 4)

  def failing():
    for i in range(10):
      yield f"good day {i}"
    raise ValueError("cannot read line 11")

  seen = []
  with pytest.raises(ValueError, match="line 11"):
    for result in model.engine.score(failing()):
      seen.append(result.item)
  assert seen == [f"good day {i}" for i in range(10)]


def test_threads_share_one_engine(model, texts):
  engine = inference.InferenceEngine(model)
  expected = model.engine.probabilities(texts)
  results, errors = {}, []

  def work(i):
    try:
      results[i] = engine.probabilities(texts[i::4]) if i % 2 else \
          np.stack([s.probabilities for s in engine.score(texts[i::4])])
    except Exception as error:  # pylint: disable=broad-except
      errors.append(error)

  threads = [threading.Thread(target=work, args=(i,)) for i in range(4)]
  for thread in threads:
    thread.start()
  for thread in threads:
    thread.join()
  assert not errors
  for i in range(4):
    np.testing.assert_allclose(results[i], expected[i::4], rtol=0, atol=1e-6)


def test_buckets_batch_every_row_once_and_pool_the_rest():
  bounds, rows = (4, 8, 16), {4: 4, 8: 3, 16: 2}
  rng = np.random.default_rng(1)
  lengths = rng.integers(1, 17, size=23)
  tokens = (np.arange(16)[None] < lengths[:, None]).astype(np.int32) * 5
  full_only = {bound: (count,) for bound, count in rows.items()}
  buckets = inference._Buckets(bounds, full_only)  # pylint: disable=protected-access
  batches = buckets.add(np.arange(23), tokens, lengths) + buckets.flush_all()
  keys = np.concatenate([b.keys for b in batches])
  assert sorted(keys[keys >= 0].tolist()) == list(range(23))
  for batch in batches:
    assert batch.tokens.shape == (rows[batch.bound], batch.bound)
    real = batch.keys >= 0
    assert (lengths[batch.keys[real]] <= batch.bound).all()
    np.testing.assert_array_equal(batch.tokens[real], tokens[batch.keys[real], :batch.bound])
    assert not batch.tokens[~real].any()
  last = inference._Buckets(bounds, full_only)  # pylint: disable=protected-access
  assert last.add(np.arange(2), tokens[:2] * 0 + (np.arange(16) < 3) * 5, np.asarray([3, 3])) == []
  only, = last.flush_all()
  assert only.bound == 4 and only.keys.tolist() == [0, 1, -1, -1]  # Padded to the bound of its longest row.


def test_partial_batch_rows_double_from_eight_up_to_the_full_batch():
  assert inference.partial_batch_rows(88) == (8, 16, 32, 64, 88)
  assert inference.partial_batch_rows(64) == (8, 16, 32, 64)
  assert inference.partial_batch_rows(8) == (8,)


def test_fitted_partial_batches_take_the_smallest_program_that_holds_them(model, texts):
  """A server's engine (fit_partial_batches): a few texts run on a small program, not a full bucket's rows,
  with the default engine's probabilities; warm_up compiles every (bound, rows) shape."""
  engine = inference.InferenceEngine(model, fit_partial_batches=True)
  assert engine.row_options == {bound: inference.partial_batch_rows(rows) for bound, rows in engine.batch_rows.items()}
  few = ["good day", "so bad", "the day my work is not good at all but fun"]
  np.testing.assert_allclose(engine.probabilities(few), model.engine.probabilities(few), rtol=0, atol=1e-6)
  assert engine.compiled_programs == ((16, 8),)  # Three rows pooled into the bucket of the longest: 8 rows.
  np.testing.assert_allclose(engine.probabilities(texts), model.engine.probabilities(texts), rtol=0, atol=1e-6)
  engine.warm_up()
  assert len(engine.compiled_programs) == sum(map(len, engine.row_options.values()))
  buckets = inference._Buckets((4, 8), {4: (8, 16, 32, 40), 8: (8, 16, 20)})  # pylint: disable=protected-access
  tokens = (np.arange(8)[None] < np.asarray([[3]] * 19)).astype(np.int32)
  batches = buckets.add(np.arange(19), tokens, np.full(19, 3)) + buckets.flush_all()
  assert [b.tokens.shape for b in batches] == [(32, 4)]  # 19 rows: the 32-row program, not the 40-row one.
