"""The data sets of a run: ``data.name`` → :class:`Data` (training batches, test set, labels).

:data:`DATASETS` is the registry the config's ``data.name`` choices are read from: the 2-D
toys of :mod:`jebm.energies.toy_data`, ``digits``, and ``mnist``, ``fashion_mnist`` and
``cifar10`` read from ``data.path``.
"""

from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp

from jebm import datasets
from jebm.datasets import digits
from jebm.energies import toy_data
from jebm.types import Array, PRNGKey

__all__ = ["Data", "DATASETS", "FILE_DATASETS", "LABELLED_DATASETS", "build_data"]

class Data(NamedTuple):
    """The data set of a run.

    Attributes:
      name: the config's ``data.name``.
      sample: ``sample(key, n) -> (n, *event)`` training batches.
      test: held-out points ``(num_test, *event)``.
      train: digits: the dequantised training images (for fitted densities and
        baselines); ``None`` for the toys, whose training data is ``sample``.
      event_shape: the shape of one point.
      toy: the :class:`~jebm.energies.toy_data.Toy2D` (true density and entropy), or ``None``.
      labelled: labelled image sets: ``labelled(key, n) -> ((n, *event), (n,) int32)``,
        training batches with their class labels (JEM); ``None`` for unlabelled data.
      test_labels: the labels of ``test`` ``(num_test,)``, or ``None``.
    """

    name: str
    sample: Callable[[PRNGKey, int], Array]
    test: Array
    train: Array | None
    event_shape: tuple[int, ...]
    toy: Any
    labelled: Callable[[PRNGKey, int], tuple[Array, Array]] | None = None
    test_labels: Array | None = None

    @property
    def planar(self) -> bool:
        """2-D points: evaluated by grid quadrature and density plots (else images)."""
        return self.event_shape == (2,)


def _toy_data(config, key: PRNGKey) -> Data:
    toy = toy_data.get(config.name)
    # one XLA program for the test draws (eagerly, each of their ops compiles its own)
    test = jax.jit(toy.density.sample, static_argnums=1)(key, config.num_test)
    return Data(config.name, toy.density.sample, test, None, (2,), toy)


def _digits_data(config, key: PRNGKey) -> Data:
    split = digits.load_digits(test_fraction=config.test_fraction, seed=config.split_seed,
                               classes=config.classes)
    k_test, k_train = jax.random.split(key)
    return Data(config.name, digits.sampler(split.train_counts),
                digits.dequantize(k_test, split.test_counts),
                digits.dequantize(k_train, split.train_counts), digits.IMAGE_SHAPE, None,
                digits.labelled_sampler(split.train_counts, split.train_labels),
                jnp.asarray(split.test_labels, jnp.int32))


def _image_files(loader_name: str):
    """Data from image files at ``data.path`` (uint8 pixels, dequantised to [0, 1])."""

    def load(config, key: PRNGKey) -> Data:
        if config.path is None:
            raise ValueError(f"data.name={config.name} reads its files from data.path; set "
                             "data.path to the folder that holds them.")
        split = getattr(datasets, loader_name)(config.path)
        train = jnp.asarray(split.train_images, jnp.uint8)
        train_labels = jnp.asarray(split.train_labels, jnp.int32)

        def dequantize(k, pixels):  # uniform noise in each of the 256 bins
            return (pixels.astype(jnp.float32) + jax.random.uniform(k, pixels.shape)) / 256.0

        def labelled(k, n):
            k_index, k_noise = jax.random.split(k)
            index = jax.random.randint(k_index, (n,), 0, len(train))
            return dequantize(k_noise, train[index]), train_labels[index]

        def sample(k, n):
            return labelled(k, n)[0]

        k_test, k_train = jax.random.split(key)
        test = dequantize(k_test, jnp.asarray(split.test_images[: config.num_test], jnp.uint8))
        return Data(config.name, sample, test, dequantize(k_train, train[:10_000]),
                    tuple(split.train_images.shape[1:]), None, labelled,
                    jnp.asarray(split.test_labels[: config.num_test], jnp.int32))

    return load


DATASETS: dict[str, Callable[..., Data]] = {
    **{name: _toy_data for name in toy_data.NAMES}, "digits": _digits_data,
    **{name: _image_files(f"load_{name}") for name in ("mnist", "fashion_mnist", "cifar10")}}

# The data sets read from the user's files in ``data.path`` (the others ignore it).
FILE_DATASETS: tuple[str, ...] = ("mnist", "fashion_mnist", "cifar10")
# The data sets whose Data carries class labels (``labelled``, ``test_labels``).
LABELLED_DATASETS: tuple[str, ...] = ("digits", "mnist", "fashion_mnist", "cifar10")


def build_data(config, key: PRNGKey) -> Data:
    """The data set of ``config.data``; ``key`` draws the test set (and dequantises digits).

    Args:
      config: the run's config; only ``config.data`` is read.
      key: PRNG key of the test set: a toy's ``data.num_test`` exact draws, or the
        dequantisation noise of the digits test and training images.

    Returns:
      The :class:`Data`; its ``sample`` draws fresh training batches.
    """
    return DATASETS[config.data.name](config.data, key)

