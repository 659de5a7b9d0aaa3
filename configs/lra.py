"""The Long Range Arena study: one config per (task, model), ~600k parameters for every model.

  python -m train.lra --task=listops --model=mamba2          # what calls this (train/lra.py)
  python -m train.main --config=configs/lra.py:listops,mamba2 --workdir=workdirs/lra/listops/mamba2

``get_config("<task>,<model>")``: tasks ``train.data.lra.tasks.TASKS`` (listops, text, retrieval,
image, pathfinder32, pathfinder64); models ``MODELS``:

  mamba                 Mamba-1, 5 blocks, d_model 130, state 16 (causal, mean pooling)
  mamba2                Mamba-2 (SSD), 5 blocks, d_model 136, 8 heads of 34, state 16, chunks of 64
  mamba2_bidirectional  Mamba-2 with a backward mixer per block (summed), 3 blocks, d_model 124,
                        8 heads of 31 (chunks of 64: on XLA's CPU backend half the training step and
                        0.4x the forward of chunks of 256 at length 1,024; the same function)
  transformer_rope      Transformer encoder, rotary positions (the slides' MHFA + RoPE), 3 layers,
                        d_model 128, 4 heads, feed-forward 512; exact attention computed in blocks of
                        256 queries, recomputed in the backward pass (flash attention's memory)
  performer             the same Transformer with FAVOR+ attention (256 random features per head)

At ListOps (16 token ids) they have 595.5k-606.1k parameters (the Transformer and the Performer
598.4k); the byte and pixel tasks add 241 embedding rows (~31k) to each. The exact counts:
README "Long Range Arena" (``python -m train.lra --param_counts``). Retrieval
wraps the model in the LRA two-tower classifier (``mamba_jax.two_tower``: one encoder for both
documents, [u, v, u*v, u-v] into an MLP head), which adds the head's ~0.13M to every model alike.

Training (every model alike): AdamW, peak 1e-3 after 200 warmup steps (a fitted schedule: at most
5% of its steps), cosine to 1%, weight decay 0.05, batch 32, label smoothing 0, dropout 0.1; length
buckets for the variable-length tasks (ListOps, Text), fixed length for the others. ``num_train_steps`` is an upper bound: the study's runs stop
at a wall-clock budget (``config.budget_minutes``, set by ``train.lra``) and the schedule is
fitted to the steps that budget allows (``train.study.lra``).
"""

import ml_collections

from configs import sent140
from train.data.lra import tasks as lra_tasks

MODELS = ("mamba", "mamba2", "mamba2_bidirectional", "transformer_rope", "performer")
# Bucket bounds of the variable-length tasks (tokens); max_length is always the last bound.
BUCKETS = {"listops": (768, 1024, 1280, 1536), "text": (512, 768, 1024, 1536)}


# --quick (python -m train.lra, scripts/gpu_check.sh --dry-run, benchmarks.lra_speed --tiny): every model at
# width 16 with one layer, so each stays valid (Mamba-2's heads divide d_inner, the Transformer's d_model).
QUICK_MODEL_FIELDS = {
    "mamba": {"d_model": 16, "n_layers": 1},
    "mamba2": {"d_model": 16, "n_layers": 1, "head_dim": 8, "chunk_size": 16},
    "mamba2_bidirectional": {"d_model": 16, "n_layers": 1, "head_dim": 8, "chunk_size": 16},
    "transformer_rope": {"d_model": 16, "n_layers": 1, "num_heads": 2, "d_ff": 32, "attention_block": 32},
    "performer": {"d_model": 16, "n_layers": 1, "num_heads": 2, "d_ff": 32, "num_features": 16},
}
# --quick: a few generated examples, short inputs, a few steps (a smoke test of the whole command).
QUICK_SETTINGS = {"lra_sizes": (48, 16, 16), "max_length": 128, "batch_size": 8, "eval_batch_size": 16,
                  "num_train_steps": 4, "warmup_steps": 1, "log_every_steps": 2, "eval_every_steps": 4,
                  "checkpoint_every_steps": 2, "length_bucket_bounds": (64,)}


def quick(config: ml_collections.ConfigDict, model: str) -> ml_collections.ConfigDict:
  """``config`` (of ``model``) made tiny: ``QUICK_MODEL_FIELDS`` and ``QUICK_SETTINGS`` (generated tasks'
  sizes only where the task is generated)."""
  model_fields_node = config.model.encoder if config.model_type == "two_tower" else config.model
  model_fields_node.update(QUICK_MODEL_FIELDS[model])
  for name, value in QUICK_SETTINGS.items():
    if name == "lra_sizes" and not lra_tasks.BY_DATASET[config.dataset].generated:
      continue
    config[name] = value
  return config


def model_fields(model: str) -> tuple[str, dict]:
  """(model_type, config.model fields) of a study model.

  Raises:
    ValueError: an unknown model name.
  """
  if model == "mamba":
    return "mamba", dict(d_model=130, n_layers=5, d_state=16, d_conv=4, expand=2, dropout=0.1, pooling="mean",
                         scan_method="auto", select_delta=True, select_bc=True, bidirectional=False)
  if model in ("mamba2", "mamba2_bidirectional"):
    bidirectional = model == "mamba2_bidirectional"
    return "mamba", dict(d_model=124 if bidirectional else 136, n_layers=3 if bidirectional else 5,
                         mixer="mamba2", d_state=16, d_conv=4, expand=2, head_dim=31 if bidirectional else 34,
                         n_groups=1, chunk_size=64, dropout=0.1, pooling="mean", scan_method="auto",
                         bidirectional=bidirectional)
  if model in ("transformer_rope", "performer"):
    fields = dict(d_model=128, n_layers=3, num_heads=4, d_ff=512, dropout=0.1, positions="rope", pooling="mean")
    if model == "performer":
      return "performer", dict(fields, num_features=256, feature_seed=0)
    # Exact attention in blocks of 256 queries (the slides' flash attention): dense, a training step at
    # length 2,048 and batch 32 needs ~28 GiB.
    return "transformer", dict(fields, attention_block=256)
  raise ValueError(f"unknown LRA model {model!r}; one of {', '.join(MODELS)}")


def get_config(arg: str = "listops,mamba2") -> ml_collections.ConfigDict:
  """The config of "<task>,<model>" (see the module docstring)."""
  task_name, _, model = arg.partition(",")
  if task_name not in lra_tasks.TASKS:
    raise ValueError(f"unknown LRA task {task_name!r}; one of {', '.join(lra_tasks.TASKS)}")
  task = lra_tasks.TASKS[task_name]
  model_type, fields = model_fields(model or "mamba2")
  config = sent140.get_config()
  # ---- Data (train.data.lra.prepared) ----
  config.dataset = task.dataset  # "lra_<task>".
  config.max_length = task.max_length  # L: tokens per example (Retrieval: both documents).
  config.vocab_size = task.vocab_size  # Informational: the task's fixed vocabulary decides it.
  config.lra_data_seed = 0  # Seeds the generated tasks' examples (ListOps, Pathfinder); not the training seed.
  # (train, validation, test) examples of a generated task; None: the published sizes.
  config.lra_sizes = ml_collections.FieldReference(None, field_type=tuple)
  # The fetched tasks' files (train.data.lra.fetched); None: $LRA_DATA_DIR, else ./data/lra.
  config.lra_data_dir = ml_collections.FieldReference(None, field_type=str)
  # ---- Model ----
  config.model_type = model_type
  config.model = ml_collections.ConfigDict(fields)
  if task.pair:  # Retrieval: the LRA two-tower classifier around the same encoder.
    config.model_type = "two_tower"
    config.model = ml_collections.ConfigDict(dict(encoder_type=model_type, encoder=fields, mlp_dim=256,
                                                  dropout=0.1))
  # ---- Optimization ----
  config.batch_size = 32
  config.eval_batch_size = 64
  config.num_epochs = 1
  config.num_train_steps = 20_000  # Upper bound; the budget runs fit it to their budget.
  config.learning_rate = 1e-3
  config.warmup_steps = 200
  config.weight_decay = 0.05
  config.label_smoothing = 0.0
  config.grad_clip_norm = 1.0
  # ---- Input ----
  config.bucket_by_length = task.name in BUCKETS
  config.length_bucket_bounds = BUCKETS.get(task.name, ())
  config.train_data_on_device = True
  # ---- Loop ----
  config.log_every_steps = 50
  config.eval_every_steps = 500
  config.checkpoint_every_steps = 250
  config.keep_checkpoints = 2
  return config
