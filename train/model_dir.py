"""A trained classifier on disk: a training workdir, or an exported model directory.

Exported model directory (written by ``python -m train.export``):

  params.safetensors  the parameters only (no optimizer state), in the safetensors format
                      (https://github.com/huggingface/safetensors: an 8-byte little-endian
                      header length, a JSON header of name -> dtype, shape and byte range,
                      then the raw little-endian tensors). One tensor per parameter, named by
                      its Flax path joined with "/" (e.g. "layers_0/mixer/in_proj/kernel";
                      Dense kernels are (in, out)). Stored as float32, float16 or bfloat16
                      (header "__metadata__" "dtype"); loading casts them to float32.
  config.json         the training config (model_type, model fields, max_length, dataset, ...).
  tokenizer.model     the SentencePiece model (none for the synthetic toy task, whose
                      tokenizer is fixed in code).
  evaluation.json     accuracy and calibration measured with the stored weights.
  README.md           the model card.

Both kinds load into a :class:`LoadedModel` (config, tokenizer, a TrainState holding the
parameters) that evaluates a whole Split in length buckets.
"""

from __future__ import annotations

import dataclasses
import json
import os
from typing import Any, Optional

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax
import safetensors.flax
import safetensors.numpy

from configs import sent140
from train import checkpointing, input_feed, models, tasks
from train import workdir as workdir_lib
from train.data import batching
from train.data.datasets import Split
from train.train import TrainState, eval_step, predict_probabilities

PARAMS_FILE = "params.safetensors"
CONFIG_FILE = "config.json"
EVALUATION_FILE = "evaluation.json"
CARD_FILE = "README.md"
PARAMS_FORMAT = "mamba-jax flax params v1"  # safetensors "__metadata__" "format".
STORED_DTYPES = {"float32": np.float32, "float16": np.float16, "bfloat16": jnp.bfloat16}
_EVAL_STEP = jax.jit(eval_step)  # One jitted function, so every LoadedModel shares its compilation cache.


def flatten_params(params: Any) -> dict[str, np.ndarray]:
  """Nested parameter dict -> {"a/b/c": array} (numpy, host)."""
  flat = {}
  for path, leaf in jax.tree_util.tree_leaves_with_path(params):
    flat["/".join(str(getattr(key, "key", key)) for key in path)] = np.asarray(jax.device_get(leaf))
  return flat


def unflatten_params(flat: dict[str, Any]) -> dict:
  """{"a/b/c": array} -> nested dict."""
  nested: dict = {}
  for name, value in flat.items():
    *parents, leaf = name.split("/")
    node = nested
    for key in parents:
      node = node.setdefault(key, {})
    node[leaf] = value
  return nested


def save_params(path: str, params: Any, dtype: str, metadata: dict[str, str]) -> None:
  """Writes ``params`` cast to ``dtype`` ("float32" | "float16" | "bfloat16") as safetensors."""
  if dtype not in STORED_DTYPES:
    raise ValueError(f"dtype must be one of {sorted(STORED_DTYPES)}, got {dtype!r}")
  flat = {name: value.astype(STORED_DTYPES[dtype]) for name, value in flatten_params(params).items()}
  safetensors.numpy.save_file(flat, path, metadata={**metadata, "format": PARAMS_FORMAT, "dtype": dtype})


def load_params(path: str) -> tuple[dict, dict[str, str]]:
  """(nested float32 params, safetensors metadata) from a file written by :func:`save_params`."""
  with safetensors.safe_open(path, framework="flax") as f:
    metadata = dict(f.metadata() or {})
  if metadata.get("format") != PARAMS_FORMAT:
    raise ValueError(f"{path} is not a mamba-jax parameter file (format {metadata.get('format')!r})")
  # safetensors.numpy cannot read bfloat16; the flax reader can (and gives JAX arrays).
  flat = safetensors.flax.load_file(path)
  return unflatten_params({k: np.asarray(v, np.float32) for k, v in flat.items()}), metadata


def load_run_tokenizer(config: ml_collections.ConfigDict, directory: str):
  """The tokenizer the run trained with: synthetic, or the ``tokenizer.*`` copy in ``directory``."""
  if config.dataset == "synthetic":
    from train.data.synthetic import SyntheticTokenizer  # pylint: disable=import-outside-toplevel
    return SyntheticTokenizer(int(config.max_length))
  candidates = sorted(f for f in os.listdir(directory) if f.startswith("tokenizer."))
  if not candidates:
    raise FileNotFoundError(f"no tokenizer.* file in {directory}; train.main copies it there at the start.")
  from train.data.tokenizer import load_tokenizer  # pylint: disable=import-outside-toplevel
  return load_tokenizer(os.path.join(directory, candidates[0]), max_length=int(config.max_length))


def tokenizer_file(directory: str) -> Optional[str]:
  """The ``tokenizer.*`` file of a workdir or model directory, or None."""
  candidates = sorted(f for f in os.listdir(directory) if f.startswith("tokenizer."))
  return os.path.join(directory, candidates[0]) if candidates else None


def read_config(directory: str, what: str) -> ml_collections.ConfigDict:
  """The run's ``config.json``, completed by :func:`train.workdir.complete_stored_config` with the
  reference config (configs/sent140.py: the top-level fields every config shares)."""
  path = os.path.join(directory, CONFIG_FILE)
  if not os.path.exists(path):
    raise FileNotFoundError(f"{path} not found: {what}")
  with open(path, encoding="utf-8") as f:
    stored = json.load(f)
  config = workdir_lib.complete_stored_config(stored, sent140.get_config(), path)
  if models.task_of(config) is not tasks.Classification:
    raise ValueError(f"{directory} holds a {config.model_type!r} model, not a classifier; a language model "
                     "workdir is used as --config.init_from of a classifier run")
  return config


@dataclasses.dataclass
class LoadedModel:
  """A classifier ready to evaluate.

  Attributes:
    config: the training config.
    tokenizer: encodes raw text as in training.
    state: TrainState holding the model's ``params`` only (no optimizer state, for both kinds).
    source: the directory it came from.
    step: the training step of the parameters (None if unknown).
  """

  config: ml_collections.ConfigDict
  tokenizer: Any
  state: TrainState
  source: str
  step: Optional[int]

  def probabilities(self, split: Split, batch_size: Optional[int] = None) -> np.ndarray:
    """Softmax probabilities (N, 2) of every example of ``split``, evaluated in length buckets."""
    batch_size = int(batch_size or self.config.eval_batch_size)
    input_feed.check_batch_size(batch_size, "eval batch size")
    return predict_probabilities(_EVAL_STEP, self.state, split, batch_size, input_feed.make_mesh(),
                                 batching.config_bounds(self.config, split.max_length))


def _inference_state(model, params: Any) -> TrainState:
  """A TrainState holding ``params`` only: no optimizer state (``optax.identity``)."""
  return TrainState.create(apply_fn=model.apply, params=jax.tree_util.tree_map(jnp.asarray, params),
                           tx=optax.identity(), dropout_rng=jax.random.key_data(jax.random.key(0)))


def load_workdir(workdir: str, checkpoint: str = "best") -> LoadedModel:
  """The parameters of the ``checkpoint`` ("best" | "latest") of a training workdir.

  Only the parameters are read from the checkpoint (not the optimizer state).
  """
  config = read_config(workdir, "--workdir must be a training workdir (python -m train.main --workdir=...).")
  tokenizer = load_run_tokenizer(config, workdir)
  model = models.create_model(config, tokenizer.vocab_size)
  target = _parameter_shapes(config, model)
  checkpoint_dir = os.path.join(workdir, "checkpoints")
  checkpointer = checkpointing.Checkpointer(checkpoint_dir, keep=1, async_save=False)
  if checkpoint == "best":
    params, progress = checkpointer.restore_best(target, params_only=True)
  else:
    params, progress = checkpointer.restore_latest(target, params_only=True)
  checkpointer.close()
  if progress is None:
    raise FileNotFoundError(f"no readable checkpoint under {checkpoint_dir}")
  return LoadedModel(config, tokenizer, _inference_state(model, params), os.path.abspath(workdir),
                     int(progress["step"]))


def _parameter_shapes(config: ml_collections.ConfigDict, model) -> Any:
  """The model's parameter tree as shapes and dtypes (``jax.eval_shape``: nothing is computed)."""
  return jax.eval_shape(lambda: models.init_params(config, model, jax.random.key(0)))


def load_exported(model_dir: str) -> LoadedModel:
  """An exported model directory (see the module docstring)."""
  config = read_config(model_dir, "--model must be a directory written by python -m train.export.")
  params_path = os.path.join(model_dir, PARAMS_FILE)
  if not os.path.exists(params_path):
    raise FileNotFoundError(f"{params_path} not found: --model must be a directory written by "
                            "python -m train.export.")
  tokenizer = load_run_tokenizer(config, model_dir)
  model = models.create_model(config, tokenizer.vocab_size)
  params, metadata = load_params(params_path)
  expected = _parameter_shapes(config, model)
  if jax.tree_util.tree_structure(expected) != jax.tree_util.tree_structure(params) or any(
      e.shape != p.shape for e, p in zip(jax.tree_util.tree_leaves(expected), jax.tree_util.tree_leaves(params))):
    raise ValueError(f"{params_path} does not match the model of {os.path.join(model_dir, CONFIG_FILE)}")
  step = int(metadata["step"]) if metadata.get("step", "").isdigit() else None
  return LoadedModel(config, tokenizer, _inference_state(model, params), os.path.abspath(model_dir), step)


def load(workdir: Optional[str], model_dir: Optional[str], checkpoint: str = "best") -> LoadedModel:
  """Exactly one of ``workdir`` (a training run) or ``model_dir`` (an export)."""
  if bool(workdir) == bool(model_dir):
    raise ValueError("give exactly one of --workdir (a training run) or --model (an exported model directory)")
  return load_workdir(workdir, checkpoint) if workdir else load_exported(model_dir)
