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
  classes.json        the class names in logit order (``train.runs.classes``), when the run had
                      one; without it the model is the binary negative/positive one.
  evaluation.json     accuracy, calibration and accuracy per slice measured with the stored weights.
  README.md           the model card.

Both kinds hold ``config.json`` and a ``tokenizer.*`` copy (``read_config``,
``load_run_tokenizer``); ``train.model_files.inference`` loads either into a model ready to evaluate.
"""

from __future__ import annotations

import json
import os
from typing import Any, Optional

import jax
import ml_collections
import numpy as np
import safetensors
import safetensors.numpy

from configs import sent140
from mamba_jax import pretrained
from mamba_jax.pretrained import DISK_DTYPES
from train.runs import workdir as workdir_lib
from train.runs.workdir import CONFIG_FILE

PARAMS_FILE = "params.safetensors"
EVALUATION_FILE = "evaluation.json"
CARD_FILE = "README.md"
TOKENIZER_PREFIX = "tokenizer."  # The run's tokenizer copy: tokenizer.model (SentencePiece).
PARAMS_FORMAT = "mamba-jax flax params v1"  # safetensors "__metadata__" "format".


def flatten_params(params: Any) -> dict[str, np.ndarray]:
  """Nested parameter dict -> {"a/b/c": array} (numpy, host)."""
  return {"/".join(path): np.asarray(jax.device_get(leaf)) for path, leaf in pretrained.flatten_tree(params).items()}


def unflatten_params(flat: dict[str, Any]) -> dict:
  """{"a/b/c": array} -> nested dict."""
  nested: dict = {}
  for name, value in flat.items():
    pretrained.set_path(nested, tuple(name.split("/")), value)
  return nested


def save_params(path: str, params: Any, dtype: str, metadata: dict[str, str]) -> None:
  """Writes ``params`` cast to ``dtype`` ("float32" | "float16" | "bfloat16") as safetensors."""
  if dtype not in DISK_DTYPES:
    raise ValueError(f"dtype must be one of {sorted(DISK_DTYPES)}, got {dtype!r}")
  flat = {name: value.astype(DISK_DTYPES[dtype]) for name, value in flatten_params(params).items()}
  safetensors.numpy.save_file(flat, path, metadata={**metadata, "format": PARAMS_FORMAT, "dtype": dtype})


def load_params(path: str) -> tuple[dict, dict[str, str]]:
  """(nested float32 params, safetensors metadata) from a file written by :func:`save_params`.

  Raises:
    ValueError: a damaged file (truncated, not safetensors) or one of another program: one line naming it.
  """
  try:
    with safetensors.safe_open(path, framework="np") as f:
      metadata = dict(f.metadata() or {})
  except Exception as e:  # pylint: disable=broad-except  (safetensors' own SafetensorError, OSError)
    raise ValueError(f"{path} is damaged: not a readable safetensors file ({e})") from None
  if metadata.get("format") != PARAMS_FORMAT:
    raise ValueError(f"{path} is not a mamba-jax parameter file (format {metadata.get('format')!r})")
  flat = pretrained.read_safetensors(path)  # bfloat16 included.
  return unflatten_params({k: np.asarray(v, np.float32) for k, v in flat.items()}), metadata


def load_run_tokenizer(config: ml_collections.ConfigDict, directory: str):
  """The tokenizer the run trained with: synthetic, or the ``tokenizer.*`` copy in ``directory``."""
  if config.dataset == "synthetic":
    from train.data.synthetic import SyntheticTokenizer  # pylint: disable=import-outside-toplevel
    return SyntheticTokenizer(int(config.max_length))
  path = tokenizer_file(directory)
  if not path:
    raise FileNotFoundError(f"no tokenizer.* file in {directory}; train.main copies it there at the start.")
  from train.data.tokenizer import load_tokenizer  # pylint: disable=import-outside-toplevel
  return load_tokenizer(path, max_length=int(config.max_length))


def tokenizer_file(directory: str) -> Optional[str]:
  """The ``tokenizer.*`` file of a workdir or model directory, or None."""
  candidates = sorted(f for f in os.listdir(directory) if f.startswith(TOKENIZER_PREFIX))
  return os.path.join(directory, candidates[0]) if candidates else None


def read_config(directory: str, what: str) -> ml_collections.ConfigDict:
  """The run's ``config.json``, completed by :func:`train.runs.workdir.complete_stored_config` with the
  reference config (configs/sent140.py: the top-level fields every config shares).

  Raises:
    FileNotFoundError: no config.json (``what`` says what ``directory`` must be).
    ValueError: a damaged config.json (not JSON), or one of an incompatible version.
  """
  path = os.path.join(directory, CONFIG_FILE)
  if not os.path.exists(path):
    raise FileNotFoundError(f"{path} not found: {what}")
  return workdir_lib.complete_stored_config(read_stored_config(directory), sent140.get_config(), path)


def read_stored_config(directory: str) -> dict:
  """``<directory>/config.json`` as stored (a plain dict, not completed).

  Raises:
    ValueError: a damaged file (not JSON): one line naming it.
  """
  path = os.path.join(directory, CONFIG_FILE)
  try:
    with open(path, encoding="utf-8") as f:
      return json.load(f)
  except ValueError as e:  # json.JSONDecodeError, UnicodeDecodeError.
    raise ValueError(f"{path} is damaged: not a JSON config ({e})") from None
