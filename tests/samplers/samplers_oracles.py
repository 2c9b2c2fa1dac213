"""Shared oracles for the sampler tests: targets with known moments and Monte Carlo checks.

Standard errors come from *independent chains*: each chain gives one estimate of a
moment, and the spread of those C estimates gives the standard error of their mean
(std / √C) with no autocorrelation model needed, because chains are independent.
"""

import jax
import jax.numpy as jnp
import numpy as np

from jebm.energies import gaussian
from jebm.energy import logdensity_fn

__all__ = [
    "correlated_gaussian",
    "chain_moments",
    "assert_moments",
    "initial_positions",
    "moment_z",
]


def correlated_gaussian(dim: int):
    """A correlated Gaussian with non-zero mean: (AnalyticEnergy, logdensity, mean, cov)."""
    if dim == 2:
        mean = np.array([1.0, -0.5])
        cov = np.array([[1.0, 0.6], [0.6, 0.5]])
    else:
        rng = np.random.default_rng(dim)
        q, _ = np.linalg.qr(rng.normal(size=(dim, dim)))
        eig = np.geomspace(0.3, 2.0, dim)  # condition number ~7
        cov = (q * eig) @ q.T
        mean = rng.normal(size=dim)
    target = gaussian(mean, cov)
    return target, logdensity_fn(target.energy_fn, target.params), mean, cov


def chain_moments(trace, mean):
    """Per-chain mean (C, d) and second moment about the *true* mean (C, d, d).

    About the true mean, E[(x − μ)(x − μ)ᵀ] = Σ exactly, so the per-chain estimate
    is unbiased at stationarity (no 1/n correction to worry about).
    """
    x = np.asarray(trace, np.float64)  # (T, C, d)
    centred = x - mean
    return x.mean(axis=0), np.einsum("tci,tcj->cij", centred, centred) / x.shape[0]


def _estimates(trace, mean):
    """Grand estimates of mean and covariance and their between-chain standard errors."""
    chain_mean, chain_cov = chain_moments(trace, mean)
    c = chain_mean.shape[0]
    est = np.concatenate([chain_mean.mean(0), chain_cov.mean(0).ravel()])
    se = np.concatenate([chain_mean.std(0, ddof=1), chain_cov.std(0, ddof=1).ravel()]) / np.sqrt(c)
    return est, se


def assert_moments(trace, mean, cov, *, num_se=5.0, max_se=None):
    """Mean and covariance within ``num_se`` between-chain standard errors.

    ``max_se`` (absolute) guards against a vacuous test: the standard error itself
    must be small enough for a real bias to show.
    """
    est, se = _estimates(trace, mean)
    truth = np.concatenate([mean, np.asarray(cov).ravel()])
    z = np.abs(est - truth) / se
    assert np.all(z < num_se), f"moments off by {z.max():.2f} SE; est {est}, truth {truth}"
    if max_se is not None:
        assert np.all(se < max_se), f"standard errors {se.max():.3g} too large for the test"
    return est, se


def initial_positions(target, key, num_chains):
    """Exact draws from a ``gaussian`` target, (num_chains, d).

    (Drawn here rather than with ``target.sample``, which adds a (d,) mean to an
    (n, d) array and so trips ``jax_numpy_rank_promotion="raise"``.)
    """
    mean = target.params["mean"]
    chol = jnp.linalg.cholesky(jnp.linalg.inv(target.params["precision"]))
    z = jax.random.normal(key, (num_chains, mean.shape[0]))
    return mean[None, :] + z @ chol.T


def moment_z(trace, mean, cov):
    """|estimate − truth| / standard error for every mean and covariance entry."""
    est, se = _estimates(trace, mean)
    truth = np.concatenate([mean, np.asarray(cov).ravel()])
    return np.abs(est - truth) / se
