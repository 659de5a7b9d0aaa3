# Source of notebooks/02_selective_scan.ipynb (percent format).
# Edit here, then run: python notebooks/build_notebooks.py

# %% [markdown]
# # The selective scan, step by step
#
# The heart of Mamba (Gu & Dao 2023) is a *linear recurrence* over the tokens whose
# coefficients depend on the input. This notebook
#
# 1. discretizes a tiny state space model and runs the recurrence as a plain Python loop,
# 2. builds the associative operator that turns the recurrence into a parallel prefix scan
#    and runs that scan round by round,
# 3. checks every scan method of `mamba_jax.ssm` against the loop (every printed array is
#    also `assert`ed, so a wrong implementation fails this notebook), and
# 4. opens up a classifier trained on Sentiment140: how large the step size delta is for
#    each token and layer of real tweets, and how the state norm moves along a tweet:
#    what "selection" looks like.
#
# Axes (``mamba_jax.notation``): b, l, d, n.

# %%
# Settings. MAMBA_JAX_NOTEBOOK_QUICK=1 (set by tests/test_notebooks.py) shrinks the
# training run of part 4 so that CI executes this notebook in seconds.
import os
import pathlib
import sys

QUICK = os.environ.get("MAMBA_JAX_NOTEBOOK_QUICK", "0") == "1"
REPO_ROOT = next((p for p in [pathlib.Path.cwd(), *pathlib.Path.cwd().parents] if (p / "mamba_jax").is_dir()), None)
if REPO_ROOT is None:
  raise FileNotFoundError(f"Run this notebook inside the mamba-jax checkout: no mamba_jax/ above {pathlib.Path.cwd()}")
sys.path[:0] = [str(REPO_ROOT), str(REPO_ROOT / "notebooks")]  # configs/, train/ and the sample helper.
# Part 6 looks inside a trained classifier. Unless QUICK, the first finished run of: the
# reference run `python -m train.main --config=configs/sent140.py --workdir=workdirs/sent140`,
# the run of 01_quickstart; otherwise the notebook trains a small one into WORKDIR_ROOT.
TRAINED_WORKDIR = pathlib.Path(os.environ.get("MAMBA_JAX_TRAINED_WORKDIR", REPO_ROOT / "workdirs" / "sent140"))
WORKDIR_ROOT = pathlib.Path(os.environ.get("MAMBA_JAX_NOTEBOOK_WORKDIR", REPO_ROOT / "workdirs" / "notebooks"))
DATA_DIR = pathlib.Path(os.environ.get("SENT140_DATA_DIR", REPO_ROOT.parent / "shared" / "data" / "sentiment140"))
DATA_CACHE = pathlib.Path(os.environ.get("MAMBA_JAX_DATA_CACHE", REPO_ROOT / "data_cache"))
# When set (relative to the repository root), part 6 also saves its figures there as PNG.
FIGURE_DIR = os.environ.get("MAMBA_JAX_NOTEBOOK_FIGURES")
SMALL_RUN = dict(  # The small run (QUICK: seconds; else a few CPU minutes). Data as in 01_quickstart.
    sample_rows=20_000 if QUICK else 200_000,
    split_fractions=(0.9, 0.05, 0.05),
    vocab_size=1_000 if QUICK else 4_000,
    d_model=32,
    num_train_steps=30 if QUICK else 400,
)

# %%
import jax
import jax.numpy as jnp
import matplotlib.pyplot as plt
import numpy as np

from mamba_jax import ssm

np.set_printoptions(precision=3, suppress=True, linewidth=110)
print("jax", jax.__version__, "on", jax.default_backend())

# %% [markdown]
# ## 1. Discretization
#
# Per channel the model is the continuous system $h'(t) = A\,h(t) + B\,u(t)$,
# $y(t) = C\,h(t)$ with a diagonal, negative $A$ (one decay rate per state entry).
# With a step size $\Delta > 0$ it becomes the discrete recurrence
#
# $$\bar A_t = e^{\Delta_t A}, \qquad \bar B_t = \Delta_t B_t, \qquad
#   h_t = \bar A_t \odot h_{t-1} + \bar B_t\, u_t, \qquad y_t = C_t \cdot h_t + D\, u_t .$$
#
# ($\bar A$ is the exact zero-order hold; $\bar B = \Delta B$ is the simplified rule of the
# reference implementation.) In Mamba $\Delta$, $B$ and $C$ are computed from each token:
# that is the *selection*. A tiny example: one sequence of 6 tokens, 2 channels, 3 state
# entries, with the S4D-real initialization $A_{:,i} = -(i+1)$.

# %%
rng = np.random.default_rng(0)
b, l, d, n = 1, 6, 2, 3
u = rng.normal(size=(b, l, d)).astype(np.float32)
delta = np.log1p(np.exp(rng.normal(size=(b, l, d)))).astype(np.float32)  # softplus: > 0
A = -np.tile(np.arange(1, n + 1, dtype=np.float32), (d, 1))  # (d, n)
B = rng.normal(size=(b, l, n)).astype(np.float32)
C = rng.normal(size=(b, l, n)).astype(np.float32)
D = np.ones((d,), np.float32)

dA, dB = ssm.discretize(jnp.asarray(delta), jnp.asarray(A), jnp.asarray(B))
print("dA", dA.shape, "dB", dB.shape, "  (b, l, d, n)")
print("delta of channel 0 per token:", delta[0, :, 0])
print("dA of channel 0 (rows: tokens, columns: state entries):\n", np.asarray(dA[0, :, 0]))

np.testing.assert_allclose(dA, np.exp(delta[..., None] * A), rtol=1e-6)
np.testing.assert_allclose(dB, delta[..., None] * B[:, :, None, :], rtol=1e-6)
assert np.all((dA > 0) & (dA < 1)), "a negative A and a positive delta keep dA in (0, 1)"

# %% [markdown]
# $\bar A \in (0, 1)$ is the fraction of the state that survives the token: a **large**
# $\Delta$ forgets the past quickly and writes the current token in strongly
# ($\bar B = \Delta B$); a $\Delta$ near **zero** keeps the state as it is and ignores the
# token. Entries with a larger $|A|$ forget faster (each row above decreases).
#
# ## 2. The recurrence as a loop
#
# The ground truth: one token at a time, in float64.

# %%
def recurrence_loop(u, delta, A, B, C, D):
  """y (b, l, d) and all states h (b, l, d, n) by the plain recurrence, in float64."""
  u, delta, A, B, C, D = (np.asarray(x, np.float64) for x in (u, delta, A, B, C, D))
  b, l, d = u.shape
  h = np.zeros((b, d, A.shape[1]))
  ys, hs = [], []
  for t in range(l):
    dA_t = np.exp(delta[:, t, :, None] * A)  # (b, d, n)
    dBu_t = (delta[:, t] * u[:, t])[:, :, None] * B[:, t, None, :]  # (b, d, n)
    h = dA_t * h + dBu_t
    ys.append(np.einsum("bdn,bn->bd", h, C[:, t]) + D * u[:, t])
    hs.append(h)
  return np.stack(ys, axis=1), np.stack(hs, axis=1)


y_loop, h_loop = recurrence_loop(u, delta, A, B, C, D)
print("y (tokens x channels):\n", y_loop[0])
print("state norm |h_t| per token:", np.linalg.norm(h_loop[0].reshape(l, -1), axis=-1))

# %% [markdown]
# ## 3. The associative operator
#
# Each token is an affine map of the state, $h \mapsto a_t \odot h + b_t$ with
# $a_t = \bar A_t$ and $b_t = \bar B_t u_t$. Doing map 1 and then map 2 is again affine:
#
# $$(a_1, b_1) \bullet (a_2, b_2) = (a_2 a_1,\; a_2 b_1 + b_2),$$
#
# and composition is associative. So the state after token $t$ is the composition of the
# maps $1..t$ applied to $h_0 = 0$, i.e. its $b$ part: a *prefix scan* with the operator
# `ssm.linear_recurrence_combine`. We check both properties numerically.

# %%
combine = ssm.linear_recurrence_combine
a_seq = np.asarray(dA)  # (b, l, d, n)
b_seq = np.asarray(dB) * u[..., None]  # (b, l, d, n)
element = lambda t: (a_seq[:, t], b_seq[:, t])  # noqa: E731  (the map of token t)
h_any = rng.normal(size=(b, d, n)).astype(np.float32)

# Composition: (map 0 then map 1) applied to h equals map 1 applied to (map 0 applied to h).
a01, b01 = combine(element(0), element(1))
np.testing.assert_allclose(a01 * h_any + b01, a_seq[:, 1] * (a_seq[:, 0] * h_any + b_seq[:, 0]) + b_seq[:, 1], rtol=1e-5)
# Associativity: the grouping does not matter, so the scan can be split across processors.
left = combine(combine(element(0), element(1)), element(2))
right = combine(element(0), combine(element(1), element(2)))
for x, y in zip(left, right):
  np.testing.assert_allclose(x, y, rtol=1e-5)
print("composition and associativity hold")

# %% [markdown]
# ### The scan round by round
#
# The simplest parallel prefix scan (Hillis & Steele) doubles an offset each round: with
# offset $s = 1, 2, 4, \dots$ every element $t \ge s$ is combined with element $t - s$ (the
# earlier one first). After $\lceil \log_2 l \rceil$ rounds element $t$ holds the composition
# of tokens $0..t$. All combines of one round are independent, which is what a GPU
# parallelizes. (The printout shows which tokens each element has absorbed.)

# %%
def doubling_scan(elements, combine, verbose=True):
  """Inclusive prefix scan of (a, b) along axis 1 in ceil(log2 l) rounds."""
  a, b_ = elements
  length = a.shape[1]
  covered = [(t, t) for t in range(length)]  # Tokens absorbed by element t: first..last.
  offset, rounds = 1, 0
  while offset < length:
    new_a, new_b = combine((a[:, :-offset], b_[:, :-offset]), (a[:, offset:], b_[:, offset:]))
    a = np.concatenate([a[:, :offset], new_a], axis=1)
    b_ = np.concatenate([b_[:, :offset], new_b], axis=1)
    covered = [covered[t] if t < offset else (covered[t - offset][0], t) for t in range(length)]
    rounds += 1
    if verbose:
      print(f"round {rounds} (offset {offset}):", " ".join(f"{s}..{e}" for s, e in covered))
    offset *= 2
  return (a, b_), rounds


(_, h_doubling), rounds = doubling_scan((a_seq, b_seq), combine)
assert rounds == int(np.ceil(np.log2(l)))
np.testing.assert_allclose(h_doubling, h_loop, rtol=1e-5, atol=1e-6)
print(f"{rounds} rounds for {l} tokens; every state equals the loop's")

# %% [markdown]
# `jax.lax.associative_scan` does the same with a work-efficient schedule (O(l) combines
# instead of O(l log l)); this is the `"associative"` method of `mamba_jax.ssm`. It
# materializes every state, a (b, l, d, n) array, and then reads them out with $C$.

# %%
_, h_assoc = jax.lax.associative_scan(combine, (jnp.asarray(a_seq), jnp.asarray(b_seq)), axis=1)
y_assoc = jnp.einsum("bldn,bln->bld", h_assoc, C) + D * u
np.testing.assert_allclose(h_assoc, h_loop, rtol=1e-5, atol=1e-6)
np.testing.assert_allclose(y_assoc, y_loop, rtol=1e-5, atol=1e-5)
print("jax.lax.associative_scan == loop; y:\n", np.asarray(y_assoc[0]))

# %% [markdown]
# ## 4. The library's scan methods
#
# `ssm.selective_scan` runs the whole thing (discretize, scan, read out, skip connection)
# with the state in float32. `"sequential"` is a `jax.lax.scan` of the one-token update
# `ssm.selective_scan_step` (the same function recurrent inference uses); `"associative"`
# is the prefix scan above; `"pallas"` is the fused GPU kernel, checked here only where
# it can run. `"auto"` picks the fastest for the backend.

# %%
methods = ["associative", "sequential"]
if jax.default_backend() == "gpu":  # The Pallas kernels run compiled only there.
  methods.append("pallas")
for method in methods + ["auto"]:
  y, h_last = ssm.selective_scan(u, delta, A, B, C, D, return_state=True, method=method)
  np.testing.assert_allclose(y, y_loop, rtol=1e-5, atol=1e-5)
  np.testing.assert_allclose(h_last, h_loop[:, -1], rtol=1e-5, atol=1e-6)
  print(f"{method:>11} ({ssm.resolve_method(method)}): matches the loop, max |y| = {float(jnp.abs(y).max()):.3f}")

# One token at a time, as in recurrent inference.
h = jnp.zeros((b, d, n))
for t in range(l):
  y_t, h = ssm.selective_scan_step(h, u[:, t], delta[:, t], A, B[:, t], C[:, t], D)
  np.testing.assert_allclose(y_t, y_loop[:, t], rtol=1e-5, atol=1e-5)
print("selective_scan_step, token by token: matches the loop")

# %% [markdown]
# **Padding.** Tweets in a batch are right-padded. Where the mask is 0 the scan sets
# $\Delta = 0$, which makes the step the identity ($\bar A = 1$, $\bar B = 0$): the state is
# carried unchanged and the output is 0, so padding never changes the real tokens' results.

# %%
mask = np.array([[1, 1, 1, 1, 0, 0]], np.int32)
y_masked, h_masked = ssm.selective_scan(u, delta, A, B, C, D, mask=mask, return_state=True)
y_prefix, h_prefix = ssm.selective_scan(u[:, :4], delta[:, :4], A, B[:, :4], C[:, :4], D, return_state=True)
np.testing.assert_allclose(y_masked[:, :4], y_prefix, rtol=1e-5, atol=1e-6)
np.testing.assert_allclose(h_masked, h_prefix, rtol=1e-5, atol=1e-6)
assert np.all(np.asarray(y_masked[:, 4:]) == 0)
print("a padded sequence gives the outputs and the final state of its 4 real tokens")

# %% [markdown]
# ## 5. Why make delta depend on the input?
#
# Unrolling the recurrence, the final state is a weighted sum of the tokens,
#
# $$h_l = \sum_t w_t\, B_t u_t, \qquad w_t = \Delta_t \prod_{s > t} e^{\Delta_s A}.$$
#
# With a constant $\Delta$ (a linear time-invariant SSM such as S4) the weights can only
# decay with distance: the model cannot decide *which* tokens matter. With a per-token
# $\Delta$ it can: a large $\Delta$ on an important token writes it in (and forgets what
# came before), $\Delta \approx 0$ on a filler token skips it. Below, one state entry with
# $A = -1$ over 12 tokens: the same total step size spent uniformly or on two tokens.

# %%
def token_weights(delta_1d, a=-1.0):
  """w_t = delta_t * prod_{s > t} exp(delta_s * a) for one channel with one state entry."""
  later_decay = np.exp(a * (np.cumsum(delta_1d[::-1])[::-1] - delta_1d))
  return delta_1d * later_decay


num_tokens = 12
uniform_delta = np.full(num_tokens, 0.25)
important = [3, 8]
selective_delta = np.full(num_tokens, 1e-3)
selective_delta[important] = (uniform_delta.sum() - 1e-3 * (num_tokens - len(important))) / len(important)
np.testing.assert_allclose(selective_delta.sum(), uniform_delta.sum())  # The same total step.
weights = {"constant delta (LTI)": token_weights(uniform_delta), "selective delta": token_weights(selective_delta)}

# The closed form agrees with the scan: feed B u = 1 at token t only.
for name, delta_1d in [("constant", uniform_delta), ("selective", selective_delta)]:
  one_hot_inputs = np.eye(num_tokens, dtype=np.float32)[:, :, None]  # (b = token, l, d = 1)
  _, h_last = ssm.selective_scan(
      one_hot_inputs, np.broadcast_to(delta_1d[None, :, None], one_hot_inputs.shape).astype(np.float32),
      -np.ones((1, 1), np.float32), np.ones((num_tokens, num_tokens, 1), np.float32),
      np.ones((num_tokens, num_tokens, 1), np.float32), return_state=True)
  np.testing.assert_allclose(h_last[:, 0, 0], token_weights(delta_1d), rtol=1e-4, atol=1e-7)

fig, ax = plt.subplots(figsize=(7, 2.8))
positions = np.arange(num_tokens)
for offset, (name, w) in zip((-0.2, 0.2), weights.items()):
  ax.bar(positions + offset, w, width=0.4, label=name)
ax.set_xlabel("token")
ax.set_ylabel("weight in the final state")
ax.set_xticks(positions)
ax.legend()
ax.set_title("What the final state remembers (A = -1)")
fig.tight_layout()
plt.show()

# %% [markdown]
# ## 6. Selection in a trained classifier
#
# Now the real thing: a Mamba classifier trained on Sentiment140 tweets. Each layer's mixer
# computes $\Delta$ (the softplus of `dt` plus its bias), $B$ and $C$ from the token it reads
# (`MambaMixer._ssm_inputs`). We record
# them with a Flax method interceptor while the model classifies a few tweets of the
# hand-labelled test set, then rerun each layer's recurrence token by token to follow the
# state. The reference run of `train.main` (or the quickstart's run) is used when it exists;
# otherwise a small model is trained here, as in 01_quickstart (on synthetic toy sentences if
# the Sentiment140 files are missing).

# %%
import json

from flax import linen as nn

from configs import sent140, tiny
from mamba_jax import MambaMixer
from train.data import sources, synthetic
from train.loop import models
from train.loop import trainer as training
from train.model_files import inference
from sentiment140_sample import write_sample  # notebooks/sentiment140_sample.py (see 01_quickstart)


def small_run_config():
  """A small Mamba on a sample of Sentiment140, or the tiny synthetic config without the files."""
  if not DATA_DIR.is_dir():
    print(f"No Sentiment140 files in {DATA_DIR}: training on the synthetic toy task instead.")
    config = tiny.get_config()
    config.model.n_layers = 2
    config.num_train_steps = SMALL_RUN["num_train_steps"]
    return config
  rows = SMALL_RUN["sample_rows"]
  config = sent140.get_config()
  config.data_dir = str(write_sample(DATA_DIR, DATA_CACHE / f"sentiment140_sample{rows}", rows))
  config.prepared_dir = str(DATA_CACHE)
  config.split_fractions = SMALL_RUN["split_fractions"]
  config.vocab_size = SMALL_RUN["vocab_size"]
  config.tokenizer_max_sentences = rows
  config.model.d_model = SMALL_RUN["d_model"]
  config.num_train_steps = SMALL_RUN["num_train_steps"]
  config.batch_size, config.eval_batch_size = 64, 256
  config.warmup_steps = max(1, SMALL_RUN["num_train_steps"] // 10)
  config.eval_every_steps = config.checkpoint_every_steps = SMALL_RUN["num_train_steps"]
  config.log_every_steps = max(1, SMALL_RUN["num_train_steps"] // 5)
  config.async_checkpointing = False
  return config


finished_runs = [d for d in (TRAINED_WORKDIR, WORKDIR_ROOT / "01_quickstart") if (d / "eval_report.json").exists()]
if finished_runs and not QUICK:
  run_dir = finished_runs[0]
  print(f"Using the trained run in {run_dir}")
else:
  run_dir = WORKDIR_ROOT / ("02_selective_scan_quick" if QUICK else "02_selective_scan")
  report = training.train_and_evaluate(small_run_config(), str(run_dir))  # Resumes if already trained.
  print(f"Trained {report['steps']} steps in {run_dir}")
with open(run_dir / "eval_report.json", encoding="utf-8") as f:
  report = json.load(f)
print(f"validation accuracy {report['validation']['accuracy']:.3f}, "
      f"manual test (positive/negative) accuracy {report['manual_test']['binary']['accuracy']:.3f}")

predictor = inference.load_workdir(str(run_dir))
config, tokenizer = predictor.config, predictor.tokenizer
model = models.create_model(config, tokenizer.vocab_size)
params = predictor.state.params
if config.model_type != "mamba":
  raise ValueError(f"{run_dir} holds a {config.model_type!r} run; this part needs a Mamba classifier")

# %% [markdown]
# A few real tweets from the hand-labelled test set (`testdata.manual.2009.06.14.csv`): the
# first ones of each polarity (positive first) that are neither very short nor truncated.

# %%
def manual_test_tweets(config):
  """(texts, labels) of the manual test set (labels 0 negative, 1 positive, 2 neutral)."""
  if config.dataset == "synthetic":
    split = synthetic.make_datasets(config).splits["manual_test"]
    return list(split.texts), np.asarray(split.labels)
  files = sources.find_sources(sources.resolve_data_dir(config.data_dir), download=False)
  rows = sources.read_csv(files.manual_test, files.manual_test_member, allow_neutral=True)
  return rows.texts, rows.labels


texts, labels = manual_test_tweets(config)
tokens = np.asarray(tokenizer.encode(texts)).astype(np.int32)
lengths = (tokens != 0).sum(axis=1)
max_len = tokens.shape[1]
examples = []
for label in (1, 0):
  candidates = np.flatnonzero((labels == label) & (lengths >= min(8, max_len // 2)) & (lengths < max_len))
  examples.extend(candidates[:2].tolist())
for i in examples:
  print(["negative", "positive"][labels[i]], f"({lengths[i]} tokens):", texts[i])

# %%
def save_figure(fig, name):
  if FIGURE_DIR:
    folder = REPO_ROOT / FIGURE_DIR
    folder.mkdir(parents=True, exist_ok=True)
    fig.savefig(folder / name, dpi=110, bbox_inches="tight")


def trace_scan_inputs(model, params, tokens):
  """Classifies tokens (b, l) and records each mixer's scan inputs, first layer first.

  Returns:
    logits (b, c) and, per layer, a dict of u (b, l, d), delta (b, l, d), B and C
    (b, l, n), A (d, n) and D (d,), exactly as that layer's selective scan sees them.
  """
  mask = (tokens != 0).astype(np.int32)
  records = []

  def record(next_fun, args, kwargs, context):
    outputs = next_fun(*args, **kwargs)
    if isinstance(context.module, MambaMixer) and context.method_name == "_ssm_inputs":
      dt, delta_bias, B, C = outputs
      records.append(dict(u=args[0], delta=jax.nn.softplus(dt + delta_bias), B=B, C=C, A=context.module._A(),
                          D=context.module.D))
    return outputs

  with nn.intercept_methods(record):
    logits = model.apply({"params": params}, tokens, mask)
  assert len(records) == config.model.n_layers
  return logits, records


def state_norms(record, mask):
  """|h_t| (b, l) of one layer: its recurrence rerun token by token (padding = identity step)."""
  delta = record["delta"] * mask[..., None]

  def step(h, inputs):
    u_t, delta_t, B_t, C_t = inputs
    y_t, h = ssm.selective_scan_step(h, u_t, delta_t, record["A"], B_t, C_t, record["D"])
    return h, (y_t, jnp.sqrt(jnp.sum(h ** 2, axis=(1, 2))))

  b_, _, d_ = record["u"].shape
  h0 = jnp.zeros((b_, d_, record["A"].shape[1]))
  time_major = [jnp.swapaxes(x, 0, 1) for x in (record["u"], delta, record["B"], record["C"])]
  _, (ys, norms) = jax.lax.scan(step, h0, time_major)
  # The rerun reproduces the layer's own scan.
  y_layer = ssm.selective_scan(record["u"], record["delta"], record["A"], record["B"], record["C"],
                               record["D"], mask=mask)
  np.testing.assert_allclose(jnp.swapaxes(ys, 0, 1) * mask[..., None], y_layer, rtol=1e-4, atol=1e-4)
  return np.asarray(norms.T)


example_tokens = tokens[examples]
example_mask = (example_tokens != 0).astype(np.int32)
logits, records = trace_scan_inputs(model, params, example_tokens)
probabilities = np.asarray(jax.nn.softmax(logits))
# Recording changes nothing: the loaded model (train.model_files.inference, as train.predict uses it) gives the same answer.
np.testing.assert_allclose(predictor.batch_probabilities(predictor.encode([texts[i] for i in examples])), probabilities,
                           rtol=1e-4, atol=1e-5)
delta_per_token = np.stack([np.asarray(r["delta"]).mean(axis=-1) for r in records], axis=1)  # (b, layers, l)
norms = np.stack([state_norms(r, example_mask) for r in records], axis=1)  # (b, layers, l)
print("delta (mean over channels):", delta_per_token.shape, " state norms:", norms.shape)

# %% [markdown]
# **How much each token is let in.** For every tweet, layer (rows) and token (columns): the
# step size $\Delta$ averaged over the channels, relative to that layer's median over the
# tweet, on a log2 scale. Red tokens get a larger step than the layer's typical token: they
# are written into the state more strongly, and what came before fades faster. Blue tokens
# get a smaller step: the state mostly carries over them. (Note the colour scale: averaged
# over all channels the differences are modest; single channels are far more selective, see
# the next figure.)

# %%
def token_pieces(row):
  return [tokenizer.decode([int(t)]).strip() or "_" for t in row if t != 0]


num_layers = len(records)
fig, axes = plt.subplots(len(examples), 1, figsize=(11, 1.25 * num_layers * len(examples) + 1), squeeze=False)
for ax, i, row, delta_rows, p in zip(axes[:, 0], examples, example_tokens, delta_per_token, probabilities):
  pieces = token_pieces(row)
  real = delta_rows[:, : len(pieces)]
  relative = np.log2(real / np.median(real, axis=1, keepdims=True))
  limit = max(float(np.abs(relative).max()), 1e-3)
  image = ax.imshow(relative, cmap="coolwarm", vmin=-limit, vmax=limit, aspect="auto")
  ax.set_xticks(range(len(pieces)), pieces, rotation=60, ha="right", fontsize=8)
  ax.set_yticks(range(num_layers), [f"layer {k}" for k in range(num_layers)])
  ax.set_title(f"{['negative', 'positive'][labels[i]]} tweet, P(positive) = {p[1]:.2f}", fontsize=9)
  fig.colorbar(image, ax=ax, pad=0.01, label="log2 delta / median")
fig.tight_layout()
save_figure(fig, "delta_per_token.png")
plt.show()

# %% [markdown]
# **Per channel.** The same for the first tweet and the first layer, but for single channels:
# the 16 whose step size varies most along the tweet (largest max/min ratio), each relative to
# its own median. Different channels open up for different tokens.

# %%
pieces = token_pieces(example_tokens[0])
delta_first = np.asarray(records[0]["delta"])[0, : len(pieces)]  # (l, d) of the first example tweet
ratio = delta_first.max(axis=0) / delta_first.min(axis=0)
channels = np.argsort(ratio)[::-1][:16]
relative = np.log2(delta_first[:, channels] / np.median(delta_first[:, channels], axis=0)).T  # (16, l)
print(f"per channel, max/min of delta along this tweet: median {np.median(ratio):.1f}x, "
      f"90th percentile {np.percentile(ratio, 90):.1f}x, largest {ratio.max():.1f}x")
limit = max(float(np.abs(relative).max()), 1e-3)
fig, ax = plt.subplots(figsize=(11, 4.5))
image = ax.imshow(relative, cmap="coolwarm", vmin=-limit, vmax=limit, aspect="auto")
ax.set_xticks(range(len(pieces)), pieces, rotation=60, ha="right", fontsize=8)
ax.set_yticks(range(len(channels)), [f"channel {c} ({ratio[c]:.1f}x)" for c in channels], fontsize=7)
ax.set_title(f"layer 0, the most selective channels: {texts[examples[0]][:90]}", fontsize=9)
fig.colorbar(image, ax=ax, pad=0.01, label="log2 delta / channel median")
fig.tight_layout()
save_figure(fig, "delta_per_channel.png")
plt.show()

# %% [markdown]
# **The state along the tweet.** $\lVert h_t \rVert$ of every layer after each token (the
# recurrence rerun step by step from the recorded inputs, checked against the layer's own
# scan). A jump is a token written in with a large $\Delta$; a decay is the state fading
# while small-$\Delta$ tokens pass.

# %%
fig, axes = plt.subplots(len(examples), 1, figsize=(11, 2.2 * len(examples)), squeeze=False)
for ax, i, row, norm_rows in zip(axes[:, 0], examples, example_tokens, norms):
  pieces = token_pieces(row)
  for k in range(num_layers):
    ax.plot(norm_rows[k, : len(pieces)], marker="o", markersize=3, label=f"layer {k}")
  ax.set_xticks(range(len(pieces)), pieces, rotation=60, ha="right", fontsize=8)
  ax.set_ylabel("|h_t|")
  ax.set_title(texts[i][:110], fontsize=9)
  ax.legend(fontsize=8, loc="upper left")
fig.tight_layout()
save_figure(fig, "state_norm.png")
plt.show()

# %% [markdown]
# **Which tokens does each layer let in?** Over the whole manual test set: the mean relative
# step size (log2 of $\Delta$ over the tweet's median, as above) of every token that occurs at
# least three times, largest and smallest first.

# %%
all_tokens = tokens[: 128 if QUICK else len(tokens)]
all_mask = (all_tokens != 0).astype(np.int32)
_, all_records = trace_scan_inputs(model, params, all_tokens)
for k, record in enumerate(all_records):
  mean_delta = np.asarray(record["delta"]).mean(axis=-1)  # (b, l)
  masked = np.where(all_mask == 1, mean_delta, np.nan)
  relative = np.log2(masked / np.nanmedian(masked, axis=1, keepdims=True))
  by_token = {}
  for token_id, value in zip(all_tokens[all_mask == 1], relative[all_mask == 1]):
    by_token.setdefault(int(token_id), []).append(float(value))
  frequent = sorted(((np.mean(v), t) for t, v in by_token.items() if len(v) >= 3), reverse=True)
  show = lambda items: ", ".join(f"{tokenizer.decode([t]).strip() or '_'} {v:+.2f}" for v, t in items)  # noqa: E731
  print(f"layer {k}: {len(frequent)} frequent tokens")
  print("  largest delta: ", show(frequent[:10]))
  print("  smallest delta:", show(frequent[::-1][:10]))
