"""The fetched LRA tasks (Text: IMDB, Image: CIFAR-10, Retrieval: AAN) read, checked and encoded.

Small fixtures in the official layouts are written here; the real files are checked only where
they are (``$LRA_DATA_DIR``, never in CI).
"""

import io
import os
import tarfile

import numpy as np
import pytest

from configs import lra as lra_configs
from train.data.lra import fetched, prepared

REVIEWS = {
    "train/pos": {"0_9.txt": "A fine film.<br />Loved it.", "1_8.txt": "Great cast, great story: café scenes."},
    "train/neg": {"0_2.txt": "Dull.", "1_1.txt": "Worst film I have seen this year, by far."},
    "test/pos": {"0_10.txt": "Superb."},
    "test/neg": {"0_3.txt": "Not good at all."},
}


def write_reviews(root, reviews=REVIEWS):
  for folder, files in reviews.items():
    os.makedirs(root / "aclImdb" / folder, exist_ok=True)
    for name, text in files.items():
      (root / "aclImdb" / folder / name).write_text(text, encoding="utf-8")


def config_for(task, tmp_path, **fields):
  config = lra_configs.get_config(f"{task},mamba2")
  config.lra_data_dir = str(tmp_path / "raw")
  config.prepared_dir = str(tmp_path / "prepared")
  for name, value in fields.items():
    config[name] = value
  return config


def test_imdb_reviews_are_read_checked_and_split(tmp_path):
  write_reviews(tmp_path)
  splits, source = fetched.read_imdb(str(tmp_path), expected_digest=None)
  assert source["reviews_sha256"] == fetched.imdb_reviews_digest(fetched._imdb_reviews_from_folder(str(tmp_path)))
  train_texts = splits["train"][0] + splits["validation"][0]
  assert sorted(train_texts) == sorted(t for f in ("train/pos", "train/neg") for t in REVIEWS[f].values())
  assert sorted(splits["test"][0]) == ["Not good at all.", "Superb."]
  for texts, labels in splits.values():
    for text, label in zip(texts, labels):
      positive = any(text in REVIEWS[f].values() for f in ("train/pos", "test/pos"))
      assert label == int(positive)
  for text in splits["validation"][0]:  # Held out by a hash of the text: the same every time.
    assert fetched._per_mille(text) < fetched.IMDB_VALIDATION_PER_MILLE
  with pytest.raises(ValueError, match="digest"):
    fetched.read_imdb(str(tmp_path))  # Not the pinned 50,000 reviews.
  with pytest.raises(FileNotFoundError, match="sparse-checkout"):
    fetched.read_imdb(str(tmp_path / "nowhere"))


def test_imdb_bytes_through_the_data_path(tmp_path):
  write_reviews(tmp_path / "raw" / "text")
  config = config_for("text", tmp_path, max_length=24)
  datasets = prepared.get_datasets(config, log=lambda _: None, check_sources=False)
  assert datasets.vocab_size == 257 and datasets.class_names == ("negative", "positive")
  test = datasets.splits["test"]
  assert test.tokens.shape == (2, 24)
  for row, label in zip(test.tokens, test.labels):
    text = datasets.tokenizer.decode(row)
    assert text in ("Superb.", "Not good at all.") and label == (text == "Superb.")
    expected = np.frombuffer(text.encode("utf-8"), np.uint8).astype(np.uint16) + 1
    np.testing.assert_array_equal(row[:len(expected)], expected)
  summary = datasets.summary
  assert summary["rows"]["train"] + summary["rows"]["validation"] == 4
  longest = len("Worst film I have seen this year, by far.")
  assert summary["lengths"]["train"]["max"] <= longest and summary["truncated_share"] > 0


@pytest.mark.skipif(not os.path.isdir(os.path.join(fetched.resolve_data_dir(), "text", "aclImdb")),
                    reason="the fetched IMDB reviews are not in $LRA_DATA_DIR/text")
def test_the_fetched_imdb_copy_is_the_pinned_one():
  splits, source = fetched.read_imdb(os.path.join(fetched.resolve_data_dir(), "text"))
  assert source["reviews_sha256"] == fetched.IMDB_REVIEWS_SHA256
  assert len(splits["train"][0]) + len(splits["validation"][0]) == 25_000 == len(splits["test"][0])
  assert int(np.sum(splits["test"][1])) == 12_500


def cifar_tarball(path, per_batch=4):
  """A tar.gz in the official binary layout: <label byte><1024 R><1024 G><1024 B> per image."""
  rng = np.random.default_rng(0)
  batches = {}
  with tarfile.open(path, "w:gz") as archive:
    for name in [f"data_batch_{i}.bin" for i in range(1, 6)] + ["test_batch.bin"]:
      labels = rng.integers(0, 10, per_batch, dtype=np.uint8)
      pixels = rng.integers(0, 256, (per_batch, 3072), dtype=np.uint8)
      data = np.concatenate([labels[:, None], pixels], axis=1).tobytes()
      batches[name] = (labels, pixels)
      info = tarfile.TarInfo(f"cifar-10-batches-bin/{name}")
      info.size = len(data)
      archive.addfile(info, io.BytesIO(data))
  return batches


def test_cifar10_gray_pixels_through_the_data_path(tmp_path):
  os.makedirs(tmp_path / "raw" / "image")
  batches = cifar_tarball(tmp_path / "raw" / "image" / fetched.CIFAR10_TARBALL)
  with pytest.raises(ValueError, match="sha256"):
    fetched.read_cifar10(str(tmp_path / "raw" / "image"))  # Not the official archive.
  datasets = prepared.get_datasets(config_for("image", tmp_path), log=lambda _: None, check_sources=False)
  assert {n: len(s) for n, s in datasets.splits.items()} == {"train": 10, "validation": 10, "test": 4}
  labels, pixels = batches["test_batch.bin"]
  rgb = pixels.reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1).astype(np.float64) / 255.0
  gray = np.floor((0.2989 * rgb[..., 0] + 0.5870 * rgb[..., 1] + 0.1140 * rgb[..., 2]) * 255.5)
  test = datasets.splits["test"]
  np.testing.assert_array_equal(test.labels, labels)
  assert np.max(np.abs(test.tokens.astype(np.int64) - (gray.reshape(4, 1024) + 1))) <= 1  # float32 rounding.
  assert test.tokens.shape == (4, 1024) and test.tokens.min() >= 1


def test_aan_pairs_side_by_side(tmp_path):
  root = tmp_path / "raw" / "retrieval"
  os.makedirs(root)
  rows = {"train": [(1, "doc a cites", "doc b"), (0, "doc c", "doc d is long")],
          "validation": [(1, "v1", "v2")], "test": [(0, "t1", "t2")]}
  for split, name in fetched.AAN_FILES.items():
    lines = ["label\tid1\tid2\ttext1\ttext2"] + [f"{float(l)}\tx\ty\t{a}\t{b}" for l, a, b in rows[split]]
    (root / name).write_text("\n".join(lines) + "\n", encoding="utf-8")
  datasets = prepared.get_datasets(config_for("retrieval", tmp_path, max_length=20), log=lambda _: None)
  train = datasets.splits["train"]
  assert train.tokens.shape == (2, 20) and list(train.labels) == [1, 0]
  first, second = train.tokens[1, :10], train.tokens[1, 10:]
  as_bytes = lambda ids: bytes((ids[ids > 0] - 1).astype(np.uint8).tolist())
  assert as_bytes(first) == b"doc c" and as_bytes(second) == b"doc d is l"  # Each document cut at 10.
  assert datasets.summary["source"]["source"]["sha256"][fetched.AAN_FILES["train"]]
  with pytest.raises(ValueError, match="even"):
    prepared.get_datasets(config_for("retrieval", tmp_path, max_length=21), log=lambda _: None)
