"""jebm: a JAX functional toolkit for energy-based models.

Data flow: dataset → energy → sampler → objective → train step → checkpoint → evaluation.
The sign convention (density ∝ exp(−E), samplers see −E) lives in :mod:`jebm.energy`.
"""

from jebm import (
    applications,
    config,
    datasets,
    diagnostics,
    energies,
    energy,
    objectives,
    parallel,
    partition,
    samplers,
    train,
)
from jebm.energy import log_ratio, logdensity_fn, score_fn
from jebm.samplers import run_chains

__version__ = "0.1.0"

__all__ = [
    "__version__",
    "applications",
    "config",
    "datasets",
    "diagnostics",
    "energies",
    "energy",
    "objectives",
    "parallel",
    "partition",
    "samplers",
    "train",
    "logdensity_fn",
    "score_fn",
    "log_ratio",
    "run_chains",
]
