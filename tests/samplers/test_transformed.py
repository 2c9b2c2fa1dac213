"""Samplers in logit coordinates (jebm.samplers.logit_space) against Beta closed forms."""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jebm.samplers import TransformedState, logit_space, mala, run_chains, rwmh, ula

# Beta(a, b) per coordinate on the unit box: log p(x) = (a−1) log x + (b−1) log(1−x).
A, B = 2.0, 5.0
MEAN = A / (A + B)
VAR = A * B / ((A + B) ** 2 * (A + B + 1))


def _beta_logdensity(x):
    return jnp.sum((A - 1) * jnp.log(x) + (B - 1) * jnp.log1p(-x))


@pytest.mark.parametrize("kernel,step_size", [(mala, 0.8), (rwmh, 0.9)])
def test_logit_space_samples_beta_exactly(kernel, step_size):
    factory = logit_space(functools.partial(kernel, step_size=step_size))
    algorithm = factory(_beta_logdensity)
    num_chains, dim, num_steps = 256, 4, 300
    x0 = jnp.full((num_chains, dim), 0.5)
    result = run_chains(jax.random.key(0), algorithm, x0, num_steps, thin=1)
    draws = np.asarray(result.trace[num_steps // 2:])  # (kept, chains, dim)
    assert np.all((draws > 0) & (draws < 1))
    # Per-chain averages of x and x² over the second half are independent across chains
    # (and coordinates), so each grand mean has standard error sd(per-chain values)/√n;
    # 4 standard errors fail a correct sampler with probability ≈ 6e-5.
    for moment, exact in ((1, MEAN), (2, VAR + MEAN**2)):
        per_chain = (draws**moment).mean(0).reshape(-1)
        stderr = per_chain.std(ddof=1) / np.sqrt(per_chain.size)
        assert abs(per_chain.mean() - exact) < 4 * stderr, (moment, per_chain.mean(), exact)


def test_the_density_in_z_has_the_jacobian():
    """Without the Jacobian the kernel would sample Beta(1, 4) in x (the z-marginal of
    exp(log p(σ(z)))) — a wrong mean; with it, the state's cached log-density is
    log p(σ(z)) + log σ′(z)."""
    algorithm = logit_space(functools.partial(mala, step_size=0.1))(_beta_logdensity)
    state = algorithm.init(jnp.array([0.2, 0.7]))
    assert isinstance(state, TransformedState)
    z = jnp.log(state.position / (1 - state.position))
    log_det = jnp.sum(jax.nn.log_sigmoid(z) + jax.nn.log_sigmoid(-z))
    np.testing.assert_allclose(state.inner.logdensity,
                               _beta_logdensity(state.position) + log_det, rtol=1e-5)
    np.testing.assert_allclose(state.position, [0.2, 0.7], rtol=1e-5)


def test_step_size_override_passes_through():
    """PCD's step-size adaptation calls ``factory(logdensity_fn, step_size=h)``."""
    factory = logit_space(functools.partial(ula, step_size=1e-9))
    key, x = jax.random.key(1), jnp.full((3,), 0.5)
    tiny = factory(_beta_logdensity)
    large = factory(_beta_logdensity, step_size=0.5)
    moved_tiny = tiny.step(key, tiny.init(x))[0].position
    moved_large = large.step(key, large.init(x))[0].position
    assert float(jnp.max(jnp.abs(moved_tiny - x))) < 1e-3
    assert float(jnp.max(jnp.abs(moved_large - x))) > 1e-2
