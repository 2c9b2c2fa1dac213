"""Data sets: the FFJORD two-dimensional toys with true densities and entropies, digits,
and loaders for MNIST, Fashion-MNIST and CIFAR-10 (binary) files the user provides."""

from jebm.datasets import cifar, digits, mnist, toy2d
from jebm.datasets.cifar import load_cifar10
from jebm.datasets.labels import NUM_CLASSES
from jebm.datasets.mnist import ImageSplit, load_fashion_mnist, load_mnist
from jebm.datasets.toy2d import Toy2D

__all__ = ["toy2d", "digits", "mnist", "cifar", "Toy2D", "ImageSplit", "load_mnist",
           "load_fashion_mnist", "load_cifar10", "NUM_CLASSES"]  # fmt: skip
