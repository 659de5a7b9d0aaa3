"""``config.init_from``: start a Mamba classifier from a pretrained backbone.

``init_from`` is one of

* a Hugging Face or state-spaces Mamba LM folder (see :mod:`mamba_jax.pretrained`), e.g.
  one written by ``mamba_jax.save_pretrained``; the model config must describe its
  architecture (width, layers, state size, vocabulary, ...);
* a workdir of this project's language model (``configs/sent140_lm.py``): the parameters
  of its best checkpoint (only those; not its optimizer state). It must have been trained
  with this run's tokenizer (the files are compared) and the same backbone fields.

The embedding, blocks and final norm are loaded; the classification head stays freshly
initialized, and the source's LM head is not used.
"""

from __future__ import annotations

import filecmp
import json
import os
from typing import Optional

import ml_collections
from absl import logging

from mamba_jax import MambaClassifier, pretrained
from train import checkpointing, model_dir, models
from train.workdir import CONFIG_FILE


def is_lm_workdir(path: str) -> bool:
  """Whether ``path`` is a training workdir (config.json and checkpoints/) rather than an LM folder."""
  return os.path.isfile(os.path.join(path, CONFIG_FILE)) and os.path.isdir(os.path.join(path, "checkpoints"))


def check_tokenizer(path: Optional[str], tokenizer_path: Optional[str]) -> None:
  """For an LM workdir ``path``: its tokenizer must be this run's ``tokenizer_path`` (same bytes).

  Raises:
    ValueError: another tokenizer, or none in the workdir.
  """
  if not path or not is_lm_workdir(path) or not tokenizer_path:
    return
  copy = model_dir.tokenizer_file(path)
  if not copy:
    raise ValueError(f"config.init_from {path} has no tokenizer.* file: cannot check that it used this run's tokenizer")
  if not filecmp.cmp(copy, tokenizer_path, shallow=False):
    raise ValueError(f"config.init_from {path} was trained with another tokenizer than this run's ({tokenizer_path}); "
                     "its embedding would map the wrong token ids (prepare both with the same data and vocab_size)")


def _workdir_backbone(path: str, vocab_size: int) -> tuple:
  """(MambaConfig, params) of the best checkpoint of the LM workdir ``path``."""
  with open(os.path.join(path, CONFIG_FILE), encoding="utf-8") as f:
    config = ml_collections.ConfigDict(json.load(f))
  if config.get("model_type") != "mamba_lm":
    raise ValueError(f"config.init_from {path} is a workdir of model_type {config.get('model_type')!r}; "
                     "a backbone comes from a 'mamba_lm' workdir (configs/sent140_lm.py)")
  model = models.create_model(config, vocab_size)
  try:
    params, step = checkpointing.restore_params(os.path.join(path, "checkpoints"),
                                                models.parameter_shapes(config, model))
  except FileNotFoundError as e:
    raise ValueError(f"config.init_from {path}: {e}") from None
  return model.config, params, step


def init_from_pretrained(path: str, model, params):
  """``params`` with the backbone of ``path`` (an LM folder or LM workdir); prints what was loaded.

  Raises:
    ValueError: the model is not a Mamba classifier, or the source does not fit it
      (``mamba_jax.CheckpointError``, a ValueError, naming every mismatch).
  """
  if not isinstance(model, MambaClassifier):
    raise ValueError(f"config.init_from needs model_type 'mamba' (a Mamba backbone), not {type(model).__name__}")
  if is_lm_workdir(path):
    source_config, source, step = _workdir_backbone(path, model.config.vocab_size)
    params, loaded, kept = pretrained.merge_backbone(params, model.config, source, source_config, path)
    where = f"{path} (LM workdir, step {step})"
  else:
    params, loaded, kept = pretrained.load_backbone(path, model.config, params)
    where = path
  print(f"init_from {where}: loaded {len(loaded)} tensors (embedding, {model.config.n_layers} blocks, "
        f"final norm); freshly initialized: {', '.join(kept) or 'nothing'}.", flush=True)
  logging.info("init_from %s: loaded %s", path, ", ".join(loaded))
  return params
