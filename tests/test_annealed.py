"""Annealed Langevin dynamics (Song and Ermon, 2019) against exact noise-conditional scores."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jebm.energies.analytic import gaussian_mixture
from jebm.energy import logdensity_fn
from jebm.samplers.annealed import annealed_langevin
from jebm.samplers.runner import run_chains


def _noise_conditional(mixture):
    """Exact ``log p_σ`` of an isotropic mixture convolved with N(0, σ²I).

    Each component N(μₖ, sₖ²I) becomes N(μₖ, (sₖ² + σ²)I) with the same weight. The
    analytic energy drops the per-component normaliser (2π sₖ²)^{−d/2}, so it is put
    back into the log-weights to keep the mixture exact for any scales.
    """
    d = mixture.params["means"].shape[1]

    def logdensity(x, sigma):
        scales = jnp.sqrt(mixture.params["scales"] ** 2 + sigma**2)
        log_weights = mixture.params["log_weights"] - d * jnp.log(scales)
        params = {**mixture.params, "scales": scales, "log_weights": log_weights}
        return -mixture.energy_fn(params, x)

    return logdensity


def _eight_gaussians():
    # FFJORD's 8gaussians: centres 4·(cos, sin)(kπ/4) plus N(0, 0.5²), all divided by √2.
    angles = np.arange(8) * np.pi / 4
    means = 2 * np.sqrt(2) * np.stack([np.cos(angles), np.sin(angles)], axis=1)
    return gaussian_mixture(means, 0.5 / np.sqrt(2))


def test_levels_and_step_count_follow_the_ladder():
    sigmas = jnp.array([4.0, 2.0, 1.0])
    alg = annealed_langevin(lambda x, s: -0.5 * jnp.sum(x**2) / s**2, sigmas, 5, 0.01)
    out = run_chains(jax.random.key(0), alg, jnp.zeros((3, 2)), num_steps=15)
    assert out.state.step.tolist() == [15, 15, 15]
    np.testing.assert_array_equal(out.info.level[:, 0], np.repeat([0, 1, 2], 5))
    np.testing.assert_allclose(out.info.sigma[:, 0], np.repeat([4.0, 2.0, 1.0], 5))
    # α_i = ε σ_i² / σ_L²
    np.testing.assert_allclose(
        out.info.step_size[:, 0], np.repeat([0.16, 0.04, 0.01], 5), rtol=1e-6
    )
    # Past the ladder the chains stay at σ_L.
    state, info = alg.step(jax.random.key(1), out.state._replace(step=out.state.step[0]))
    assert int(info.level) == 2


def test_config_errors():
    with pytest.raises(ValueError, match="non-increasing"):
        annealed_langevin(lambda x, s: -jnp.sum(x**2), jnp.array([1.0, 2.0]), 5, 0.1)
    with pytest.raises(ValueError, match="positive"):
        annealed_langevin(lambda x, s: -jnp.sum(x**2), jnp.array([1.0, 0.0]), 5, 0.1)
    with pytest.raises(ValueError, match="num_steps_per_level"):
        annealed_langevin(lambda x, s: -jnp.sum(x**2), jnp.array([1.0]), 0, 0.1)


def test_single_level_matches_the_ula_stationary_variance():
    """One level is ULA, x′ = x + (α/2)∇log p + √α ξ; on N(0, v) its stationary variance is
    exactly v / (1 − α/(4v)) (the fixed point of Var′ = (1 − α/(2v))² Var + α)."""
    v, alpha = 1.0, 0.5
    logdensity = logdensity_fn(
        lambda params, x, sigma: 0.5 * jnp.sum(x**2) / (params + sigma**2), 0.75
    )  # v = 0.75 + σ² = 1 at σ = 0.5
    alg = annealed_langevin(logdensity, jnp.array([0.5]), 200, alpha)
    out = run_chains(jax.random.key(3), alg, jnp.zeros((4000, 2)), 200, keep_trace=False)
    var = float(jnp.var(out.state.position))
    expected = v / (1 - alpha / (4 * v))  # 1.1429; a step of α∇log p instead would give 0.667
    # 8000 independent N(0, expected) draws (the chain contracts by 0.75 per step, so 200
    # steps forget the start): the sample variance has relative sd sqrt(2/8000) = 0.016;
    # allow 4 sd.
    assert abs(var - expected) < 4 * np.sqrt(2 / 8000) * expected


@pytest.mark.slow
def test_annealed_langevin_finds_all_eight_modes_with_equal_weight():
    """With the exact noise-conditional score, σ from 6 (about the largest distance between
    modes) down to 0.1, T = 100 and ε = 0.1 σ_L², 2000 chains from N(0, 6²I) end with mode
    fractions [0.1225 0.1315 0.1175 0.1315 0.13 0.122 0.118 0.127] (seed 2), all within
    one binomial sd (0.0074) of 1/8, and 98% of chains within 3 sd of their mode."""
    mixture = _eight_gaussians()
    n, sigmas = 2000, jnp.geomspace(6.0, 0.1, 10)
    alg = annealed_langevin(_noise_conditional(mixture), sigmas, 100, 0.1 * 0.1**2)
    x0 = 6.0 * jax.random.normal(jax.random.key(1), (n, 2))
    x = run_chains(jax.random.key(2), alg, x0, 1000, keep_trace=False).state.position
    dist = jnp.linalg.norm(x[:, None, :] - mixture.params["means"][None], axis=-1)
    fractions = np.bincount(np.asarray(jnp.argmin(dist, axis=1)), minlength=8) / n
    # Each fraction is Binomial(n, 1/8)/n: sd = sqrt(p(1 − p)/n) = 0.0074; 4 sd per mode
    # (8 modes: a false alarm has probability < 8 × 6e-5).
    assert np.all(np.abs(fractions - 1 / 8) < 4 * np.sqrt(1 / 8 * 7 / 8 / n))
    # Near a mode: the last level's marginal has sd sqrt(0.354² + 0.1²) = 0.37 per axis, so
    # P(‖x − μ‖ > 3 × 0.354 = 1.06) = exp(−1.06²/(2 · 0.37²)) = 0.016 for exact samples;
    # require at least 95% (the 2000-chain sd of the fraction is 0.003).
    assert float(jnp.mean(jnp.min(dist, axis=1) < 3 * 0.354)) > 0.95


@pytest.mark.slow
def test_annealing_gets_unequal_mode_weights_where_single_sigma_langevin_fails():
    """Song and Ermon's Fig. 3 setting: p = 0.2 N((−5,−5), I) + 0.8 N((5,5), I), chains
    initialised uniformly on [−8, 8]². Annealed Langevin (σ from 20 to 1, 10 levels,
    T = 100, ε = 0.1) puts 0.788 of 2000 chains in the heavy mode (truth 0.8, binomial sd
    0.0089). Langevin at the single σ_L = 1 for the same 1000 steps and ε puts 0.501
    there: the modes never exchange chains, so each keeps the chains that started in its
    basin (about half of the square) whatever its weight."""
    mixture = gaussian_mixture(jnp.array([[-5.0, -5.0], [5.0, 5.0]]), 1.0, jnp.array([0.2, 0.8]))
    logdensity = _noise_conditional(mixture)
    n = 2000
    x0 = jax.random.uniform(jax.random.key(1), (n, 2), minval=-8.0, maxval=8.0)

    def heavy_fraction(sigmas, steps_per_level):
        alg = annealed_langevin(logdensity, sigmas, steps_per_level, 0.1)
        x = run_chains(jax.random.key(2), alg, x0, 1000, keep_trace=False).state.position
        return float(jnp.mean(jnp.sum(x, axis=1) > 0))

    sd = np.sqrt(0.8 * 0.2 / n)  # binomial sd of the fraction, 0.0089
    annealed = heavy_fraction(jnp.geomspace(20.0, 1.0, 10), 100)
    single = heavy_fraction(jnp.array([1.0]), 1000)
    assert abs(annealed - 0.8) < 4 * sd
    # The single-σ failure is a 30-sd effect; asserting it is > 10 sd off cannot pass by luck.
    assert abs(single - 0.8) > 10 * sd
