"""Run configs: one ``get_config() -> ml_collections.ConfigDict`` per file (pure data).

``BY_MODEL``: the reference config of each model family compared in this project, by the
short name that the study, the benchmarks and their results use. ``ssm`` is Mamba's block
with selection switched off (``configs/ssm.py``), not a model type of its own.
"""

from configs import lstm, sent140, ssm, transformer

BY_MODEL = {"mamba": sent140, "transformer": transformer, "lstm": lstm, "ssm": ssm}
