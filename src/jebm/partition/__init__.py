"""Partition-function estimators: ``log Z`` of an energy ``E``, density ∝ exp(−E).

Grid quadrature in one to three dimensions (:func:`log_z_grid`), forward AIS (a stochastic
lower bound, :func:`ais`) and reverse AIS (an upper bound from exact target draws,
:func:`reverse_ais`). Test likelihoods built on them live in :mod:`jebm.evaluation`.
"""

from jebm.partition.ais import (
    AISResult,
    ais,
    linear_schedule,
    power_schedule,
    reverse_ais,
    sigmoid_schedule,
)
from jebm.partition.grid import GridCoverage, grid_coverage, log_z_grid

__all__ = [
    "log_z_grid",
    "grid_coverage",
    "GridCoverage",
    "ais",
    "reverse_ais",
    "AISResult",
    "linear_schedule",
    "power_schedule",
    "sigmoid_schedule",
]
