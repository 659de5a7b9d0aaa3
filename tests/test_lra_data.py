"""The generated LRA tasks: ListOps and Pathfinder are deterministic, labelled correctly, balanced,
of the published lengths, and reach the trainer through the one data path (TFDS builder, token cache).

Labels are checked independently of the generators: each ListOps expression by a small stack
evaluator written here, each Pathfinder image by a flood fill of its pixels after a dilation
that bridges the gaps between a snake's dashes (scipy.ndimage).
"""

import os

import numpy as np
import pytest
import scipy.ndimage as ndi

from configs import lra as lra_configs
from train.data import pipeline
from train.data.lra import listops, pathfinder, tasks

SMALL = listops.ListOpsParams(max_depth=6, max_args=5, min_length=4, max_length=60)


def evaluate(tokens):
  """Value of a ListOps token sequence by a stack machine (independent of the generator)."""
  stack = [[]]
  for token in tokens:
    if token.startswith("["):
      stack.append([token])
    elif token == "]":
      operator, *values = stack.pop()
      ordered = sorted(values)
      value = {"[MAX": max(values), "[MIN": min(values), "[SM": sum(values) % 10,
               "[MED": (ordered[(len(ordered) - 1) // 2] + ordered[len(ordered) // 2]) // 2}[operator]
      stack[-1].append(value)
    else:
      stack[-1].append(int(token))
  assert len(stack) == 1 and len(stack[0]) == 1, tokens
  return stack[0][0]


def test_listops_same_seed_same_examples_and_distinct():
  first = list(listops.generate(200, seed=3, params=SMALL))
  assert first == list(listops.generate(200, seed=3, params=SMALL))
  assert first != list(listops.generate(200, seed=4, params=SMALL))
  assert len({source for source, _ in first}) == 200


def test_listops_labels_lengths_and_classes_at_the_published_settings():
  examples = list(listops.generate(60, seed=0))
  lengths = [len(source.split()) for source, _ in examples]
  assert all(500 < n < 2000 for n in lengths), (min(lengths), max(lengths))
  for source, label in examples:
    assert evaluate(source.split()) == label
    depth, deepest, arguments = 0, 0, [0]
    for token in source.split():  # Depth <= 10 and 2..10 arguments per operator.
      if token.startswith("["):
        arguments[-1] += 1
        depth += 1
        deepest = max(deepest, depth)
        arguments.append(0)
      elif token == "]":
        assert 2 <= arguments.pop() <= 10
        depth -= 1
      else:
        arguments[-1] += 1
    assert deepest <= 10
  small = list(listops.generate(1000, seed=1, params=SMALL))
  assert all(evaluate(source.split()) == label for source, label in small)
  assert set(label for _, label in small) == set(range(10))


def test_listops_tokens_round_trip():
  source, _ = next(listops.generate(1, seed=0))
  ids, count = listops.encode(source, 2000)
  assert count == len(source.split()) and ids.dtype == np.uint16 and ids[count:].sum() == 0
  assert listops.decode(ids) == source
  assert set(ids[:count].tolist()) <= set(range(1, len(listops.VOCABULARY)))
  with pytest.raises(ValueError, match="not a ListOps token"):
    listops.encode("[MAX 1 ( 2 ]", 10)


def connected_by_flood_fill(picture, params):
  """Whether the two dots are in one component of the image's pixels, dash gaps bridged."""
  bridged = ndi.binary_dilation(picture.image > 0, structure=np.ones((3, 3)), iterations=params.bridge_radius)
  components, _ = ndi.label(bridged, structure=np.ones((3, 3)))
  (r1, c1), (r2, c2) = picture.markers
  return components[r1, c1] > 0 and components[r1, c1] == components[r2, c2]


@pytest.mark.parametrize("size,count", [(32, 24), (64, 10)])
def test_pathfinder_deterministic_balanced_and_labelled_by_the_picture(size, count):
  params = pathfinder.PARAMS[size]
  pictures = pathfinder.generate_split(7, "train", count, params)
  again = pathfinder.generate_split(7, "train", count, params)
  assert all(np.array_equal(a.image, b.image) and a.label == b.label for a, b in zip(pictures, again))
  assert not np.array_equal(pictures[0].image, pathfinder.generate_split(8, "train", 1, params)[0].image)
  assert sum(p.label for p in pictures) == count // 2  # Exactly balanced.
  for picture in pictures:
    assert picture.image.shape == (size, size) and picture.image.dtype == np.uint8
    assert connected_by_flood_fill(picture, params) == bool(picture.label)
    # Dashed: without bridging, the ink (half coverage or more) falls apart into many pieces.
    assert ndi.label(picture.image > 127, structure=np.ones((3, 3)))[1] > 10
  assert np.mean([p.num_distractors for p in pictures]) >= 1.0
  tokens = pathfinder.encode(pictures[0].image)
  assert tokens.shape == (size * size,) and tokens.min() >= 1 and tokens.max() <= 256


def test_pathfinder_examples_do_not_depend_on_the_split_size_or_chunking():
  params = pathfinder.PARAMS[32]
  whole = pathfinder.generate_split(0, "validation", 6, params)
  part = pathfinder.generate_split(0, "validation", 6, params, start=3, stop=6)
  assert all(np.array_equal(a.image, b.image) for a, b in zip(whole[3:], part))


def tiny_config(task, tmp_path, sizes):
  config = lra_configs.get_config(f"{task},mamba2")
  config.lra_sizes = sizes
  config.prepared_dir = str(tmp_path / "prepared")
  return config


def test_listops_through_the_data_path_is_built_once_and_reproducible(tmp_path):
  config = tiny_config("listops", tmp_path, (24, 6, 6))
  datasets = pipeline.get_datasets(config, log=lambda _: None)
  assert {name: len(s) for name, s in datasets.splits.items()} == {"train": 24, "validation": 6, "test": 6}
  train = datasets.splits["train"]
  assert train.tokens.shape == (24, 2000) and datasets.vocab_size == 16
  assert datasets.class_names == listops.CLASS_NAMES
  expected = list(listops.generate(36, seed=0))
  for row, label, (source, value) in zip(train.tokens, train.labels, expected[:24]):
    assert listops.decode(row) == source and label == value
  cache = next(p for p in (tmp_path / "prepared").glob("lra-listops-*/tokens_L2000.npz"))
  stamp = os.path.getmtime(cache)
  again = pipeline.get_datasets(config, log=lambda _: None)
  assert os.path.getmtime(cache) == stamp  # Loaded, not rebuilt.
  np.testing.assert_array_equal(again.splits["test"].tokens, datasets.splits["test"].tokens)
  elsewhere = tiny_config("listops", tmp_path / "other", (24, 6, 6))
  np.testing.assert_array_equal(pipeline.get_datasets(elsewhere, log=lambda _: None).splits["train"].tokens,
                                train.tokens)
  summary = datasets.summary
  assert summary["rows_per_label"]["train"] == {c: int(n) for c, n in zip(
      listops.CLASS_NAMES, np.bincount(train.labels, minlength=10))}
  assert 500 < summary["lengths"]["train"]["min"] and summary["lengths"]["train"]["max"] < 2000
  config.lra_data_seed = 1  # Another seed: other examples, another prepared folder.
  other = pipeline.get_datasets(config, log=lambda _: None)
  assert not np.array_equal(other.splits["train"].tokens, train.tokens)


def test_pathfinder_through_the_data_path(tmp_path):
  config = tiny_config("pathfinder32", tmp_path, (8, 4, 4))
  datasets = pipeline.get_datasets(config, log=lambda _: None)
  train = datasets.splits["train"]
  assert train.tokens.shape == (8, 1024) and train.tokens.min() >= 1  # No padding: every pixel is a token.
  assert datasets.summary["rows_per_label"]["train"] == {"different": 4, "connected": 4}
  pictures = pathfinder.generate_split(0, "train", 8, pathfinder.PARAMS[32])
  np.testing.assert_array_equal(train.tokens, np.stack([pathfinder.encode(p.image) for p in pictures]))
  np.testing.assert_array_equal(train.labels, [p.label for p in pictures])


def test_bad_lra_fields_are_one_line_errors(tmp_path):
  config = tiny_config("listops", tmp_path, (0, 1, 1))
  with pytest.raises(ValueError, match="lra_sizes"):
    pipeline.get_datasets(config, log=lambda _: None)
  config = tiny_config("text", tmp_path, None)
  config.lra_data_dir = str(tmp_path / "nothing")
  with pytest.raises(FileNotFoundError, match="no text files"):
    pipeline.get_datasets(config, log=lambda _: None)
  config.lra_sizes = (1, 1, 1)
  with pytest.raises(ValueError, match="generated tasks"):
    pipeline.get_datasets(config, log=lambda _: None)
  assert set(tasks.BY_DATASET) == {"lra_" + name for name in tasks.TASKS}


def test_data_stats_report_beside_the_published_figures(tmp_path):
  from train.data.lra import data_stats  # pylint: disable=import-outside-toplevel
  summary = pipeline.get_datasets(tiny_config("listops", tmp_path, (20, 4, 4)), log=lambda _: None).summary
  text = data_stats.write_data_stats(str(tmp_path / "stats" / "data_stats.md"), [summary], "the command")
  assert (tmp_path / "stats" / "data_stats.md").read_text() == text
  assert "## ListOps (2000)" in text and "| published | 96,000 / 2,000 / 2,000 |" in text
  train_row = next(line for line in text.splitlines() if line.startswith("| train | 20 |"))
  counts = summary["rows_per_label"]["train"]
  assert f"0 {100.0 * counts['0'] / 20:.1f}%" in train_row
  assert f"{summary['lengths']['train']['max']:,}" in train_row


def test_pathfinder_split_drawn_by_worker_processes_is_the_same(monkeypatch):
  from train.data.lra import builders  # pylint: disable=import-outside-toplevel
  monkeypatch.setattr(builders, "PARALLEL_FROM", 8)  # Full-size splits take this path.
  monkeypatch.setattr(builders, "_CHUNK", 5)
  builder = builders.LraPathfinder32.__new__(builders.LraPathfinder32)  # _draw needs no TFDS state.
  drawn = list(builder._draw(0, "train", 12))
  expected = pathfinder.generate_split(0, "train", 12, pathfinder.PARAMS[32])
  assert [d["label"] for d in drawn] == [p.label for p in expected]
  assert all(np.array_equal(d["image"], p.image) for d, p in zip(drawn, expected))
