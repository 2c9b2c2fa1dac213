"""Data sets from files and arrays: digits (embedded), and loaders for MNIST, Fashion-MNIST
and CIFAR-10 (binary) files the user provides.

The FFJORD two-dimensional toys, which are distributions with exact densities and
entropies built from analytic energies, live one layer up, in :mod:`jebm.energies.toy_data`.
"""

from jebm.datasets import cifar, digits, mnist
from jebm.datasets.cifar import load_cifar10
from jebm.datasets.labels import NUM_CLASSES
from jebm.datasets.mnist import ImageSplit, load_fashion_mnist, load_mnist

__all__ = ["digits", "mnist", "cifar", "ImageSplit", "load_mnist", "load_fashion_mnist",
           "load_cifar10", "NUM_CLASSES"]  # fmt: skip
