"""Data sets: the FFJORD two-dimensional toys with true densities and entropies."""

from jebm.datasets import toy2d
from jebm.datasets.toy2d import Toy2D

__all__ = ["toy2d", "Toy2D"]
