"""Tests of jebm.partition.log_z_grid against exact partition functions."""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jebm.energies import gaussian, gaussian_mixture
from jebm.partition import log_z_grid

# Float32 floor: each −E(x) carries a relative rounding error ~6e-8·|E| with |E| ≲ 40 on
# these boxes, and logsumexp adds ~1e-7 per level of its reduction tree; together well
# under 1e-5 nats. Boxes reach ≥ 6.25 standard deviations past every mean along every
# axis (outside mass < 1e-9) and grids have ≤ 0.55 sd spacing (trapezoid error
# ~exp(−2π²σ²/h²) < 1e-28), so the estimates are exact to the float32 floor; 2e-5 is
# ≥ 2× that floor and 50× tighter than the 1e-3 nats required.
TOL = 2e-5


def _mixture_2d():
    means = jnp.array([[-2.0, 0.0], [2.0, 1.0], [0.0, -2.5], [1.0, 3.0]])
    return gaussian_mixture(means, jnp.array([0.5, 0.8, 0.6, 1.0]), jnp.array([1.0, 2.0, 1.0, 3.0]))


def _mixture_3d():
    means = jnp.array([[0.0, 0.0, 0.0], [2.0, 1.0, -1.0], [-1.5, 1.0, 1.0]])
    return gaussian_mixture(means, jnp.array([0.5, 0.8, 0.7]), jnp.array([0.3, 0.5, 0.2]))


@pytest.mark.parametrize(
    "target, low, high, num_points",
    [
        (lambda: gaussian(jnp.array([0.5]), jnp.array([[0.3]])), -4.5, 5.5, 129),
        (
            lambda: gaussian(jnp.array([1.0, -1.0]), jnp.array([[1.0, 0.6], [0.6, 2.0]])),
            [-9.0, -13.0],
            [11.0, 11.0],
            (81, 97),
        ),
        (_mixture_2d, [-7.0, -8.0], [10.0, 12.0], 97),
        (_mixture_3d, [-6.0, -6.5, -6.0], [7.0, 7.5, 7.0], (49, 57, 49)),
    ],
    ids=["gaussian-1d", "gaussian-2d-correlated", "mixture-2d", "mixture-3d"],
)
def test_log_z_matches_exact(target, low, high, num_points):
    t = target()
    est = jax.jit(lambda p: log_z_grid(t.energy_fn, p, low=low, high=high, num_points=num_points))(
        t.params
    )
    np.testing.assert_allclose(est, t.log_z, atol=TOL)


def test_simpson_beats_trapezoid_on_a_truncated_density():
    # E = x²/2 on [0, 1]: the density is cut off at x = 1, where the trapezoid rule's
    # Euler–Maclaurin term is T − I = h²/12 · (f′(1) − f′(0)) with f′(1) = −e^{−1/2}.
    energy_fn = lambda params, x: 0.5 * jnp.sum(x**2)
    z = math.sqrt(math.pi / 2) * math.erf(1 / math.sqrt(2))
    n = 21
    h = 1.0 / (n - 1)
    trap = log_z_grid(energy_fn, None, low=0.0, high=1.0, num_points=n)
    simp = log_z_grid(energy_fn, None, low=0.0, high=1.0, num_points=n, rule="simpson")
    predicted = math.log1p(h**2 / 12 * -math.exp(-0.5) / z)  # −1.48e-4 nats
    # The next Euler–Maclaurin term is O(h⁴) ≈ 1e-7 and float32 adds ~1e-6: 3%.
    np.testing.assert_allclose(trap - math.log(z), predicted, rtol=0.03)
    # Simpson: −h⁴/180 · (f‴(1) − f‴(0)) ≈ 3e-8 relative, so only the float32 floor.
    np.testing.assert_allclose(simp, math.log(z), atol=2e-6)


def test_simpson_tensor_product_in_3d():
    # Independent truncated pieces: Z = Π_j ∫_{a_j}^{b_j} exp(−x²/(2σ_j²)) dx.
    scales = jnp.array([1.0, 0.5, 2.0])
    low, high = [0.0, -1.0, -0.5], [1.0, 0.25, 3.0]
    energy_fn = lambda params, x: 0.5 * jnp.sum((x / params) ** 2)
    r2 = math.sqrt(2)
    exact = sum(
        math.log(s * math.sqrt(math.pi / 2) * (math.erf(b / s / r2) - math.erf(a / s / r2)))
        for s, a, b in zip(np.asarray(scales, np.float64), low, high, strict=True)
    )
    est = log_z_grid(energy_fn, scales, low=low, high=high, num_points=(21, 25, 41), rule="simpson")
    # Simpson error per factor ≲ h⁴/180·max|f⁗| ≈ 1e-7 relative here; float32 floor 2e-5.
    np.testing.assert_allclose(est, exact, atol=TOL)


def test_chunking_does_not_change_the_result():
    t = _mixture_2d()
    kw = dict(low=[-7.0, -8.0], high=[10.0, 12.0], num_points=(31, 37))
    full = log_z_grid(t.energy_fn, t.params, batch_size=31 * 37, **kw)
    for batch_size in (7, 1000, 10**6):  # 7 and 1000 leave a padded last chunk
        # Different summation order only: float32 roundoff ~1e-7 per term, 1e-6 total.
        np.testing.assert_allclose(
            log_z_grid(t.energy_fn, t.params, batch_size=batch_size, **kw), full, atol=2e-6
        )


def test_gradient_of_log_z_is_minus_expected_energy_gradient():
    # ∂ log Z/∂θ = −E_p[∂E/∂θ]; for the Gaussian's precision P, E = ½ dᵀPd, so
    # ∂ log Z/∂P = −½ Σ (as for log Z = ½ log det P⁻¹ + const), and ∂/∂μ = 0.
    cov = jnp.array([[1.0, 0.3], [0.3, 0.5]])
    t = gaussian(jnp.array([0.2, -0.1]), cov)
    grad = jax.grad(
        lambda p: log_z_grid(t.energy_fn, p, low=[-9.0, -7.0], high=[9.0, 7.0], num_points=73)
    )(t.params)
    # Box ≥ 8.8 sd, spacing ≤ 0.25 sd: exact up to float32 (gradient terms ~1e-6 each).
    np.testing.assert_allclose(grad["precision"], -0.5 * cov, atol=1e-5)
    np.testing.assert_allclose(grad["mean"], 0.0, atol=1e-5)


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(low=[1.0, 0.0], high=[0.0, 1.0], num_points=5), "below its high"),
        (dict(low=[0.0, 0.0], high=[0.0, 1.0], num_points=5), "below its high"),
        (dict(low=[0.0] * 4, high=[1.0] * 4, num_points=5), "1 to 3 dimensions"),
        (dict(low=[0.0, 0.0], high=[1.0, 1.0, 1.0], num_points=5), "shapes"),
        (dict(low=[[0.0, 0.0]], high=[[1.0, 1.0]], num_points=5), "1-D"),
        (dict(low=[0.0, 0.0], high=[1.0, 1.0], num_points=(5, 5, 5)), "num_points"),
        (dict(low=[0.0, 0.0], high=[1.0, 1.0], num_points=1), "at least 2"),
        (dict(low=[0.0, 0.0], high=[1.0, 1.0], num_points=2.5), "integers"),
        (dict(low=[0.0, 0.0], high=[1.0, np.inf], num_points=5), "finite"),
        (dict(low=[0.0, 0.0], high=[1.0, 1.0], num_points=4, rule="simpson"), "odd"),
        (dict(low=[0.0, 0.0], high=[1.0, 1.0], num_points=5, rule="midpoint"), "rule"),
        (dict(low=[0.0, 0.0], high=[1.0, 1.0], num_points=5, batch_size=0), "batch_size"),
    ],
    ids=[
        "low-above-high",
        "empty-box",
        "four-dims",
        "low-high-shapes",
        "2d-bounds",
        "num-points-length",
        "one-point",
        "fractional-points",
        "infinite-box",
        "simpson-even",
        "unknown-rule",
        "zero-batch",
    ],
)
def test_bad_input_raises(kwargs, match):
    energy_fn = lambda params, x: jnp.sum(x**2)
    with pytest.raises(ValueError, match=match):
        log_z_grid(energy_fn, None, **kwargs)


def test_non_scalar_energy_raises():
    with pytest.raises(ValueError, match="scalar"):
        log_z_grid(lambda params, x: x**2, None, low=[0.0, 0.0], high=[1.0, 1.0], num_points=5)


def test_energy_of_the_wrong_dimension_raises():
    t = _mixture_3d()  # expects x of shape (3,)
    with pytest.raises(ValueError, match="shape"):
        log_z_grid(t.energy_fn, t.params, low=[0.0, 0.0], high=[1.0, 1.0], num_points=5)


def test_traced_box_raises():
    # The box fixes the grid, which is static: a traced bound cannot be used.
    energy_fn = lambda params, x: jnp.sum(x**2)
    with pytest.raises(ValueError, match="concrete"):
        jax.jit(lambda lo: log_z_grid(energy_fn, None, low=lo, high=1.0, num_points=5))(0.0)


def test_grid_coverage_flags_a_box_that_cuts_the_density_off():
    from jebm.partition import grid_coverage

    target = gaussian(jnp.zeros(2), jnp.eye(2))
    good = grid_coverage(target.energy_fn, target.params, low=(-8.0, -8.0),
                      high=(8.0, 8.0), num_points=65)
    assert bool(good.ok) and float(good.border_mass) < 1e-10
    # [-2, 2]²: each boundary node carries density ≥ φ(2)φ(0); the boundary holds ~3% of
    # the grid's mass, far above the 1e-3 threshold.
    cut = grid_coverage(target.energy_fn, target.params, low=(-2.0, -2.0),
                     high=(2.0, 2.0), num_points=65)
    assert not bool(cut.ok) and float(cut.border_mass) > 1e-2


def test_grid_coverage_flags_a_grid_too_coarse_for_the_density():
    from jebm.partition import grid_coverage

    # σ = 0.05 on a spacing of 0.25: the trapezoid sum depends on where the nodes fall, so
    # log Z moves by far more than 0.01 nats when the resolution doubles.
    target = gaussian(jnp.full(2, 0.1), 0.05**2 * jnp.eye(2))
    coarse = grid_coverage(target.energy_fn, target.params, low=(-4.0, -4.0),
                        high=(4.0, 4.0), num_points=33)
    assert not bool(coarse.ok)
    assert abs(float(coarse.log_z_finer - coarse.log_z)) > 0.01


def test_run_summary_refuses_an_nll_from_a_clipped_grid():
    from jebm import experiment
    from jebm.config import load_config

    cfg = load_config(None, ["eval.grid_low=-1.5", "eval.grid_high=1.5", "data.num_test=200"])
    run = experiment.build_run(cfg)
    # The untrained MLP is nearly flat, so most of its grid mass sits near the edges.
    out = experiment.summary(run, run.initial_state.params)
    assert out["test_nll"] is None and out["nll_minus_entropy"] is None
    assert not out["grid_coverage"]["ok"] and "grid" in out["error"]
