"""scikit-learn's 8×8 handwritten digits, dequantised to [0, 1]⁶⁴, with a fixed split.

The 1797 images (pixel counts 0–16, UCI "Optical Recognition of Handwritten
Digits") ship inside scikit-learn, so loading needs no network. A pixel count
``v ∈ {0, …, 16}`` becomes ``x = (v + u) / 17`` with ``u ~ U(0, 1)``: uniform
dequantisation. A density ``p`` on [0, 1]⁶⁴ then defines a discrete model
``P(v) = ∫_{cell(v)} p(x) dx`` with ``log P(v) ≥ E_u[log p(x)] − 64 log 17``, so
continuous NLLs in nats on [0, 1]⁶⁴ are comparable with each other and, after adding
``64 log 17 ≈ 181.3`` nats, bound the discrete NLL.

The split is a fixed numpy permutation of the (optionally class-filtered) images;
labels are kept. The full-covariance Gaussian baseline on the dequantised data is
``jebm.densities.baseline_nll(DENSITIES["gaussian"](train), test)``, as for every data set.

References:
  Alpaydin, E. and Kaynak, C. (1998). Optical Recognition of Handwritten Digits.
  UCI Machine Learning Repository.
  Theis, L., van den Oord, A. and Bethge, M. (2016). A note on the evaluation of
  generative models. ICLR. (uniform dequantisation)
"""

import math
from collections.abc import Callable, Iterable
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Float, Int

from jebm.types import Array, PRNGKey

__all__ = [
    "DigitsSplit",
    "load_digits",
    "dequantize",
    "binarize",
    "sampler",
    "labelled_sampler",
    "NUM_LEVELS",
    "IMAGE_SHAPE",
    "DISCRETE_OFFSET",
]

NUM_LEVELS = 17  # pixel counts 0..16
IMAGE_SHAPE = (8, 8)
# Nats added to a continuous NLL on [0, 1]^64 to bound the discrete one: 64 log 17.
DISCRETE_OFFSET = IMAGE_SHAPE[0] * IMAGE_SHAPE[1] * math.log(NUM_LEVELS)


class DigitsSplit(NamedTuple):
    """A fixed train/test split of pixel counts and labels.

    Attributes:
      train_counts: ``(n_train, 8, 8)`` uint8 pixel counts 0..16.
      train_labels: ``(n_train,)`` int32 digit labels.
      test_counts: ``(n_test, 8, 8)`` uint8.
      test_labels: ``(n_test,)`` int32.
    """

    train_counts: np.ndarray
    train_labels: np.ndarray
    test_counts: np.ndarray
    test_labels: np.ndarray


def load_digits(
    *, test_fraction: float = 0.2, seed: int = 0, classes: Iterable[int] | None = None
) -> DigitsSplit:
    """Load the digits with a fixed shuffled split.

    The split depends only on ``seed``, ``test_fraction`` and ``classes``: the images
    kept are permuted by ``numpy.random.default_rng(seed)`` and the first
    ``round(test_fraction · n)`` form the test set.

    Args:
      test_fraction: share of images held out (after class filtering), in (0, 1).
      seed: seed of the numpy permutation that fixes the split.
      classes: optional labels to keep (e.g. ``range(5)``); ``None`` keeps all ten.

    Returns:
      A :class:`DigitsSplit` of integer pixel counts and labels.

    Raises:
      ValueError: for a ``test_fraction`` outside (0, 1) or classes no image has.

    Examples:
      >>> from jebm.datasets.digits import load_digits
      >>> split = load_digits()
      >>> split.train_counts.shape, split.test_counts.shape
      ((1438, 8, 8), (359, 8, 8))
    """
    from sklearn.datasets import load_digits as _sk_load_digits

    if not 0.0 < test_fraction < 1.0:
        raise ValueError(f"test_fraction must lie in (0, 1), got {test_fraction}.")
    data = _sk_load_digits()
    counts = data.images.astype(np.uint8)
    labels = data.target.astype(np.int32)
    if classes is not None:
        classes = [int(c) for c in classes]
        keep = np.isin(labels, np.asarray(classes))
        if not keep.any():
            raise ValueError(f"no digit has a label in classes={classes}.")
        counts, labels = counts[keep], labels[keep]
    perm = np.random.default_rng(seed).permutation(len(labels))
    num_test = int(round(test_fraction * len(labels)))
    if not 0 < num_test < len(labels):
        raise ValueError(f"test_fraction={test_fraction} leaves an empty train or test set.")
    test, train = perm[:num_test], perm[num_test:]
    return DigitsSplit(counts[train], labels[train], counts[test], labels[test])


def dequantize(key: PRNGKey, counts: Int[Array, "*shape"]) -> Float[Array, "*shape"]:
    """``(counts + u) / 17`` with ``u ~ U(0, 1)``, float32 in [0, 1].

    Args:
      key: PRNG key of the uniform noise.
      counts: integer pixel counts 0..16, any shape.

    Returns:
      Dequantised pixels of the shape of ``counts``, each in its cell
      ``[v / 17, (v + 1) / 17)``.

    Examples:
      >>> import jax, jax.numpy as jnp
      >>> from jebm.datasets.digits import dequantize
      >>> x = dequantize(jax.random.key(0), jnp.array([0, 16]))
      >>> bool(x[0] < 1 / 17 and x[1] >= 16 / 17)
      True
    """
    counts = jnp.asarray(counts, jnp.float32)
    return (counts + jax.random.uniform(key, counts.shape)) / NUM_LEVELS


def binarize(counts: Int[Array, "*shape"], threshold: int = 8) -> Float[Array, "*shape"]:
    """Binarised digits: 1.0 where the pixel count is ``>= threshold``, else 0.0 (float32).

    The default threshold 8 is half the maximum count 16; the result is a fixed binary
    data set (no noise), for the discrete EBMs of :mod:`jebm.energies.discrete`.

    Args:
      counts: integer pixel counts in ``0 … 16``, any shape.
      threshold: the smallest count mapped to 1, an int in ``[1, 16]``.

    Returns:
      A float32 array of 0.0/1.0 shaped like ``counts``.

    Raises:
      ValueError: if ``threshold`` is not an int in ``[1, 16]``.

    Examples:
      >>> import jax.numpy as jnp
      >>> from jebm.datasets.digits import binarize
      >>> binarize(jnp.array([0, 7, 8, 16]))
      Array([0., 0., 1., 1.], dtype=float32)
    """
    if not isinstance(threshold, int | np.integer) or not 1 <= threshold < NUM_LEVELS:
        raise ValueError(f"threshold must be an int in [1, {NUM_LEVELS - 1}], got {threshold!r}.")
    return (jnp.asarray(counts) >= threshold).astype(jnp.float32)


def sampler(counts: np.ndarray) -> Callable[[PRNGKey, int], Array]:
    """``(key, n) -> (n, 8, 8)``: images drawn with replacement, freshly dequantised.

    Each call draws new uniform noise, so training sees the dequantised density rather
    than a fixed noisy copy of the data. Usable as ``data`` of
    :func:`jebm.train.train_loop`.

    Args:
      counts: ``(n_images, 8, 8)`` pixel counts 0..16 (e.g. ``DigitsSplit.train_counts``).

    Returns:
      ``sample(key, n)``: ``n`` images drawn uniformly with replacement and dequantised
      by :func:`dequantize`, float32 ``(n, 8, 8)`` (``n`` static).
    """
    table = jnp.asarray(counts, jnp.uint8)

    def sample(key: PRNGKey, n: int) -> Array:
        k_index, k_noise = jax.random.split(key)
        index = jax.random.randint(k_index, (n,), 0, table.shape[0])
        return dequantize(k_noise, table[index])

    return sample


def labelled_sampler(
    counts: np.ndarray, labels: np.ndarray
) -> Callable[[PRNGKey, int], tuple[Array, Array]]:
    """``(key, n) -> (images (n, 8, 8), labels (n,))``, as :func:`sampler` with labels.

    Args:
      counts: ``(n_images, 8, 8)`` pixel counts 0..16.
      labels: ``(n_images,)`` digit labels, one per image.

    Returns:
      ``sample(key, n)``: ``n`` dequantised images drawn with replacement, float32
      ``(n, 8, 8)``, and their int32 labels ``(n,)``.

    Raises:
      ValueError: if ``counts`` and ``labels`` differ in length.
    """
    table = jnp.asarray(counts, jnp.uint8)
    targets = jnp.asarray(labels, jnp.int32)
    if table.shape[0] != targets.shape[0]:
        raise ValueError(f"{table.shape[0]} images but {targets.shape[0]} labels.")

    def sample(key: PRNGKey, n: int) -> tuple[Array, Array]:
        k_index, k_noise = jax.random.split(key)
        index = jax.random.randint(k_index, (n,), 0, table.shape[0])
        return dequantize(k_noise, table[index]), targets[index]

    return sample
