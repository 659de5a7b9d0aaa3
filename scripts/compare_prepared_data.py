r"""Checks that two prepared-data folders hold bit-identical token caches and tokenizers.

  ./run.sh python scripts/compare_prepared_data.py OLD_PREPARED_DIR NEW_PREPARED_DIR

Both folders must be built from the same raw files (e.g. by two versions of
train.prepare_data with --config.prepared_dir=...). Compares every array of every
tokens_L*.npz (dtype, shape, values), the tokenizer model bytes, tokenizer.json and the
summary (build timings and paths aside), and the splits get_datasets hands the trainer
(configs/sent140.py; the raw files are needed to find the cache key). Exit code 1 on any
difference.
"""

import glob
import json
import os
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from configs import sent140  # pylint: disable=wrong-import-position
from train.data import pipeline  # pylint: disable=wrong-import-position

PATH_FIELDS = ("build_timings_s", "prepared_dir", "tfds_dir")


def _files(root):
  return sorted(os.path.relpath(p, root) for p in glob.glob(os.path.join(root, "sentiment140-*", "spm-*", "*"))
                if not p.endswith(".partial"))


def main(old_root, new_root) -> bool:
  same_files = _files(old_root) == _files(new_root)
  print(f"same files and cache keys: {same_files}")
  ok = same_files
  for name in _files(old_root) if same_files else []:
    a, b = os.path.join(old_root, name), os.path.join(new_root, name)
    if name.endswith(".npz"):
      with np.load(a) as x, np.load(b) as y:
        ok &= sorted(x.files) == sorted(y.files)
        for key in x.files:
          equal = x[key].dtype == y[key].dtype and np.array_equal(x[key], y[key])
          ok &= equal
          print(f"{name}:{key} {x[key].dtype}{x[key].shape} equal={equal}")
    elif name.endswith(".json"):
      ja, jb = ({k: v for k, v in json.load(open(p)).items() if k not in PATH_FIELDS} for p in (a, b))
      ok &= ja == jb
      print(f"{name} equal={ja == jb}")
    else:
      equal = open(a, "rb").read() == open(b, "rb").read()
      ok &= equal
      print(f"{name} bytes equal={equal}")
  loaded = []
  for root in (old_root, new_root):
    config = sent140.get_config()
    config.prepared_dir = root
    loaded.append(pipeline.get_datasets(config, log=lambda _: None))
  for name, x in loaded[0].splits.items():
    y = loaded[1].splits[name]
    equal = (x.tokens.dtype == y.tokens.dtype and np.array_equal(x.tokens, y.tokens)
             and np.array_equal(x.labels, y.labels) and x.texts == y.texts)
    ok &= equal
    print(f"get_datasets {name}: tokens {x.tokens.shape} equal={equal}")
  print("BIT-IDENTICAL" if ok else "DIFFERENT")
  return ok


if __name__ == "__main__":
  if len(sys.argv) != 3:
    sys.exit(__doc__)
  sys.exit(0 if main(*sys.argv[1:]) else 1)
