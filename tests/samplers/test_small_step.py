"""Small-step limits: rejection → 0 for RWMH and MALA at their known rates, HMC ΔH = O(ε²).

All three start from N = 8192 exact draws of the 2-D correlated Gaussian and take one
step with the same keys at every step size, so the comparison across step sizes is
paired and the Monte Carlo error is that of a mean over 8192 independent chains.
"""

import importlib

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from samplers_oracles import correlated_gaussian, initial_positions

NUM = 8192


@pytest.fixture(scope="module")
def setup():
    target, ld, mean, cov = correlated_gaussian(2)
    x = initial_positions(target, jax.random.key(1), NUM)
    keys = jax.random.split(jax.random.key(2), NUM)
    return ld, x, keys


def _one_step(name, ld, x, keys, build_args=()):
    """A jitted ``tunables -> info`` for one step of every chain; tunables are traced."""
    module = importlib.import_module(f"jebm.samplers.{name}")
    kernel = module.build_kernel(*build_args)
    states = jax.vmap(module.init, (0, None))(x, ld)

    @jax.jit
    def step(*tunables):
        in_axes = (0, 0, None) + (None,) * len(tunables)
        return jax.vmap(kernel, in_axes)(keys, states, ld, *tunables)[1]

    return step


def test_rwmh_rejection_is_linear_in_step_size(setup):
    # For small s the log ratio is s ξᵀ∇log p(x) + O(s²), so
    # 1 − E[acceptance] = E[max(0, −s ξᵀg)] = s E‖g‖ / √(2π) (1 + O(s)).
    # MC error of the mean over N chains: the per-chain rejection has
    # E[r²]/E[r]² ≈ π E‖g‖²/(E‖g‖)² ≈ 4, so relative SE ≈ 2/√8192 ≈ 2.2 %; the O(s) term
    # is ~1 % at s = 0.01. Tolerance 10 % relative ≈ 4 SE + the bias.
    ld, x, keys = setup
    mean_grad_norm = float(jnp.mean(jnp.linalg.norm(jax.vmap(jax.grad(ld))(x), axis=1)))
    step = _one_step("rwmh", ld, x, keys)
    rejections = [1.0 - float(step(s).acceptance_rate.mean()) for s in (0.3, 0.1, 0.03, 0.01)]
    assert np.all(np.diff(rejections) < 0)
    np.testing.assert_allclose(rejections[-1], 0.01 * mean_grad_norm / np.sqrt(2 * np.pi), rtol=0.1)


def test_mala_rejection_vanishes_as_h_to_the_three_halves(setup):
    # MALA's log acceptance ratio is O(h^{3/2}) (Roberts & Rosenthal 1998), so the
    # rejection rate falls by 10^{1.5} ≈ 31.6 per decade of h once h is small. Paired
    # keys make the ratio's MC error small (< 5 %); next-order terms are O(h^{1/2})
    # relative, ≈ 10 % at h = 0.01. Tolerance: exponent 1.5 ± 0.15 (≈ ±40 % on the ratio).
    ld, x, keys = setup
    step = _one_step("mala", ld, x, keys)
    rejections = [1.0 - float(step(h).acceptance_rate.mean()) for h in (0.1, 0.01, 0.001)]
    assert np.all(np.diff(rejections) < 0)
    assert rejections[-1] < 1e-3
    exponent = np.log10(rejections[1] / rejections[2])
    assert abs(exponent - 1.5) < 0.15, exponent


def test_hmc_energy_error_is_second_order(setup):
    # Leapfrog over a fixed trajectory length T = εL = 1 has ΔH = ε² f(x, r) + O(ε⁴), so
    # halving ε divides mean |ΔH| by 4 (1 + O((εω)²)), ω_max = √10 here. Paired keys:
    # same momenta. At εω ≤ 0.32 the relative correction is ≲ 10 %; tolerance ±12 % on
    # the last ratio, and the ratios must approach 4 as ε shrinks.
    ld, x, keys = setup
    errors = []
    for eps, steps in ((0.1, 10), (0.05, 20), (0.025, 40)):
        info = _one_step("hmc", ld, x, keys, build_args=(steps,))(eps, jnp.ones(2))
        errors.append(float(jnp.mean(jnp.abs(info.energy_error))))
        assert not np.any(info.is_divergent)
    ratios = np.array(errors[:-1]) / np.array(errors[1:])
    assert abs(ratios[-1] / 4.0 - 1.0) < 0.12, ratios
    assert abs(ratios[-1] - 4.0) < abs(ratios[0] - 4.0) + 0.05, ratios
