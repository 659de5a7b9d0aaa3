# Source of notebooks/01_quickstart.ipynb (percent format).
# Edit here, then run: python notebooks/build_notebooks.py

# %% [markdown]
# # Quickstart: a Mamba tweet-sentiment classifier in a couple of minutes
#
# This notebook walks through the whole pipeline at a size that trains in a minute or two on a
# laptop CPU:
#
# 1. draw a small sample of Sentiment140 and prepare it (normalization, splits, a SentencePiece
#    tokenizer),
# 2. train a small Mamba classifier with `train.loop.trainer.train_and_evaluate`,
# 3. read the evaluation report (validation, test, the hand-labelled test set with its
#    neutral class),
# 4. classify new tweets, with and without the "neutral" confidence threshold,
# 5. load the checkpoint back and check it gives the same answers,
# 6. load a pretrained Mamba language model, generate with it, and start a classifier from it.
#
# The full-size run is one command: `./run.sh python -m train.main --config=configs/sent140.py`.
# Without the Sentiment140 files the notebook falls back to the synthetic toy task of
# `configs/tiny.py`, so it always runs.

# %%
# Settings. MAMBA_JAX_NOTEBOOK_QUICK=1 (set by tests/test_notebooks.py) shrinks everything so
# that CI runs this notebook in seconds; the default sizes train for a minute or two on a CPU.
import os
import pathlib
import sys

QUICK = os.environ.get("MAMBA_JAX_NOTEBOOK_QUICK", "0") == "1"
REPO_ROOT = next((p for p in [pathlib.Path.cwd(), *pathlib.Path.cwd().parents] if (p / "mamba_jax").is_dir()), None)
if REPO_ROOT is None:
  raise FileNotFoundError(f"Run this notebook inside the mamba-jax checkout: no mamba_jax/ above {pathlib.Path.cwd()}")
sys.path[:0] = [str(REPO_ROOT), str(REPO_ROOT / "notebooks")]  # configs/, train/ and the sample helper.
DATA_DIR = pathlib.Path(os.environ.get("SENT140_DATA_DIR", REPO_ROOT.parent / "shared" / "data" / "sentiment140"))
DATA_CACHE = pathlib.Path(os.environ.get("MAMBA_JAX_DATA_CACHE", REPO_ROOT / "data_cache"))
WORKDIR = pathlib.Path(os.environ.get("MAMBA_JAX_NOTEBOOK_WORKDIR", REPO_ROOT / "workdirs" / "notebooks")) / (
    "01_quickstart_quick" if QUICK else "01_quickstart")
SAMPLE_ROWS = 20_000 if QUICK else 200_000  # Tweets sampled from the 1.6M of the training file.
SPLIT_FRACTIONS = (0.9, 0.05, 0.05)  # train / validation / test shares of the sample.
VOCAB_SIZE = 1_000 if QUICK else 4_000  # SentencePiece vocabulary learned from the sample.
NUM_TRAIN_STEPS = 30 if QUICK else 400  # Batches of 64 tweets.
FRESH_RUN = True  # Delete WORKDIR first; False resumes (or reuses) the previous run.

# %%
import json
import shutil
import time

import jax
import matplotlib.pyplot as plt
import numpy as np

from configs import sent140, tiny
from train.data import pipeline
from train.data.datasets import LABEL_NAMES
from train.loop import models
from train.loop import trainer as training
from train.model_files import inference
from train.model_files.predictions import classify
from train.runs import checkpointing

np.set_printoptions(precision=3, suppress=True)
print("jax", jax.__version__, "on", jax.default_backend(), f"({jax.device_count()} device(s))")

# %% [markdown]
# ## 1. A small sample of Sentiment140
#
# The training file has 1.6 million tweets (800k negative, then 800k positive); preparing all
# of them takes minutes. For the quickstart we draw a random sample of `SAMPLE_ROWS` rows and
# write it, in the original 6-column CSV format, next to a copy of the hand-labelled test set.
# The data pipeline accepts any `training*.csv` in that format, so the sample folder is a
# complete Sentiment140 folder, just smaller. The sample is deterministic and written once
# (`notebooks/sentiment140_sample.py`, 40 lines).

# %%
from sentiment140_sample import write_sample  # notebooks/sentiment140_sample.py

if DATA_DIR.is_dir():
  start = time.perf_counter()
  SAMPLE_DIR = write_sample(DATA_DIR, DATA_CACHE / f"sentiment140_sample{SAMPLE_ROWS}", SAMPLE_ROWS)
  print(f"{SAMPLE_DIR}: {sorted(p.name for p in SAMPLE_DIR.iterdir())} ({time.perf_counter() - start:.1f} s)")
else:
  SAMPLE_DIR = None
  print(f"No Sentiment140 files in {DATA_DIR}: using the synthetic toy task (configs/tiny.py) instead.")

# %% [markdown]
# ## 2. A configuration
#
# Runs are described by an `ml_collections.ConfigDict` (`configs/*.py`). We start from the
# study's reference configuration `configs/sent140.py` and shrink the data, the model and the
# schedule; every field is documented in that file.

# %%
def quickstart_config():
  if SAMPLE_DIR is None:
    config = tiny.get_config()
  else:
    config = sent140.get_config()
    config.data_dir = str(SAMPLE_DIR)  # Raw CSVs (or the official zip).
    config.prepared_dir = str(DATA_CACHE)  # Normalized splits, tokenizer, token ids: reused next time.
    config.split_fractions = SPLIT_FRACTIONS
    config.vocab_size = VOCAB_SIZE
    config.tokenizer_max_sentences = SAMPLE_ROWS
    config.model.d_model = 32
    config.model.n_layers = 2
    config.model.dropout = 0.1
  config.batch_size, config.eval_batch_size = 64, 256
  config.num_train_steps = NUM_TRAIN_STEPS
  config.warmup_steps = NUM_TRAIN_STEPS // 10
  config.learning_rate = 3e-3
  config.log_every_steps = max(NUM_TRAIN_STEPS // 10, 1)
  evaluations = 1 if QUICK else 2  # Validation passes (each also saves a checkpoint).
  config.eval_every_steps = config.checkpoint_every_steps = max(NUM_TRAIN_STEPS // evaluations, 1)
  config.async_checkpointing = False
  return config


config = quickstart_config()
print(f"dataset={config.dataset} model_type={config.model_type} model={config.model.to_dict()}")
print(f"batch_size={config.batch_size} num_train_steps={config.num_train_steps} "
      f"learning_rate={config.learning_rate} neutral_threshold={config.neutral_threshold}")

# %% [markdown]
# ## 3. Prepare the data
#
# `pipeline.get_datasets` dispatches on `config.dataset`. For Sentiment140 it reads the raw
# CSV, normalizes the tweets (user mentions and links become placeholder tokens), splits them
# by a hash of the normalized text (duplicates stay in one split) and writes them as a TFDS
# dataset; from that dataset it trains a SentencePiece tokenizer and stores token ids in
# `config.prepared_dir`; a second call reuses that cache.
# `train_and_evaluate` below calls it again itself; here we look at what it produces.

# %%
start = time.perf_counter()
datasets = pipeline.get_datasets(config)
print(f"prepared in {time.perf_counter() - start:.1f} s; vocabulary {datasets.vocab_size}")
for name, split in datasets.splits.items():
  print(f"{name:>12}: {len(split):>7} examples, labels {split.label_counts()}")
shown = ("rows_per_label", "duplicates", "malformed_rows", "mean_tokens_per_tweet", "truncated_share", "build_timings_s")
print(json.dumps({k: datasets.summary[k] for k in shown if k in datasets.summary}, indent=1))

# %%
manual = datasets.splits["manual_test"]
for row in range(3):
  ids = manual.tokens[row][manual.tokens[row] != 0]
  pieces = [datasets.tokenizer.decode([int(t)]) or "▁" for t in ids]  # "▁" alone: a word-start piece.
  text = manual.texts[row] if manual.texts is not None else datasets.tokenizer.decode(ids)
  print(f"[{LABEL_NAMES[manual.labels[row]]}] {text}\n   {len(ids)} tokens: {pieces}")

# %% [markdown]
# ## 4. Train
#
# `train_and_evaluate(config, workdir)` trains with AdamW (warmup + cosine decay, gradient
# clipping, label smoothing), validates every `eval_every_steps`, keeps the latest and the
# best-by-validation checkpoints in `workdir/checkpoints/`, logs to `metrics.jsonl` and
# TensorBoard, and finally evaluates the best checkpoint into `workdir/eval_report.json`.
# A run in an existing workdir resumes from its latest checkpoint.

# %%
if FRESH_RUN and WORKDIR.exists():
  shutil.rmtree(WORKDIR)
start = time.perf_counter()
report = training.train_and_evaluate(config, str(WORKDIR))
print(f"{report['num_params']:,} parameters, {report['steps']} steps in {time.perf_counter() - start:.0f} s "
      f"({report['examples_per_s']:.0f} examples/s while training)")
print("workdir:", sorted(p.name for p in WORKDIR.iterdir()))

# %%
with open(WORKDIR / "metrics.jsonl", encoding="utf-8") as f:
  metrics = [json.loads(line) for line in f]
train_log = [m for m in metrics if m["split"] == "train"]
validation_log = [m for m in metrics if m["split"] == "validation"]
fig, (ax_loss, ax_acc) = plt.subplots(1, 2, figsize=(10, 3))
ax_loss.plot([m["step"] for m in train_log], [m["loss"] for m in train_log], marker=".")
ax_loss.set(xlabel="step", ylabel="train loss (label-smoothed)", title="Training loss")
ax_acc.plot([m["step"] for m in train_log], [m["accuracy"] for m in train_log], marker=".", label="train (batch)")
ax_acc.plot([m["step"] for m in validation_log], [m["accuracy"] for m in validation_log], marker="o", label="validation")
ax_acc.set(xlabel="step", ylabel="accuracy", title="Accuracy")
ax_acc.legend()
fig.tight_layout()
plt.show()

# %% [markdown]
# ## 5. The evaluation report
#
# Accuracy, macro F1, expected calibration error (ECE) and the confusion matrix on the
# validation and test splits and on the 359 positive/negative tweets of the hand-labelled
# test set. That set also has 139 neutral tweets: the classifier only knows two classes, so it
# answers "neutral" when its confidence is below `neutral_threshold`; the curve shows the
# three-way accuracy for every threshold.

# %%
rows = [("validation", report["validation"]), ("test", report["test"]),
        ("manual test (pos/neg)", report["manual_test"]["binary"])]
print(f"{'split':<22} {'examples':>8} {'accuracy':>9} {'macro F1':>9} {'ECE':>7} {'loss':>7}")
for name, m in rows:
  print(f"{name:<22} {m['num_examples']:>8} {m['accuracy']:>9.3f} {m['macro_f1']:>9.3f} {m['ece']:>7.3f} {m['loss']:>7.3f}")
three_way = report["manual_test"]["three_way"]
print(f"\nmanual test, three classes (threshold {three_way['threshold']}): accuracy {three_way['accuracy']:.3f}")
print("test confusion matrix (rows: true negative/positive, columns: predicted):")
print(np.asarray(report["test"]["confusion_matrix"]))
assert 0.0 <= report["test"]["accuracy"] <= 1.0

# %%
curve = np.asarray(three_way["curve"])
fig, ax = plt.subplots(figsize=(5, 3))
ax.plot(curve[:, 0], curve[:, 1], marker=".")
ax.axvline(three_way["threshold"], color="gray", linestyle="--", label=f"neutral_threshold = {three_way['threshold']}")
ax.set(xlabel="confidence threshold for 'neutral'", ylabel="three-way accuracy", title="Manual test set, 3 classes")
ax.legend()
fig.tight_layout()
plt.show()

# %% [markdown]
# ## 6. Classify new tweets
#
# `train.model_files.inference.load_workdir` restores a workdir (config, tokenizer, best checkpoint) and
# `classify` turns raw lines into labels, like the command line
# `python -m train.predict --workdir=<workdir> "some tweet"`. With the threshold at 0 the answer
# is always positive or negative; with `neutral_threshold` a low-confidence tweet is "neutral".

# %%
predictor = inference.load_workdir(str(WORKDIR))
tweets = [
    "I love my new phone, best purchase this year!",
    "worst flight ever. lost my bag and no one cares",
    "going to the store later, need milk",
    "not bad at all @john check it out http://example.com",
]
if config.dataset == "synthetic":  # The toy task has its own tiny vocabulary.
  tweets = ["i love this day so much", "the worst day at work", "we go to the home now", "not bad at all"]
lines = [t.encode("utf-8") for t in tweets]
strict = list(classify(predictor, lines, threshold=0.0))
with_neutral = list(classify(predictor, lines, threshold=config.neutral_threshold))
print(f"{'P(positive)':>11}  {'threshold 0':<12} {'threshold ' + str(config.neutral_threshold):<14} tweet")
for a, b_ in zip(strict, with_neutral):
  print(f"{a['p_positive']:>11.3f}  {a['label']:<12} {b_['label']:<14} {a['text']}")
assert all(r["label"] in ("negative", "positive") for r in strict)

# %% [markdown]
# ## 7. Load the checkpoint back
#
# The same thing by hand: build the model from the saved config, describe its parameter
# tree (`jax.eval_shape`: shapes and dtypes, nothing computed), and restore only the
# parameters of the best checkpoint into it with `train.runs.checkpointing` (the optimizer state
# stays on disk). The restored parameters reproduce the predictor's probabilities.

# %%
saved_config = predictor.config  # Read back from WORKDIR/config.json.
model = models.create_model(saved_config, predictor.tokenizer.vocab_size)
shapes = jax.eval_shape(lambda: models.init_params(saved_config, model, jax.random.key(0)))
checkpointer = checkpointing.Checkpointer(str(WORKDIR / "checkpoints"), keep=1, async_save=False)
params, progress = checkpointer.restore_best(shapes, params_only=True)
checkpointer.close()
print(f"restored step {progress['step']} (best validation accuracy {progress['best_validation_accuracy']:.3f}), "
      f"{models.count_params(params):,} parameters")

tokens = np.asarray(predictor.tokenizer.encode(tweets)).astype(np.int32)
mask = (tokens != 0).astype(np.int32)
logits = model.apply({"params": params}, tokens, mask, train=False)
restored = np.asarray(jax.nn.softmax(logits))
np.testing.assert_allclose(restored, predictor.batch_probabilities(tokens), rtol=1e-5, atol=1e-6)
print("P(positive) from the restored parameters:", restored[:, 1])

# %% [markdown]
# ## 8. Pretrained Mamba checkpoints: load, generate, fine-tune
#
# `mamba_jax.load_pretrained` reads a Mamba language-model folder in the Hugging Face
# (`MambaForCausalLM`: `config.json` + `model.safetensors`) or state-spaces layout, without
# PyTorch. **The project downloads no weights**: point `LM_FOLDER` at a folder you fetched
# (e.g. `huggingface-cli download state-spaces/mamba-130m-hf --local-dir mamba-130m-hf`).
# Here it is the tiny randomly initialized checkpoint that `transformers` wrote for the
# tests, so its continuations are noise; the calls are the same for mamba-130m.
#
# `generate` prefills the prompts in parallel, then takes one recurrent step per token.
# Fine-tuning for sentiment is `config.init_from`: the classifier starts from the folder's
# embedding, blocks and final norm with a fresh head (the config must describe the same
# architecture and vocabulary). A language model trained here on the tweets themselves
# (`python -m train.main --config=configs/sent140_lm.py`) is used the same way: pass its
# workdir as `--config.init_from`.

# %%
from mamba_jax import MambaLM, generate, load_pretrained

LM_FOLDER = REPO_ROOT / "tests" / "fixtures" / "hf_mamba_tiny"  # Or a downloaded mamba-130m-hf folder.
lm_config, lm_params = load_pretrained(str(LM_FOLDER))
lm = MambaLM(lm_config)
print(f"{LM_FOLDER.name}: d_model {lm_config.d_model}, {lm_config.n_layers} layers, vocabulary {lm_config.vocab_size}")
prompts = [[5, 17, 3, 42], [9]]  # Token ids of the checkpoint's own tokenizer; prompts of any lengths.
continuations = generate(lm, lm_params, prompts, 8, temperature=0.0)  # Greedy.
for prompt, new_ids in zip(prompts, continuations):
  print(f"prompt {prompt} -> {new_ids.tolist()}")

finetune_config = tiny.get_config()
finetune_config.model.n_layers = lm_config.n_layers  # The checkpoint's architecture (width 16, state 4 as tiny).
classifier = models.create_model(finetune_config, lm_config.vocab_size)
state = training.create_train_state(finetune_config, classifier, jax.random.key(0), total_steps=10,
                                    init_from=str(LM_FOLDER))
np.testing.assert_array_equal(state.params["embed"]["embedding"], lm_params["embed"]["embedding"])
