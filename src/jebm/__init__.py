"""jebm: a JAX functional toolkit for energy-based models."""

from jebm import energy, samplers
from jebm.samplers import run_chains

__version__ = "0.1.0"

__all__ = ["__version__", "energy", "samplers", "run_chains"]
