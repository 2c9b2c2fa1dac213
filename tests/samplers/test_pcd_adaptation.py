"""PCD with the sampler's step size adapted during training (a traced state value)."""

import functools

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jebm.objectives.contrastive import AdaptiveStepState, pcd
from jebm.samplers import mala, ula

SIGMA = 0.5
ENERGY = lambda params, x: 0.5 * jnp.sum(x**2) / params**2  # N(0, params² I), params = σ


def _objective(**kwargs):
    return pcd(ENERGY, functools.partial(mala, step_size=1e-3), 5, buffer_size=256,
               num_chains=64, target_acceptance=0.6, adaptation_rate=0.2, **kwargs)


@pytest.mark.slow
def test_step_size_reaches_the_target_acceptance_without_recompiling():
    # 300 loss evaluations at fixed params (σ = 0.5, 2-D): the step size grows from 1e-3
    # (acceptance ~1) to the value with acceptance 0.6. Then fresh chains at that fixed
    # step: their mean acceptance (64 chains x 200 steps, between-chain SE ~0.004) is
    # within 0.03 of 0.6 -- 0.03 covers 5 SE plus the stationary wobble of a constant-rate
    # Robbins-Monro iterate (sd of log h ~ sqrt(rate·Var(ᾱ)/(2·slope)) ~ 0.015 for
    # Var(ᾱ) ~ 0.03², slope dᾱ/dlog h ~ 0.5, i.e. ~0.008 in acceptance).
    objective = _objective()
    batch = jnp.zeros((64, 2))
    state = objective.init(jax.random.key(0), batch)
    assert isinstance(state, AdaptiveStepState)

    @jax.jit
    @chex.assert_max_traces(n=1)
    def loss(key, state):
        return objective.loss(jnp.float32(SIGMA), key, batch, state)

    chex.clear_trace_counter()
    for key in jax.random.split(jax.random.key(1), 300):  # one compile, 300 step sizes
        _, (metrics, state) = loss(key, state)
    step = float(jnp.exp(state.log_step_size))
    assert step > 0.05  # it moved by more than a factor 50 from 1e-3
    assert "sampler/step_size" in metrics

    alg = mala(lambda x: -ENERGY(SIGMA, x), step)
    x0 = SIGMA * jax.random.normal(jax.random.key(2), (64, 2))
    rate = np.asarray(jax.jit(lambda key: _acceptance(key, alg, x0))(jax.random.key(3)))
    assert abs(rate.mean() - 0.6) < 0.03, (step, rate.mean())


def _acceptance(key, alg, x0):
    states = jax.vmap(alg.init)(x0)

    def body(s, k):
        s, info = jax.vmap(alg.step)(jax.random.split(k, x0.shape[0]), s)
        return s, info.acceptance_rate

    return jax.lax.scan(body, states, jax.random.split(key, 200))[1].mean(0)


def test_adaptation_arguments():
    with pytest.raises(ValueError, match="target_acceptance"):
        pcd(ENERGY, functools.partial(mala, step_size=0.1), 5, target_acceptance=1.2)
    with pytest.raises(ValueError, match="initial step size"):
        pcd(ENERGY, lambda ld, step_size=0.1: mala(ld, step_size), 5, target_acceptance=0.6)
    objective = pcd(ENERGY, functools.partial(ula, step_size=0.1), 2, buffer_size=16,
                    target_acceptance=0.6)
    state = objective.init(jax.random.key(0), jnp.zeros((4, 2)))
    with pytest.raises(ValueError, match="acceptance_rate"):
        objective.loss(jnp.float32(1.0), jax.random.key(1), jnp.zeros((4, 2)), state)
