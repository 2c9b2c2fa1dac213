"""The labels of jebm's labelled image data sets (digits, MNIST, Fashion-MNIST, CIFAR-10).

Every one of them has ten classes, numbered ``0 … 9``; this is the one place that says so.
"""

__all__ = ["NUM_CLASSES"]

NUM_CLASSES = 10
