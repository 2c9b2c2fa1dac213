"""Tractable densities: one type, :class:`Density`, for every place jebm needs one.

A :class:`Density` is a *normalised* density with exact draws. jebm uses the one type
wherever a tractable distribution appears: the base of AIS
(:func:`jebm.partition.ais`), the noise of NCE (:func:`jebm.objectives.nce`), a model's
base energy ``−log q`` (:func:`jebm.energy.with_base`), the distribution PCD restarts
its chains from (:func:`jebm.objectives.pcd`) and the baselines of an evaluation.

Constructors:

* :func:`gaussian` — ``N(μ, Σ)`` with a scalar, diagonal or full covariance;
* :func:`fit_gaussian` — the Gaussian fitted to data by moments (jitter, shrinkage);
* :func:`uniform_box` — uniform on ``[low, high]``;
* :func:`logit_gaussian` — a Gaussian on the logits of data in ``(0, 1)``, seen as a
  density on the unit box (Gao et al., 2020 use such a tractable density under an EBM);
* :func:`logistic` — the uniform density on the unit box seen in logit coordinates;
* :func:`bernoulli` — independent binary units (a base for discrete EBMs).

Events have any shape: ``log_prob`` takes one unbatched ``x`` of the event shape and
``sample(key, n)`` returns ``(n, *event)``. Full covariances act on the flattened event.

References:
  Gao, R., Nijkamp, E., Kingma, D. P., Xu, Z., Dai, A. M. and Wu, Y. N. (2020).
  Flow contrastive estimation of energy-based models. CVPR.
"""

from collections.abc import Callable, Sequence
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jax.scipy.stats import multivariate_normal, norm
from jaxtyping import Float

from jebm.energy import _log_abs_dsigmoid
from jebm.types import Array, PRNGKey

__all__ = [
    "Density",
    "gaussian",
    "fit_gaussian",
    "uniform_box",
    "logit",
    "logit_gaussian",
    "logistic",
    "bernoulli",
    "DENSITIES",
    "AIS_BASES",
    "baseline_nll",
]


class Density(NamedTuple):
    """A normalised density with exact draws.

    Attributes:
      log_prob: ``x ↦ log q(x)`` for one unbatched ``x``; integrates to 1.
      sample: ``(key, n) ↦`` ``n`` exact draws, shape ``(n, *event)`` (``n`` static).
    """

    log_prob: Callable[[Array], Array]
    sample: Callable[[PRNGKey, int], Array]


def _concrete(x) -> bool:
    return not isinstance(x, jax.core.Tracer)


def gaussian(mean: Float[Array, "..."], scale_or_cov: Array | float) -> Density:
    """The Gaussian ``N(mean, Σ)``.

    Args:
      mean: the mean, of the event shape.
      scale_or_cov: a scalar or an array broadcasting to ``mean`` (standard deviations:
        a diagonal Σ), or a ``(d, d)`` covariance over the flattened event of ``d =
        mean.size`` coordinates (positive definite).

    Returns:
      A :class:`Density` (the log-density by ``jax.scipy.stats``, draws by Cholesky).

    Raises:
      ValueError: for a shape that is neither, non-positive scales, or a covariance that
        is not positive definite (checked when the arrays are concrete).

    Examples:
      >>> import jax, jax.numpy as jnp
      >>> from jebm.densities import gaussian
      >>> q = gaussian(jnp.zeros(2), 3.0)
      >>> q.sample(jax.random.key(0), 5).shape
      (5, 2)
      >>> round(float(q.log_prob(jnp.zeros(2))), 4)  # −log(2π · 9)
      -4.0351
    """
    mean = jnp.asarray(mean, jnp.float32)
    param = jnp.asarray(scale_or_cov, jnp.float32)
    event_shape, d = mean.shape, mean.size
    if param.shape == (d, d) and (d > 1 or mean.ndim == 1) and param.ndim == 2:
        if _concrete(param):
            try:
                np.linalg.cholesky(np.asarray(param, np.float64))
            except np.linalg.LinAlgError:
                raise ValueError("the Gaussian covariance is not positive definite.") from None
        chol = jnp.linalg.cholesky(param)
        flat_mean = mean.reshape(-1)

        def log_prob(x):
            return multivariate_normal.logpdf(jnp.reshape(x, -1), flat_mean, param)

        def sample(key, n):
            z = jax.random.normal(key, (n, d), jnp.float32)
            return (flat_mean[None] + z @ chol.T).reshape(n, *event_shape)

        return Density(log_prob, sample)
    try:
        scale = jnp.broadcast_to(param, event_shape)
    except ValueError:
        raise ValueError(
            f"scale_or_cov of shape {param.shape} is neither a scale broadcasting to the mean "
            f"shape {event_shape} nor a ({d}, {d}) covariance."
        ) from None
    if _concrete(scale) and not bool(jnp.all(scale > 0)):
        raise ValueError(f"Gaussian scales must be positive, got {param}.")

    def log_prob(x):
        return jnp.sum(norm.logpdf(x, mean, scale))

    def sample(key, n):
        return mean[None] + scale[None] * jax.random.normal(key, (n, *event_shape))

    return Density(log_prob, sample)


def _moments(data, ddof: int) -> tuple[np.ndarray, np.ndarray]:
    """Mean and covariance (divisor ``n − ddof``) of ``data`` flattened per row, float64."""
    if not _concrete(data):
        raise ValueError("fit_gaussian needs concrete data (fit outside jax.jit).")
    x = np.asarray(data, np.float64)
    if x.ndim < 2 or x.shape[0] < 2:
        raise ValueError(f"fit_gaussian needs a batch (n >= 2, *event), got shape {x.shape}.")
    x = x.reshape(x.shape[0], -1)
    mean = x.mean(0)
    centred = x - mean
    return mean, centred.T @ centred / (x.shape[0] - ddof)


def fit_gaussian(
    data: Float[Array, "n ..."],
    *,
    jitter: float = 0.0,
    shrinkage: float = 0.0,
    ddof: int = 0,
) -> Density:
    """The full-covariance Gaussian fitted to ``data`` by moments (in float64).

    ``Σ = (1 − λ) Σ̂ + λ diag(Σ̂) + jitter · mean(diag Σ̂) · I``, with ``Σ̂`` the sample
    covariance of the flattened rows (divisor ``n − ddof``: 0 is maximum likelihood,
    1 unbiased). Shrinkage ``λ`` and the relative ``jitter`` keep Σ positive definite when
    some coordinates are constant (image borders) or ``n`` is small.

    Args:
      data: ``(n, *event)`` concrete samples, ``n >= 2``.
      jitter: added to the diagonal, relative to the mean variance.
      shrinkage: ``λ`` in ``[0, 1]``.
      ddof: ``0`` (maximum likelihood) or ``1`` (unbiased).

    Returns:
      A :class:`Density` on the event shape of ``data``.

    Examples:
      >>> import jax
      >>> from jebm.densities import fit_gaussian
      >>> q = fit_gaussian(jax.random.normal(jax.random.key(0), (100, 2)), jitter=1e-5)
      >>> q.sample(jax.random.key(1), 3).shape
      (3, 2)
    """
    if not 0.0 <= shrinkage <= 1.0:
        raise ValueError(f"shrinkage must be in [0, 1], got {shrinkage!r}.")
    if not jitter >= 0.0:
        raise ValueError(f"jitter must be >= 0, got {jitter!r}.")
    mean, cov = _moments(data, ddof)
    cov = (1.0 - shrinkage) * cov + shrinkage * np.diag(np.diag(cov))
    cov = cov + jitter * np.trace(cov) / cov.shape[0] * np.eye(cov.shape[0])
    event_shape = tuple(np.shape(data)[1:])
    return gaussian(jnp.asarray(mean.reshape(event_shape), jnp.float32),
                    jnp.asarray(cov, jnp.float32))


def uniform_box(
    low: float | Array, high: float | Array, event_shape: Sequence[int] | None = None
) -> Density:
    """The uniform density on the box ``[low, high]``.

    Args:
      low: lower corner: a scalar (with ``event_shape``) or an array of the event shape.
      high: upper corner, likewise.
      event_shape: the event shape when ``low`` and ``high`` are scalars.

    Returns:
      A :class:`Density`: ``−log volume`` inside the box and ``−inf`` outside. AIS from
      a box estimates the partition function of ``exp(−E)`` restricted to the box.

    Examples:
      >>> import jax
      >>> from jebm.densities import uniform_box
      >>> uniform_box(0.0, 1.0, (2,)).sample(jax.random.key(0), 5).shape
      (5, 2)
    """
    low = jnp.asarray(low, jnp.float32)
    high = jnp.asarray(high, jnp.float32)
    shape = jnp.broadcast_shapes(low.shape, high.shape)
    if event_shape is not None:
        shape = jnp.broadcast_shapes(shape, tuple(int(s) for s in event_shape))
    low, high = jnp.broadcast_to(low, shape), jnp.broadcast_to(high, shape)
    if _concrete(low) and _concrete(high) and not bool(jnp.all(high > low)):
        raise ValueError(f"uniform_box needs high > low everywhere, got low={low}, high={high}.")
    log_volume = jnp.sum(jnp.log(high - low))

    def log_prob(x):
        inside = jnp.all((x >= low) & (x <= high))
        return jnp.where(inside, -log_volume, -jnp.inf)

    def sample(key, n):
        return jax.random.uniform(key, (n, *shape), jnp.float32, low, high)

    return Density(log_prob, sample)


def logit(x: Array, eps: float = 1e-6) -> Array:
    """``log x − log(1 − x)`` of ``x`` clipped to ``[eps, 1 − eps]`` (NumPy or JAX arrays).

    Args:
      x: values in ``[0, 1]``; a NumPy array is computed in NumPy (its dtype kept), any
        other input in JAX.
      eps: the clipping margin, so 0 and 1 map to finite logits.

    Returns:
      The logits, an array of the shape and kind of ``x``.

    Examples:
      >>> import numpy as np
      >>> from jebm.densities import logit
      >>> logit(np.array([0.5, 0.75]))
      array([0.        , 1.09861229])
    """
    if isinstance(x, np.ndarray):
        x = np.clip(x, eps, 1.0 - eps)
        return np.log(x) - np.log1p(-x)
    x = jnp.clip(x, eps, 1.0 - eps)
    return jnp.log(x) - jnp.log1p(-x)


def logit_gaussian(
    data: Float[Array, "n ..."], *, eps: float = 1e-6, shrinkage: float = 0.0
) -> Density:
    """A Gaussian fitted to the logits of ``data``, seen as a density on the unit box.

    With ``z = logit x ~ N(μ, Σ)`` (:func:`fit_gaussian` of the logits) and ``x = σ(z)``,
    the change of variables gives

        log q(x) = log N(logit x; μ, Σ) − Σ_j log(x_j (1 − x_j)).

    A density in the data's own coordinates: an NCE noise and a base energy that match
    image data far better than a Gaussian on ``ℝ^d``, which wastes mass outside the box.

    Args:
      data: ``(n, *event)`` data in ``[0, 1]``.
      eps: inputs are clipped to ``[eps, 1 − eps]`` (in the fit and in ``log_prob``), so
        pixels at exactly 0 or 1 have a finite log-density.
      shrinkage: as in :func:`fit_gaussian`.

    Returns:
      A :class:`Density` on ``[0, 1]^event``.
    """
    logits = fit_gaussian(logit(np.asarray(data, np.float64), eps), shrinkage=shrinkage)

    def log_prob(x):
        x = jnp.clip(x, eps, 1.0 - eps)
        log_x, log_1mx = jnp.log(x), jnp.log1p(-x)
        return logits.log_prob(log_x - log_1mx) - jnp.sum(log_x + log_1mx)

    def sample(key, n):
        return jax.nn.sigmoid(logits.sample(key, n))

    return Density(log_prob, sample)


def logistic(event_shape: Sequence[int]) -> Density:
    """I.i.d. standard logistic coordinates: the uniform density on ``[0, 1]^event`` seen in
    logit coordinates (``log q(z) = Σ log σ′(z_j)``), an AIS base for energies on the box.

    Args:
      event_shape: the event shape.

    Returns:
      A :class:`Density` on ``ℝ^event``.
    """
    event_shape = tuple(int(s) for s in event_shape)

    def log_prob(z):
        return jnp.sum(_log_abs_dsigmoid(z))

    def sample(key, n):
        u = jax.random.uniform(key, (n, *event_shape), jnp.float32, 1e-7, 1.0 - 1e-7)
        return jnp.log(u) - jnp.log1p(-u)

    return Density(log_prob, sample)


def bernoulli(probs: Array) -> Density:
    """Independent Bernoulli units: a normalised density on binary states (an AIS base).

    ``log p₀(x) = Σ x log π + (1 − x) log(1 − π)``, differentiable in ``x`` so that
    gradient kernels (Gibbs-with-Gradients) see the bridge's gradient. With
    :func:`jebm.partition.ais` and a discrete kernel factory, e.g.
    ``kernel=lambda logdensity_fn, step_size: gibbs_with_gradients(logdensity_fn)``, this
    estimates log Z of a binary EBM (``probs = 0.5`` everywhere, or the data means as
    in Salakhutdinov and Murray, 2008).

    Args:
      probs: ``π``, the probability of a 1 for each unit, in (0, 1), of the event shape.

    Returns:
      A :class:`Density` on ``{0, 1}^event`` (draws as float32 zeros and ones).

    References:
      Salakhutdinov, R. and Murray, I. (2008). On the quantitative analysis of deep
      belief networks. ICML.
    """
    probs = jnp.asarray(probs, jnp.float32)
    if not isinstance(probs, jax.core.Tracer) and not bool(jnp.all((probs > 0) & (probs < 1))):
        raise ValueError(f"bernoulli needs probs strictly inside (0, 1), got {probs}.")
    log_p, log_1mp = jnp.log(probs), jnp.log1p(-probs)

    def log_prob(x):
        return jnp.sum(x * log_p + (1.0 - x) * log_1mp)

    def sample(key, n):
        return jax.random.bernoulli(key, probs[None], (n, *probs.shape)).astype(jnp.float32)

    return Density(log_prob, sample)


# --------------------------------------------------------------- fitted to training data

# name -> fit(training points) -> Density: the tractable densities fitted to a run's
# training data, wherever one is needed (``model.base``, NCE's ``objective.noise``) and as
# the baselines a model is compared with (their test NLL and their samples). The Gaussian
# is unbiased (``ddof=1``) with a small relative jitter, so a constant pixel keeps it proper.
DENSITIES: dict[str, Callable[[Array], Density]] = {
    "gaussian": lambda points: fit_gaussian(points, jitter=1e-5, ddof=1),
    "logit_gaussian": logit_gaussian,
}

# AIS bases in logit coordinates for energies on the unit box, from the training images.
AIS_BASES: dict[str, Callable[[Array], Density]] = {
    "logit_gaussian": lambda train: fit_gaussian(logit(np.asarray(train, np.float64))),
    "uniform": lambda train: logistic(train.shape[1:]),
}


def baseline_nll(density: Density, test: Float[Array, "m ..."]) -> tuple[float, float]:
    """Test NLL of a tractable density, in nats per point, with its standard error.

    Args:
      density: e.g. ``DENSITIES["gaussian"](train)``.
      test: ``(m, *event)`` held-out points, ``m >= 2``.

    Returns:
      ``(mean, stderr)`` of ``−log q(x)`` over ``test``: the standard error is the sample
      standard deviation over ``√m``.

    Examples:
      >>> import jax
      >>> from jebm.densities import baseline_nll, gaussian
      >>> x = jax.random.normal(jax.random.key(0), (1000, 2))
      >>> nll, se = baseline_nll(gaussian(jax.numpy.zeros(2), 1.0), x)
      >>> abs(nll - 2.8379) < 5 * se   # E[−log N(x; 0, I)] = log 2π + 1 in 2-D
      True
    """
    values = np.asarray(jax.jit(jax.vmap(density.log_prob))(test), np.float64)
    if values.shape[0] < 2:
        raise ValueError(f"baseline_nll needs >= 2 test points, got {values.shape[0]}.")
    return float(-values.mean()), float(values.std(ddof=1) / np.sqrt(values.shape[0]))
