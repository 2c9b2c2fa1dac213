"""Interop with BlackJAX, both directions, checked on the moments of a 2-D Gaussian.

Tolerance as in test_moments: 5 between-chain standard errors over C independent chains
(t with C − 1 dof; P(|t| > 5) ≈ 1e-5 per entry at C = 32, 6 entries). With half the
chains of test_moments the standard errors are √2 larger, so max_se is 0.08 here.
"""

import blackjax
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from blackjax.util import run_inference_algorithm
from samplers_oracles import assert_moments, correlated_gaussian, initial_positions

from jebm.samplers import hmc, mala, run_chains, rwmh

NUM_CHAINS = 32


@pytest.mark.parametrize(
    "name, factory, num_steps",
    [
        ("blackjax.mala", lambda ld, cov: blackjax.mala(ld, 0.05), 1000),
        ("blackjax.hmc", lambda ld, cov: blackjax.hmc(ld, 0.25, jnp.asarray(np.diag(cov)), 6), 300),
    ],
    ids=["mala", "hmc"],
)
def test_blackjax_kernel_in_run_chains(name, factory, num_steps):
    target, ld, mean, cov = correlated_gaussian(2)
    x0 = initial_positions(target, jax.random.key(0), NUM_CHAINS)
    run = jax.jit(lambda key: run_chains(key, factory(ld, cov), x0, num_steps))
    result = run(jax.random.key(1))
    assert result.trace.shape == (num_steps, NUM_CHAINS, 2)
    assert_moments(result.trace, mean, cov, num_se=5.0, max_se=0.08)


@pytest.mark.parametrize(
    "factory, num_steps",
    [
        (lambda ld, cov: mala(ld, 0.05), 1000),
        (lambda ld, cov: rwmh(ld, 0.5), 2000),
        (lambda ld, cov: hmc(ld, 0.25, jnp.asarray(np.diag(cov), jnp.float32), 6), 300),
    ],
    ids=["mala", "rwmh", "hmc"],
)
def test_jebm_kernel_in_blackjax_run_inference_algorithm(factory, num_steps):
    # initial_position= makes BlackJAX call init(position, rng_key): the jebm factories
    # accept (and ignore) the key.
    target, ld, mean, cov = correlated_gaussian(2)
    x0 = initial_positions(target, jax.random.key(2), NUM_CHAINS)
    alg = factory(ld, cov)

    def one_chain(key, x):
        _, positions = run_inference_algorithm(
            key, alg, num_steps, initial_position=x, transform=lambda state, info: state.position
        )
        return positions

    keys = jax.random.split(jax.random.key(3), NUM_CHAINS)
    trace = jnp.swapaxes(jax.jit(jax.vmap(one_chain))(keys, x0), 0, 1)  # (T, C, 2)
    assert_moments(trace, mean, cov, num_se=5.0, max_se=0.08)
