"""mamba-jax: Mamba (selective state space models) in JAX/Flax.

Pure functions: :mod:`mamba_jax.ssm` (discretization, selective scan; the scan
methods in :mod:`mamba_jax.scan`) and :mod:`mamba_jax.conv`; Flax modules: :class:`MambaMixer`, :class:`ResidualBlock`,
:class:`MambaClassifier`.
"""

from mamba_jax import ssm
from mamba_jax.block import ResidualBlock
from mamba_jax.classifier import MambaClassifier, init_cache
from mamba_jax.config import MambaConfig
from mamba_jax.mixer import LayerCache, MambaMixer
from mamba_jax.scan import selective_scan

__all__ = [
    "LayerCache",
    "MambaClassifier",
    "MambaConfig",
    "MambaMixer",
    "ResidualBlock",
    "init_cache",
    "selective_scan",
    "ssm",
]
