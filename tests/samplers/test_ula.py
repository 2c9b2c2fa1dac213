"""ULA: exact update formula, Lyapunov stationary covariance, temperature, clipping, bounds.

Oracle for the stationary law: on a Gaussian target with precision P and mean μ the
step x′ − μ = A (x − μ) + s ξ with A = I − aP is a linear AR(1) chain, so its
stationary covariance is the solution of the discrete Lyapunov equation
Σ = A Σ Aᵀ + s² I (scipy.linalg.solve_discrete_lyapunov). Coupled ULA has a = h,
s² = 2h; the decoupled form has a gradient step a and noise σ (s = σ).
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from samplers_oracles import assert_moments, correlated_gaussian, initial_positions, moment_z
from scipy.linalg import solve_discrete_lyapunov

from jebm.energies import gaussian
from jebm.energy import logdensity_fn
from jebm.samplers import mala, run_chains, ula
from jebm.samplers.base import normal_like
from jebm.samplers.ula import build_kernel, init

NUM_CHAINS = 64


def _lyapunov(precision, a, noise_var):
    a_mat = np.eye(len(precision)) - a * precision
    return solve_discrete_lyapunov(a_mat, noise_var * np.eye(len(precision)))


def _run(alg, x0, seed, num_steps, burn_in):
    run = jax.jit(lambda key: run_chains(key, alg, x0, num_steps, burn_in=burn_in))
    return run(jax.random.key(seed))


@pytest.mark.parametrize("decoupled", [False, True], ids=["coupled", "decoupled"])
def test_one_step_matches_formula(decoupled):
    # Exact oracle: with the same key the noise is normal_like(key, x), so the update
    # must equal the formula to float32 rounding (a few ulp on values of order 1).
    ld = lambda x: -0.5 * jnp.sum((x - 1.0) ** 2)
    x = jnp.array([0.3, -2.0, 4.0])
    key = jax.random.key(3)
    h, sigma = 0.1, 0.05
    state, info = build_kernel()(key, init(x, ld), ld, h, sigma if decoupled else None)
    z = normal_like(key, x)
    noise = sigma if decoupled else np.sqrt(2 * h)
    expected = x + h * (1.0 - x) + noise * z
    np.testing.assert_allclose(state.position, expected, rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(state.logdensity, ld(expected), rtol=1e-5)
    np.testing.assert_allclose(info.grad_norm, jnp.linalg.norm(1.0 - x), rtol=1e-6)
    assert not info.is_divergent


def test_ula_bias_matches_lyapunov_and_mala_removes_it():
    # 2-D target with precision eigenvalues ≈ 10 and 0.72. At h = 0.1 ULA's stationary
    # variance along the stiff direction is 1/(λ(1 − hλ/2)) = 2× the true one, so the
    # ULA and exact covariances differ by far more than the Monte Carlo error.
    target, ld, mean, cov = correlated_gaussian(2)
    precision = np.linalg.inv(cov)
    h = 0.1
    sigma_ula = _lyapunov(precision, h, 2 * h)
    x0 = initial_positions(target, jax.random.key(0), NUM_CHAINS)
    # burn-in 200 steps: the slowest mode contracts by (1 − hλ_min)^200 ≈ 4e-7.
    ula_trace = _run(ula(ld, h), x0, 1, 1200, 200).trace
    mala_trace = _run(mala(ld, h), x0, 2, 1200, 200).trace
    # 5 standard errors, as in test_moments (t with 63 dof, ≤ 6 entries).
    assert_moments(ula_trace, mean, sigma_ula, num_se=5.0, max_se=0.06)
    assert_moments(mala_trace, mean, cov, num_se=5.0, max_se=0.06)
    # Power: at the same 5-SE level each sampler *fails* the other's covariance, so the
    # moment check used for MALA/RWMH/HMC would catch a bias of ULA's size. (Along the
    # stiff eigenvector v the bias is 0.1·vvᵀ, e.g. 0.069 on Σ₂₂ ≈ 10 SE.)
    assert moment_z(ula_trace, mean, cov).max() > 5.0
    assert moment_z(mala_trace, mean, sigma_ula).max() > 5.0


def test_decoupled_form_samples_temperature():
    # x′ = x + a∇log p + σξ with a = 0.02, σ² = 0.02 ⇒ T = σ²/(2a) = 0.5.
    # Well-conditioned target (precision eigenvalues 0.77, 1.43) so that a small a mixes.
    cov = np.array([[1.0, 0.3], [0.3, 1.0]])
    mean = np.array([0.5, -1.0])
    target = gaussian(mean, cov)
    ld = logdensity_fn(target.energy_fn, target.params)
    precision = np.linalg.inv(cov)
    a, temperature = 0.02, 0.5
    sigma = np.sqrt(2 * a * temperature)
    sigma_lyap = _lyapunov(precision, a, sigma**2)
    # Numerical claim: per eigen-direction the Lyapunov variance is T/(λ(1 − aλ/2)), so
    # it equals T·P⁻¹ up to a relative aλ_max/(2 − aλ_max) ≈ 1.5 %.
    rel = a * 1.43 / (2 - a * 1.43)
    np.testing.assert_allclose(sigma_lyap, temperature * cov, rtol=1.1 * rel, atol=0.0)
    # Sampling claim: the chain's covariance is the Lyapunov one (5 SE, as above);
    # start at exact samples of the tempered law, then burn in 5 relaxation times
    # (1/(aλ_min) ≈ 65 steps).
    exact = np.asarray(initial_positions(target, jax.random.key(4), NUM_CHAINS))
    x0 = jnp.asarray(mean + np.sqrt(temperature) * (exact - mean), jnp.float32)
    trace = _run(ula(ld, a, sigma), x0, 5, 2300, 300).trace
    assert_moments(trace, mean, sigma_lyap, num_se=5.0, max_se=0.04)
    # ... and fails the untempered covariance (twice as large) at the same 5-SE level.
    assert moment_z(trace, mean, cov).max() > 5.0


def test_clip_grad_is_per_element():
    # Deterministic (σ = 0): gradient (−100, 100, 0.1) clipped to [−0.5, 0.5] per element,
    # so the step is a·(−0.5, 0.5, 0.1) exactly; grad_norm reports the unclipped norm.
    ld = lambda x: -0.5 * jnp.sum(x**2)
    x = jnp.array([100.0, -100.0, -0.1])
    state, info = build_kernel()(jax.random.key(0), init(x, ld), ld, 1.0, 0.0, 0.5)
    np.testing.assert_allclose(state.position, [99.5, -99.5, 0.0], atol=1e-6)
    np.testing.assert_allclose(info.grad_norm, np.linalg.norm([100.0, 100.0, 0.1]), rtol=1e-6)


def test_bounds_clamp_and_values_are_traced():
    # The drift pushes towards 5, outside the box [0, 1]: every coordinate lands on 1.
    # Bounds and clip are traced: two different values reuse one compilation.
    ld = lambda x: -0.5 * jnp.sum((x - 5.0) ** 2)
    traces = []

    @jax.jit
    def step(key, x, high, clip):
        traces.append(None)
        alg = ula(ld, 1.0, 0.01, clip_grad=clip, bounds=(0.0, high))
        return alg.step(key, alg.init(x))[0].position

    x = jnp.full((4,), 0.9)
    np.testing.assert_array_equal(step(jax.random.key(0), x, 1.0, 10.0), jnp.ones(4))
    np.testing.assert_array_equal(step(jax.random.key(1), x, 0.95, 10.0), jnp.full(4, 0.95))
    assert len(traces) == 1


def test_bounds_must_be_a_pair():
    with pytest.raises(ValueError, match="bounds"):
        ula(lambda x: -jnp.sum(x**2), 0.1, bounds=(0.0, 1.0, 2.0))


def test_non_finite_step_is_not_taken():
    # log p is NaN for x > 1. Large steps from 0.9 often land there: those steps must
    # be refused (state unchanged, is_divergent set), never silently taken.
    ld = lambda x: jnp.where(x[0] > 1.0, jnp.nan, -0.5 * jnp.sum(x**2))
    x0 = jnp.full((32, 1), 0.9)
    result = run_chains(jax.random.key(0), ula(ld, 0.5), x0, 50)
    assert np.all(np.asarray(result.trace) <= 1.0)
    assert np.all(np.isfinite(result.state.logdensity))
    assert result.info.is_divergent.mean() > 0.05
