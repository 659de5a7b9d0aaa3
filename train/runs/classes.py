"""The class names a classifier was trained on: ``classes.json`` in its workdir or export.

Label id i of the training data is ``class_names[i]``; the model has one logit per class.
Training writes the file when it claims a workdir, ``train.export`` copies it, and
``train.model_files.inference`` reads it. Folders without it (the Sentiment140 models released before
the file existed) are binary: ``BINARY``.
"""

from __future__ import annotations

import json
import os
from typing import Sequence

CLASSES_FILE = "classes.json"
BINARY = ("negative", "positive")  # Sentiment140's learned classes (neutral only by abstention).


def check(class_names: Sequence[str]) -> tuple[str, ...]:
  """``class_names`` as a tuple: at least two, distinct, non-empty strings.

  Raises:
    ValueError: fewer than two names, an empty name or a repeated name.
  """
  names = tuple(str(name) for name in class_names)
  if len(names) < 2:
    raise ValueError(f"a classifier needs at least 2 classes, got {list(names)}")
  if any(not name.strip() for name in names):
    raise ValueError(f"class names must not be empty, got {list(names)}")
  if len(set(names)) != len(names):
    raise ValueError(f"class names must be distinct, got {list(names)}")
  return names


def write(folder: str, class_names: Sequence[str]) -> None:
  """Writes ``<folder>/classes.json`` ({"class_names": [...]})."""
  path = os.path.join(folder, CLASSES_FILE)
  with open(path + ".tmp", "w") as f:
    json.dump({"class_names": list(check(class_names))}, f, indent=2)
    f.write("\n")
  os.replace(path + ".tmp", path)


def read(folder: str) -> tuple[str, ...]:
  """The class names of a workdir or export folder; ``BINARY`` when it has no classes.json.

  Raises:
    ValueError: a classes.json that is not {"class_names": [two or more distinct names]}.
  """
  path = os.path.join(folder, CLASSES_FILE)
  if not os.path.isfile(path):
    return BINARY
  try:
    with open(path) as f:
      names = json.load(f)["class_names"]
  except (OSError, ValueError, KeyError, TypeError) as e:
    raise ValueError(f"{path} is not a class list ({type(e).__name__}: {e})") from None
  try:
    return check(names)
  except ValueError as e:
    raise ValueError(f"{path}: {e}") from None
