"""Tests for jebm.energies.toy2d: exact log Z, exact samplers, the sign convention."""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy.stats import norm

from jebm.energies.toy2d import checkerboard, eight_gaussians, rings

H = 0.02  # grid spacing; see _grid_log_z for the error it implies


def _grid_log_z(target, half_width: float, h: float = H) -> float:
    """``log ∫ exp(−E)`` by the midpoint rule on ``[−half_width, half_width]²``.

    The integrands are smooth (the sharp checkerboard's edges fall on cell
    boundaries) and negligible at the edges, so the error is aliasing,
    ~exp(−2π²σ²/h²) for the narrowest noise scale σ ≥ 0.08: exp(−32) here.
    """
    m = round(2 * half_width / h)
    g = -half_width + h * (np.arange(m) + 0.5)
    pts = np.stack(np.meshgrid(g, g, indexing="ij"), axis=-1).reshape(-1, 2)
    energy = jax.jit(jax.vmap(target.energy_fn, in_axes=(None, 0)))
    e = np.asarray(energy(target.params, jnp.asarray(pts, jnp.float32)), np.float64)
    return float(np.log(np.sum(np.exp(-e)) * h * h))


# log Z is exact; the grid estimate differs by float32 rounding of E (relative 1e-6
# of |E| ≲ 20 over the mass) plus negligible aliasing and truncation.
LOG_Z_TOL = 5e-5


@pytest.mark.parametrize(
    "target, half_width",
    [
        pytest.param(eight_gaussians(), 5.5, id="eight_gaussians"),
        pytest.param(rings(), 4.5, id="rings"),
        pytest.param(rings((1.5, 3.0), 0.24), 5.5, id="circles"),
        pytest.param(rings((0.5, 2.0, 2.2), 0.15, weights=(3.0, 1.0, 0.5)), 4.0, id="weighted"),
        pytest.param(checkerboard(), 4.5, id="checkerboard_sharp"),
        pytest.param(checkerboard(0.3), 6.0, id="checkerboard_smooth"),
    ],
)
def test_log_z_matches_grid_quadrature(target, half_width):
    assert abs(_grid_log_z(target, half_width) - float(target.log_z)) < LOG_Z_TOL


def test_energies_are_unnormalised():
    # log Z ≠ 0, so an estimator that forgets Z is caught.
    for target in (eight_gaussians(), rings(), checkerboard(), checkerboard(0.1)):
        assert abs(float(target.log_z)) > 0.1


def test_eight_gaussians_geometry():
    target = eight_gaussians()
    radii = np.linalg.norm(np.asarray(target.params["means"]), axis=-1)
    np.testing.assert_allclose(radii, 2 * math.sqrt(2), rtol=1e-6)
    np.testing.assert_allclose(target.params["scales"], 0.5 / math.sqrt(2), rtol=1e-6)
    np.testing.assert_allclose(target.log_z, math.log(2 * math.pi), rtol=1e-6)


def test_rings_energy_matches_angular_average_oracle():
    # Oracle: average N(x; r(cos θ, sin θ), σ²I) over 4096 equispaced θ in float64 (the
    # trapezoid rule on a periodic analytic integrand; error far below 1e-12).
    radii, scale, weights = (0.5, 1.0, 2.5), 0.1, np.array([0.2, 0.3, 0.5])
    target = rings(radii, scale, tuple(weights))
    rng = np.random.default_rng(0)
    x = np.concatenate([rng.uniform(-3, 3, (20, 2)), [[0.0, 0.0], [2.5, 0.0], [0.0, -0.98]]])
    theta = np.linspace(0, 2 * np.pi, 4096, endpoint=False)
    unit = np.stack([np.cos(theta), np.sin(theta)], -1)
    dens = sum(
        w * np.mean(np.prod(norm.pdf(x[:, None, :], r * unit[None], scale), -1), axis=1)
        for r, w in zip(radii, weights, strict=True)
    )
    log_p = -jax.vmap(target.energy_fn, in_axes=(None, 0))(
        target.params, jnp.asarray(x, jnp.float32)
    )
    log_p = np.asarray(log_p - target.log_z, np.float64)
    # float32: i0e and the exponent (ρ − r)²/2σ² ≤ 450 carry relative error ~1e-7·450.
    np.testing.assert_allclose(log_p, np.log(dens), rtol=0, atol=1e-4)


def test_sign_convention_low_energy_where_mass_is():
    # Density ∝ exp(−E): on-ring points have lower energy than between-ring points.
    target = rings()
    on, off = jnp.array([3.0, 0.0]), jnp.array([2.6, 0.0])
    assert float(target.energy_fn(target.params, on)) < float(target.energy_fn(target.params, off))
    board = checkerboard(0.1)
    inside, outside = jnp.array([1.0, 1.0]), jnp.array([1.0, -1.0])
    assert float(board.energy_fn(board.params, inside)) < float(
        board.energy_fn(board.params, outside)
    )


def test_rings_gradient_at_origin_is_zero_not_nan():
    target = rings()
    grad = jax.grad(target.energy_fn, argnums=1)(target.params, jnp.zeros(2))
    np.testing.assert_array_equal(grad, jnp.zeros(2))


def test_smooth_checkerboard_gradients_finite_everywhere():
    board = checkerboard(0.2)
    pts = jnp.array([[0.0, 0.0], [1.0, -1.0], [30.0, -40.0], [-4.0, 4.0], [2.0, 0.5]])
    e, g = jax.jit(jax.vmap(jax.value_and_grad(board.energy_fn, argnums=1), in_axes=(None, 0)))(
        board.params, pts
    )
    assert bool(jnp.all(jnp.isfinite(e))) and bool(jnp.all(jnp.isfinite(g)))
    # Far outside, the energy grows like the squared distance to the board over 2s².
    assert float(e[2]) > 0.5 * (26.0**2 + 36.0**2) / 0.2**2 * 0.99


def test_smooth_checkerboard_tends_to_the_sharp_one():
    sharp, smooth = checkerboard(), checkerboard(0.01)
    pts = jnp.array([[1.0, 1.0], [-3.0, -3.0], [3.0, -1.0], [1.0, -1.0], [-3.0, -1.0]])
    e_sharp = jax.vmap(sharp.energy_fn, in_axes=(None, 0))(sharp.params, pts)
    e_smooth = jax.vmap(smooth.energy_fn, in_axes=(None, 0))(smooth.params, pts)
    # Points 1 from every edge, 100 blur widths: Φ(−100) is far below float32 eps.
    np.testing.assert_allclose(e_smooth[:3], e_sharp[:3], atol=1e-6)
    assert bool(jnp.all(e_smooth[3:] > 1000.0)) and bool(jnp.all(jnp.isinf(e_sharp[3:])))


def test_smoothing_is_a_traced_parameter_with_fixed_log_z():
    board = checkerboard(0.3)
    energy = jax.jit(board.energy_fn)
    x = jnp.array([0.1, 1.9])
    for s in (0.1, 0.5):
        params = {"smoothing": jnp.float32(s)}
        np.testing.assert_allclose(
            energy(params, x), checkerboard(s).energy_fn(checkerboard(s).params, x), rtol=1e-6
        )
    wide = checkerboard(0.5)._replace(params={"smoothing": jnp.float32(0.5)})
    assert abs(_grid_log_z(wide, 7.0) - float(board.log_z)) < LOG_Z_TOL


@pytest.mark.parametrize(
    "target, half_width",
    [
        pytest.param(rings(), 4.5, id="rings"),
        pytest.param(checkerboard(0.3), 6.0, id="checkerboard_smooth"),
        pytest.param(eight_gaussians(), 5.5, id="eight_gaussians"),
    ],
)
def test_sampler_histogram_matches_density(target, half_width):
    # Pearson's X² of 20 000 draws against bin masses of exp(−E − log Z) (0.5 × 0.5
    # bins, 25 × 25 sub-cells each); bins expecting < 5 draws are pooled.
    n, bin_w, sub = 20_000, 0.5, 25
    h = bin_w / sub
    b = round(2 * half_width / bin_w)
    g = -half_width + h * (np.arange(b * sub) + 0.5)
    pts = np.stack(np.meshgrid(g, g, indexing="ij"), -1).reshape(-1, 2)
    e = jax.jit(jax.vmap(target.energy_fn, in_axes=(None, 0)))(
        target.params, jnp.asarray(pts, jnp.float32)
    )
    dens = np.exp(-np.asarray(e, np.float64) - float(target.log_z)).reshape(b, sub, b, sub)
    expected = n * dens.sum(axis=(1, 3)).ravel() * h * h
    x = np.asarray(target.sample(jax.random.key(2), n), np.float64)
    assert x.shape == (n, 2)
    idx = np.floor((x + half_width) / bin_w).astype(int)
    inside = np.all((idx >= 0) & (idx < b), axis=1)
    counts = np.zeros((b, b))
    np.add.at(counts, (idx[inside, 0], idx[inside, 1]), 1)
    keep = expected >= 5
    e_ = np.append(expected[keep], max(n - expected[keep].sum(), 1e-12))
    o_ = np.append(counts.ravel()[keep], n - counts.ravel()[keep].sum())
    stat, dof = np.sum((o_ - e_) ** 2 / e_), len(e_) - 1
    # X² ~ χ²(dof): mean dof, sd √(2 dof); dof + 5 sd is a ~1e-6 false-alarm rate.
    assert stat < dof + 5 * math.sqrt(2 * dof), (stat, dof)


def test_sampler_is_a_pure_function_of_the_key():
    for target in (eight_gaussians(), rings(), checkerboard(), checkerboard(0.2)):
        a = target.sample(jax.random.key(0), 5)
        np.testing.assert_array_equal(a, target.sample(jax.random.key(0), 5))
        assert a.shape == (5, 2) and a.dtype == jnp.float32


@pytest.mark.parametrize(
    "make, match",
    [
        (lambda: rings((1.0, -1.0)), "radii"),
        (lambda: rings(()), "radii"),
        (lambda: rings(scale=0.0), "scale"),
        (lambda: rings((1.0, 2.0), weights=(1.0,)), "weights"),
        (lambda: rings((1.0, 2.0), weights=(1.0, -0.5)), "weights"),
        (lambda: checkerboard(-0.1), "smoothing"),
    ],
)
def test_bad_configuration_raises(make, match):
    with pytest.raises(ValueError, match=match):
        make()


def test_energy_rejects_a_batch():
    for target in (eight_gaussians(), rings(), checkerboard(), checkerboard(0.1)):
        with pytest.raises(ValueError, match="shape"):
            target.energy_fn(target.params, jnp.zeros((4, 2)))
