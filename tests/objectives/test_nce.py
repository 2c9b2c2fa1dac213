"""NCE on an unnormalised Gaussian with known log Z.

Convention under test: ``log p_m(x) = −E(x) − c`` with ``c = params["log_z"]``, so the
NCE optimum is ``c* = log Z = log ∫ exp(−E)`` (``TARGET.log_z``).

Standard error of ``ĉ`` with the energy fixed at the truth (Gutmann & Hyvärinen 2012,
Theorem 3, one parameter with ``∇_c log p_m = −1``): with
``P_ν(x) = ν p_n(x) / (p_d(x) + ν p_n(x))``, ``m = −E_d[P_ν]`` and ``I = E_d[P_ν]``,

    n · Var(ĉ) → Σ = I⁻¹ − (1 + 1/ν) I⁻¹ m m I⁻¹ = 1/E_d[P_ν] − 1 − 1/ν,

which is 0 when the noise equals the data (the classifier is then constant).
``E_d[P_ν]`` is computed here by Monte Carlo over 2·10⁵ exact draws.
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jebm import densities
from jebm.energies.analytic import gaussian
from jebm.objectives import nce, nce_loss, nce_params

TARGET = gaussian(jnp.array([0.5, -1.0]), jnp.array([[1.0, 0.5], [0.5, 2.0]]))
ENERGY = TARGET.energy_fn
BROAD_COV = 4.0 * np.eye(2)
BROAD = densities.gaussian(jnp.zeros(2), BROAD_COV)


def fitted_noise():
    return densities.fit_gaussian(TARGET.sample(jax.random.key(100), 4000), ddof=1)  # independent


def fit_log_z(key, data, noise, noise_ratio, iterations=12):
    """Minimise the NCE loss over c alone (energy at the truth): Newton on a convex 1-D loss."""

    def loss(c):
        return nce_loss(
            nce_params(TARGET.params, c),
            key,
            data,
            energy_fn=ENERGY,
            noise=noise,
            noise_ratio=noise_ratio,
        )[0]

    def newton(c, _):
        return c - jax.grad(loss)(c) / jax.grad(jax.grad(loss))(c), None

    return jax.lax.scan(newton, jnp.float32(0.0), None, length=iterations)[0]


def asymptotic_sd(noise, noise_ratio, n):
    x = TARGET.sample(jax.random.key(101), 200_000)
    log_pd = -jax.vmap(ENERGY, in_axes=(None, 0))(TARGET.params, x) - TARGET.log_z
    log_pn = jax.vmap(noise.log_prob)(x)
    p_nu = jax.nn.sigmoid(jnp.log(noise_ratio) + log_pn - log_pd)
    sigma = 1.0 / float(jnp.mean(p_nu)) - 1.0 - 1.0 / noise_ratio
    return np.sqrt(max(sigma, 0.0) / n)


@pytest.mark.parametrize(
    "noise_name, noise_ratio", [("fitted", 1.0), ("broad", 1.0), ("broad", 4.0)]
)
def test_nce_recovers_log_z(noise_name, noise_ratio):
    noise = fitted_noise() if noise_name == "fitted" else BROAD
    n = 4000
    data = TARGET.sample(jax.random.key(1), n)
    c_hat = jax.jit(lambda k, d: fit_log_z(k, d, noise, noise_ratio))(jax.random.key(2), data)
    sd = asymptotic_sd(noise, noise_ratio, n)
    # ĉ is asymptotically N(log Z, Σ/n); 4 sd (the float32 solve is exact to ~1e-6,
    # which the 1e-5 floor covers when the noise is close to the data and sd is small).
    assert abs(float(c_hat) - float(TARGET.log_z)) <= 4 * sd + 1e-5, (c_hat, TARGET.log_z, sd)
    assert sd > 0


@pytest.mark.slow
def test_nce_log_z_error_matches_asymptotic_variance():
    # 64 independent fits (data and noise draws) with the broad noise: the mean error is
    # within 4 s.e. of 0, and the sample sd matches √(Σ/n) to 4 × its relative sd
    # 1/√(2·63) ≈ 0.089.
    n, noise_ratio, reps = 1000, 1.0, 64

    def one(k):
        k_data, k_noise = jax.random.split(k)
        data = TARGET.sample(k_data, n)
        return fit_log_z(k_noise, data, BROAD, noise_ratio) - TARGET.log_z

    errors = np.asarray(jax.jit(jax.vmap(one))(jax.random.split(jax.random.key(3), reps)))
    sd = asymptotic_sd(BROAD, noise_ratio, n)
    assert abs(errors.mean()) <= 4 * sd / np.sqrt(reps)
    assert abs(errors.std(ddof=1) / sd - 1.0) <= 4 / np.sqrt(2 * (reps - 1))


def test_nce_sign():
    # Same c = log Z, same data and noise: with −E the model puts mass far from the data,
    # the classifier is worse, and the loss grows. 16 keys, one-sided 5 s.e. test.
    noise = fitted_noise()

    def diff(k):
        k_data, k_loss = jax.random.split(k)
        data = TARGET.sample(k_data, 256)
        params = nce_params(TARGET.params, TARGET.log_z)
        opts = dict(noise=noise, noise_ratio=2.0)
        true = nce_loss(params, k_loss, data, energy_fn=ENERGY, **opts)[0]
        flip = nce_loss(params, k_loss, data, energy_fn=lambda p, x: -ENERGY(p, x), **opts)[0]
        return flip - true

    diffs = np.asarray(jax.jit(jax.vmap(diff))(jax.random.split(jax.random.key(4), 16)))
    assert diffs.mean() > 5 * diffs.std(ddof=1) / np.sqrt(16), diffs


def test_nce_loss_closed_form(key):
    # Oracle from the definition with ν = 2: logits G − log ν, G = −E − c − log p_n.
    data = TARGET.sample(jax.random.key(5), 8)
    noise = BROAD
    params = nce_params(TARGET.params, 1.3)
    loss, metrics = nce_loss(params, key, data, energy_fn=ENERGY, noise=noise, noise_ratio=2.0)
    y = BROAD.sample(key, 16)

    def log_ratio(x):
        x64 = np.asarray(x, np.float64)
        cov = BROAD_COV
        log_pn = -0.5 * np.einsum("ni,ij,nj->n", x64, np.linalg.inv(cov), x64) - 0.5 * np.log(
            np.linalg.det(2 * np.pi * cov)
        )
        energy = np.asarray(jax.vmap(ENERGY, in_axes=(None, 0))(TARGET.params, x), np.float64)
        return -energy - 1.3 - log_pn - np.log(2.0)

    expected = (
        np.sum(np.logaddexp(0.0, -log_ratio(data))) + np.sum(np.logaddexp(0.0, log_ratio(y)))
    ) / 8
    # float32 on O(10) terms: relative rounding ≲ 1e-6.
    np.testing.assert_allclose(loss, expected, rtol=1e-5)
    assert float(metrics["log_z"]) == pytest.approx(1.3)


def test_nce_objective_is_stateless_with_a_given_noise(key):
    data = TARGET.sample(jax.random.key(9), 256)
    objective = nce(ENERGY, fitted_noise(), noise_ratio=0.5)
    state = objective.init(key, data)
    assert state == ()
    params = nce_params(TARGET.params, TARGET.log_z)
    loss, (metrics, new_state) = jax.jit(objective.loss)(params, key, data, state)
    assert np.isfinite(float(loss)) and new_state == ()


def test_nce_options_are_checked(key):
    data = jnp.zeros((10, 2))
    with pytest.raises(ValueError, match="log_z"):
        nce_loss(TARGET.params, key, data, energy_fn=ENERGY, noise=BROAD)
    with pytest.raises(ValueError, match="noise_ratio"):
        nce_loss(
            nce_params(TARGET.params), key, data, energy_fn=ENERGY, noise=BROAD, noise_ratio=0.25
        )
    with pytest.raises(ValueError, match="noise_ratio"):
        nce(ENERGY, BROAD, noise_ratio=0.0)
    with pytest.raises(ValueError, match="Density"):
        nce(ENERGY, noise="gaussian")
