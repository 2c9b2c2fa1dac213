"""Parallel tempering: exact tempered marginals, and mode weights that MALA cannot find."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.scipy.special import logsumexp

from jebm.samplers import cold_position, mala, parallel_tempering, run_chains
from jebm.samplers.mala import build_kernel, init

# 0.7 N(−5, 1) + 0.3 N(5, 1): modes 10σ apart; the density at 0 is e^−12.5 of the peaks.
LOG_W = jnp.log(jnp.array([0.7, 0.3]))
MODES = jnp.array([-5.0, 5.0])


def _mixture_ld(x):
    return logsumexp(LOG_W - 0.5 * (x[0] - MODES) ** 2)


def test_every_replica_samples_its_tempered_gaussian():
    # log p = −x²/2 in 2-D, ladder (1, 0.5, 0.25): replica r is N(0, I/β_r). Positions
    # move between replicas at every accepted swap, with their cached β log p and
    # gradients rescaled; a wrong rescaling would bias the replicas' MALA moves. Each
    # replica's variance (about the true mean 0) within 5 between-chain SEs (32 chains,
    # t with 31 dof: P(|t| > 5) ~ 2e-5 per entry, 6 entries).
    betas = jnp.array([1.0, 0.5, 0.25])
    alg = parallel_tempering(lambda x: -0.5 * jnp.sum(x**2), betas, init, build_kernel(),
                             0.8 / betas)
    x0 = jax.random.normal(jax.random.key(0), (32, 2))
    result = jax.jit(
        lambda key: run_chains(key, alg, x0, 1000, burn_in=200,
                               transform=lambda s: s.replicas.position)
    )(jax.random.key(1))
    x = np.asarray(result.trace, np.float64)  # (T, C, R, 2)
    per_chain_var = (x**2).mean(0)  # (C, R, 2)
    se = per_chain_var.std(0, ddof=1) / np.sqrt(32)
    z = np.abs(per_chain_var.mean(0) - 1.0 / np.asarray(betas)[:, None]) / se
    assert np.all(z < 5.0), (per_chain_var.mean(0), z)
    assert np.all(se < 0.15 / np.asarray(betas)[:, None])
    # Swaps alternate between the two pairs, and both pairs swap often on this target.
    proposed = np.asarray(result.info.swap_proposed)
    np.testing.assert_allclose(proposed.mean((0, 1)), [0.5, 0.5], atol=0.01)
    rate = np.asarray(result.info.swap_acceptance_rate).mean((0, 1)) / proposed.mean((0, 1))
    assert np.all((rate > 0.3) & (rate <= 1.0)), rate


@pytest.mark.slow
def test_mode_weights_of_a_far_bimodal_mixture():
    # All chains start in the left mode. Plain MALA never leaves it (the barrier is
    # 12.5 nats). PT with 8 replicas (β from 1 to 0.02, MALA steps 1/β) recovers the
    # right mode's weight 0.3: each chain's fraction of cold draws with x > 0 is one
    # estimate; 32 independent chains give the SE of their mean (measured ~0.006;
    # about 1400 draws x 32 chains / ESS time); |est − 0.3| < 4 SE, and SE < 0.02 so that
    # a wrong weight of 0.25 or 0.35 would be seen.
    x0 = jnp.full((32, 1), -5.0)
    plain = jax.jit(lambda key: run_chains(key, mala(_mixture_ld, 1.0), x0, 1500))(
        jax.random.key(0)
    )
    assert np.all(np.asarray(plain.trace) < 0.0)

    betas = jnp.geomspace(1.0, 0.02, 8)
    alg = parallel_tempering(_mixture_ld, betas, init, build_kernel(), 1.0 / betas)
    result = jax.jit(
        lambda key: run_chains(key, alg, x0, 1500, burn_in=300, transform=cold_position)
    )(jax.random.key(0))
    frac = (np.asarray(result.trace)[..., 0] > 0).mean(0)  # (C,)
    se = frac.std(ddof=1) / np.sqrt(frac.size)
    assert abs(frac.mean() - 0.3) < 4 * se, (frac.mean(), se)
    assert se < 0.02
    rate = np.asarray(result.info.swap_acceptance_rate).mean((0, 1)) / np.asarray(
        result.info.swap_proposed
    ).mean((0, 1))
    assert np.all(rate > 0.2), rate


@pytest.mark.parametrize(
    "betas", [[1.0], [0.9, 0.5], [1.0, 1.0], [1.0, 0.0], [[1.0, 0.5]]], ids=str
)
def test_bad_ladders(betas):
    with pytest.raises(ValueError, match="inverse_temperatures"):
        parallel_tempering(_mixture_ld, jnp.array(betas), init, build_kernel(), 0.1)
