"""Partition-function estimators: ``log Z`` of an energy ``E``, density ∝ exp(−E)."""

from jebm.partition.grid import log_z_grid

__all__ = ["log_z_grid"]
