"""BAOAB underdamped Langevin: the exact finite-step stationary law on a Gaussian.

Oracle (derived in ``jebm.samplers.underdamped``): for log p = −(x − μ)ᵀP(x − μ)/2 the
BAOAB chain at step h has Cov(x) = P⁻¹ exactly and Cov(p) = I − h²P/4, with x and p
uncorrelated. The first test checks that derivation against the discrete Lyapunov
equation of the linear map (no Monte Carlo); the second checks the sampler against it.
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import scipy.linalg
from samplers_oracles import assert_moments, correlated_gaussian, initial_positions

from jebm.samplers import run_chains, underdamped_langevin


def _baoab_map(h, precision, gamma):
    """BAOAB on a Gaussian as z′ = A z + B ξ for z = (x − μ, p)."""
    d = precision.shape[0]
    eye, zero = np.eye(d), np.zeros((d, d))
    kick = np.block([[eye, zero], [-0.5 * h * precision, eye]])
    drift = np.block([[eye, 0.5 * h * eye], [zero, eye]])
    c = np.exp(-gamma * h)
    ou = np.block([[eye, zero], [zero, c * eye]])
    a = kick @ drift @ ou @ drift @ kick
    b = kick @ drift @ np.vstack([zero, np.sqrt(1 - c * c) * eye])
    return a, b


@pytest.mark.parametrize("h, gamma", [(0.1, 1.0), (0.4, 0.3), (0.6, 5.0)])
def test_stationary_law_derivation(h, gamma):
    _, _, _, cov = correlated_gaussian(2)
    precision = np.linalg.inv(cov)
    a, b = _baoab_map(h, precision, gamma)
    stationary = scipy.linalg.solve_discrete_lyapunov(a, b @ b.T)
    np.testing.assert_allclose(stationary[:2, :2], cov, atol=1e-10)
    np.testing.assert_allclose(stationary[2:, 2:], np.eye(2) - h**2 * precision / 4, atol=1e-10)
    np.testing.assert_allclose(stationary[:2, 2:], 0.0, atol=1e-10)


def test_positions_and_momenta_follow_the_exact_law():
    # 64 chains from exact x draws and zero momentum, 100 burn-in steps (γ = 1, h = 0.4:
    # the momentum relaxes as exp(−γ t), t = 40 time units), then 1500 kept steps.
    # Position mean and covariance within 5 between-chain SEs of (μ, Σ) -- exact at this
    # h -- and momentum covariance within 5 SEs of I − h²P/4 (entries 0.36 away from I
    # for the stiff direction, so a sampler with Cov(p) = I would fail). t with 63 dof:
    # P(|t| > 5) ~ 5e-6 per entry.
    target, ld, mean, cov = correlated_gaussian(2)
    h = 0.4
    x0 = initial_positions(target, jax.random.key(0), 64)
    alg = underdamped_langevin(ld, h, friction=1.0)
    run = jax.jit(
        lambda key: run_chains(
            key, alg, x0, 1600, burn_in=100,
            transform=lambda s: jnp.concatenate([s.position, s.momentum], axis=-1),
        )
    )
    trace = np.asarray(run(jax.random.key(1)).trace)
    assert_moments(trace[..., :2], mean, cov, num_se=5.0, max_se=0.05)
    mom_cov = np.eye(2) - h**2 * np.linalg.inv(cov) / 4
    assert_moments(trace[..., 2:], np.zeros(2), mom_cov, num_se=5.0, max_se=0.05)


def test_init_with_a_key_draws_the_momentum():
    alg = underdamped_langevin(lambda x: -0.5 * jnp.sum(x**2), 0.1)
    assert np.all(np.asarray(alg.init(jnp.zeros(3)).momentum) == 0.0)
    assert np.all(np.asarray(alg.init(jnp.zeros(3), jax.random.key(0)).momentum) != 0.0)


@pytest.mark.parametrize("bad", [-0.5, np.nan, np.inf], ids=["negative", "nan", "inf"])
def test_bad_friction(bad):
    ld = lambda x: -0.5 * jnp.sum(x**2)
    with pytest.raises(ValueError, match="friction"):
        underdamped_langevin(ld, 0.1, friction=float(bad))

    @jax.jit
    def one_step(gamma):
        alg = underdamped_langevin(ld, 0.1, friction=gamma)
        return alg.step(jax.random.key(0), alg.init(jnp.ones(2)))

    state, info = one_step(jnp.float32(bad))
    assert bool(info.is_divergent)
    np.testing.assert_array_equal(state.position, jnp.ones(2))
    assert not bool(one_step(jnp.float32(0.0))[1].is_divergent)  # γ = 0 is allowed
