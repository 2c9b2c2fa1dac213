"""Diffusion recovery likelihood on a Gaussian, where the conditional EBM is Gaussian.

Data ``x ~ N(μ, s²)`` (1-D), noised ``x̃ = x + σε``; model ``E(θ, x) = (x − m)²/(2v)``,
``θ = (m, v)``. The model's conditional ``p(x | x̃) ∝ exp(−E(x) − (x̃ − x)²/(2σ²))`` is
``N(c, τ²)`` with ``τ² = (1/v + 1/σ²)⁻¹`` and ``c = τ²(m/v + x̃/σ²)``, so
``c − m = τ²(x̃ − m)/σ²``. With ``x̃ ~ N(μ, s² + σ²)`` and exact conditional samples ``x⁻``,
the expected gradient of ``mean E(x) − mean E(x⁻)`` is

    ∂/∂m = (E x⁻ − μ)/v = (m − μ) τ²/v²,
    ∂/∂v = (E(x⁻ − m)² − E(x − m)²)/(2v²),
           E(x⁻ − m)² = τ² + τ⁴(s² + σ² + (μ − m)²)/σ⁴,  E(x − m)² = s² + (μ − m)²,

both zero at ``(m, v) = (μ, s²)``: the data Gaussian is the optimum. The chains are MALA
(exact in stationarity) with 60 steps of size 0.6·σ² from ``x̃``; the conditional has
``τ ≈ 0.6`` and the start is ``≲ 2τ`` from ``c``, so after 60 steps the remaining
bias is far below the Monte Carlo error (checked directly in the first test).

Diffusion form, ladder ``(σ_0, σ_1)``: one rung, positives ``x_0 = x + σ_0 ε ~ N(μ, s² + σ_0²)``
and chains from ``x_1 = x_0 + δε′``, ``δ² = σ_1² − σ_0²``. The noise-conditional model
``E(θ, x, σ) = (x − m)²/(2(v + σ²))`` is at level ``σ_0`` a Gaussian of variance
``w = v + σ_0²``, so the same formulas hold with ``s² → s² + σ_0²``, ``σ → δ``, ``v → w``
(and ``∂w/∂v = 1``): the optimum is again ``(μ, s²)``.
"""

import functools
import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jebm.objectives import recovery_likelihood, recovery_likelihood_loss, recovery_sample
from jebm.objectives.recovery_likelihood import conditional_samples
from jebm.samplers import mala

MU, S2, SIGMA = 0.5, 1.5, 0.7
NUM_STEPS, STEP_SCALE = 60, 0.6


def energy(theta, x):
    m, v = theta
    return jnp.sum((x - m) ** 2) / (2 * v)


# The diffusion-form ladder: δ² = 0.8² − 0.4² = 0.48, δ ≈ 0.69 ≈ SIGMA, so the chains mix
# as in the clean case (τ ≈ 0.61 at the optimum).
SIGMA_LO, SIGMA_HI = 0.4, 0.8
DELTA = math.sqrt(SIGMA_HI**2 - SIGMA_LO**2)


def noise_conditional_energy(theta, x, sigma):
    m, v = theta
    return jnp.sum((x - m) ** 2) / (2 * (v + sigma**2))


def expected_gradient(m, v, s2=S2, sigma=SIGMA):
    t2 = 1.0 / (1.0 / v + 1.0 / sigma**2)
    gap = (MU - m) ** 2
    dm = (m - MU) * t2 / v**2
    dv = (t2 + t2**2 * (s2 + sigma**2 + gap) / sigma**4 - (s2 + gap)) / (2 * v**2)
    return np.array([dm, dv])


def test_conditional_samples_match_the_gaussian_conditional():
    # Fixed x̃ on a grid, 4000 chains: standardised z = (x⁻ − c(x̃))/τ must be N(0, 1):
    # mean within 4/√n, variance within 4·√(2/n) of 1 (sd of a sample variance).
    theta = jnp.array([MU, S2])
    n = 4000
    noisy = jnp.linspace(-2.0, 3.0, n)[:, None]
    samples, metrics = conditional_samples(
        jax.random.key(0), theta, noisy, SIGMA, energy_fn=energy, num_steps=NUM_STEPS,
        step_scale=STEP_SCALE, sampler=mala)  # fmt: skip
    t2 = 1.0 / (1.0 / S2 + 1.0 / SIGMA**2)
    c = t2 * (MU / S2 + noisy / SIGMA**2)
    z = np.asarray((samples - c) / math.sqrt(t2))[:, 0]
    assert abs(z.mean()) < 4 / math.sqrt(n)
    assert abs(z.var() - 1.0) < 4 * math.sqrt(2 / n)
    assert 0.5 < float(metrics["acceptance_rate"]) <= 1.0


def _per_example_grads(theta, key, n, **loss_options):
    """The loss gradient of each of ``n`` independent (x, x̃, chain) triples."""
    k_data, k_loss = jax.random.split(key)
    x = MU + math.sqrt(S2) * jax.random.normal(k_data, (n, 1, 1))

    def one(xi, k):
        return jax.grad(lambda th: recovery_likelihood_loss(
            th, k, xi, num_steps=NUM_STEPS, step_scale=STEP_SCALE, sampler=mala,
            **loss_options)[0])(theta)  # fmt: skip

    return jax.vmap(one)(x, jax.random.split(k_loss, n))


per_example_grads = jax.jit(functools.partial(_per_example_grads, energy_fn=energy, sigma=SIGMA),
                            static_argnums=2)


@pytest.mark.parametrize(
    "theta",
    [pytest.param((MU, S2), id="optimum"), pytest.param((MU + 0.8, S2), id="mean-off"),
     pytest.param((MU, 0.4 * S2), id="too-narrow"), pytest.param((MU, 3.0 * S2), id="too-wide")],
)  # fmt: skip
def test_gradient_matches_closed_form(theta):
    # 4000 independent (x, x̃, chain) triples; tolerance 4 × SE of each gradient component.
    grads = np.asarray(per_example_grads(jnp.asarray(theta, jnp.float32), jax.random.key(1),
                                         4000))  # fmt: skip
    se = grads.std(0) / math.sqrt(len(grads))
    np.testing.assert_array_less(np.abs(grads.mean(0) - expected_gradient(*theta)), 4 * se)


per_example_grads_diffusion = jax.jit(functools.partial(
    _per_example_grads, energy_fn=noise_conditional_energy,
    sigmas=jnp.array([SIGMA_HI, SIGMA_LO]), form="diffusion"), static_argnums=2)


@pytest.mark.parametrize(
    "theta",
    [pytest.param((MU, S2), id="optimum"), pytest.param((MU + 0.8, S2), id="mean-off"),
     pytest.param((MU, 0.4 * S2), id="too-narrow")],
)  # fmt: skip
def test_diffusion_form_gradient_matches_closed_form(theta):
    # As above on the rung σ_0 → σ_1 (module docstring); 4000 triples, 4 SE. A chain that
    # conditioned on x + σ_0 ε (the clean form's pairs) or read E at δ would miss these.
    m, v = theta
    expected = expected_gradient(m, v + SIGMA_LO**2, s2=S2 + SIGMA_LO**2, sigma=DELTA)
    grads = np.asarray(per_example_grads_diffusion(jnp.asarray(theta, jnp.float32),
                                                   jax.random.key(4), 4000))  # fmt: skip
    se = grads.std(0) / math.sqrt(len(grads))
    np.testing.assert_array_less(np.abs(grads.mean(0) - expected), 4 * se)


@pytest.mark.parametrize("form", ["clean", "diffusion"])
def test_recovery_sample_from_the_top_marginal(form):
    # The exact model (m, v) = (μ, s²), chains started at the data noised at σ_max, i.e.
    # N(μ, s² + σ_max²). Clean form, ladder (1.0,): one recovery from that noised point gives
    # N(μ, s²) exactly (noising the start once more would give variance
    # τ² + (s²/(s² + σ²))²(s² + 2σ²) = 1.86, not 1.5). Diffusion form, ladder (0.8, 0.4):
    # one ancestral step gives the level-0.4 marginal N(μ, s² + 0.16). 4000 chains, 4 SE as
    # in test_ladder_and_recovery_sample.
    if form == "clean":
        sigmas, fn, target = jnp.array([1.0]), lambda p, x, s: energy(p, x), S2
    else:
        sigmas, fn, target = jnp.array([SIGMA_HI, SIGMA_LO]), noise_conditional_energy, (
            S2 + SIGMA_LO**2)  # fmt: skip
    n = 4000
    start = MU + math.sqrt(S2 + float(jnp.max(sigmas)) ** 2) * jax.random.normal(
        jax.random.key(5), (n, 1))  # fmt: skip
    sample = jax.jit(functools.partial(
        recovery_sample, energy_fn=fn, sigmas=sigmas, num_steps=NUM_STEPS,
        step_scale=STEP_SCALE, sampler=mala, form=form))  # fmt: skip
    out = np.asarray(sample(jax.random.key(6), jnp.array([MU, S2]), start))[:, 0]
    assert abs(out.mean() - MU) < 4 * math.sqrt(target / n)
    assert abs(out.var() - target) < 4 * target * math.sqrt(2 / n)


def test_sign_descent_moves_towards_the_data():
    # A flipped loss (E(x⁻) − E(x)), or a flipped sign of E in the chains, reverses these.
    g_mean = np.asarray(per_example_grads(jnp.array([MU + 0.8, S2]), jax.random.key(2), 2000))
    g_narrow = np.asarray(per_example_grads(jnp.array([MU, 0.4 * S2]), jax.random.key(3), 2000))
    se = lambda g: g.std() / math.sqrt(len(g))
    assert g_mean[:, 0].mean() > 4 * se(g_mean[:, 0])  # expected 0.25: lower m
    assert g_narrow[:, 1].mean() < -4 * se(g_narrow[:, 1])  # expected −1.3: widen v


def test_ladder_and_recovery_sample(key):
    # The "noise-conditional" energy is the exact data energy (x − μ)²/(2s²) at every σ (the
    # recovery models condition on x̃, so the clean-data energy is the right one at every
    # level). Each "noise then recover" step then leaves N(μ, s²) invariant and contracts the
    # mean by s²/(s² + σ²); over the 9 levels below the start offset 4.5 shrinks to ≈ 0.02.
    # So recovery_sample from far-off N(5, 0.01) must end at mean μ, variance s² (4000 chains;
    # 4 SE on each: sd of the mean √(s²/n), of the variance s²·√(2/n)).
    cond_energy = lambda p, x, s: energy(p, x)
    theta = jnp.array([MU, S2])
    sigmas = jnp.array([0.3, 1.0, 2.0])
    loss, metrics = recovery_likelihood_loss(
        theta, key, jnp.zeros((16, 1)), energy_fn=cond_energy, num_steps=3, step_scale=0.5,
        sigmas=sigmas)  # fmt: skip
    assert jnp.isfinite(loss) and "sampler_grad_norm" in metrics
    n = 4000
    start = 5.0 + 0.1 * jax.random.normal(key, (n, 1))
    sample = jax.jit(functools.partial(
        recovery_sample, energy_fn=cond_energy, sigmas=jnp.tile(sigmas, 3), num_steps=40,
        step_scale=STEP_SCALE, sampler=mala))  # fmt: skip
    out = np.asarray(sample(jax.random.key(7), theta, start))[:, 0]
    assert abs(out.mean() - MU) < 4 * math.sqrt(S2 / n)
    assert abs(out.var() - S2) < 4 * S2 * math.sqrt(2 / n)


def test_objective_wrapper_and_validation(key):
    objective = recovery_likelihood(energy, num_steps=2, step_scale=0.5, sigma=SIGMA)
    batch = jnp.zeros((4, 1))
    loss, (metrics, state) = objective.loss(jnp.array([0.0, 1.0]), key, batch, ())
    assert jnp.isfinite(loss) and state == ()
    with pytest.raises(ValueError, match="exactly one"):
        recovery_likelihood(energy, num_steps=2, step_scale=0.5)
    with pytest.raises(ValueError, match="sigmas"):
        recovery_likelihood(energy, num_steps=2, step_scale=0.5, sigmas=jnp.array([0.1, -1.0]))
    with pytest.raises(ValueError, match="num_steps"):
        recovery_likelihood(energy, num_steps=0, step_scale=0.5, sigma=0.1)
    with pytest.raises(ValueError, match="step_scale"):
        recovery_likelihood(energy, num_steps=1, step_scale=0.0, sigma=0.1)
    with pytest.raises(ValueError, match="form must be one of"):
        recovery_likelihood(energy, num_steps=1, step_scale=0.5, sigma=0.1, form="vp")
    with pytest.raises(ValueError, match="needs a ladder sigmas"):
        recovery_likelihood(energy, num_steps=1, step_scale=0.5, sigma=0.1, form="diffusion")
    with pytest.raises(ValueError, match=">= 2 levels"):
        recovery_likelihood(energy, num_steps=1, step_scale=0.5, sigmas=jnp.array([0.1]),
                            form="diffusion")  # fmt: skip
