"""The Long Range Arena tasks: what each one is, how long its inputs are, where its data comes from.

Axes (``mamba_jax.notation``): L (Retrieval: both documents, 2 x 4,000).

``TASKS`` (by name) and ``BY_DATASET`` (by ``config.dataset``) hold one :class:`LraTask` each.
Token ids: 0 is padding everywhere; ListOps has its own 16-token vocabulary
(:mod:`train.data.lra.listops`), the byte tasks (Text, Retrieval) use byte value + 1 and the
pixel tasks (Image, Pathfinder) pixel value + 1, so every id from 1 to 256 is data.
"""

from __future__ import annotations

import dataclasses

from train.data.lra import listops, pathfinder

CIFAR10_CLASSES = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck")
BYTE_VOCAB = 257  # Byte b -> id b + 1.
PIXEL_VOCAB = 257  # Pixel value v -> id v + 1.


@dataclasses.dataclass(frozen=True)
class LraTask:
  """One task of the benchmark.

  Attributes:
    name: "listops" | "text" | "retrieval" | "image" | "pathfinder32" | "pathfinder64".
    title: the column of the seeds' table, with its input length.
    max_length: L, tokens per example (the LRA length; Retrieval: the two documents side by side).
    vocab_size: token ids are in [0, vocab_size).
    class_names: label id i = class_names[i].
    sizes: (train, validation, test) examples of the full task.
    generated: made by a seeded generator here (else read from fetched files).
    pair: two documents of L/2 tokens each (Retrieval's two-tower encoder).
  """

  name: str
  title: str
  max_length: int
  vocab_size: int
  class_names: tuple
  sizes: tuple
  generated: bool
  pair: bool = False

  @property
  def dataset(self) -> str:
    """Its ``config.dataset``: "lra_<name>"."""
    return f"lra_{self.name}"


TASKS = {task.name: task for task in (
    LraTask("listops", "ListOps (2000)", 2000, len(listops.VOCABULARY), listops.CLASS_NAMES,
            (96_000, 2_000, 2_000), generated=True),
    # IMDB: 25k train reviews (2,500 of them, chosen by a hash of the text, held out for validation)
    # and 25k test reviews (train.data.lra.fetched).
    LraTask("text", "Text (2048)", 2048, BYTE_VOCAB, ("negative", "positive"), (22_500, 2_500, 25_000),
            generated=False),
    LraTask("retrieval", "Retrieval (4000)", 8000, BYTE_VOCAB, ("unrelated", "cites"), (147_086, 18_090, 17_437),
            generated=False, pair=True),
    # CIFAR-10 as LRA splits it: the first 45k train images, the last 5k for validation, the 10k test.
    LraTask("image", "Image (1024)", 1024, PIXEL_VOCAB, CIFAR10_CLASSES, (45_000, 5_000, 10_000), generated=False),
    LraTask("pathfinder32", "Pathfinder (1024)", 1024, PIXEL_VOCAB, pathfinder.CLASS_NAMES,
            (160_000, 20_000, 20_000), generated=True),
    LraTask("pathfinder64", "Path-64 (4096)", 4096, PIXEL_VOCAB, pathfinder.CLASS_NAMES,
            (160_000, 20_000, 20_000), generated=True),
)}
BY_DATASET = {task.dataset: task for task in TASKS.values()}
SPLITS = ("train", "validation", "test")


def task_of(dataset: str) -> LraTask:
  """The task of ``config.dataset`` ("lra_<name>").

  Raises:
    ValueError: not an LRA dataset.
  """
  if dataset not in BY_DATASET:
    raise ValueError(f"config.dataset {dataset!r} is not an LRA task; one of {', '.join(sorted(BY_DATASET))}")
  return BY_DATASET[dataset]
