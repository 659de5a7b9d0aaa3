"""Autoregressive generation with :class:`MambaLM` on the recurrent cache.

Axes (``mamba_jax.notation``): b, l (the longest prompt), t, v.

The prompts are right-padded and run in parallel once (``prefill``: the cache
after each row's last real token and that token's logits); then one ``step``
per new token inside a ``lax.while_loop``, so a token costs the same whatever
came before it (no attention over the past). Ids >= ``config.vocab_size`` (the
padding rows of the vocabulary) are never produced.
"""

from __future__ import annotations

import functools
from typing import Optional, Sequence, Union

import jax
import jax.numpy as jnp
import numpy as np

from mamba_jax.lm import MambaLM
from mamba_jax.pooling import last_real

Array = jax.Array


def filter_logits(logits: Array, top_k: int = 0, top_p: float = 1.0) -> Array:
  """Sets to -inf what top-k / nucleus (top-p) sampling excludes; logits (b, v) -> (b, v).

  top_k 0 and top_p 1.0 keep everything; the most likely token is always kept.
  """
  if top_k:
    kth = jax.lax.top_k(logits, top_k)[0][:, -1:]
    logits = jnp.where(logits < kth, -jnp.inf, logits)
  if top_p < 1.0:
    sorted_logits = jnp.sort(logits, axis=-1)[:, ::-1]
    probs = jax.nn.softmax(sorted_logits, axis=-1)
    before = jnp.cumsum(probs, axis=-1) - probs  # Probability mass of the strictly more likely tokens.
    kept = before < top_p
    threshold = jnp.min(jnp.where(kept, sorted_logits, jnp.inf), axis=-1, keepdims=True)
    logits = jnp.where(logits < threshold, -jnp.inf, logits)
  return logits


def next_token(logits: Array, key: Optional[Array], temperature: float, top_k: int, top_p: float) -> Array:
  """Greedy (temperature 0) or sampled next token: logits (b, v) float32 -> (b,) int32."""
  if temperature == 0.0:
    return jnp.argmax(logits, axis=-1).astype(jnp.int32)
  filtered = filter_logits(logits / temperature, top_k, top_p)
  return jax.random.categorical(key, filtered, axis=-1).astype(jnp.int32)


def _prefill_last(module: MambaLM, tokens: Array, mask: Array):
  """(logits (b, v) at each row's last real token, cache after it)."""
  features, cache = module.encode(tokens, mask, train=False, return_cache=True)
  return module.logits(last_real(features, mask)), cache


@functools.partial(jax.jit, static_argnames=("model", "max_new_tokens", "temperature", "top_k", "top_p",
                                             "eos_id"))
def _decode(params, tokens: Array, mask: Array, key: Array, *, model: MambaLM, max_new_tokens: int,
            temperature: float, top_k: int, top_p: float, eos_id: Optional[int]) -> Array:
  """tokens, mask (b, l) -> new tokens (b, t) int32 (eos_id after a row's end of sequence)."""
  variables = {"params": params}
  logits, cache = model.apply(variables, tokens, mask, method=_prefill_last)
  batch = tokens.shape[0]
  is_token = jnp.arange(model.config.padded_vocab_size) < model.config.vocab_size
  fill = -1 if eos_id is None else eos_id

  def cond(carry):
    i, _, _, _, done = carry
    return (i < max_new_tokens) & ~jnp.all(done)

  def body(carry):
    i, logits, cache, out, done = carry
    logits = jnp.where(is_token, logits.astype(jnp.float32), -jnp.inf)
    token = next_token(logits, jax.random.fold_in(key, i), temperature, top_k, top_p)
    token = jnp.where(done, fill, token)
    out = out.at[:, i].set(token)
    if eos_id is not None:
      done = done | (token == eos_id)
    logits, cache = model.apply(variables, jnp.maximum(token, 0), cache, method=model.step)
    return i + 1, logits, cache, out, done

  out = jnp.full((batch, max_new_tokens), fill, jnp.int32)
  carry = (jnp.int32(0), logits, cache, out, jnp.zeros((batch,), bool))
  return jax.lax.while_loop(cond, body, carry)[3]


def pad_prompts(prompt_ids: Union[Sequence[Sequence[int]], np.ndarray], vocab_size: int):
  """Right-pads prompts of any lengths: -> (tokens (b, l) int32, mask (b, l) int32).

  Raises:
    ValueError: no prompt, an empty prompt, or an id outside [0, vocab_size).
  """
  prompts = [np.asarray(p, np.int64).reshape(-1) for p in prompt_ids]
  if not prompts:
    raise ValueError("generate needs at least one prompt")
  lengths = [len(p) for p in prompts]
  if min(lengths) == 0:
    raise ValueError(f"prompt {lengths.index(0)} is empty; every prompt needs at least one token")
  for row, p in enumerate(prompts):
    bad = p[(p < 0) | (p >= vocab_size)]
    if bad.size:
      raise ValueError(f"prompt {row} has token id {int(bad[0])} outside [0, {vocab_size})")
  tokens = np.zeros((len(prompts), max(lengths)), np.int32)
  mask = np.zeros_like(tokens)
  for row, p in enumerate(prompts):
    tokens[row, :len(p)] = p
    mask[row, :len(p)] = 1
  return tokens, mask


def generate(model: MambaLM, params, prompt_ids: Union[Sequence[Sequence[int]], np.ndarray],
             max_new_tokens: int, *, temperature: float = 0.0, top_k: int = 0, top_p: float = 1.0,
             key: Optional[Array] = None, eos_id: Optional[int] = None) -> np.ndarray:
  """Continues each prompt by ``max_new_tokens`` tokens.

  Args:
    model: a MambaLM.
    params: its parameters (``variables["params"]``).
    prompt_ids: b prompts of token ids, any lengths >= 1 (a list of lists, or a (b, l) array).
    max_new_tokens: t >= 1.
    temperature: 0 is greedy (argmax); > 0 samples from softmax(logits / temperature).
    top_k: sample among the k most likely tokens only (0: all).
    top_p: sample among the smallest set of tokens holding this probability (1.0: all).
    key: PRNG key, required when temperature > 0 (one draw per step, folded from it).
    eos_id: a row stops at this token (kept in its output); later positions hold eos_id,
      and the loop ends when every row has stopped. None: always t tokens.

  Returns:
    (b, t) int32 new tokens (the prompts are not repeated).
  Raises:
    ValueError for bad arguments (one line saying which).
  """
  cfg = model.config
  if max_new_tokens < 1:
    raise ValueError(f"max_new_tokens must be >= 1, got {max_new_tokens}")
  if temperature < 0:
    raise ValueError(f"temperature must be >= 0 (0: greedy), got {temperature}")
  if not 0 <= top_k <= cfg.vocab_size:
    raise ValueError(f"top_k must be in [0, {cfg.vocab_size}] (0: off), got {top_k}")
  if not 0.0 < top_p <= 1.0:
    raise ValueError(f"top_p must be in (0, 1] (1: off), got {top_p}")
  if temperature > 0 and key is None:
    raise ValueError("sampling (temperature > 0) needs a PRNG key: key=jax.random.key(0)")
  if eos_id is not None and not 0 <= eos_id < cfg.vocab_size:
    raise ValueError(f"eos_id must be a token id in [0, {cfg.vocab_size}), got {eos_id}")
  tokens, mask = pad_prompts(prompt_ids, cfg.vocab_size)
  key = jax.random.key(0) if key is None else key  # Unused when greedy.
  out = _decode(params, tokens, mask, key, model=model, max_new_tokens=int(max_new_tokens),
                temperature=float(temperature), top_k=int(top_k), top_p=float(top_p), eos_id=eos_id)
  return np.asarray(out)
