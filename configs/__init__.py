"""Run configs: one ``get_config() -> ml_collections.ConfigDict`` per file (pure data).

``BY_MODEL``: the reference config of each model family compared in this project, by the
short name that the study, the benchmarks and their results use. ``ssm`` is Mamba's block
with selection switched off (``configs/ssm.py``), not a model type of its own; ``mamba2`` is the
same model type with the Mamba-2 mixer (``configs/sent140_mamba2.py``).
"""

from configs import lstm, sent140, sent140_mamba2, ssm, transformer

BY_MODEL = {"mamba": sent140, "mamba2": sent140_mamba2, "transformer": transformer, "lstm": lstm, "ssm": ssm}
