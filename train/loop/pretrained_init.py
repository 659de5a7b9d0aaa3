"""``config.init_from``: start a classifier from a released classifier or a pretrained backbone.

``init_from`` is one of

* a classifier: an exported model directory (``train.export``, e.g. models/sent140_mamba:
  config.json, params.safetensors, tokenizer.model[, classes.json]) or a finished classifier
  workdir (its best checkpoint). Its tokenizer is this run's (``classifier_source``: the data is
  encoded with it, none is trained); model_type and the architecture fields of config.model
  must equal its own (``check_classifier_source``); every weight is loaded, and the head is
  kept when its class names equal this run's, else replaced by a fresh one (one line says so);
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

import dataclasses
import filecmp
import os
from typing import Any, Optional

import jax
import ml_collections
import numpy as np
from absl import logging

from mamba_jax import MambaClassifier, pretrained
from train.loop import models, tasks
from train.runs import checkpointing, classes, model_dir
from train.runs.workdir import CONFIG_FILE

# config.model fields that do not change the parameters' meaning: they may differ from the source's.
TRAINING_ONLY_MODEL_FIELDS = ("dropout", "scan_method")


@dataclasses.dataclass(frozen=True)
class ClassifierSource:
  """A trained classifier to start from.

  Attributes:
    path: the export directory or workdir.
    kind: "export" or "workdir".
    config: its training config (completed, ``model_dir.read_config``).
    tokenizer_path: its ``tokenizer.*`` copy (None for the synthetic task's fixed tokenizer).
    class_names: its classes (``train.runs.classes.read``).
  """

  path: str
  kind: str
  config: ml_collections.ConfigDict
  tokenizer_path: Optional[str]
  class_names: tuple[str, ...]


def classifier_source(path: Optional[str]) -> Optional[ClassifierSource]:
  """``path`` as a classifier to start from, or None when it is not one (an LM folder or LM workdir).

  Raises:
    ValueError: a classifier folder without its tokenizer, or with an unreadable config.
  """
  if not path or not os.path.isdir(path) or not os.path.isfile(os.path.join(path, CONFIG_FILE)):
    return None
  is_export = os.path.isfile(os.path.join(path, model_dir.PARAMS_FILE))
  if not is_export and not os.path.isdir(os.path.join(path, "checkpoints")):
    return None
  model_type = model_dir.read_stored_config(path).get("model_type")
  if model_type not in models.MODELS or models.MODELS[model_type][2] is not tasks.Classification:
    return None
  try:
    config = model_dir.read_config(path, "config.init_from must be an export or a training workdir")
  except FileNotFoundError as e:
    raise ValueError(f"config.init_from {path}: {e}") from None
  tokenizer_path = None
  if config.dataset != "synthetic":
    tokenizer_path = model_dir.tokenizer_file(path)
    if not tokenizer_path:
      raise ValueError(f"config.init_from {path} has no tokenizer.* file: its embedding cannot be matched to any "
                       "token ids (export it again with python -m train.export)")
  return ClassifierSource(os.path.abspath(path), "export" if is_export else "workdir", config, tokenizer_path,
                          classes.read(path))


def given_tokenizer_of_run(config: ml_collections.ConfigDict, workdir: str) -> Optional[str]:
  """The tokenizer a finished run's data was encoded with when it was not trained for it: the
  workdir's copy when ``config.init_from`` is a classifier (or is gone, so cannot be told apart:
  the copy then re-encodes the data with the very tokenizer the run used); None: trained
  (``train.data.pipeline.get_datasets`` finds it by the config)."""
  if not config.init_from or config.dataset == "synthetic":
    return None
  if os.path.exists(config.init_from) and classifier_source(config.init_from) is None:
    return None
  return model_dir.tokenizer_file(workdir)


def check_classifier_source(config: ml_collections.ConfigDict, source: ClassifierSource) -> None:
  """The run's model must be the source's: same model_type and architecture fields, same kind of tokenizer.

  Raises:
    ValueError: one line naming every field that differs and how to fix it.
  """
  where = f"config.init_from {source.path}"
  if config.model_type != source.config.model_type:
    raise ValueError(f"{where} is a {source.config.model_type!r} classifier; this config's model_type is "
                     f"{config.model_type!r}: set --config.model_type={source.config.model_type}")
  if (config.dataset == "synthetic") != (source.config.dataset == "synthetic"):
    raise ValueError(f"{where} was trained on dataset {source.config.dataset!r} and this run is on "
                     f"{config.dataset!r}: their tokenizers (vocabularies) differ, the embedding would map the "
                     "wrong token ids")
  mine, theirs = config.model.to_dict(), source.config.model.to_dict()
  differing = [(name, theirs.get(name, "(absent)"), mine.get(name, "(absent)")) for name in sorted(set(mine) | set(theirs))
               if name not in TRAINING_ONLY_MODEL_FIELDS and mine.get(name) != theirs.get(name)]
  if differing:
    fields = "; ".join(f"model.{name}: {old!r} there, {new!r} here" for name, old, new in differing)
    fix = " ".join(f"--config.model.{name}={old}" for name, old, _ in differing if old != "(absent)")
    raise ValueError(f"{where} has another architecture ({fields}); its weights cannot be loaded: set {fix}")


def _source_params(source: ClassifierSource, vocab_size: int) -> tuple[dict, Optional[int]]:
  """(nested numpy params, step) of a classifier source."""
  if source.kind == "export":
    params, metadata = model_dir.load_params(os.path.join(source.path, model_dir.PARAMS_FILE))
    step = metadata.get("step", "")
    return params, int(step) if step.isdigit() else None
  model = models.create_model(source.config, vocab_size, len(source.class_names))
  try:
    return checkpointing.restore_params(os.path.join(source.path, "checkpoints"),
                                        models.parameter_shapes(source.config, model))
  except (FileNotFoundError, ValueError) as e:
    raise ValueError(f"config.init_from {source.path}: {e}") from None


def load_classifier(source: ClassifierSource, model, params: Any, class_names) -> Any:
  """``params`` with every weight of ``source``; its head too when its class names equal ``class_names``.

  Prints one line of what was loaded (and, when the classes differ, that the head was replaced).

  Raises:
    ValueError: the source's parameters do not fit the model (tokenizer vocabulary or architecture).
  """
  flat = {"/".join(k): v for k, v in pretrained.flatten_tree(params).items()}
  loaded_params, step = _source_params(source, int(model.config.vocab_size))
  theirs = {"/".join(k): np.asarray(jax.device_get(v)) for k, v in pretrained.flatten_tree(loaded_params).items()}
  keep_head = tuple(class_names) == tuple(source.class_names)
  wanted = [name for name in flat if keep_head or name.split("/")[0] != models.HEAD]
  embedding = next((name for name in wanted if name.startswith("embed/")), None)
  if embedding and embedding in theirs and theirs[embedding].shape != np.shape(flat[embedding]):
    raise ValueError(f"config.init_from {source.path}: its embedding has {theirs[embedding].shape[0]} rows but this "
                     f"run's tokenizer has {model.config.vocab_size} pieces: the tokenizer and the weights do not match")
  missing = [name for name in wanted if name not in theirs]
  wrong = [f"{name} {theirs[name].shape} there, {np.shape(flat[name])} here" for name in wanted
           if name in theirs and theirs[name].shape != np.shape(flat[name])]
  if missing or wrong:
    raise ValueError(f"config.init_from {source.path} does not fit this model: "
                     + "; ".join(([f"missing {', '.join(missing[:5])}"] if missing else []) + wrong[:5]))
  for name in wanted:
    flat[name] = theirs[name].astype(np.asarray(flat[name]).dtype)
  merged = {}
  for name, value in flat.items():
    pretrained.set_path(merged, tuple(name.split("/")), value)
  at = f", step {step}" if step is not None else ""
  print(f"init_from {source.path} ({source.kind}{at}): loaded {len(wanted)} of {len(flat)} tensors"
        f"{', head included' if keep_head else ''}.", flush=True)
  if not keep_head:
    print(f"init_from {source.path}: its classes {list(source.class_names)} differ from this data's "
          f"{list(class_names)}: the head is replaced (freshly initialized, {len(class_names)} outputs).", flush=True)
  return merged


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
  stored = model_dir.read_stored_config(path)
  if stored.get("model_type") != "mamba_lm":
    raise ValueError(f"config.init_from {path} is a workdir of model_type {stored.get('model_type')!r}; "
                     "a backbone comes from a 'mamba_lm' workdir (configs/sent140_lm.py)")
  config = ml_collections.ConfigDict(stored)
  model = models.create_model(config, vocab_size)
  try:
    params, step = checkpointing.restore_params(os.path.join(path, "checkpoints"),
                                                models.parameter_shapes(config, model))
  except FileNotFoundError as e:
    raise ValueError(f"config.init_from {path}: {e}") from None
  return model.config, params, step


def init_from_pretrained(path: str, model, params, class_names=classes.BINARY):
  """``params`` initialized from ``path`` (a classifier, an LM folder or LM workdir); prints what was loaded.

  ``class_names``: this run's classes (a classifier source's head is kept only when they are its own).

  Raises:
    ValueError: the model is not a Mamba classifier (LM sources), or the source does not fit it
      (``mamba_jax.CheckpointError``, a ValueError, naming every mismatch).
  """
  source = classifier_source(path)
  if source is not None:
    return load_classifier(source, model, params, class_names)
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
