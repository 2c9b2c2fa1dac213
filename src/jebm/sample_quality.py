"""Sample quality: feature networks jebm trains itself, and the metrics built on them.

Image EBMs are judged by their samples. This module gives jebm its own scorer for every
labelled image data set (:data:`jebm.experiment.LABELLED_DATASETS`: digits, MNIST,
Fashion-MNIST, CIFAR-10), and generic two-sample and goodness-of-fit tests for vectors:

* :func:`train_features` trains a small classifier on flattened images, an MLP
  ``d → h₁ → h₂ → 10`` (:func:`hidden_widths`: ``64 → 128 → 32 → 10`` for the 8×8
  digits, ``784 → 256 → 64 → 10`` for MNIST, ``3072 → 256 → 64 → 10`` for CIFAR-10),
  deterministically from a seed on the run's own *training* split, with freshly
  dequantised images every step. Its penultimate activations are the features.
  :func:`load_or_train_features` caches the weights per (data set, seed) as a numpy
  ``.npz`` file (read with ``allow_pickle=False``) in a directory the caller gives, e.g.
  the run directory. No weights are shipped.
* :func:`frechet_distance` is the recipe of Heusel et al. (2017) on those features,
  ``‖μ₁ − μ₂‖² + tr(Σ₁ + Σ₂ − 2 (Σ₁^{1/2} Σ₂ Σ₁^{1/2})^{1/2})``, in float64 with both
  matrix square roots by symmetric eigendecomposition. It is the **Fréchet distance in
  jebm's <data set> features** (e.g. jebm's MNIST features), not FID: the features are
  not Inception's, the numbers are not comparable with published FIDs, and in the
  features of a weak classifier (an MLP on CIFAR-10) they are a relative measure, to rank
  models and baselines of one data set scored in the same features.
* :func:`mmd` is the unbiased estimator of the squared kernel maximum mean discrepancy
  (Gretton et al. 2012) with a jackknife standard error; it works on features or on raw
  vectors.
* :func:`class_coverage` (the histogram of predicted classes and its entropy, to catch
  dropped modes) and :func:`confidence` (the fraction classified with ``p > 0.9``).
* :func:`kernel_stein_discrepancy` needs only the score ``∇ log p`` of a model
  (Liu et al. 2016; Chwialkowski et al. 2016; Gorham & Mackey 2017).
* :func:`score_samples` scores one set of samples against a reference set;
  :func:`baseline_report` scores the baselines that belong beside every model (training
  vs test images, the floor; and any ``sample(key, n)`` callables such as a
  full-covariance Gaussian, a logit-Gaussian and uniform noise).

All metrics run on the host in float64 numpy; the feature network is a pure JAX function of
``(graphdef, params)``; callers jit it if they want.

References:
  Heusel, M., Ramsauer, H., Unterthiner, T., Nessler, B. and Hochreiter, S. (2017). GANs
  trained by a two time-scale update rule converge to a local Nash equilibrium. NeurIPS.

  Gretton, A., Borgwardt, K. M., Rasch, M. J., Schölkopf, B. and Smola, A. (2012). A kernel
  two-sample test. JMLR 13, 723–773.

  Liu, Q., Lee, J. and Jordan, M. (2016). A kernelized Stein discrepancy for
  goodness-of-fit tests. ICML.

  Chwialkowski, K., Strathmann, H. and Gretton, A. (2016). A kernel test of goodness of
  fit. ICML.

  Gorham, J. and Mackey, L. (2017). Measuring sample quality with kernels. ICML.

  Efron, B. and Stein, C. (1981). The jackknife estimate of variance. Annals of
  Statistics 9(3), 586–596.
"""

import math
import os
import zipfile
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax import nnx
from jaxtyping import Float

from jebm._validate import check_float, check_int
from jebm.types import Array, PRNGKey, PyTree, ScoreFn

__all__ = [
    "FeatureNetwork",
    "Estimate",
    "hidden_widths",
    "train_features",
    "load_or_train_features",
    "save_features",
    "load_features",
    "image_features",
    "image_logits",
    "classifier_accuracy",
    "frechet_distance",
    "frechet_distance_from_moments",
    "mmd",
    "median_bandwidth",
    "class_coverage",
    "confidence",
    "kernel_stein_discrepancy",
    "score_samples",
    "score_draws",
    "baseline_report",
    "CONFIDENCE_THRESHOLD",
    "NUM_CLASSES",
]

CONFIDENCE_THRESHOLD = 0.9
NUM_CLASSES = 10  # every labelled image data set of jebm has ten classes
_FORMAT_VERSION = 2  # 1: digits only (no data set name or input width stored)
_DIGITS_WIDTH = 64


# --------------------------------------------------------------------------- the network


def hidden_widths(input_width: int) -> tuple[int, int]:
    """The feature classifier's hidden widths for flattened images of ``input_width`` pixels.

    ``(128, 32)`` for the 64 pixels of the digits (unchanged since the first version, so
    its numbers stay comparable) and ``(256, 64)`` for larger images (MNIST's 784,
    CIFAR-10's 3072): small enough to train in seconds on a GPU and in under a minute on
    a CPU. The last width is the feature dimension.

    Args:
      input_width: pixels (times channels) per image.

    Returns:
      The two hidden widths.
    """
    return (128, 32) if check_int("input_width", input_width) <= 64 else (256, 64)


class _FeatureClassifier(nnx.Module):
    """MLP on flattened images: ``d → h₁ → h₂ (features) → 10 logits``, SiLU."""

    def __init__(self, input_width: int, hidden: tuple[int, ...], *, rngs: nnx.Rngs):
        widths = (input_width, *hidden)
        self.layers = nnx.List(
            [nnx.Linear(a, b, rngs=rngs) for a, b in zip(widths[:-1], widths[1:], strict=True)]
        )
        self.head = nnx.Linear(widths[-1], NUM_CLASSES, rngs=rngs)

    def features(self, x: Array) -> Array:
        h = x
        for layer in self.layers:
            h = nnx.silu(layer(h))
        return h

    def __call__(self, x: Array) -> Array:
        return self.head(self.features(x))


class FeatureNetwork(NamedTuple):
    """A trained feature classifier of one labelled image data set, split for functional use.

    Attributes:
      graphdef: the ``nnx.GraphDef`` of the classifier.
      params: its ``nnx.Param`` state.
      dataset: the data set it was trained on (``data.name``, e.g. ``"mnist"``).
      input_width: pixels per flattened image (64 digits, 784 MNIST, 3072 CIFAR-10).
      seed: the seed it was trained from.
      test_accuracy: its accuracy on the test split it was given.
    """

    graphdef: nnx.GraphDef
    params: PyTree
    dataset: str
    input_width: int
    seed: int
    test_accuracy: float


def _flat(net: FeatureNetwork, images) -> Array:
    images = jnp.asarray(images, jnp.float32)
    return images.reshape(images.shape[0], net.input_width)


def image_logits(net: FeatureNetwork, images: Float[Array, "n ..."]) -> Float[Array, "n 10"]:
    """Class logits of a batch of images in [0, 1] (any shape that flattens to the width).

    Args:
      net: the feature network.
      images: ``(n, *event)`` images in [0, 1], ``prod(event) == net.input_width``.

    Returns:
      The ``(n, 10)`` class logits.
    """
    return nnx.merge(net.graphdef, net.params)(_flat(net, images))


def image_features(net: FeatureNetwork, images: Float[Array, "n ..."]) -> Float[Array, "n k"]:
    """Penultimate features (``k`` = the last hidden width) of a batch of images.

    Args:
      net: the feature network.
      images: ``(n, *event)`` images in [0, 1], ``prod(event) == net.input_width``.

    Returns:
      The ``(n, k)`` features.
    """
    return nnx.merge(net.graphdef, net.params).features(_flat(net, images))


def _split_model(seed: int, input_width: int) -> tuple[nnx.GraphDef, PyTree]:
    model = _FeatureClassifier(input_width, hidden_widths(input_width),
                               rngs=nnx.Rngs(jax.random.key(seed)))
    return nnx.split(model, nnx.Param)


def classifier_accuracy(net: FeatureNetwork, images: Array, labels: Array) -> float:
    """Fraction of ``images`` whose arg-max logit equals ``labels``.

    Args:
      net: the feature network.
      images: ``(n, *event)`` images in [0, 1].
      labels: ``(n,)`` integer class labels.

    Returns:
      The accuracy, a float in [0, 1].
    """
    predicted = np.asarray(jnp.argmax(image_logits(net, images), axis=-1))
    return float(np.mean(predicted == np.asarray(labels)))


def train_features(
    data,
    seed: int = 0,
    *,
    num_steps: int = 1500,
    batch_size: int = 128,
    learning_rate: float = 2e-3,
) -> FeatureNetwork:
    """Train the feature classifier of a labelled image data set, deterministically.

    Adam on the softmax cross-entropy (``optax.losses``), minibatches of
    ``data.labelled`` (drawn with replacement from the training split and freshly
    dequantised each step), all in one ``lax.scan`` whose keys are split from
    ``jax.random.key(seed)``. The same data and seed give the same weights on the same
    backend. Digits (``64 → 128 → 32 → 10``): about 6 s of CPU time, test accuracy
    ≈ 0.986 for seed 0; MNIST (``784 → 256 → 64 → 10``) and CIFAR-10
    (``3072 → 256 → 64 → 10``) seconds on a GPU. An MLP is a weak classifier of CIFAR-10
    (roughly half its test images right): distances in its features rank models of one
    data set, nothing more.

    Args:
      data: a labelled :class:`jebm.experiment.Data` (a data set of
        :data:`jebm.experiment.LABELLED_DATASETS`); its ``name``, ``event_shape``,
        ``labelled`` (training batches with labels), ``test`` and ``test_labels`` are read.
      seed: the seed of the initialisation and of the minibatch/dequantisation stream.
      num_steps: Adam steps.
      batch_size: images per step.
      learning_rate: Adam's step size (with cosine decay to zero).

    Returns:
      A :class:`FeatureNetwork` with its accuracy on ``data.test``.

    Raises:
      ValueError: if ``data`` carries no labels.
    """
    seed = check_int("seed", seed, minimum=0)
    num_steps = check_int("num_steps", num_steps)
    batch_size = check_int("batch_size", batch_size)
    learning_rate = check_float("learning_rate", learning_rate)
    if data.labelled is None or data.test_labels is None:
        raise ValueError(f"the feature network needs labelled data; {data.name} has no labels.")
    input_width = math.prod(data.event_shape)
    graphdef, params = _split_model(seed, input_width)
    optimizer = optax.adam(optax.cosine_decay_schedule(learning_rate, num_steps))

    def loss_fn(p, images, labels):
        logits = nnx.merge(graphdef, p)(images.reshape(images.shape[0], input_width))
        return jnp.mean(optax.losses.softmax_cross_entropy_with_integer_labels(logits, labels))

    def step(carry, key):
        p, opt_state = carry
        images, labels = data.labelled(key, batch_size)
        grads = jax.grad(loss_fn)(p, images, labels)
        updates, opt_state = optimizer.update(grads, opt_state, p)
        return (optax.apply_updates(p, updates), opt_state), None

    keys = jax.random.split(jax.random.fold_in(jax.random.key(seed), 1), num_steps)
    (params, _), _ = jax.lax.scan(step, (params, optimizer.init(params)), keys)
    net = FeatureNetwork(graphdef, params, data.name, input_width, seed, math.nan)
    return net._replace(test_accuracy=classifier_accuracy(net, data.test, data.test_labels))


# --------------------------------------------------------------------------- the cache


def _cache_path(cache_dir: str | os.PathLike, dataset: str, seed: int) -> Path:
    return Path(cache_dir) / f"{dataset}_features_seed{seed}.npz"


def _named_leaves(params: PyTree) -> list[tuple[str, Array]]:
    flat, _ = jax.tree_util.tree_flatten_with_path(params)
    return [(jax.tree_util.keystr(path), leaf) for path, leaf in flat]


def save_features(net: FeatureNetwork, path: str | os.PathLike) -> Path:
    """Write ``net``'s weights to ``path`` as a plain ``.npz`` (no pickled objects).

    The file holds one array per parameter (named by its pytree path), the data set's
    name, the input and hidden widths, the seed, the test accuracy and a format version.
    It is written to a temporary name and moved into place, so a reader never sees half
    a file.

    Args:
      net: the feature network to save.
      path: the file to write; its parent directories are created if missing.

    Returns:
      ``path`` as a :class:`~pathlib.Path`.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    arrays = {f"param:{name}": np.asarray(leaf) for name, leaf in _named_leaves(net.params)}
    arrays.update(
        format_version=np.asarray(_FORMAT_VERSION),
        dataset=np.asarray(net.dataset),
        input_width=np.asarray(net.input_width),
        seed=np.asarray(net.seed),
        hidden=np.asarray(hidden_widths(net.input_width)),
        test_accuracy=np.asarray(net.test_accuracy),
    )
    tmp = path.with_name(path.name + ".tmp.npz")
    np.savez(tmp, **arrays)
    os.replace(tmp, path)
    return path


def load_features(path: str | os.PathLike) -> FeatureNetwork:
    """Read weights written by :func:`save_features`.

    Files of format version 1 (the digits-only scorer, named
    ``digit_features_seed<seed>.npz``) hold the same network and are read as digits
    features.

    Args:
      path: the ``.npz`` file to read.

    Returns:
      The :class:`FeatureNetwork` stored in the file.

    Raises:
      ValueError: naming the file, if it is not such a file (unknown format version,
        widths other than :func:`hidden_widths`'s, missing or misshapen parameters).
    """
    path = Path(path)
    try:
        with open(path, "rb") as handle, np.load(handle, allow_pickle=False) as data:
            stored = {name: data[name] for name in data.files}
    except (OSError, ValueError, EOFError, zipfile.BadZipFile) as err:
        raise ValueError(f"{path} is not a readable jebm feature-network file: {err}") from err
    version = int(stored.get("format_version", -1))
    if version == 1:  # digits only: no name or input width stored
        stored.update(dataset=np.asarray("digits"), input_width=np.asarray(_DIGITS_WIDTH))
    elif version != _FORMAT_VERSION:
        raise ValueError(f"{path}: unknown format version {version} (want 1 or "
                         f"{_FORMAT_VERSION}).")
    input_width = int(stored["input_width"])
    want = hidden_widths(input_width)
    if tuple(stored.get("hidden", ())) != want:
        raise ValueError(f"{path}: hidden widths {stored.get('hidden')} differ from {want}.")
    seed = int(stored["seed"])
    graphdef, template = _split_model(seed, input_width)
    flat, treedef = jax.tree_util.tree_flatten_with_path(template)
    leaves = []
    for key_path, leaf in flat:
        name = f"param:{jax.tree_util.keystr(key_path)}"
        if name not in stored or stored[name].shape != leaf.shape:
            raise ValueError(f"{path}: parameter {name} is missing or has the wrong shape.")
        leaves.append(jnp.asarray(stored[name], leaf.dtype))
    params = jax.tree_util.tree_unflatten(treedef, leaves)
    return FeatureNetwork(graphdef, params, str(stored["dataset"]), input_width, seed,
                          float(stored["test_accuracy"]))


def load_or_train_features(cache_dir: str | os.PathLike, data, seed: int = 0) -> FeatureNetwork:
    """The feature network of ``data`` and ``seed``: read from ``cache_dir`` or trained and saved.

    The cache is keyed by the data set's name and the seed, not by its split: runs on
    different splits of one data set (other ``data.classes``, say) should not share a
    folder (the default, the run directory, is one run's).

    Args:
      cache_dir: directory of the cache (e.g. the run directory); created if missing.
        The file is ``<data.name>_features_seed<seed>.npz``.
      data: a labelled :class:`jebm.experiment.Data` (see :func:`train_features`).
      seed: the training seed (see :func:`train_features`).

    Returns:
      A :class:`FeatureNetwork`.

    Raises:
      ValueError: if a cached file exists but is not a valid features file of this data
        set and seed (it is not silently overwritten: delete it to retrain).
    """
    seed = check_int("seed", seed, minimum=0)
    path = _cache_path(cache_dir, data.name, seed)
    if path.exists():
        net = load_features(path)
        width = math.prod(data.event_shape)
        if (net.dataset, net.input_width, net.seed) != (data.name, width, seed):
            raise ValueError(f"{path} holds {net.dataset} features ({net.input_width} pixels, "
                             f"seed {net.seed}), not {data.name} ({width}, seed {seed}).")
        return net
    net = train_features(data, seed)
    save_features(net, path)
    return net


# --------------------------------------------------------------------------- metrics


class Estimate(NamedTuple):
    """A Monte Carlo estimate and its standard error."""

    value: float
    stderr: float


def _psd_sqrt(matrix: np.ndarray) -> np.ndarray:
    """Symmetric PSD square root by eigendecomposition (negative round-off eigenvalues → 0)."""
    eigvals, eigvecs = np.linalg.eigh(0.5 * (matrix + matrix.T))
    return (eigvecs * np.sqrt(np.clip(eigvals, 0.0, None))) @ eigvecs.T


def frechet_distance_from_moments(
    mean_a: np.ndarray, cov_a: np.ndarray, mean_b: np.ndarray, cov_b: np.ndarray
) -> float:
    """The squared 2-Wasserstein (Fréchet) distance between two Gaussians, in float64.

    ``‖μₐ − μ_b‖² + tr Σₐ + tr Σ_b − 2 tr (Σₐ^{1/2} Σ_b Σₐ^{1/2})^{1/2}``. The inner matrix
    is symmetric PSD, so both square roots are symmetric eigendecompositions (no
    complex-valued ``sqrtm`` of the non-symmetric ``Σₐ Σ_b``).

    Args:
      mean_a: the mean ``μₐ``, shape ``(k,)``.
      cov_a: the covariance ``Σₐ``, shape ``(k, k)``, symmetric PSD.
      mean_b: the mean ``μ_b``, shape ``(k,)``.
      cov_b: the covariance ``Σ_b``, shape ``(k, k)``, symmetric PSD.

    Returns:
      The squared distance, a Python float.

    Examples:
      >>> import numpy as np
      >>> from jebm.sample_quality import frechet_distance_from_moments
      >>> round(frechet_distance_from_moments(np.zeros(2), np.eye(2), np.ones(2),
      ...                                     4 * np.eye(2)), 6)  # 2 + 2 (2 − 1)²
      4.0

    References:
      Dowson, D. C. and Landau, B. V. (1982). The Fréchet distance between multivariate
      normal distributions. J. Multivariate Analysis 12(3), 450–455.
    """
    mean_a, mean_b = np.asarray(mean_a, np.float64), np.asarray(mean_b, np.float64)
    cov_a, cov_b = np.atleast_2d(cov_a).astype(np.float64), np.atleast_2d(cov_b).astype(np.float64)
    root_a = _psd_sqrt(cov_a)
    inner = root_a @ cov_b @ root_a
    eigvals = np.clip(np.linalg.eigvalsh(0.5 * (inner + inner.T)), 0.0, None)
    trace_term = np.trace(cov_a) + np.trace(cov_b) - 2.0 * np.sum(np.sqrt(eigvals))
    return float(np.sum((mean_a - mean_b) ** 2) + trace_term)


def _as_rows(x, name: str) -> np.ndarray:
    x = np.asarray(x, np.float64)
    if x.ndim < 2 or x.shape[0] < 2:
        raise ValueError(f"{name} must be a batch (n >= 2, *event), got shape {x.shape}.")
    return x.reshape(x.shape[0], -1)


def frechet_distance(a: Float[Array, "n k"], b: Float[Array, "m k"]) -> float:
    """Fréchet distance between the Gaussians fitted to two sets of feature vectors.

    Means and unbiased covariances (divisor ``n − 1``) in float64, then
    :func:`frechet_distance_from_moments`. The estimate is biased upwards by
    ``O(k/n)`` (``tr(Σₐ)/n + tr(Σ_b)/m`` from the means alone), so compare numbers at the
    same sample sizes.

    Args:
      a: ``(n, *event)`` vectors (flattened per row), e.g. :func:`image_features`.
      b: ``(m, *event)`` vectors of the same dimension.

    Returns:
      The distance (a float).

    References:
      Heusel et al. (2017).
    """
    a, b = _as_rows(a, "a"), _as_rows(b, "b")
    if a.shape[1] != b.shape[1]:
        raise ValueError(f"a and b have dimensions {a.shape[1]} and {b.shape[1]}.")
    return frechet_distance_from_moments(
        a.mean(0), np.cov(a, rowvar=False), b.mean(0), np.cov(b, rowvar=False)
    )


def _sq_dists(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    d = np.sum(a**2, 1)[:, None] + np.sum(b**2, 1)[None, :] - 2.0 * a @ b.T
    return np.maximum(d, 0.0)


def median_bandwidth(a: Float[Array, "n ..."], b: Float[Array, "m ..."]) -> float:
    """The median heuristic: the median distance between distinct points of ``a ∪ b``.

    Args:
      a: ``(n, *event)`` points (flattened per row), ``n >= 2``.
      b: ``(m, *event)`` points of the same dimension, ``m >= 2``.

    Returns:
      The median Euclidean distance, a Python float.

    Raises:
      ValueError: if ``a`` or ``b`` is not a batch of at least 2 rows.
    """
    z = np.concatenate([_as_rows(a, "a"), _as_rows(b, "b")])
    d = _sq_dists(z, z)[np.triu_indices(len(z), 1)]
    return float(np.sqrt(np.median(d)))


def mmd(
    a: Float[Array, "n ..."], b: Float[Array, "m ..."], *, bandwidth: float | None = None
) -> Estimate:
    """Unbiased squared MMD with a Gaussian kernel, and its jackknife standard error.

    With ``k(x, y) = exp(−‖x − y‖² / (2 h²))``,

        MMD²ᵤ = Σ_{i≠i'} k(aᵢ, aᵢ') / (n(n−1)) + Σ_{j≠j'} k(bⱼ, bⱼ') / (m(m−1))
                − 2 Σ_{i,j} k(aᵢ, bⱼ) / (nm),

    the U-statistic of Gretton et al. (2012, Lemma 6), unbiased for the population MMD²
    (so it can be negative, and its mean is 0 when ``a`` and ``b`` come from one
    distribution). The standard error is the two-sample delete-one jackknife
    ``√((n−1)/n Σᵢ (θ₍₋ᵢ₎ − θ̄ₐ)² + (m−1)/m Σⱼ (θ₍₋ⱼ₎ − θ̄_b)²)``, each leave-one-out value
    in closed form from the kernel matrices' row sums.

    Args:
      a: ``(n, *event)`` vectors, ``n >= 3``; features or raw data.
      b: ``(m, *event)``, ``m >= 3``.
      bandwidth: the kernel width ``h``; ``None`` uses :func:`median_bandwidth` on the pooled
        sample (data-dependent, so then unbiased only conditionally on ``h``).

    Returns:
      An :class:`Estimate` of MMD².

    References:
      Gretton et al. (2012); Efron and Stein (1981) (jackknife).
    """
    a, b = _as_rows(a, "a"), _as_rows(b, "b")
    n, m = len(a), len(b)
    if n < 3 or m < 3 or a.shape[1] != b.shape[1]:
        raise ValueError(f"mmd needs n, m >= 3 rows of one dimension, got {a.shape}, {b.shape}.")
    h = median_bandwidth(a, b) if bandwidth is None else check_float("bandwidth", bandwidth)
    scale = -0.5 / h**2
    kaa = np.exp(scale * _sq_dists(a, a))
    kbb = np.exp(scale * _sq_dists(b, b))
    kab = np.exp(scale * _sq_dists(a, b))
    np.fill_diagonal(kaa, 0.0)
    np.fill_diagonal(kbb, 0.0)
    raa, rbb = kaa.sum(1), kbb.sum(1)  # off-diagonal row sums
    rab, cab = kab.sum(1), kab.sum(0)
    saa, sbb, sab = raa.sum(), rbb.sum(), rab.sum()
    value = saa / (n * (n - 1)) + sbb / (m * (m - 1)) - 2.0 * sab / (n * m)
    # leave a_i out: the a-a sum loses row and column i, the a-b sum loses row i
    loo_a = (
        (saa - 2.0 * raa) / ((n - 1) * (n - 2)) + sbb / (m * (m - 1))
        - 2.0 * (sab - rab) / ((n - 1) * m)
    )  # fmt: skip
    loo_b = (
        saa / (n * (n - 1)) + (sbb - 2.0 * rbb) / ((m - 1) * (m - 2))
        - 2.0 * (sab - cab) / (n * (m - 1))
    )  # fmt: skip
    var = (n - 1) / n * np.sum((loo_a - loo_a.mean()) ** 2) + (m - 1) / m * np.sum(
        (loo_b - loo_b.mean()) ** 2
    )
    return Estimate(float(value), float(np.sqrt(var)))


def kernel_stein_discrepancy(
    score_fn: ScoreFn,
    samples: Float[Array, "n d"],
    *,
    kernel: str = "imq",
    bandwidth: float | None = None,
    beta: float = -0.5,
) -> Estimate:
    """Squared kernel Stein discrepancy of ``samples`` from the density whose score is given.

    Only ``s(x) = ∇ₓ log p(x)`` is needed (no normalising constant): for an energy,
    ``score_fn = jebm.energy.score_fn(energy_fn, params)``. With the Stein kernel

        u(x, y) = s(x)ᵀ s(y) k(x, y) + s(x)ᵀ ∇_y k + s(y)ᵀ ∇_x k + tr ∇_x ∇_y k,

    ``KSD² = E_{x,y ~ q}[u(x, y)]`` is zero iff ``q = p`` (for the kernels here and
    smooth ``p``), and the U-statistic ``Σ_{i≠j} u(xᵢ, xⱼ) / (n(n−1))`` estimates it without
    bias. The standard error is the delete-one jackknife, as in :func:`mmd`.

    Kernels, with ``r = ‖x − y‖``:

    * ``"imq"`` (default): ``k = (h² + r²)^β``, ``β ∈ (−1, 0)``; Gorham and Mackey (2017)
      show it detects non-convergence (the Gaussian kernel can miss it in the tails).
    * ``"rbf"``: ``k = exp(−r² / (2h²))``.

    Args:
      score_fn: ``score_fn(x) -> ∇ log p(x)`` for one ``x`` of shape ``(d,)``; vmapped here.
      samples: ``(n, d)``, ``n >= 3``.
      kernel: ``"imq"`` or ``"rbf"``.
      bandwidth: ``h``; ``None`` uses the median distance between samples.
      beta: the IMQ exponent.

    Returns:
      An :class:`Estimate` of KSD² (can be slightly negative when ``q = p``).

    References:
      Liu, Lee and Jordan (2016); Chwialkowski, Strathmann and Gretton (2016); Gorham and
      Mackey (2017).
    """
    if kernel not in ("imq", "rbf"):
        raise ValueError(f"kernel must be 'imq' or 'rbf', got {kernel!r}.")
    x = jnp.asarray(samples)
    if x.ndim != 2 or x.shape[0] < 3:
        raise ValueError(f"samples must be (n >= 3, d), got shape {x.shape}.")
    scores = np.asarray(jax.vmap(score_fn)(x), np.float64)
    x = np.asarray(x, np.float64)
    n, d = x.shape
    if bandwidth is None:
        h = float(np.sqrt(np.median(_sq_dists(x, x)[np.triu_indices(n, 1)])))
    else:
        h = check_float("bandwidth", bandwidth)
    r2 = _sq_dists(x, x)
    # δ = x_i − x_j; s_iᵀ δ and s_jᵀ δ
    s_dot_x = np.sum(scores * x, 1)
    si_delta = s_dot_x[:, None] - scores @ x.T  # s_iᵀ(x_i − x_j)
    sj_delta = x @ scores.T - s_dot_x[None, :]  # s_jᵀ(x_i − x_j)
    ss = scores @ scores.T
    if kernel == "rbf":
        k = np.exp(-0.5 * r2 / h**2)
        # ∇_x k = −δ k / h², ∇_y k = δ k / h², tr ∇_x∇_y k = k (d/h² − r²/h⁴)
        u = k * (ss + si_delta / h**2 - sj_delta / h**2 + d / h**2 - r2 / h**4)
    else:
        beta = check_float("beta", beta, positive=False)
        if not -1.0 < beta < 0.0:
            raise ValueError(f"beta must lie in (-1, 0), got {beta}.")
        base = h**2 + r2
        k = base**beta
        g = 2.0 * beta * base ** (beta - 1.0)  # ∇_x k = g δ, ∇_y k = −g δ
        trace = -g * d - 4.0 * beta * (beta - 1.0) * base ** (beta - 2.0) * r2
        u = ss * k - si_delta * g + sj_delta * g + trace
    np.fill_diagonal(u, 0.0)
    rows = u.sum(1)
    total = rows.sum()
    value = total / (n * (n - 1))
    loo = (total - 2.0 * rows) / ((n - 1) * (n - 2))
    stderr = np.sqrt((n - 1) / n * np.sum((loo - loo.mean()) ** 2))
    return Estimate(float(value), float(stderr))


def class_coverage(logits: Float[Array, "n c"]) -> dict[str, object]:
    """Histogram of arg-max classes and its entropy, to catch dropped modes.

    Args:
      logits: ``(n, c)`` class logits, e.g. :func:`image_logits` of samples.

    Returns:
      ``{"fractions": list of c floats, "entropy": nats, "normalized_entropy": entropy /
      log c (1 for a uniform histogram), "min_fraction": the rarest class's share}``.
    """
    logits = np.asarray(logits)
    num_classes = logits.shape[-1]
    counts = np.bincount(np.argmax(logits, -1), minlength=num_classes)
    fractions = counts / counts.sum()
    nonzero = fractions[fractions > 0]
    entropy = float(-np.sum(nonzero * np.log(nonzero)))
    return {
        "fractions": fractions.tolist(),
        "entropy": entropy,
        "normalized_entropy": entropy / math.log(num_classes),
        "min_fraction": float(fractions.min()),
    }


def confidence(logits: Float[Array, "n c"], threshold: float = CONFIDENCE_THRESHOLD) -> float:
    """Fraction of rows whose largest softmax probability exceeds ``threshold``.

    Args:
      logits: ``(n, c)`` class logits.
      threshold: the probability a row's top class must exceed.

    Returns:
      The fraction, a float in [0, 1].
    """
    probs = jax.nn.softmax(jnp.asarray(logits, jnp.float32), axis=-1)
    return float(jnp.mean(jnp.max(probs, axis=-1) > threshold))


# --------------------------------------------------------------------------- reports


def score_samples(
    net: FeatureNetwork,
    samples: Float[Array, "n ..."],
    reference: Float[Array, "m ..."],
    *,
    bandwidth: float | None = None,
) -> dict[str, object]:
    """Score image ``samples`` against ``reference`` images (usually the test split).

    Args:
      net: the feature network of the images' data set (:func:`load_or_train_features`).
      samples: ``(n, *event)`` images; non-finite rows are counted and dropped before
        scoring.
      reference: ``(m, *event)`` images.
      bandwidth: MMD kernel width in feature space; ``None``: median heuristic.

    Returns:
      ``{"num_samples", "num_nonfinite", "frechet_distance", "mmd2", "mmd2_stderr",
      "class_coverage" (see :func:`class_coverage`), "confidence"}``.
    """
    samples = np.asarray(samples, np.float32).reshape(len(samples), -1)
    finite = np.all(np.isfinite(samples), axis=1)
    samples = samples[finite]
    feats = np.asarray(image_features(net, samples))
    ref = np.asarray(image_features(net, reference))
    estimate = mmd(feats, ref, bandwidth=bandwidth)
    logits = image_logits(net, samples)
    return {
        "num_samples": int(len(samples)),
        "num_nonfinite": int((~finite).sum()),
        "frechet_distance": frechet_distance(feats, ref),
        "mmd2": estimate.value,
        "mmd2_stderr": estimate.stderr,
        "class_coverage": class_coverage(logits),
        "confidence": confidence(logits),
    }


def score_draws(
    net: FeatureNetwork,
    samples: Float[Array, "n ..."],
    reference: Float[Array, "m ..."],
    num_draws: int = 1,
) -> dict[str, object]:
    """:func:`score_samples` of ``num_draws`` independent equal draws stacked in ``samples``.

    The Fréchet distance of a few hundred samples is biased upwards and noisy (about ±1
    at 360 digits); its mean over independent draws of the same size keeps the bias (so it
    stays comparable with one draw's figure) and shrinks the noise. The other scores (MMD,
    class coverage, confidence) are of the pooled samples.

    Args:
      net: the feature network.
      samples: ``(num_draws * k, *event)`` images, draw ``i`` in rows ``[i k, (i + 1) k)``.
      reference: ``(m, *event)`` images.
      num_draws: the number of draws.

    Returns:
      :func:`score_samples` of the pooled samples with ``frechet_distance`` the mean over
      the draws, plus ``frechet_distance_draws`` (each draw's) and ``frechet_distance_sd``
      (their sample standard deviation; 0 for one draw).

    Raises:
      ValueError: if ``len(samples)`` is not a multiple of ``num_draws``.
    """
    num_draws = check_int("num_draws", num_draws)
    if len(samples) % num_draws:
        raise ValueError(f"{len(samples)} samples do not split into {num_draws} equal draws.")
    scores = score_samples(net, samples, reference)
    if num_draws > 1:
        per_draw = [score_samples(net, part, reference)["frechet_distance"]
                    for part in np.split(np.asarray(samples), num_draws)]
    else:
        per_draw = [scores["frechet_distance"]]
    return {**scores, "frechet_distance": float(np.mean(per_draw)),
            "frechet_distance_draws": per_draw,
            "frechet_distance_sd": float(np.std(per_draw, ddof=1)) if num_draws > 1 else 0.0}


def baseline_report(
    key: PRNGKey,
    net: FeatureNetwork,
    train_sample: Callable[[PRNGKey, int], Array],
    reference: Float[Array, "m ..."],
    samplers: Mapping[str, Callable[[PRNGKey, int], Array]],
    *,
    num_samples: int = 360,
    include_uniform: bool = True,
    num_draws: int = 1,
) -> dict[str, dict[str, object]]:
    """The baselines to print beside any image model, all against ``reference``.

    Rows:

    * ``"train_vs_test"`` — ``num_samples`` draws of ``train_sample`` (freshly
      dequantised training images): the floor that a perfect model reaches at this
      sample size;
    * one row per entry of ``samplers`` (e.g. ``{"gaussian": g.sample, "logit_gaussian":
      lg.sample}`` from densities fitted to the training split);
    * ``"uniform"`` — uniform noise on the unit box of the reference's shape (with
      ``include_uniform``).

    Args:
      key: PRNG key for the draws.
      net: the feature network.
      train_sample: ``sample(key, n) -> (n, *event)`` training images (``Data.sample``).
      reference: ``(m, *event)`` images, usually the test split.
      samplers: name → ``sample(key, n) -> (n, *event)``.
      num_samples: samples per row (the digits figures use 360, about its test size).
      include_uniform: add the uniform-noise row.
      num_draws: independent draws of ``num_samples`` per row (:func:`score_draws`).

    Returns:
      name → :func:`score_draws` dict.
    """
    num_samples = check_int("num_samples", num_samples, minimum=3)
    n = num_samples * check_int("num_draws", num_draws)
    k_train, k_rest = jax.random.split(key)
    rows = {"train_vs_test": train_sample(k_train, n)}
    for i, (name, sample) in enumerate(samplers.items()):
        rows[name] = sample(jax.random.fold_in(k_rest, i), n)
    if include_uniform:
        rows["uniform"] = jax.random.uniform(
            jax.random.fold_in(k_rest, len(samplers)), (n, *np.shape(reference)[1:])
        )
    return {name: score_draws(net, x, reference, num_draws) for name, x in rows.items()}
