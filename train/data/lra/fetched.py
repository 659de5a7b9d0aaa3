"""The LRA tasks read from fetched files (Text, Image, Retrieval): where the files come from, their checks.

The files live in an ignored folder, ``config.lra_data_dir`` (else ``$LRA_DATA_DIR``, else
``./data/lra``), one subfolder per task; nothing here downloads. README "Long Range Arena" has
the commands.

- Text (IMDB, Maas et al. 2011, 25k train / 25k test reviews): ``text/aclImdb/{train,test}/{pos,neg}/*.txt``.
  No copy of the official ``aclImdb_v1.tar.gz`` (sha256 ``IMDB_TARBALL_SHA256``) was found on
  GitHub; the extracted reviews are in ``IMDB_REPOSITORY`` at ``IMDB_COMMIT`` (49,993 of the
  50,000 files are byte-identical to a second, independent copy; the 7 that differ are app
  reviews in that other copy, movie reviews in this one, e.g. train/pos/0_9.txt, the dataset's
  well-known first review). Either source is accepted: the official tarball by its sha256, the
  extracted folders by ``IMDB_REVIEWS_SHA256``, a digest of every review's path and sha256.
- Image (CIFAR-10, Krizhevsky 2009): ``image/cifar-10-binary.tar.gz``, the official archive
  (sha256 ``CIFAR10_TARBALL_SHA256``). No public copy was found (the GitHub copies searched are
  truncated or git-annex pointers), so no command fetches it here.
- Retrieval (AAN pairs of the LRA release, ``lra_release/tsv_data/new_aan_pairs.{train,eval,test}.tsv``):
  ``retrieval/new_aan_pairs.{train,eval,test}.tsv``. No public copy was found; no checksum is
  pinned (the files' own sha256 are recorded in the prepared data's summary).

Readers return, per split, the raw examples and labels; a missing or mismatching file is a
one-line ``FileNotFoundError`` / ``ValueError`` naming what was expected.
"""

from __future__ import annotations

import csv
import hashlib
import os
import sys
import tarfile
from typing import Optional

import numpy as np

from train.data import sources

ENV_DATA_DIR = "LRA_DATA_DIR"
DEFAULT_DATA_DIR = "./data/lra"

IMDB_REPOSITORY = "fenilsuchak/test-mlm-backdoor"
IMDB_COMMIT = "b9c80d93c70ecccf85e8988f6b7541f47c103e31"
IMDB_FOLDERS = ("train/pos", "train/neg", "test/pos", "test/neg")
IMDB_TARBALL = "aclImdb_v1.tar.gz"
IMDB_TARBALL_SHA256 = "c40f74a18d3b61f90feba1e17730e0d38e8b97c05fde7008942e91923d1658fe"  # tfds imdb_reviews.
IMDB_REVIEWS_SHA256 = "4b0bfdfe140012ba264b743f2f135941b854bb46af27666f7613982147fe8a1a"  # imdb_reviews_digest of the 50,000 reviews.
IMDB_FETCH_COMMAND = (
    f"git clone --filter=blob:none --no-checkout https://github.com/{IMDB_REPOSITORY}.git data/lra/imdb_repo && "
    f"git -C data/lra/imdb_repo sparse-checkout set {' '.join('aclImdb/' + f for f in IMDB_FOLDERS)} && "
    f"git -C data/lra/imdb_repo checkout {IMDB_COMMIT} && mkdir -p data/lra/text && "
    "mv data/lra/imdb_repo/aclImdb data/lra/text/ && rm -rf data/lra/imdb_repo")
IMDB_VALIDATION_PER_MILLE = 100  # 10% of the train reviews, by a hash of the text, validate (LRA has no split).

CIFAR10_TARBALL = "cifar-10-binary.tar.gz"
CIFAR10_TARBALL_SHA256 = "c4a38c50a1bc5f3a1c5537f2155ab9d68f9f25eb1ed8d9ddda3db29a59bca1dd"  # tfds cifar10.
CIFAR10_URL = "https://www.cs.toronto.edu/~kriz/cifar-10-binary.tar.gz"
CIFAR10_VALIDATION = 5_000  # The last 5,000 train images (LRA: train[90%:]).

AAN_FILES = {"train": "new_aan_pairs.train.tsv", "validation": "new_aan_pairs.eval.tsv",
             "test": "new_aan_pairs.test.tsv"}


def resolve_data_dir(config_dir: Optional[str] = None) -> str:
  """``config.lra_data_dir``, else $LRA_DATA_DIR, else ./data/lra (absolute)."""
  return os.path.abspath(os.path.expanduser(config_dir or os.environ.get(ENV_DATA_DIR) or DEFAULT_DATA_DIR))


# ---------------------------------------------------------------------------------------------- IMDB


def _imdb_reviews_from_folder(root: str) -> dict[str, list[tuple[str, bytes]]]:
  """"train/pos" etc. -> [(file name, bytes)] sorted by name, from ``root``/aclImdb."""
  folders = {}
  for folder in IMDB_FOLDERS:
    path = os.path.join(root, "aclImdb", folder)
    if not os.path.isdir(path):
      raise FileNotFoundError(f"no IMDB reviews in {path}; fetch them: {IMDB_FETCH_COMMAND} "
                              f"(or put the official {IMDB_TARBALL} in {root})")
    names = sorted(n for n in os.listdir(path) if n.endswith(".txt"))
    reviews = []
    for name in names:
      with open(os.path.join(path, name), "rb") as f:
        reviews.append((name, f.read()))
    folders[folder] = reviews
  return folders


def _imdb_reviews_from_tarball(path: str) -> dict[str, list[tuple[str, bytes]]]:
  folders = {folder: [] for folder in IMDB_FOLDERS}
  with tarfile.open(path, "r:gz") as archive:
    for member in archive:
      parts = member.name.split("/")
      if member.isfile() and len(parts) == 4 and "/".join(parts[1:3]) in folders and parts[3].endswith(".txt"):
        folders["/".join(parts[1:3])].append((parts[3], archive.extractfile(member).read()))
  return {folder: sorted(reviews) for folder, reviews in folders.items()}


def imdb_reviews_digest(folders: dict[str, list[tuple[str, bytes]]]) -> str:
  """sha256 of the lines "<folder>/<file name>\\t<sha256 of the file>\\n" in sorted order."""
  lines = sorted(f"{folder}/{name}\t{hashlib.sha256(content).hexdigest()}\n"
                 for folder, reviews in folders.items() for name, content in reviews)
  return hashlib.sha256("".join(lines).encode()).hexdigest()


def read_imdb(root: str, expected_digest: Optional[str] = IMDB_REVIEWS_SHA256) -> tuple[dict, dict]:
  """({"train" | "validation" | "test": (texts, labels np.int32)}, source record) from ``root``.

  ``root`` holds the official tarball (checked by its sha256) or the extracted ``aclImdb``
  folders (checked by ``imdb_reviews_digest``; None: not checked, for test fixtures).
  Validation = the train reviews whose text hash falls in the first ``IMDB_VALIDATION_PER_MILLE``
  per mille; label 1 = positive.

  Raises:
    FileNotFoundError: neither source is there.
    ValueError: the files are not the expected ones.
  """
  tarball = os.path.join(root, IMDB_TARBALL)
  if os.path.isfile(tarball):
    digest = sources.sha256_of(tarball)
    if digest != IMDB_TARBALL_SHA256:
      raise ValueError(f"{tarball} has sha256 {digest}, not the official {IMDB_TARBALL_SHA256}")
    folders, source = _imdb_reviews_from_tarball(tarball), {"file": tarball, "sha256": digest}
  else:
    folders = _imdb_reviews_from_folder(root)
    digest = imdb_reviews_digest(folders)
    if expected_digest is not None and digest != expected_digest:
      raise ValueError(f"the reviews in {os.path.join(root, 'aclImdb')} have digest {digest}, not "
                       f"{expected_digest} ({IMDB_REPOSITORY} at {IMDB_COMMIT[:12]}); fetch them again")
    source = {"folder": os.path.join(root, "aclImdb"), "reviews_sha256": digest,
              "copy_of": f"github.com/{IMDB_REPOSITORY}@{IMDB_COMMIT}"}
  splits = {"train": ([], []), "validation": ([], []), "test": ([], [])}
  for folder, reviews in folders.items():
    part, polarity = folder.split("/")
    for _, content in reviews:
      text = content.decode("utf-8")
      name = part
      if part == "train" and _per_mille(text) < IMDB_VALIDATION_PER_MILLE:
        name = "validation"
      splits[name][0].append(text)
      splits[name][1].append(1 if polarity == "pos" else 0)
  return {name: (texts, np.asarray(labels, np.int32)) for name, (texts, labels) in splits.items()}, source


def _per_mille(text: str) -> int:
  return int.from_bytes(hashlib.sha256(text.encode("utf-8")).digest()[:8], "big") % 1000


# ---------------------------------------------------------------------------------------------- CIFAR-10


def read_cifar10(root: str, expected_sha256: Optional[str] = CIFAR10_TARBALL_SHA256) -> tuple[dict, dict]:
  """({"train" | "validation" | "test": (images np.uint8 (N, 32, 32, 3), labels np.int32)}, source).

  From ``root``/cifar-10-binary.tar.gz (checked by its sha256; None: not checked, for test
  fixtures): data_batch_1..5 (the last ``CIFAR10_VALIDATION`` images validate) and test_batch.

  Raises:
    FileNotFoundError: no archive; ValueError: another file, or a batch of the wrong size.
  """
  tarball = os.path.join(root, CIFAR10_TARBALL)
  if not os.path.isfile(tarball):
    raise FileNotFoundError(f"no {tarball}: no public copy of CIFAR-10 was found to fetch here; put the "
                            f"official archive ({CIFAR10_URL}, sha256 {CIFAR10_TARBALL_SHA256}) there")
  digest = sources.sha256_of(tarball)
  if expected_sha256 is not None and digest != expected_sha256:
    raise ValueError(f"{tarball} has sha256 {digest}, not the official {expected_sha256}")
  batches = {}
  with tarfile.open(tarball, "r:gz") as archive:
    for member in archive:
      name = os.path.basename(member.name)
      if member.isfile() and name.endswith(".bin") and ("data_batch_" in name or name == "test_batch.bin"):
        batches[name] = archive.extractfile(member).read()

  def decode(names):
    rows = []
    for name in names:
      if name not in batches:
        raise ValueError(f"{tarball} has no {name}")
      data = np.frombuffer(batches[name], np.uint8)
      if data.size % 3073:
        raise ValueError(f"{name} in {tarball} is not a whole number of 3,073-byte records")
      rows.append(data.reshape(-1, 3073))
    rows = np.concatenate(rows)
    images = rows[:, 1:].reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1)
    return np.ascontiguousarray(images), rows[:, 0].astype(np.int32)

  train_images, train_labels = decode([f"data_batch_{i}.bin" for i in range(1, 6)])
  test_images, test_labels = decode(["test_batch.bin"])
  cut = len(train_labels) - CIFAR10_VALIDATION if len(train_labels) > CIFAR10_VALIDATION else len(train_labels) // 2
  splits = {"train": (train_images[:cut], train_labels[:cut]),
            "validation": (train_images[cut:], train_labels[cut:]),
            "test": (test_images, test_labels)}
  return splits, {"file": tarball, "sha256": digest}


def grayscale(images: np.ndarray) -> np.ndarray:
  """RGB uint8 (..., 3) -> gray uint8 (...) as LRA's ``tf.image.rgb_to_grayscale`` on uint8 images:
  0.2989 R + 0.5870 G + 0.1140 B in [0, 1], back to uint8 by ``convert_image_dtype`` (x * 255.5, truncated)."""
  weights = np.array([0.2989, 0.5870, 0.1140], np.float32)
  gray = (images.astype(np.float32) / 255.0) @ weights
  return np.clip(gray * 255.5, 0, 255).astype(np.uint8)


# ---------------------------------------------------------------------------------------------- AAN


def read_aan(root: str) -> tuple[dict, dict]:
  """({"train" | "validation" | "test": ((texts1, texts2), labels np.int32)}, source) from the LRA
  release's TSV files in ``root`` (header row; columns label, id1, id2, text1, text2)."""
  splits, source = {}, {}
  limit = csv.field_size_limit(sys.maxsize)  # AAN documents exceed csv's field limit; restored below
  try:                                       # (the limit is process-wide: other readers rely on it).
    for split, name in AAN_FILES.items():
      splits[split], source[name] = _read_aan_file(root, name)
  finally:
    csv.field_size_limit(limit)
  return splits, {"folder": root, "sha256": source}


def _read_aan_file(root: str, name: str) -> tuple:
  """((texts1, texts2), labels np.int32) of one AAN TSV file, and its sha256."""
  path = os.path.join(root, name)
  if not os.path.isfile(path):
    raise FileNotFoundError(f"no {path}: no public copy of the LRA release's AAN pairs was found; put "
                            f"{', '.join(AAN_FILES.values())} (lra_release/tsv_data) in {root}")
  first, second, labels = [], [], []
  with open(path, encoding="utf-8", newline="") as f:
    reader = csv.DictReader(f, delimiter="\t")
    missing = {"label", "text1", "text2"} - set(reader.fieldnames or ())
    if missing:
      raise ValueError(f"{path} lacks the columns {sorted(missing)}")
    for row in reader:
      first.append(row["text1"])
      second.append(row["text2"])
      labels.append(int(float(row["label"])))
  return ((first, second), np.asarray(labels, np.int32)), sources.sha256_of(path)


def encode_bytes(text: str, length: int) -> tuple[np.ndarray, int]:
  """UTF-8 bytes of ``text`` -> (np.uint16 (length,) ids byte + 1, right-padded with 0; untruncated byte count)."""
  data = text.encode("utf-8")
  row = np.zeros((length,), np.uint16)
  kept = np.frombuffer(data[:length], np.uint8)
  row[:len(kept)] = kept.astype(np.uint16) + 1
  return row, len(data)

