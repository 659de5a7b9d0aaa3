"""The Long Range Arena tasks (Tay et al. 2021) through the one data path.

- ``tasks``: the six tasks (ListOps, Text, Retrieval, Image, Pathfinder 32 and 64): lengths,
  vocabularies, classes, sizes.
- ``listops``, ``pathfinder``: the seeded generators of the two generated tasks.
- ``fetched``: where the fetched tasks' files come from and how they are checked and read.
- ``builders``: one TFDS builder per task (the prepared dataset).
- ``prepared``: ``get_datasets(config)``: builds the TFDS dataset and the token cache once, then loads them
  (``train.data.pipeline.get_datasets`` hands the "lra_<task>" datasets to it).
- ``data_stats``: the generated tasks' label balance and lengths next to the published ones.
"""
