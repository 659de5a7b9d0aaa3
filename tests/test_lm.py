"""MambaLM and generate: recurrent steps reproduce the parallel logits (Mamba-1 and Mamba-2), greedy
generation is the parallel argmax, sampling filters, eos (generate runs the model's step, whichever mixer)."""

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from mamba_jax import MambaClassifier, MambaConfig, MambaLM, generate, init_cache
from mamba_jax.generation import filter_logits

CONFIG = MambaConfig(vocab_size=45, pad_vocab_size_multiple=8, d_model=16, n_layers=2, d_state=4,
                     scan_method="sequential")
MIXERS = {"mamba1": {}, "mamba2": dict(mixer="mamba2", head_dim=8, n_groups=2, chunk_size=4)}


def _lm(mixer: str):
  """(model, params, tokens) of a tiny LM with ``mixer``."""
  model = MambaLM(dataclasses.replace(CONFIG, **MIXERS[mixer]))
  tokens = jax.random.randint(jax.random.key(0), (2, 7), 1, CONFIG.vocab_size)
  params = model.init({"params": jax.random.key(1)}, tokens)["params"]
  return model, params, tokens


@pytest.fixture(scope="module")
def lm():
  return _lm("mamba1")


@pytest.fixture(scope="module", params=sorted(MIXERS))
def lm_of_each_mixer(request):
  return _lm(request.param)


def test_vocab_is_padded_and_the_tree_is_the_classifier_backbone(lm_of_each_mixer):
  model, params, tokens = lm_of_each_mixer
  assert params["embed"]["embedding"].shape == (48, 16)
  assert model.apply({"params": params}, tokens).shape == (2, 7, 48)
  classifier = MambaClassifier(model.config).init({"params": jax.random.key(1)}, tokens, jnp.ones_like(tokens))
  assert sorted(classifier["params"]) == sorted(list(params) + ["head"])
  untied = MambaLM(dataclasses.replace(model.config, tie_embeddings=False))
  assert untied.init({"params": jax.random.key(1)}, tokens)["params"]["lm_head"]["kernel"].shape == (16, 48)


def test_step_reproduces_parallel_logits(lm_of_each_mixer):
  model, params, tokens = lm_of_each_mixer
  variables = {"params": params}
  logits = model.apply(variables, tokens)
  cache = init_cache(model.config, 2)
  step = jax.jit(lambda t, c: model.apply(variables, t, c, method=model.step))
  for t in range(tokens.shape[1]):
    out, cache = step(tokens[:, t], cache)
    np.testing.assert_allclose(out, logits[:, t], atol=1e-5, rtol=1e-5)


def test_greedy_generation_is_argmax_of_the_parallel_forward(lm):
  model, params, _ = lm
  prompts = [[3, 9, 4, 17], [8]]
  out = generate(model, params, prompts, 5)
  for prompt, new in zip(prompts, out):
    sequence = list(prompt)
    for token in new:
      logits = model.apply({"params": params}, jnp.asarray([sequence]))[0, -1, :CONFIG.vocab_size]
      assert token == int(jnp.argmax(logits))
      sequence.append(int(token))


def test_sampling_never_leaves_the_vocab_and_top_k_1_is_greedy(lm):
  model, params, _ = lm
  prompts = [[3, 9, 4, 17], [8]]
  hot = generate(model, params, prompts, 12, temperature=50.0, key=jax.random.key(3))
  assert hot.min() >= 0 and hot.max() < CONFIG.vocab_size
  assert len(set(hot.ravel().tolist())) > 5  # Nearly uniform at this temperature.
  greedy = generate(model, params, prompts, 12)
  top1 = generate(model, params, prompts, 12, temperature=50.0, top_k=1, key=jax.random.key(3))
  np.testing.assert_array_equal(top1, greedy)
  # eos: a row stops at its first eos and the rest of it holds eos.
  eos = int(greedy[0, 2])
  stopped = generate(model, params, prompts, 12, eos_id=eos)
  for row, new in enumerate(greedy.tolist()):
    end = new.index(eos) + 1 if eos in new else len(new)
    assert stopped[row].tolist() == new[:end] + [eos] * (len(new) - end)


def test_filter_logits_top_k_and_top_p():
  logits = jnp.log(jnp.asarray([[0.5, 0.2, 0.2, 0.1]]))
  assert np.isfinite(filter_logits(logits, top_k=2)).sum() == 3  # Ties at the k-th value are kept.
  np.testing.assert_array_equal(np.isfinite(filter_logits(logits, top_p=0.6)), [[True, True, True, False]])
  np.testing.assert_array_equal(np.isfinite(filter_logits(logits, top_p=0.5)), [[True, False, False, False]])


@pytest.mark.parametrize("kwargs, message", [
    (dict(prompt_ids=[[1], []]), "prompt 1 is empty"),
    (dict(prompt_ids=[[1, 45]]), "token id 45 outside"),
    (dict(temperature=1.0), "needs a PRNG key"),
    (dict(top_p=0.0), "top_p must be in"),
    (dict(max_new_tokens=0), "max_new_tokens must be >= 1"),
])
def test_bad_arguments(lm, kwargs, message):
  model, params, _ = lm
  args = dict(prompt_ids=[[1, 2]], max_new_tokens=3)
  args.update(kwargs)
  with pytest.raises(ValueError, match=message):
    generate(model, params, args.pop("prompt_ids"), args.pop("max_new_tokens"), **args)
