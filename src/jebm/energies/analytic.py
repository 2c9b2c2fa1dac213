"""Energies with an exact partition function: test oracles and benchmark targets.

Each constructor returns an :class:`AnalyticEnergy`: a pure ``energy_fn(params, x)``
(density ∝ exp(−E), one unbatched ``x`` of shape ``event_shape``), its ``params``,
the exact ``log_z`` and an exact sampler ``sample(key, n) -> (n, *event_shape)``.
The energies are deliberately *unnormalised* (``log_z ≠ 0``) so that an estimator
that forgets Z is caught.
"""

from collections.abc import Callable
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from jebm.densities import Density
from jebm.energy import logdensity_fn
from jebm.types import Array, EnergyFn, PRNGKey, PyTree

__all__ = ["AnalyticEnergy", "gaussian", "gaussian_mixture", "check_event_shape"]


class AnalyticEnergy(NamedTuple):
    """An energy with an exact partition function and exact draws.

    Attributes:
      energy_fn: ``energy_fn(params, x) -> scalar`` for one ``x`` of ``event_shape``.
      params: its parameters.
      log_z: the exact ``log Z``.
      sample: ``sample(key, n) -> (n, *event_shape)`` exact draws.
      event_shape: the shape of one point.
    """

    energy_fn: EnergyFn
    params: PyTree
    log_z: Array
    sample: Callable[[PRNGKey, int], Array]
    event_shape: tuple[int, ...]

    @property
    def density(self) -> Density:
        """The normalised density ``exp(−E − log Z)`` with its exact draws."""
        return Density(logdensity_fn(self.energy_fn, self.params, self.log_z), self.sample)


def check_event_shape(x: Array, event_shape: tuple[int, ...], name: str) -> None:
    """Raise a ``ValueError`` naming both shapes when ``x`` is not one event.

    Args:
      x: the input an energy received.
      event_shape: the shape of one unbatched event.
      name: what to call the energy in the message.

    Returns:
      ``None``; the check runs on static shapes, so it costs nothing under ``jit``.

    Raises:
      ValueError: if ``x.shape`` differs from ``event_shape`` (e.g. a batch was passed).
    """
    if tuple(x.shape) != tuple(event_shape):
        raise ValueError(
            f"{name} expects one unbatched x of shape {tuple(event_shape)}, got {tuple(x.shape)}. "
            "Batch with jax.vmap over axis 0."
        )


def gaussian(mean: Array, cov: Array) -> AnalyticEnergy:
    """Full-covariance Gaussian: ``E(x) = ½ (x − μ)ᵀ Σ⁻¹ (x − μ)``.

    ``log Z = (d/2) log 2π + ½ log det Σ``. ``params`` holds ``mean`` and the
    precision ``Σ⁻¹``.

    Args:
      mean: ``(d,)`` the mean ``μ``.
      cov: ``(d, d)`` the covariance ``Σ``, concrete and positive definite.

    Returns:
      An :class:`AnalyticEnergy` on event shape ``(d,)``, params
      ``{"mean", "precision"}``, with exact draws by Cholesky.

    Raises:
      ValueError: if ``cov`` is not ``(d, d)``, or (``numpy.linalg.LinAlgError``) not
        positive definite.

    Examples:
      >>> import jax.numpy as jnp
      >>> from jebm.energies.analytic import gaussian
      >>> target = gaussian(jnp.zeros(2), jnp.eye(2))
      >>> round(float(target.log_z), 4)  # log 2π
      1.8379
    """
    mean = jnp.asarray(mean, jnp.float32)
    cov = jnp.asarray(cov, jnp.float32)
    (d,) = mean.shape
    if cov.shape != (d, d):
        raise ValueError(f"cov must have shape {(d, d)} to match mean, got {cov.shape}.")
    chol = np.linalg.cholesky(np.asarray(cov, np.float64))  # raises if not positive definite
    precision = jnp.asarray(np.linalg.inv(np.asarray(cov, np.float64)), jnp.float32)
    log_z = 0.5 * d * np.log(2 * np.pi) + np.sum(np.log(np.diag(chol)))

    def energy_fn(params, x):
        check_event_shape(x, (d,), "gaussian energy")
        diff = x - params["mean"]
        return 0.5 * diff @ params["precision"] @ diff

    def sample(key, n):
        return mean[None, :] + jax.random.normal(key, (n, d)) @ jnp.asarray(chol, jnp.float32).T

    params = {"mean": mean, "precision": precision}
    return AnalyticEnergy(energy_fn, params, jnp.float32(log_z), sample, (d,))


def gaussian_mixture(
    means: Array, scales: Array | float, weights: Array | None = None
) -> AnalyticEnergy:
    """Mixture of isotropic Gaussians in any dimension.

    ``p(x) = Σₖ wₖ N(x; μₖ, sₖ²I)``, written with the unnormalised energy
    ``E(x) = −log Σₖ wₖ sₖ⁻ᵈ exp(−‖x − μₖ‖² / (2sₖ²))``, so ``log Z = (d/2) log 2π``
    and ``wₖ`` is exactly the probability mass of component ``k``.

    Args:
      means: ``(K, d)`` component means.
      scales: standard deviations, a scalar or ``(K,)``.
      weights: ``(K,)`` mixture weights (normalised here); uniform by default.
    """
    means = jnp.asarray(means, jnp.float32)
    k, d = means.shape
    scales = jnp.broadcast_to(jnp.asarray(scales, jnp.float32), (k,))
    weights = jnp.full((k,), 1.0 / k) if weights is None else jnp.asarray(weights, jnp.float32)
    if weights.shape != (k,) or bool(jnp.any(weights < 0)):
        raise ValueError(f"weights must be {k} non-negative numbers, got {weights}.")
    log_w = jnp.log(weights / weights.sum())
    log_z = jnp.float32(0.5 * d * np.log(2 * np.pi))

    def energy_fn(params, x):
        check_event_shape(x, (d,), "gaussian_mixture energy")
        sq = jnp.sum((x[None, :] - params["means"]) ** 2, axis=-1)
        log_bumps = -0.5 * sq / params["scales"] ** 2 - d * jnp.log(params["scales"])
        return -jax.nn.logsumexp(params["log_weights"] + log_bumps)

    def sample(key, n):
        k_comp, k_noise = jax.random.split(key)
        comp = jax.random.categorical(k_comp, log_w, shape=(n,))
        return means[comp] + scales[comp, None] * jax.random.normal(k_noise, (n, d))

    params = {"means": means, "scales": scales, "log_weights": log_w}
    return AnalyticEnergy(energy_fn, params, log_z, sample, (d,))
