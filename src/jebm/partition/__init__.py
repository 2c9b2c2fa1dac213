"""Partition-function estimators: ``log Z`` of an energy ``E``, density ∝ exp(−E)."""

from jebm.partition.ais import (
    AISResult,
    Base,
    NLLEstimate,
    ais,
    ais_nll,
    gaussian_base,
    linear_schedule,
    power_schedule,
    reverse_ais,
    sigmoid_schedule,
    uniform_base,
)
from jebm.partition.grid import log_z_grid

__all__ = [
    "log_z_grid",
    "ais",
    "reverse_ais",
    "ais_nll",
    "AISResult",
    "NLLEstimate",
    "Base",
    "gaussian_base",
    "uniform_base",
    "linear_schedule",
    "power_schedule",
    "sigmoid_schedule",
]
