"""Data sets: the FFJORD two-dimensional toys with true densities and entropies, and digits."""

from jebm.datasets import digits, toy2d
from jebm.datasets.toy2d import Toy2D

__all__ = ["toy2d", "digits", "Toy2D"]
