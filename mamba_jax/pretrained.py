"""Mamba checkpoints in and out, without PyTorch: Hugging Face and state-spaces layouts.

A checkpoint is a folder with ``config.json`` and its tensors in
``model.safetensors``, in shards named by ``model.safetensors.index.json``, or
(only when torch is installed) in ``pytorch_model.bin``. Two layouts are read:

- Hugging Face ``MambaForCausalLM`` / ``Mamba2ForCausalLM`` (``config.json`` with
  ``model_type`` "mamba" / "mamba2", hidden_size, num_hidden_layers, ...; tensors
  ``backbone.embeddings.weight``, ``backbone.layers.N.{norm,mixer.*}``,
  ``backbone.norm_f.weight``, and ``lm_head.weight`` unless the head is tied). Its
  ``vocab_size`` is the embedding's row count (already padded).
- state-spaces ``MambaLMHeadModel`` (``config.json`` with d_model, n_layer,
  ssm_cfg, pad_vocab_size_multiple, ...; ``ssm_cfg.layer`` "Mamba1" or "Mamba2";
  ``backbone.embedding.weight``, the same layer names).

The mixer version comes from the file (``MambaConfig.mixer``): code that loads a checkpoint
does not branch on it. ``save_pretrained`` writes the Hugging Face layout of the config's
version (transformers loads it).
Tensors are float32, float16 or bfloat16 on disk; parameters are float32 in
memory. Axes (``mamba_jax.notation``): v, m, d, n, k, r.
"""

from __future__ import annotations

import importlib.util
import json
import os
from typing import Callable, Dict, List, Mapping, NamedTuple, Optional, Tuple

import ml_dtypes
import numpy as np
import safetensors.numpy
from safetensors import safe_open

from mamba_jax.config import MambaConfig

HF = "huggingface"
STATE_SPACES = "state-spaces"
DISK_DTYPES = {"float32": np.float32, "float16": np.float16, "bfloat16": ml_dtypes.bfloat16}
SAFETENSORS_FILE = "model.safetensors"
SAFETENSORS_INDEX = "model.safetensors.index.json"
TORCH_FILE = "pytorch_model.bin"
LM_HEAD = "lm_head.weight"

Params = Dict[str, object]  # Flax parameter tree of MambaLM / the backbone: nested dicts of arrays.


class CheckpointError(ValueError):
  """A checkpoint folder that cannot be read as (or written from) a Mamba LM; the message says why."""


# ---- Tensor names and layouts -------------------------------------------------


class TensorSpec(NamedTuple):
  """One checkpoint tensor: its Flax path, its name and (PyTorch) shape on disk, and the conversion."""

  path: Tuple[str, ...]  # Flax parameter path, e.g. ("layers_0", "mixer", "in_proj", "kernel").
  name: str  # Name in the checkpoint, e.g. "backbone.layers.0.mixer.in_proj.weight".
  shape: Tuple[int, ...]  # PyTorch shape on disk.
  to_flax: Callable[[np.ndarray], np.ndarray]
  to_torch: Callable[[np.ndarray], np.ndarray]


def _same(x: np.ndarray) -> np.ndarray:
  return x


def _transpose(x: np.ndarray) -> np.ndarray:
  return np.ascontiguousarray(x.T)


def _conv_to_flax(w: np.ndarray) -> np.ndarray:
  """PyTorch depthwise Conv1d weight (d, 1, k) -> (k, d) (both weigh the current token last)."""
  return np.ascontiguousarray(w[:, 0, :].T)


def _conv_to_torch(kernel: np.ndarray) -> np.ndarray:
  return np.ascontiguousarray(kernel.T[:, None, :])


def tensor_specs(config: MambaConfig, layout: str) -> List[TensorSpec]:
  """Every tensor a checkpoint of ``config`` holds in ``layout`` (the untied lm_head included)."""
  v, m, d = config.padded_vocab_size, config.d_model, config.d_inner
  n, k, r = config.d_state, config.d_conv, config.resolved_dt_rank
  h, g = config.num_heads, config.n_groups
  mamba2 = config.mixer == "mamba2"
  conv_dim = d + 2 * g * n if mamba2 else d
  embed_name = "backbone.embeddings.weight" if layout == HF else "backbone.embedding.weight"
  specs = [TensorSpec(("embed", "embedding"), embed_name, (v, m), _same, _same)]
  for i in range(config.n_layers):
    flax, torch = f"layers_{i}", f"backbone.layers.{i}"
    mixer = (flax, "mixer")

    def linear(name, out_features, in_features, mixer=mixer, torch=torch):
      return TensorSpec(mixer + (name, "kernel"), f"{torch}.mixer.{name}.weight",
                        (out_features, in_features), _transpose, _transpose)

    def vector(path, name, size):
      return TensorSpec(path, name, (size,), _same, _same)

    in_features = d + conv_dim + h if mamba2 else 2 * d  # (z, xBC, dt) or (x, z).
    specs.append(vector((flax, "norm", "scale"), f"{torch}.norm.weight", m))
    specs.append(linear("in_proj", in_features, m))
    if config.bias:
      specs.append(vector(mixer + ("in_proj", "bias"), f"{torch}.mixer.in_proj.bias", in_features))
    specs.append(TensorSpec(mixer + ("conv_kernel",), f"{torch}.mixer.conv1d.weight", (conv_dim, 1, k),
                            _conv_to_flax, _conv_to_torch))
    if config.conv_bias:
      specs.append(vector(mixer + ("conv_bias",), f"{torch}.mixer.conv1d.bias", conv_dim))
    if mamba2:
      specs.append(vector(mixer + ("dt_bias",), f"{torch}.mixer.dt_bias", h))
      specs.append(vector(mixer + ("A_log",), f"{torch}.mixer.A_log", h))
      specs.append(vector(mixer + ("D",), f"{torch}.mixer.D", h))
      specs.append(vector(mixer + ("norm", "scale"), f"{torch}.mixer.norm.weight", d))
    else:
      specs.append(linear("x_proj", r + 2 * n, d))
      specs.append(linear("dt_proj", d, r))
      specs.append(vector(mixer + ("dt_proj", "bias"), f"{torch}.mixer.dt_proj.bias", d))
      specs.append(TensorSpec(mixer + ("A_log",), f"{torch}.mixer.A_log", (d, n), _same, _same))
      specs.append(vector(mixer + ("D",), f"{torch}.mixer.D", d))
    specs.append(linear("out_proj", m, d))
    if config.bias:
      specs.append(vector(mixer + ("out_proj", "bias"), f"{torch}.mixer.out_proj.bias", m))
  specs.append(TensorSpec(("norm_f", "scale"), "backbone.norm_f.weight", (m,), _same, _same))
  if not config.tie_embeddings:
    specs.append(TensorSpec(("lm_head", "kernel"), LM_HEAD, (v, m), _transpose, _transpose))
  return specs


def _check_exportable(config: MambaConfig) -> None:
  ablations = [f for f in ("select_delta", "select_bc", "use_conv") if not getattr(config, f)]
  if ablations:
    raise CheckpointError(f"the Mamba checkpoint layouts have no {', '.join(ablations)}=False ablation")


# ---- config.json ---------------------------------------------------------------


def _require(cfg: Mapping, keys, where: str) -> None:
  missing = [key for key in keys if key not in cfg]
  if missing:
    raise CheckpointError(f"{where} lacks {', '.join(missing)}")


def detect_layout(cfg: Mapping, where: str) -> str:
  """HF or STATE_SPACES from the fields of a config.json; CheckpointError if neither."""
  model_type = cfg.get("model_type")
  if model_type is not None and model_type not in HF_MODEL_TYPES:
    raise CheckpointError(f"{where}: model_type {model_type!r} is not supported (only {', '.join(map(repr, HF_MODEL_TYPES))})")
  if "hidden_size" in cfg and "num_hidden_layers" in cfg:
    return HF
  if "d_model" in cfg and "n_layer" in cfg:
    return STATE_SPACES
  raise CheckpointError(
      f"{where}: unknown layout: neither Hugging Face Mamba fields (hidden_size, num_hidden_layers) "
      "nor state-spaces fields (d_model, n_layer)")


# config.json "model_type" of the Hugging Face layouts -> MambaConfig.mixer.
HF_MODEL_TYPES = {"mamba": "mamba1", "mamba2": "mamba2"}
HF_ARCHITECTURES = {"mamba1": "MambaForCausalLM", "mamba2": "Mamba2ForCausalLM"}
_FLOAT_TAG = "__float__"  # transformers >= 5 writes a non-finite float as {"__float__": "Infinity"}.


def _json_float(value, where: str) -> float:
  """A float of config.json: a number, "inf"/"Infinity" (json's own spelling) or transformers' tagged form."""
  if isinstance(value, Mapping) and set(value) == {_FLOAT_TAG}:
    value = value[_FLOAT_TAG]
  try:
    return float(value)
  except (TypeError, ValueError) as e:
    raise CheckpointError(f"{where}: {value!r} is not a number") from e


def _dt_limit(value, where: str) -> Tuple[float, float]:
  if not isinstance(value, (list, tuple)) or len(value) != 2:
    raise CheckpointError(f"{where}: time_step_limit / dt_limit must be [low, high], got {value!r}")
  return (_json_float(value[0], where), _json_float(value[1], where))


def _hf_shared_fields(cfg: Mapping, d_state_default: int, tie_default: bool) -> dict:
  """The MambaConfig fields a Hugging Face ``MambaConfig`` and ``Mamba2Config`` spell alike."""
  return dict(
      vocab_size=int(cfg["vocab_size"]),
      d_model=int(cfg["hidden_size"]),
      n_layers=int(cfg["num_hidden_layers"]),
      d_state=int(cfg.get("state_size", d_state_default)),
      d_conv=int(cfg.get("conv_kernel", 4)),
      expand=int(cfg.get("expand", 2)),
      dt_min=float(cfg.get("time_step_min", 1e-3)),
      dt_max=float(cfg.get("time_step_max", 0.1)),
      dt_init_floor=float(cfg.get("time_step_floor", 1e-4)),
      conv_bias=bool(cfg.get("use_conv_bias", True)),
      bias=bool(cfg.get("use_bias", False)),
      norm_epsilon=float(cfg.get("layer_norm_epsilon", 1e-5)),
      tie_embeddings=bool(cfg.get("tie_word_embeddings", tie_default)),
  )


def config_from_hf(cfg: Mapping, where: str = "config.json") -> MambaConfig:
  """MambaConfig of a Hugging Face ``MambaConfig`` / ``Mamba2Config`` dict (vocab_size: padded rows).

  Defaults of absent fields are transformers' own (Mamba2Config: state 128, head_dim 64, chunk 256,
  untied head).
  """
  _require(cfg, ("vocab_size", "hidden_size", "num_hidden_layers"), where)
  if cfg.get("hidden_act", "silu") != "silu":
    raise CheckpointError(f"{where}: hidden_act {cfg['hidden_act']!r} is not supported (only 'silu')")
  if HF_MODEL_TYPES.get(cfg.get("model_type", "mamba")) == "mamba2":
    if not cfg.get("rms_norm", True):
      raise CheckpointError(f"{where}: rms_norm=false (no gated norm) is not supported")
    config = MambaConfig(
        mixer="mamba2", head_dim=int(cfg.get("head_dim", 64)), n_groups=int(cfg.get("n_groups", 1)),
        chunk_size=int(cfg.get("chunk_size", 256)),
        dt_limit=_dt_limit(cfg.get("time_step_limit", (0.0, float("inf"))), where),
        **_hf_shared_fields(cfg, d_state_default=128, tie_default=False))
    if "num_heads" in cfg and int(cfg["num_heads"]) != config.num_heads:
      raise CheckpointError(f"{where}: num_heads {cfg['num_heads']} is not expand * hidden_size / head_dim "
                            f"= {config.num_heads}")
    return config
  rank = cfg.get("time_step_rank", "auto")
  config = MambaConfig(dt_rank=rank if rank == "auto" else int(rank),
                       dt_scale=float(cfg.get("time_step_scale", 1.0)),
                       **_hf_shared_fields(cfg, d_state_default=16, tie_default=True))
  if "intermediate_size" in cfg and int(cfg["intermediate_size"]) != config.d_inner:
    raise CheckpointError(f"{where}: intermediate_size {cfg['intermediate_size']} is not expand * hidden_size "
                          f"= {config.d_inner}")
  return config


# state-spaces ssm_cfg keys that only steer initialization or kernels (no effect on a loaded model).
_SSM_CFG_IGNORED = ("dt_init", "use_fast_path", "layer")
# Mamba2 (``mamba_ssm.modules.mamba2.Mamba2``): its keys -> MambaConfig fields, the ones that only
# steer initialization or kernels, and those whose other values this project does not implement.
_SSM2_CFG_FIELDS = {"d_state": "d_state", "d_conv": "d_conv", "expand": "expand", "headdim": "head_dim",
                    "ngroups": "n_groups", "chunk_size": "chunk_size", "dt_min": "dt_min", "dt_max": "dt_max",
                    "dt_init_floor": "dt_init_floor", "bias": "bias", "conv_bias": "conv_bias"}
_SSM2_CFG_IGNORED = ("layer", "A_init_range", "conv_init", "use_mem_eff_path", "sequence_parallel", "dt_limit",
                     "rmsnorm", "norm_before_gate", "D_has_hdim", "d_ssm", "activation", "learnable_init_states")
_SSM2_CFG_REQUIRED = {"rmsnorm": True, "norm_before_gate": False, "D_has_hdim": False, "learnable_init_states": False}
_SSM_CFG_FIELDS = {"d_state": "d_state", "d_conv": "d_conv", "expand": "expand", "dt_rank": "dt_rank",
                   "dt_min": "dt_min", "dt_max": "dt_max", "dt_init_floor": "dt_init_floor",
                   "dt_scale": "dt_scale", "conv_bias": "conv_bias", "bias": "bias"}


def config_from_state_spaces(cfg: Mapping, where: str = "config.json") -> MambaConfig:
  """MambaConfig of a state-spaces ``MambaLMHeadModel`` config dict (vocab padded by the model)."""
  _require(cfg, ("d_model", "n_layer", "vocab_size"), where)
  ssm_cfg = dict(cfg.get("ssm_cfg") or {})
  unsupported = []
  layer = ssm_cfg.get("layer", "Mamba1")
  if layer not in ("Mamba1", "Mamba2"):
    unsupported.append(f"ssm_cfg.layer={layer!r} (only Mamba1 or Mamba2)")
  mamba2 = layer == "Mamba2"
  field_names, ignored = (_SSM2_CFG_FIELDS, _SSM2_CFG_IGNORED) if mamba2 else (_SSM_CFG_FIELDS, _SSM_CFG_IGNORED)
  fields = {field: ssm_cfg[key] for key, field in field_names.items() if key in ssm_cfg}
  if mamba2:
    unsupported += [f"ssm_cfg.{key}={ssm_cfg[key]!r}" for key, value in _SSM2_CFG_REQUIRED.items()
                    if key in ssm_cfg and ssm_cfg[key] != value]
    if ssm_cfg.get("activation", "swish") not in ("swish", "silu"):
      unsupported.append(f"ssm_cfg.activation={ssm_cfg['activation']!r}")
    fields = {"mixer": "mamba2", "d_state": 128, "head_dim": 64, "chunk_size": 256, **fields}
    if "dt_limit" in ssm_cfg:
      fields["dt_limit"] = _dt_limit(ssm_cfg["dt_limit"], where)
    d_ssm = ssm_cfg.get("d_ssm")
    if d_ssm is not None and int(d_ssm) != int(fields.get("expand", 2)) * int(cfg["d_model"]):
      unsupported.append(f"ssm_cfg.d_ssm={d_ssm} (only expand * d_model: no MLP half in the mixer)")
  if not cfg.get("rms_norm", True):
    unsupported.append("rms_norm=false (LayerNorm blocks)")
  if cfg.get("d_intermediate", 0):
    unsupported.append(f"d_intermediate={cfg['d_intermediate']} (MLP blocks)")
  if cfg.get("attn_layer_idx"):
    unsupported.append(f"attn_layer_idx={cfg['attn_layer_idx']} (attention layers)")
  unknown = sorted(set(ssm_cfg) - set(field_names) - set(ignored))
  if unknown:
    unsupported.append(f"unknown ssm_cfg keys {unknown}")
  if unsupported:
    raise CheckpointError(f"{where}: not supported: {'; '.join(unsupported)}")
  return MambaConfig(
      vocab_size=int(cfg["vocab_size"]),
      pad_vocab_size_multiple=int(cfg.get("pad_vocab_size_multiple", 8)),
      d_model=int(cfg["d_model"]),
      n_layers=int(cfg["n_layer"]),
      tie_embeddings=bool(cfg.get("tie_embeddings", True)),
      norm_epsilon=float(cfg.get("norm_epsilon", 1e-5)),
      **fields,
  )


def hf_config_dict(config: MambaConfig, dtype: str = "float32") -> dict:
  """The Hugging Face ``MambaForCausalLM`` / ``Mamba2ForCausalLM`` config.json of ``config``."""
  _check_exportable(config)
  shared = {
      "architectures": [HF_ARCHITECTURES[config.mixer]],
      "model_type": {mixer: model_type for model_type, mixer in HF_MODEL_TYPES.items()}[config.mixer],
      "dtype": dtype,
      "vocab_size": config.padded_vocab_size,
      "hidden_size": config.d_model,
      "num_hidden_layers": config.n_layers,
      "state_size": config.d_state,
      "conv_kernel": config.d_conv,
      "expand": config.expand,
      "time_step_min": config.dt_min,
      "time_step_max": config.dt_max,
      "time_step_floor": config.dt_init_floor,
      "use_bias": config.bias,
      "use_conv_bias": config.conv_bias,
      "hidden_act": "silu",
      "layer_norm_epsilon": config.norm_epsilon,
      "residual_in_fp32": True,
      "tie_word_embeddings": config.tie_embeddings,
      "bos_token_id": None,
      "eos_token_id": None,
      "pad_token_id": None,
  }
  if config.mixer == "mamba2":
    tagged = lambda x: {_FLOAT_TAG: "Infinity"} if x == float("inf") else x  # transformers' spelling.
    return {**shared, "head_dim": config.head_dim, "num_heads": config.num_heads, "n_groups": config.n_groups,
            "chunk_size": config.chunk_size, "time_step_limit": [tagged(v) for v in config.dt_limit],
            "rms_norm": True}
  return {**shared, "intermediate_size": config.d_inner, "time_step_rank": config.resolved_dt_rank,
          "time_step_scale": config.dt_scale, "time_step_init_scheme": "random"}


# ---- Reading tensors -----------------------------------------------------------


def read_safetensors(filename: str, names: Optional[List[str]] = None) -> Dict[str, np.ndarray]:
  """Tensors of one safetensors file (all, or ``names``), as numpy arrays in their disk dtype.

  numpy has no bfloat16, so safetensors' numpy API cannot return BF16 tensors;
  those are read from the byte range the file's header gives them.
  """
  out = {}
  try:
    with safe_open(filename, framework="np") as f:
      wanted = list(f.keys()) if names is None else names
      bf16 = []
      for name in wanted:
        if f.get_slice(name).get_dtype() == "BF16":
          bf16.append(name)
        else:
          out[name] = f.get_tensor(name)
  except Exception as e:  # safetensors raises its own SafetensorError / OSError variants.
    raise CheckpointError(f"{filename}: not a readable safetensors file ({e})") from e
  if bf16:
    with open(filename, "rb") as f:
      header_len = int.from_bytes(f.read(8), "little")
      header = json.loads(f.read(header_len))
      data = f.read()
    for name in bf16:
      start, end = header[name]["data_offsets"]
      out[name] = np.frombuffer(data[start:end], ml_dtypes.bfloat16).reshape(header[name]["shape"])
  return out


def _read_torch(filename: str) -> Dict[str, np.ndarray]:
  if importlib.util.find_spec("torch") is None:
    raise CheckpointError(
        f"{filename}: reading pytorch_model.bin needs torch (pip install torch); or convert the "
        "checkpoint to model.safetensors")
  import torch  # pylint: disable=import-outside-toplevel

  state = torch.load(filename, map_location="cpu", weights_only=True)
  return {name: (t.float() if t.dtype == torch.bfloat16 else t).numpy() for name, t in state.items()}


def read_tensors(path: str) -> Dict[str, np.ndarray]:
  """Every tensor of the checkpoint folder ``path`` by name (disk dtype)."""
  single = os.path.join(path, SAFETENSORS_FILE)
  index = os.path.join(path, SAFETENSORS_INDEX)
  if os.path.exists(single):
    return read_safetensors(single)
  if os.path.exists(index):
    with open(index, encoding="utf-8") as f:
      weight_map = json.load(f).get("weight_map")
    if not isinstance(weight_map, dict):
      raise CheckpointError(f"{index} has no weight_map")
    by_shard: Dict[str, List[str]] = {}
    for name, shard in weight_map.items():
      by_shard.setdefault(shard, []).append(name)
    missing = sorted(s for s in by_shard if not os.path.exists(os.path.join(path, s)))
    if missing:
      raise CheckpointError(f"{index} names shards that are not in {path}: {', '.join(missing)}")
    tensors = {}
    for shard, names in sorted(by_shard.items()):
      tensors.update(read_safetensors(os.path.join(path, shard), names))
    return tensors
  if os.path.exists(os.path.join(path, TORCH_FILE)):
    return _read_torch(os.path.join(path, TORCH_FILE))
  raise CheckpointError(f"{path}: no weights ({SAFETENSORS_FILE}, {SAFETENSORS_INDEX} or {TORCH_FILE})")


def set_path(tree: dict, path: Tuple[str, ...], value) -> None:
  """tree[path[0]][path[1]]... = value, creating the nested dicts on the way."""
  for key in path[:-1]:
    tree = tree.setdefault(key, {})
  tree[path[-1]] = value


def _get_path(tree: Mapping, path: Tuple[str, ...]):
  for key in path:
    tree = tree[key]
  return tree


def check_tensors(specs: List[TensorSpec], tensors: Mapping[str, np.ndarray], where: str) -> None:
  """Raises one CheckpointError listing missing, unexpected and mis-shaped tensors (if any)."""
  expected = {s.name: s.shape for s in specs}
  present = set(tensors)
  extra = present - set(expected)
  problems = []
  missing = [name for name in expected if name not in present]
  if missing:
    problems.append(f"missing {len(missing)}: {', '.join(missing)}")
  if extra:
    problems.append(f"unexpected {len(extra)}: {', '.join(sorted(extra))}")
  misshaped = [f"{name} {tuple(tensors[name].shape)} (expected {shape})"
               for name, shape in expected.items() if name in tensors and tuple(tensors[name].shape) != shape]
  if misshaped:
    problems.append(f"wrong shape {len(misshaped)}: {', '.join(misshaped)}")
  if problems:
    raise CheckpointError(f"{where} does not match its config.json: " + "; ".join(problems))


def load_pretrained(path: str) -> Tuple[MambaConfig, Params]:
  """Reads a Hugging Face or state-spaces Mamba LM folder.

  Returns:
    (config, params): the MambaConfig and the MambaLM parameter tree (float32
    numpy arrays), usable as ``MambaLM(config).apply({"params": params}, ...)``.
  Raises:
    CheckpointError naming the problem: no folder or config.json, unknown or
    unsupported layout, missing / unexpected / mis-shaped tensors.
  """
  config_path = os.path.join(path, "config.json")
  if not os.path.isdir(path):
    raise CheckpointError(f"{path} is not a folder")
  if not os.path.exists(config_path):
    raise CheckpointError(f"{path} has no config.json")
  try:
    with open(config_path, encoding="utf-8") as f:
      raw = json.load(f)
  except json.JSONDecodeError as e:
    raise CheckpointError(f"{config_path} is not valid JSON ({e})") from e
  if not isinstance(raw, dict):
    raise CheckpointError(f"{config_path} is not a JSON object")
  layout = detect_layout(raw, config_path)
  try:
    config = config_from_hf(raw, config_path) if layout == HF else config_from_state_spaces(raw, config_path)
  except (TypeError, ValueError) as e:
    if isinstance(e, CheckpointError):
      raise
    raise CheckpointError(f"{config_path}: {e}") from e
  tensors = read_tensors(path)
  specs = tensor_specs(config, layout)
  embed_name = specs[0].name
  if (config.tie_embeddings and LM_HEAD in tensors and embed_name in tensors
      and np.array_equal(tensors[LM_HEAD], tensors[embed_name])):
    del tensors[LM_HEAD]  # A tied checkpoint may still store the head (state-spaces does).
  check_tensors(specs, tensors, f"{path} ({layout} layout)")
  params: dict = {}
  for spec in specs:
    set_path(params, spec.path, spec.to_flax(np.asarray(tensors[spec.name], np.float32)))
  return config, params


def save_pretrained(path: str, config: MambaConfig, params: Params, dtype: str = "float32") -> None:
  """Writes ``params`` of ``MambaLM(config)`` as a Hugging Face ``MambaForCausalLM`` (Mamba-1) or
  ``Mamba2ForCausalLM`` (Mamba-2) folder.

  Args:
    path: folder to create or overwrite (config.json, model.safetensors).
    config: the model's MambaConfig (no ablations).
    params: MambaLM parameters (a classifier's head, if any, is not written).
    dtype: "float32" | "float16" | "bfloat16" on disk.
  """
  if dtype not in DISK_DTYPES:
    raise CheckpointError(f"dtype must be one of {sorted(DISK_DTYPES)}, got {dtype!r}")
  config_dict = hf_config_dict(config, dtype)
  tensors = {}
  for spec in tensor_specs(config, HF):
    try:
      value = np.asarray(_get_path(params, spec.path), np.float32)
    except KeyError as e:
      raise CheckpointError(f"params lack {'/'.join(spec.path)} (needed for {spec.name})") from e
    value = spec.to_torch(value)
    if value.shape != spec.shape:
      raise CheckpointError(f"params {'/'.join(spec.path)} has shape {value.shape}, {spec.name} needs {spec.shape}")
    tensors[spec.name] = np.ascontiguousarray(value.astype(DISK_DTYPES[dtype]))
  os.makedirs(path, exist_ok=True)
  safetensors.numpy.save_file(tensors, os.path.join(path, SAFETENSORS_FILE), metadata={"format": "pt"})
  with open(os.path.join(path, "config.json"), "w", encoding="utf-8") as f:
    json.dump(config_dict, f, indent=2, sort_keys=True)
    f.write("\n")


# ---- Fine-tuning: a pretrained backbone in another model's parameters -----------------

# MambaConfig properties that fix the backbone's tensors (and its numerics).
BACKBONE_FIELDS = ("mixer", "padded_vocab_size", "d_model", "n_layers", "d_state", "d_conv", "expand",
                   "resolved_dt_rank", "head_dim", "n_groups", "conv_bias", "bias", "norm_epsilon")


def flatten_tree(tree: Mapping, prefix: Tuple[str, ...] = ()) -> Dict[Tuple[str, ...], object]:
  """Nested dicts (a parameter tree) -> {path tuple: leaf}; :func:`set_path` builds them back."""
  flat = {}
  for key, value in tree.items():
    if isinstance(value, Mapping):
      flat.update(flatten_tree(value, prefix + (key,)))
    else:
      flat[prefix + (key,)] = value
  return flat


def load_backbone(path: str, config: MambaConfig, params: Params) -> Tuple[Params, List[str], List[str]]:
  """``params`` (a MambaClassifier's or MambaLM's) with the backbone of the checkpoint at ``path``.

  See :func:`merge_backbone`; the checkpoint is read with :func:`load_pretrained`.

  Raises:
    CheckpointError: the checkpoint cannot be read, or its architecture differs
      from ``config`` (every differing field is named).
  """
  pretrained_config, pretrained = load_pretrained(path)
  return merge_backbone(params, config, pretrained, pretrained_config, path)


def merge_backbone(params: Params, config: MambaConfig, pretrained: Params, pretrained_config: MambaConfig,
                   where: str) -> Tuple[Params, List[str], List[str]]:
  """``params`` with the embedding, every block and the final norm of ``pretrained``.

  What the backbone does not have (a classifier's head) keeps its value in ``params``,
  and the pretrained LM head is not used. ``where`` names the source in errors.

  Returns:
    (new params, '/'-joined paths loaded, paths kept as given).
  Raises:
    CheckpointError: the architectures differ (every differing field is named).
  """
  _check_exportable(config)
  differing = [f"{field} {getattr(config, field)} here, {getattr(pretrained_config, field)} in the checkpoint"
               for field in BACKBONE_FIELDS if getattr(config, field) != getattr(pretrained_config, field)]
  if differing:
    hint = (" (a vocabulary of another size means another tokenizer)"
            if config.padded_vocab_size != pretrained_config.padded_vocab_size else "")
    raise CheckpointError(f"{where} does not fit the model: {'; '.join(differing)}{hint}")
  source = {p: v for p, v in flatten_tree(pretrained).items() if p[0] != "lm_head"}
  target = flatten_tree(params)
  missing = sorted("/".join(p) for p in source if p not in target)
  if missing:
    raise CheckpointError(f"the model has no parameters for {', '.join(missing)} of {where}")
  loaded, kept, merged = [], [], {}
  for p, value in target.items():
    if p in source:
      merged[p] = np.asarray(source[p], np.float32)
      loaded.append("/".join(p))
    else:
      merged[p] = value
      kept.append("/".join(p))
  tree: dict = {}
  for p, value in merged.items():
    set_path(tree, p, value)
  return tree, loaded, kept
