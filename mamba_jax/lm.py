"""Mamba causal language model (``MambaLMHeadModel`` / ``MambaForCausalLM``).

Axes (``mamba_jax.notation``): b, l, m, v.

    tokens (b, l) -> MambaBackbone (Embed -> [ResidualBlock] * n_layers -> RMSNorm) -> (b, l, m)
                  -> LM head -> logits (b, l, v) float32

The head is the embedding matrix (``tie_embeddings``, the reference's default)
or its own bias-free Dense ``lm_head``. Logits cover the padded vocabulary, as in
the reference; ids >= ``config.vocab_size`` are never real tokens.
``prefill``/``step`` are the classifier's, with logits in place of features.
"""

from __future__ import annotations

from typing import Optional, Tuple

import jax
import jax.numpy as jnp
from flax import linen as nn

from mamba_jax import initializers as inits
from mamba_jax.backbone import Cache, MambaBackbone
from mamba_jax.config import MambaConfig

Array = jax.Array


class MambaLM(nn.Module):
  """``apply(variables, tokens, mask=None, train=False) -> logits (b, l, v)``."""

  config: MambaConfig

  def setup(self):
    cfg = self.config
    if cfg.bidirectional:
      raise ValueError("MambaLM is causal: MambaConfig.bidirectional would let it see the tokens it predicts")
    self.backbone = MambaBackbone(cfg)
    nn.share_scope(self, self.backbone)  # Parameters: embed, layers_N, norm_f (+ lm_head), as the classifier.
    if not cfg.tie_embeddings:
      self.lm_head = nn.Dense(
          cfg.padded_vocab_size, use_bias=False, kernel_init=inits.torch_linear_kernel(),
          dtype=jnp.float32, param_dtype=jnp.float32,
      )

  def logits(self, features: Array) -> Array:
    """Features (..., m) float32 -> logits (..., v) float32."""
    if self.config.tie_embeddings:
      return features @ self.backbone.embedding_table().T
    return self.lm_head(features)

  def logits_of(self, features: Array, ids: Array) -> Array:
    """Logits of the vocabulary entries ``ids`` only: features (..., m) float32 and ids (k,)
    shared by every position, or (..., k) per position -> (..., k) float32 (a sampled softmax)."""
    if self.config.tie_embeddings:
      rows = self.backbone.embedding_table()[ids]
    else:
      rows = self.lm_head.variables["params"]["kernel"].T[ids]
    rows = rows.astype(jnp.float32)
    if ids.ndim == 1:
      return features @ rows.T
    return jnp.einsum("...m,...km->...k", features, rows)

  def encode(
      self, tokens: Array, mask: Array, train: bool = False, return_cache: bool = False
  ) -> Tuple[Array, Optional[Cache]]:
    """Per-token features (b, l, m) float32 and the cache or None; see ``MambaBackbone``."""
    return self.backbone(tokens, mask, train=train, return_cache=return_cache)

  def __call__(self, tokens: Array, mask: Optional[Array] = None, train: bool = False) -> Array:
    """Next-token logits (b, l, v) at every position; ``mask`` (b, l) defaults to all ones."""
    if mask is None:
      mask = jnp.ones(tokens.shape, jnp.int32)
    features, _ = self.encode(tokens, mask, train=train)
    return self.logits(features)

  def prefill(self, tokens: Array, mask: Array) -> Tuple[Array, Cache]:
    """Runs a prompt in parallel: (logits (b, l, v), cache after its last real token)."""
    features, cache = self.encode(tokens, mask, train=False, return_cache=True)
    return self.logits(features), cache

  def step(self, token: Array, cache: Cache) -> Tuple[Array, Cache]:
    """One token of recurrent inference: token (b,) -> (logits (b, v), new cache).

    ``logits`` equal ``__call__``'s logits at that position.
    """
    features, cache = self.backbone.step(token, cache)
    return self.logits(features), cache
