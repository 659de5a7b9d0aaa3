"""What every classifier promises, Mamba-1, Mamba-2, the Transformer, the Performer and the LSTM alike, each
stated once.

Padding never changes a real token's logits; the logits are (b, c) float32 and finite, jitted or not,
in training and evaluation; dropout acts only in training and is determined by its key; bfloat16
activations keep float32 parameters and logits close to float32's; every parameter gets a gradient.
What is particular to one model is in tests/test_model.py (Mamba) and tests/test_baselines.py.
"""

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from mamba_jax import MambaClassifier, MambaConfig
from mamba_jax.baselines import LSTMClassifier, LSTMConfig, PerformerClassifier, PerformerConfig
from mamba_jax.baselines import TransformerClassifier, TransformerConfig

VOCAB = 50
KINDS = ("mamba1", "mamba2", "transformer", "performer", "lstm")
# Mamba-2 with 4 heads in 2 groups; a length of 9 spans 3 chunks.
MAMBA2 = dict(mixer="mamba2", head_dim=8, n_groups=2, chunk_size=4)


def classifier(kind, **overrides):
  """A tiny classifier of ``kind`` (fast on a CPU)."""
  if kind in ("mamba1", "mamba2"):
    kwargs = dict(vocab_size=VOCAB, d_model=16, n_layers=2, d_state=4, dropout=0.1,
                  **(MAMBA2 if kind == "mamba2" else {}))
    return MambaClassifier(MambaConfig(**{**kwargs, **overrides}))
  if kind in ("transformer", "performer"):
    kwargs = dict(vocab_size=VOCAB, d_model=16, num_heads=4, d_ff=32, max_length=32)
    if kind == "performer":
      return PerformerClassifier(PerformerConfig(**{**kwargs, "num_features": 32, **overrides}))
    return TransformerClassifier(TransformerConfig(**{**kwargs, **overrides}))
  kwargs = dict(vocab_size=VOCAB, embed_dim=8, hidden_size=16)
  return LSTMClassifier(LSTMConfig(**{**kwargs, **overrides}))


def init(model, batch=3, length=9, seed=0):
  tokens = jax.random.randint(jax.random.key(seed), (batch, length), 1, VOCAB)
  mask = jnp.ones((batch, length), jnp.int32)
  variables = model.init({"params": jax.random.key(seed + 1)}, tokens, mask)
  return variables, tokens, mask


MAMBA_ABLATIONS = (dict(select_delta=False), dict(select_bc=False), dict(select_delta=False, select_bc=False),
                   dict(use_conv=False))
PADDING_CASES = [
    *[(mixer, dict(pooling=p, scan_method=m, bidirectional=bi)) for mixer in ("mamba1", "mamba2")
      for p in ("mean", "last") for m in ("associative", "sequential") for bi in (False, True)],
    *[("mamba1", dict(pooling="last", scan_method="sequential", **a)) for a in MAMBA_ABLATIONS],
    *[(kind, dict(pooling=p)) for kind in ("transformer", "lstm") for p in ("mean", "last")],
    ("transformer", dict(positions="learned")),
    ("transformer", dict(positions="rope")),
    ("performer", dict(pooling="last")),
    ("performer", dict(positions="rope")),
]


@pytest.mark.parametrize("kind, overrides", PADDING_CASES)
def test_appending_padding_leaves_logits_unchanged(kind, overrides):
  model = classifier(kind, **overrides)
  variables, tokens, _ = init(model)
  # Mamba in eager mode to 1e-6; the baselines jitted to 1e-5.
  # FAVOR+'s random-feature sums round a little more (2e-5).
  apply, atol = ((model.apply, 1e-6) if kind.startswith("mamba") else
                 (jax.jit(model.apply), 2e-5 if kind == "performer" else 1e-5))
  lengths = jnp.array([9, 4, 1])
  mask = (jnp.arange(9)[None] < lengths[:, None]).astype(jnp.int32)
  tokens = tokens * mask
  logits = apply(variables, tokens, mask)
  padded_mask = jnp.pad(mask, ((0, 0), (0, 7)))
  # Junk ids in the padded positions must not matter either.
  padded_tokens = jnp.pad(tokens, ((0, 0), (0, 7))).at[:, 9:].set(7)
  np.testing.assert_allclose(apply(variables, padded_tokens, padded_mask), logits, atol=atol, rtol=0)
  for row, n in enumerate(lengths):
    alone = apply(variables, tokens[row:row + 1, :n], mask[row:row + 1, :n])
    np.testing.assert_allclose(alone[0], logits[row], atol=atol, rtol=0)


@pytest.mark.parametrize("kind", KINDS)
def test_logits_shape_and_dtype_jitted_or_not_in_training_and_evaluation(kind):
  model = classifier(kind, num_classes=3)
  variables, tokens, mask = init(model)
  evaluate = lambda v, t, m: model.apply(v, t, m)
  train = lambda v, t, m, k: model.apply(v, t, m, train=True, rngs={"dropout": k})
  for logits in (evaluate(variables, tokens, mask), jax.jit(evaluate)(variables, tokens, mask),
                 jax.jit(train)(variables, tokens, mask, jax.random.key(0))):
    chex.assert_shape(logits, (3, 3))
    chex.assert_type(logits, jnp.float32)
    chex.assert_tree_all_finite(logits)


@pytest.mark.parametrize("kind", KINDS)
def test_dropout_acts_only_in_training_and_is_determined_by_its_key(kind):
  model = classifier(kind, dropout=0.5)
  variables, tokens, mask = init(model)
  eval_a = model.apply(variables, tokens, mask, train=False)
  eval_b = model.apply(variables, tokens, mask, train=False)
  np.testing.assert_array_equal(eval_a, eval_b)
  train = lambda seed: model.apply(variables, tokens, mask, train=True, rngs={"dropout": jax.random.key(seed)})
  np.testing.assert_array_equal(train(1), train(1))
  assert float(jnp.max(jnp.abs(train(1) - train(2)))) > 1e-4
  assert float(jnp.max(jnp.abs(train(1) - eval_a))) > 1e-4


@pytest.mark.parametrize("kind", KINDS)
def test_bfloat16_activations_keep_float32_params_and_logits(kind):
  model32, model16 = classifier(kind), classifier(kind, dtype=jnp.bfloat16)
  variables, tokens, mask = init(model32)
  fresh = model16.init({"params": jax.random.key(0)}, tokens, mask)
  for leaf in jax.tree_util.tree_leaves(fresh):
    assert leaf.dtype == jnp.float32
  logits16 = model16.apply(variables, tokens, mask)
  assert logits16.dtype == jnp.float32
  np.testing.assert_allclose(logits16, model32.apply(variables, tokens, mask), atol=0.05)


@pytest.mark.parametrize("kind, overrides", [(kind, {}) for kind in KINDS] + [("mamba1", dict(bidirectional=True))])
def test_gradients_reach_every_parameter(kind, overrides):
  model = classifier(kind, **overrides)
  variables, tokens, mask = init(model)
  labels = jnp.array([0, 1, 1])

  def loss(params):
    logits = model.apply({"params": params}, tokens, mask, train=True, rngs={"dropout": jax.random.key(0)})
    return -jnp.mean(jax.nn.log_softmax(logits)[jnp.arange(3), labels])

  for path, g in jax.tree_util.tree_leaves_with_path(jax.jit(jax.grad(loss))(variables["params"])):
    name = jax.tree_util.keystr(path)
    if "embed" in name or "position_embedding" in name:
      continue  # Only the rows of the ids and positions present get a gradient.
    assert float(jnp.max(jnp.abs(g))) > 0.0, name
