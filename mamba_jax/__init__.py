"""mamba-jax: Mamba (selective state space models) in JAX/Flax.

Pure functions: :mod:`mamba_jax.ssm` (discretization, selective scan, Mamba-2's SSD;
the scan methods in :mod:`mamba_jax.scan`) and :mod:`mamba_jax.conv`; Flax modules: :class:`MambaMixer`
(Mamba-1) or :class:`Mamba2Mixer` (Mamba-2, ``MambaConfig(mixer="mamba2")``),
:class:`ResidualBlock`, :class:`MambaBackbone`, shared by :class:`MambaClassifier` and
:class:`MambaLM`; checkpoints in and out: :func:`load_pretrained`, :func:`save_pretrained`;
decoding: :func:`generate`.
"""

from mamba_jax import ssm
from mamba_jax.backbone import MambaBackbone, init_cache
from mamba_jax.block import ResidualBlock
from mamba_jax.classifier import MambaClassifier
from mamba_jax.config import MambaConfig
from mamba_jax.generation import generate
from mamba_jax.lm import MambaLM
from mamba_jax.mamba2_mixer import Mamba2Mixer
from mamba_jax.mixer import LayerCache, MambaMixer
from mamba_jax.scan import selective_scan
from mamba_jax.pretrained import CheckpointError, load_pretrained, save_pretrained

__all__ = [
    "CheckpointError",
    "LayerCache",
    "MambaBackbone",
    "MambaClassifier",
    "MambaConfig",
    "MambaLM",
    "MambaMixer",
    "Mamba2Mixer",
    "ResidualBlock",
    "generate",
    "init_cache",
    "selective_scan",
    "load_pretrained",
    "save_pretrained",
    "ssm",
]
