"""Sample-quality metrics on vectors or features: the Fréchet distance, the kernel MMD, the
kernel Stein discrepancy, and the class coverage and confidence of a classifier's logits.
"""

import math
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Float

from jebm._validate import check_float
from jebm.types import Array, ScoreFn

__all__ = [
    "CONFIDENCE_THRESHOLD",
    "Estimate",
    "frechet_distance_from_moments",
    "frechet_distance",
    "median_bandwidth",
    "mmd",
    "kernel_stein_discrepancy",
    "class_coverage",
    "confidence",
]

CONFIDENCE_THRESHOLD = 0.9


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


