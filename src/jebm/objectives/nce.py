"""Noise-contrastive estimation: learn an energy *and* its log-normaliser by classification.

**Parameters.** NCE fits a normalised model, so the normaliser is a parameter:

    params = {"energy": energy_params, "log_z": c},   log p_m(x) = −E(energy_params, x) − c.

The model integrates to one when ``c = log Z(energy_params) = log ∫ exp(−E)``; at
the NCE optimum (with enough data and a flexible enough model) the learned ``c``
converges to exactly that, so ``params["log_z"]`` is an estimate of ``log Z``.
:func:`nce_params` builds this dictionary.

**Loss.** With ``n`` data points ``x`` and ``T = ν n`` noise points ``y ~ p_n`` and the
log-ratio ``G(u) = log p_m(u) − log p_n(u)``, a logistic classifier with logit
``G(u) − log ν`` separates data (label 1) from noise (label 0):

    loss = (1/n) [ Σ_data BCE(G(x) − log ν, 1) + Σ_noise BCE(G(y) − log ν, 0) ],

the negative of Gutmann & Hyvärinen's ``J_T`` (``BCE`` is
``optax.losses.sigmoid_binary_cross_entropy``).

**Noise.** Any object with ``sample(key, n) -> (n, *event)`` and ``log_prob(x) ->
scalar`` for one unbatched ``x`` (e.g. a :class:`NoiseDistribution`). The default is
a full-covariance Gaussian fitted to the data, :func:`fit_gaussian_noise`; its log-pdf
is ``jax.scipy.stats.multivariate_normal.logpdf``.

References:
  Gutmann, M. and Hyvärinen, A. (2010). Noise-contrastive estimation: a new
  estimation principle for unnormalized statistical models. AISTATS.

  Gutmann, M. U. and Hyvärinen, A. (2012). Noise-contrastive estimation of
  unnormalized statistical models, with applications to natural image statistics.
  JMLR 13, 307–361. (The ratio ν and the asymptotic variance.)
"""

from collections.abc import Callable
from typing import NamedTuple

import jax
import jax.numpy as jnp
import optax
from jax.scipy.stats import multivariate_normal

from jebm.objectives.base import Objective
from jebm.types import Array, ArrayTree, EnergyFn, PRNGKey, PyTree

__all__ = [
    "NoiseDistribution",
    "GaussianNoise",
    "fit_gaussian_noise",
    "nce_params",
    "nce_loss",
    "nce",
]


class NoiseDistribution(NamedTuple):
    """A noise distribution from two functions: ``sample(key, n)`` and ``log_prob(x)``."""

    sample: Callable[[PRNGKey, int], ArrayTree]
    log_prob: Callable[[ArrayTree], Array]  # one unbatched x -> scalar


class GaussianNoise(NamedTuple):
    """A full-covariance Gaussian on flattened events; a pytree of arrays.

    ``mean`` has the event shape; ``cov`` is ``(d, d)`` with ``d = mean.size``.
    """

    mean: Array
    cov: Array

    def sample(self, key: PRNGKey, n: int) -> Array:
        """``n`` draws, shape ``(n, *event)``."""
        chol = jnp.linalg.cholesky(self.cov)
        z = jax.random.normal(key, (n, self.mean.size), self.mean.dtype)
        flat = self.mean.reshape(1, -1) + z @ chol.T
        return flat.reshape((n, *self.mean.shape))

    def log_prob(self, x: Array) -> Array:
        """Log-density of one unbatched ``x`` of the event shape."""
        return multivariate_normal.logpdf(x.reshape(-1), self.mean.reshape(-1), self.cov)


def fit_gaussian_noise(data: Array, *, jitter: float = 1e-5) -> GaussianNoise:
    """Fit a full-covariance Gaussian to ``data`` ``(n, *event)`` by moments.

    Args:
      data: samples, flattened per example to ``d`` coordinates.
      jitter: added to the covariance's diagonal, relative to its mean variance,
        so that constant coordinates (e.g. image borders) keep it positive definite.

    Returns:
      A :class:`GaussianNoise` with the sample mean and the unbiased sample
      covariance (plus jitter).

    Examples:
      >>> import jax
      >>> from jebm.objectives import fit_gaussian_noise
      >>> noise = fit_gaussian_noise(jax.random.normal(jax.random.key(0), (100, 2)))
      >>> noise.sample(jax.random.key(1), 3).shape
      (3, 2)
      >>> noise.log_prob(noise.mean).shape
      ()
    """
    data = jnp.asarray(data)
    if data.ndim < 2 or data.shape[0] < 2:
        raise ValueError(
            f"fit_gaussian_noise needs a batch (n >= 2, *event), got shape {data.shape}."
        )
    flat = data.reshape(data.shape[0], -1)
    d = flat.shape[1]
    cov = jnp.atleast_2d(jnp.cov(flat, rowvar=False))
    cov = cov + jitter * jnp.trace(cov) / d * jnp.eye(d, dtype=cov.dtype)
    return GaussianNoise(jnp.mean(data, axis=0), cov)


def nce_params(energy_params: PyTree, log_z: float | Array = 0.0) -> dict:
    """The NCE parameter dictionary ``{"energy": energy_params, "log_z": c}``."""
    return {"energy": energy_params, "log_z": jnp.asarray(log_z, jnp.float32)}


def _num_noise(n: int, noise_ratio: float) -> int:
    num = round(noise_ratio * n)
    if num < 1 or abs(num - noise_ratio * n) > 1e-6 * max(1.0, noise_ratio * n):
        raise ValueError(
            f"noise_ratio * batch size must be a positive integer (the number of noise "
            f"samples), got {noise_ratio} * {n}."
        )
    return num


def nce_loss(
    params: dict,
    key: PRNGKey,
    batch: ArrayTree,
    *,
    energy_fn: EnergyFn,
    noise,
    noise_ratio: float = 1.0,
) -> tuple[Array, dict[str, Array]]:
    """Noise-contrastive estimation loss (data vs ``noise_ratio · n`` noise samples).

    Args:
      params: ``{"energy": energy_params, "log_z": c}`` (see :func:`nce_params`);
        the model is ``log p_m(x) = −E(energy_params, x) − c``.
      key: PRNG key for the noise samples.
      batch: data ``(n, *event)``.
      energy_fn: ``energy_fn(energy_params, x) -> scalar``.
      noise: an object with ``sample(key, n)`` and ``log_prob(x)`` (one ``x``).
      noise_ratio: ``ν``, noise samples per data point (static; ``ν n`` an integer).

    Returns:
      ``(loss, metrics)`` with ``loss``, ``log_z`` (the current ``c``) and
      ``accuracy`` (of the classifier on data and noise together).

    Examples:
      >>> import jax, jax.numpy as jnp
      >>> from jebm.objectives import fit_gaussian_noise, nce_loss, nce_params
      >>> data = jax.random.normal(jax.random.key(0), (64, 2))
      >>> loss, metrics = nce_loss(
      ...     nce_params(1.0), jax.random.key(1), data,
      ...     energy_fn=lambda a, x: 0.5 * a * jnp.sum(x**2),
      ...     noise=fit_gaussian_noise(data), noise_ratio=2.0)
      >>> loss.shape
      ()

    References:
      Gutmann and Hyvärinen (2010); Gutmann and Hyvärinen (2012) (the ratio ν).
    """
    if not isinstance(params, dict) or set(params) != {"energy", "log_z"}:
        raise ValueError(
            "nce_loss params must be {'energy': energy_params, 'log_z': scalar} "
            f"(see nce_params), got {type(params).__name__} "
            f"{sorted(params) if isinstance(params, dict) else ''}."
        )
    n = jax.tree.leaves(batch)[0].shape[0]
    num_noise = _num_noise(n, noise_ratio)
    log_nu = jnp.log(num_noise / n)
    noise_samples = noise.sample(key, num_noise)

    def logit(x):
        log_model = -energy_fn(params["energy"], x) - params["log_z"]
        return log_model - noise.log_prob(x) - log_nu

    logits_data = jax.vmap(logit)(batch)
    logits_noise = jax.vmap(logit)(noise_samples)
    bce = optax.losses.sigmoid_binary_cross_entropy
    loss = (
        jnp.sum(bce(logits_data, jnp.ones_like(logits_data)))
        + jnp.sum(bce(logits_noise, jnp.zeros_like(logits_noise)))
    ) / n
    correct = jnp.sum(logits_data > 0) + jnp.sum(logits_noise <= 0)
    metrics = {
        "loss": loss,
        "log_z": jnp.asarray(params["log_z"]),
        "accuracy": correct / (n + num_noise),
    }
    return loss, metrics


def nce(energy_fn: EnergyFn, noise=None, noise_ratio: float = 1.0) -> Objective:
    """NCE as an :class:`~jebm.objectives.base.Objective`; see :func:`nce_loss`.

    Args:
      energy_fn: ``energy_fn(energy_params, x) -> scalar``.
      noise: the noise distribution. ``None`` fits a full-covariance Gaussian
        (:func:`fit_gaussian_noise`) to the batch given to ``init`` and carries it
        in the objective state; to fit on the whole data set instead, pass
        ``fit_gaussian_noise(data)``.
      noise_ratio: ``ν``, noise samples per data point.

    Returns:
      An :class:`~jebm.objectives.base.Objective` over ``params = {"energy": ...,
      "log_z": ...}``. Its state is the fitted :class:`GaussianNoise` when
      ``noise is None`` and ``()`` otherwise; it never changes during training.

    Examples:
      >>> import jax, jax.numpy as jnp
      >>> from jebm.objectives import nce, nce_params
      >>> data = jax.random.normal(jax.random.key(0), (64, 2))
      >>> objective = nce(lambda a, x: 0.5 * a * jnp.sum(x**2))
      >>> state = objective.init(jax.random.key(1), data)
      >>> loss, (metrics, state) = objective.loss(nce_params(1.0), jax.random.key(2), data, state)
    """
    if not noise_ratio > 0:
        raise ValueError(f"noise_ratio must be positive, got {noise_ratio!r}.")
    if noise is not None and not (hasattr(noise, "sample") and hasattr(noise, "log_prob")):
        raise ValueError(f"noise needs sample(key, n) and log_prob(x) methods, got {noise!r}.")

    def init(key: PRNGKey, batch: Array):
        return fit_gaussian_noise(batch) if noise is None else ()

    def loss(params, key, batch, state):
        dist = state if noise is None else noise
        value, metrics = nce_loss(
            params, key, batch, energy_fn=energy_fn, noise=dist, noise_ratio=noise_ratio
        )
        return value, (metrics, state)

    return Objective(init=init, loss=loss)
