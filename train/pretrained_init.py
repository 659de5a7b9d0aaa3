"""``config.init_from``: start a Mamba classifier from a pretrained backbone.

The folder is a Hugging Face or state-spaces Mamba LM checkpoint (see
:mod:`mamba_jax.pretrained`), e.g. one written by ``mamba_jax.save_pretrained``.
The embedding, blocks and final norm are loaded; the classification head stays
freshly initialized. The model config must describe the checkpoint's
architecture (width, layers, state size, vocabulary, ...).
"""

from __future__ import annotations

from absl import logging

from mamba_jax import MambaClassifier, pretrained


def init_from_pretrained(path: str, model, params):
  """``params`` with the backbone of the checkpoint folder ``path``; prints what was loaded.

  Raises:
    ValueError: the model is not a Mamba classifier, or the checkpoint does not fit it
      (``mamba_jax.CheckpointError``, a ValueError, naming every mismatch).
  """
  if not isinstance(model, MambaClassifier):
    raise ValueError(f"config.init_from needs model_type 'mamba' (a Mamba backbone), not {type(model).__name__}")
  params, loaded, kept = pretrained.load_backbone(path, model.config, params)
  print(f"init_from {path}: loaded {len(loaded)} tensors (embedding, {model.config.n_layers} blocks, "
        f"final norm); freshly initialized: {', '.join(kept) or 'nothing'}.", flush=True)
  logging.info("init_from %s: loaded %s", path, ", ".join(loaded))
  return params
