"""A small random sample of Sentiment140 as a data folder of its own (for the notebooks).

The training file has 1.6 million tweets; preparing all of them (normalization, the
tokenizer, token ids) takes minutes. ``write_sample`` draws a deterministic random sample
of its rows and writes it in the original 6-column CSV format (latin-1, every field
quoted; id, date and user left empty) as ``training.sample<N>.csv``, next to a copy of
the hand-labelled ``testdata.manual.2009.06.14.csv``. ``train.data.sources`` accepts any
``training*.csv`` in that format, so ``config.data_dir = <that folder>`` trains on the sample.
"""

from __future__ import annotations

import csv
import pathlib
import shutil
import zipfile

import numpy as np

from train.data import sources


def write_sample(data_dir, out_dir, num_rows: int, seed: int = 0) -> pathlib.Path:
  """Writes (once) ``num_rows`` random training rows and the manual test set into ``out_dir``.

  Args:
    data_dir: a Sentiment140 folder (see train.data.sources.find_sources).
    out_dir: the sample folder; reused as is when its sample CSV already exists.
    num_rows: rows to sample (all of them if the file has fewer).
    seed: the sample's random seed.

  Returns:
    out_dir, usable as config.data_dir.
  """
  out_dir = pathlib.Path(out_dir)
  sample_csv = out_dir / f"training.sample{num_rows}.csv"
  if sample_csv.exists():
    return out_dir
  files = sources.find_sources(str(data_dir), download=False)
  rows = sources.read_csv(files.train, files.train_member, allow_neutral=False)
  size = min(num_rows, len(rows.texts))
  keep = np.sort(np.random.default_rng(seed).choice(len(rows.texts), size=size, replace=False))
  out_dir.mkdir(parents=True, exist_ok=True)
  manual_copy = out_dir / sources.MANUAL_TEST_CSV
  if files.manual_test_member:  # Inside the official zip.
    with zipfile.ZipFile(files.manual_test) as archive:
      manual_copy.write_bytes(archive.read(files.manual_test_member))
  else:
    shutil.copyfile(files.manual_test, manual_copy)
  partial = out_dir / (sample_csv.name + ".partial")
  with open(partial, "w", encoding="latin-1", newline="") as f:
    writer = csv.writer(f, quoting=csv.QUOTE_ALL)
    for i in keep:  # polarity (0 negative, 4 positive), id, date, query, user, text
      writer.writerow(["4" if rows.labels[i] == 1 else "0", "", "", "NO_QUERY", "", rows.texts[i]])
  partial.rename(sample_csv)  # Last, so an interrupted run leaves no sample that looks complete.
  return out_dir
