"""Tractable densities: normalised log-densities and exact draws against closed forms."""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy.stats import multivariate_normal

from jebm import densities
from jebm.densities import gaussian as gaussian_base
from jebm.densities import uniform_box


@pytest.mark.parametrize(
    "scale_or_cov, cov",
    [
        (2.0, 4.0 * np.eye(3)),
        (np.array([0.5, 1.0, 2.0]), np.diag([0.25, 1.0, 4.0])),
        (np.array([[2.0, 0.5, 0.0], [0.5, 1.0, 0.3], [0.0, 0.3, 1.5]]),) * 2,
    ],
    ids=["isotropic", "diagonal", "full"],
)
def test_gaussian_is_normalised_and_samples_exactly(scale_or_cov, cov):
    mean = np.array([1.0, -2.0, 0.5])
    base = gaussian_base(mean, scale_or_cov)
    x = np.array([0.3, -1.0, 2.0])
    diff = x - mean
    expected = -0.5 * (diff @ np.linalg.solve(cov, diff) + np.log(np.linalg.det(2 * np.pi * cov)))
    np.testing.assert_allclose(base.log_prob(jnp.asarray(x, jnp.float32)), expected, rtol=1e-5)
    draws = np.asarray(base.sample(jax.random.key(0), 20000), np.float64)
    # Mean: sd sqrt(Σᵢᵢ/n) ≤ 0.015; covariance entries: sd ≤ sqrt(2)·4/sqrt(n) = 0.04; 4 sd.
    np.testing.assert_allclose(draws.mean(0), mean, atol=4 * np.sqrt(4.0 / 20000))
    np.testing.assert_allclose(np.cov(draws.T), cov, atol=4 * np.sqrt(2) * 4.0 / np.sqrt(20000))


def test_uniform_box():
    base = uniform_box(jnp.array([-1.0, 0.0]), jnp.array([3.0, 0.5]))
    np.testing.assert_allclose(base.log_prob(jnp.array([0.0, 0.2])), -np.log(4.0 * 0.5), rtol=1e-6)
    assert base.log_prob(jnp.array([0.0, 0.6])) == -jnp.inf
    draws = base.sample(jax.random.key(0), 1000)
    assert draws.shape == (1000, 2)
    assert bool(jnp.all((draws >= jnp.array([[-1.0, 0.0]])) & (draws <= jnp.array([[3.0, 0.5]]))))


def test_bad_parameters_are_refused():
    with pytest.raises(ValueError, match="positive"):
        gaussian_base(jnp.zeros(2), jnp.array([1.0, -1.0]))
    with pytest.raises(ValueError, match="positive definite"):
        gaussian_base(jnp.zeros(2), jnp.array([[1.0, 2.0], [2.0, 1.0]]))
    with pytest.raises(ValueError, match="high > low"):
        uniform_box(jnp.zeros(2), jnp.array([1.0, 0.0]))
    with pytest.raises(ValueError, match="n >= 2"):
        densities.fit_gaussian(jnp.zeros((1, 3)))
    with pytest.raises(ValueError, match="shrinkage"):
        densities.fit_gaussian(jnp.zeros((5, 3)), shrinkage=2.0)


def test_fit_gaussian_matches_numpy_moments_with_jitter_and_shrinkage():
    x = np.random.default_rng(0).normal(size=(50, 2, 2)) @ np.array([[1.0, 0.5], [0.0, 1.0]])
    q = densities.fit_gaussian(x, ddof=1, jitter=0.1, shrinkage=0.25)
    flat = x.reshape(50, -1)
    cov = np.cov(flat, rowvar=False)
    cov = 0.75 * cov + 0.25 * np.diag(np.diag(cov))
    cov = cov + 0.1 * np.trace(cov) / 4 * np.eye(4)
    point = x[0]
    diff = point.reshape(-1) - flat.mean(0)
    expected = -0.5 * (diff @ np.linalg.solve(cov, diff) + np.log(np.linalg.det(2 * np.pi * cov)))
    # float32 log-density of a float64 fit: 1e-5 relative.
    np.testing.assert_allclose(q.log_prob(jnp.asarray(point, jnp.float32)), expected, rtol=1e-5)
    assert q.sample(jax.random.key(0), 3).shape == (3, 2, 2)


def test_logit_gaussian_is_the_fitted_logit_gaussian_on_the_box(key):
    # The change of variables: q(x) = N(logit x) / (x (1 − x)) per coordinate, so q
    # integrates to 1 over the box (quadrature, 400² midpoints; the density vanishes
    # at the edges for these logits, sd ≈ 0.7) and equals the logit-space base times
    # the Jacobian at any x.
    x_train = jax.nn.sigmoid(jnp.array([[0.3, -0.5]]) + 0.7 * jax.random.normal(key, (500, 2)))
    q = densities.logit_gaussian(x_train)
    base = densities.fit_gaussian(densities.logit(np.asarray(x_train, np.float64)))
    u = (jnp.arange(400) + 0.5) / 400
    grid = jnp.stack(jnp.meshgrid(u, u, indexing="ij"), -1).reshape(-1, 2)
    mass = jnp.sum(jnp.exp(jax.vmap(q.log_prob)(grid))) / 400**2
    assert float(mass) == pytest.approx(1.0, abs=2e-3)
    x = x_train[:5]
    z = jnp.log(x) - jnp.log1p(-x)
    expected = jax.vmap(base.log_prob)(z) - jnp.sum(jnp.log(x * (1 - x)), -1)
    np.testing.assert_allclose(jax.vmap(q.log_prob)(x), expected, rtol=1e-5)
    draws = q.sample(jax.random.key(3), 4000)
    assert draws.shape == (4000, 2) and bool(jnp.all((draws > 0) & (draws < 1)))
    # the draws' logits have the fitted mean: within 4 standard errors (sd ≈ 0.7)
    zd = jnp.log(draws) - jnp.log1p(-draws)
    zt = jnp.log(x_train) - jnp.log1p(-x_train)
    assert np.all(np.abs(np.asarray(zd.mean(0) - zt.mean(0))) < 4 * 0.7 / np.sqrt(4000))
    # pixels at exactly 0 or 1 are clipped, not infinite
    assert bool(jnp.isfinite(q.log_prob(jnp.array([0.0, 1.0]))))


def test_gaussian_baseline_matches_scipy():
    """The one Gaussian baseline: unbiased covariance plus a 1e-5 relative jitter."""
    rng = np.random.default_rng(0)
    train = rng.uniform(size=(300, 2, 2)).astype(np.float32)
    test = rng.uniform(size=(50, 2, 2)).astype(np.float32)
    flat = train.reshape(300, 4).astype(np.float64)
    cov = np.cov(flat.T, ddof=1)
    cov += 1e-5 * np.trace(cov) / 4 * np.eye(4)
    nll, stderr = densities.baseline_nll(densities.DENSITIES["gaussian"](train), test)
    logp = multivariate_normal(flat.mean(0), cov).logpdf(test.reshape(50, 4))
    assert nll == pytest.approx(-logp.mean(), abs=1e-4)  # float32 log-density
    assert stderr == pytest.approx(logp.std(ddof=1) / math.sqrt(50), rel=1e-3)
    with pytest.raises(ValueError, match=">= 2 test points"):
        densities.baseline_nll(densities.DENSITIES["gaussian"](train), test[:1])


def test_gaussian_baseline_nll_on_digits_is_about_minus_50_nats():
    from jebm.datasets import digits

    split = digits.load_digits()
    k_train, k_test = jax.random.split(jax.random.key(0))
    train = digits.dequantize(k_train, split.train_counts)
    test = digits.dequantize(k_test, split.test_counts)
    nll, stderr = densities.baseline_nll(densities.DENSITIES["gaussian"](train), test)
    # About -49 to -50 nats per image for this recipe; over the 359 test images the
    # standard error is ~1.3 nats, so the estimate falls within 4 of them of -49.5.
    assert 0.5 < stderr < 3.0
    assert abs(nll - (-49.5)) < 4 * stderr
    assert digits.DISCRETE_OFFSET == pytest.approx(64 * math.log(17))
