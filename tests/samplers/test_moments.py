"""MALA, RWMH and HMC recover the mean and covariance of correlated Gaussians.

Oracle: the exact moments of ``jebm.energies.gaussian``. Chains start from exact
draws (so no burn-in bias) and the standard error of each moment comes from the
spread of C = 64 independent per-chain estimates (see ``samplers_oracles``).

Tolerance: 5 standard errors per entry. With C = 64 the studentised error is
t-distributed with 63 dof, P(|t| > 5) ≈ 5e-6, so over the ≤ 30 entries of one test
a false alarm has probability ≈ 1.5e-4 (and the seeds are fixed). ``max_se = 0.06``
keeps the test sharp: a bias of 0.3 (15–30 % of a variance here) cannot hide.
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from samplers_oracles import assert_moments, correlated_gaussian, initial_positions

from jebm.samplers import hmc, mala, run_chains, rwmh

NUM_CHAINS = 64

# name -> (factory(logdensity, cov), num_steps) per dimension; step sizes give
# acceptance rates near the usual targets (RWMH ~0.3-0.45, MALA ~0.6-0.9, HMC > 0.9).
CASES = {
    "mala": (lambda ld, cov, d: mala(ld, 0.05 if d == 2 else 0.1), 1000),
    "rwmh": (lambda ld, cov, d: rwmh(ld, 0.5 if d == 2 else 0.6), 2000),
    "rwmh-per-dim": (
        lambda ld, cov, d: rwmh(ld, jnp.asarray(np.sqrt(np.diag(cov)), jnp.float32)),
        2000,
    ),
    "hmc-diag": (
        lambda ld, cov, d: hmc(ld, 0.25, jnp.asarray(np.diag(cov), jnp.float32), 6),
        300,
    ),
    "hmc-dense": (lambda ld, cov, d: hmc(ld, 0.5, jnp.asarray(cov, jnp.float32), 4), 300),
}


def _run(name, dim, seed):
    target, ld, mean, cov = correlated_gaussian(dim)
    factory, num_steps = CASES[name]
    x0 = initial_positions(target, jax.random.key(seed), NUM_CHAINS)
    result = jax.jit(lambda key: run_chains(key, factory(ld, cov, dim), x0, num_steps))(
        jax.random.key(seed + 1)
    )
    return result, mean, cov


@pytest.mark.parametrize("name", list(CASES))
def test_moments_2d(name):
    result, mean, cov = _run(name, 2, 0)
    assert_moments(result.trace, mean, cov, num_se=5.0, max_se=0.06)


@pytest.mark.slow
@pytest.mark.parametrize("name", list(CASES))
def test_moments_5d(name):
    result, mean, cov = _run(name, 5, 10)
    assert_moments(result.trace, mean, cov, num_se=5.0, max_se=0.06)
