"""Hyper-parameters of the Mamba classifier and language model."""

from __future__ import annotations

import dataclasses
import math
from typing import Any, Tuple, Union

import jax.numpy as jnp

from mamba_jax.classifier_fields import check_classifier_fields
from mamba_jax.ssm import SCAN_METHODS

# Activation dtypes: the matmuls run in these; parameters, the residual stream, the SSM state and
# the features and logits the models return stay float32 (so float64 could not be honoured).
ACTIVATION_DTYPES = ("float32", "bfloat16", "float16")
# The mixer of every block: Mamba-1's selective scan (mamba_jax.mixer) or Mamba-2's SSD (mamba_jax.mamba2_mixer).
MIXERS = ("mamba1", "mamba2")


@dataclasses.dataclass(frozen=True)
class MambaConfig:
  """Mamba classifier / LM. Defaults follow ``mamba_simple.Mamba`` (and ``mamba2_simple.Mamba2``).

  ``mixer`` picks the block's mixer; the fields marked "Mamba-2 only" are ignored by Mamba-1
  and those marked "Mamba-1 only" by Mamba-2.
  """

  vocab_size: int  # Token ids are in [0, vocab_size); id 0 is padding.
  # The embedding (and LM head) has vocab_size rounded up to a multiple of this many rows,
  # as the reference MambaLMHeadModel does (its default is 8); 1: exactly vocab_size.
  pad_vocab_size_multiple: int = 1
  tie_embeddings: bool = True  # MambaLM only: the LM head is the embedding matrix (else its own Dense).
  d_model: int = 64  # Residual stream width.
  n_layers: int = 2  # Number of residual Mamba blocks.
  num_classes: int = 2  # Output logits.
  mixer: str = "mamba1"  # "mamba1" (selective scan, A per channel) | "mamba2" (SSD, A per head); see MIXERS.
  d_state: int = 16  # n: SSM state size per channel (Mamba-1) or per head dimension (Mamba-2).
  d_conv: int = 4  # Width of the causal depthwise convolution.
  expand: int = 2  # d_inner = expand * d_model.
  dt_rank: Union[int, str] = "auto"  # Mamba-1 only: rank of the delta projection; "auto" = ceil(d_model / 16).
  head_dim: int = 64  # Mamba-2 only: p, channels per head; d_inner / head_dim heads.
  n_groups: int = 1  # Mamba-2 only: g, groups of heads sharing B and C (and the gated norm's statistics).
  chunk_size: int = 256  # Mamba-2 only: tokens per SSD chunk (a shorter sequence is one chunk).
  dt_limit: Tuple[float, float] = (0.0, float("inf"))  # Mamba-2 only: clip of softplus(dt + dt_bias).
  dt_min: float = 1e-3  # softplus(dt bias) is initialized log-uniform in [dt_min, dt_max] ...
  dt_max: float = 0.1
  dt_init_floor: float = 1e-4  # ... and at least this.
  dt_scale: float = 1.0  # Mamba-1 only: scales the dt_proj weight init.
  conv_bias: bool = True  # Bias in the depthwise conv.
  bias: bool = False  # Bias in in_proj and out_proj.
  norm_epsilon: float = 1e-5  # RMSNorm epsilon.
  dropout: float = 0.0  # Dropout on the embeddings, each block's output and the pooled features.
  pooling: str = "mean"  # "mean" over real tokens, or the "last" real token.
  # Mamba-1: the selective scan's method (mamba_jax.ssm.selective_scan); Mamba-2: the recurrence over
  # SSD chunks (mamba_jax.ssm.ssd_scan: "auto" | "associative" | "sequential").
  scan_method: str = "auto"
  # Ablations. With select_delta and select_bc both off the block is a
  # linear time-invariant (S4D-real-like) SSM with learned delta, B and C.
  select_delta: bool = True  # Mamba-1 only: delta depends on the input (else a learned (d,) parameter).
  select_bc: bool = True  # Mamba-1 only: B and C depend on the input (else learned (n,) parameters).
  use_conv: bool = True  # Mamba-1 only: the causal conv before the SSM.
  # Bidirectional (classification only): each block adds a second mixer, with its own
  # parameters, run over each row's real tokens in reverse order; its output, put back in
  # the original order, is summed with the forward mixer's (see mamba_jax.block). No
  # recurrent step: the backward direction needs the whole sequence.
  bidirectional: bool = False
  dtype: Any = jnp.float32  # Activation dtype, one of ACTIVATION_DTYPES; parameters and SSM state stay float32.

  def __post_init__(self):
    check_classifier_fields(
        self, ("vocab_size", "pad_vocab_size_multiple", "d_model", "n_layers", "num_classes", "d_state", "d_conv", "expand"))
    if self.scan_method != "auto" and self.scan_method not in SCAN_METHODS:
      raise ValueError(
          f"scan_method must be 'auto' or one of {SCAN_METHODS}, got {self.scan_method!r}"
      )
    if jnp.dtype(self.dtype).name not in ACTIVATION_DTYPES:
      raise ValueError(f"dtype must be one of {ACTIVATION_DTYPES} (activations; parameters, residual "
                       f"stream and SSM state stay float32), got {jnp.dtype(self.dtype).name}")
    if self.mixer not in MIXERS:
      raise ValueError(f"mixer must be one of {MIXERS}, got {self.mixer!r}")
    if self.mixer == "mamba2":
      self._check_mamba2()
    object.__setattr__(self, "dt_limit", tuple(float(v) for v in self.dt_limit))
    if self.dt_rank != "auto" and not (isinstance(self.dt_rank, int) and self.dt_rank > 0):
      raise ValueError(f"dt_rank must be 'auto' or a positive int, got {self.dt_rank!r}")

  def _check_mamba2(self) -> None:
    check_classifier_fields(self, ("head_dim", "n_groups", "chunk_size"))
    if self.d_inner % self.head_dim:
      raise ValueError(f"head_dim {self.head_dim} must divide d_inner = expand * d_model = {self.d_inner}")
    if self.num_heads % self.n_groups:
      raise ValueError(f"n_groups {self.n_groups} must divide the {self.num_heads} heads (d_inner / head_dim)")
    ablations = [f for f in ("select_delta", "select_bc", "use_conv") if not getattr(self, f)]
    if ablations:
      raise ValueError(f"the ablations {', '.join(ablations)}=False exist for mixer='mamba1' only")
    if len(self.dt_limit) != 2:
      raise ValueError(f"dt_limit must be (low, high), got {self.dt_limit!r}")
    low, high = (float(v) for v in self.dt_limit)
    if not 0.0 <= low < high:
      raise ValueError(f"dt_limit must be (low, high) with 0 <= low < high, got {self.dt_limit!r}")
    if self.scan_method == "pallas":
      raise ValueError("scan_method 'pallas' is Mamba-1's fused kernel; mixer='mamba2' takes 'auto', "
                       "'associative' or 'sequential' (the recurrence over SSD chunks)")

  @property
  def num_heads(self) -> int:
    """Mamba-2: h = d_inner / head_dim."""
    return self.d_inner // self.head_dim

  @property
  def padded_vocab_size(self) -> int:
    """Rows of the embedding: vocab_size rounded up to a multiple of pad_vocab_size_multiple."""
    multiple = self.pad_vocab_size_multiple
    return -(-self.vocab_size // multiple) * multiple

  @property
  def d_inner(self) -> int:
    return self.expand * self.d_model

  @property
  def resolved_dt_rank(self) -> int:
    return math.ceil(self.d_model / 16) if self.dt_rank == "auto" else self.dt_rank
