"""mamba-jax: Mamba (selective state space models) in JAX/Flax.

Pure functions: :mod:`mamba_jax.ssm` (discretization, selective scan) and
:mod:`mamba_jax.conv`; Flax modules: :class:`MambaMixer`, :class:`ResidualBlock`,
:class:`MambaClassifier`.
"""

from mamba_jax import ssm
from mamba_jax.block import ResidualBlock
from mamba_jax.classifier import MambaClassifier, init_cache
from mamba_jax.config import MambaConfig
from mamba_jax.mixer import LayerCache, MambaMixer

__all__ = [
    "LayerCache",
    "MambaClassifier",
    "MambaConfig",
    "MambaMixer",
    "ResidualBlock",
    "init_cache",
    "ssm",
]
