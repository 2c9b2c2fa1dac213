"""Tests for jebm.energies.toy_data: samplers, log-densities and entropies agree.

The oracles are independent of the code under test: the FFJORD generators
re-expressed in numpy (and scikit-learn's own generators where FFJORD calls them),
float64 quadrature of the latent integrals with Simpson's rule, and grid
quadrature of the densities.
"""

import functools
import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy.integrate import simpson
from scipy.stats import norm
from sklearn.datasets import make_circles, make_moons, make_swiss_roll

from jebm.energies import toy_data

ALL = toy_data.NAMES
SLOW = {"2spirals"}  # its log_prob costs ~0.3 ms per point on a CPU core
# Half-width of a square holding all but < 1e-8 of each data set's mass.
HALF_WIDTH = {
    "8gaussians": 5.5,  # radius 2.83 + 7.5 sd of 0.354
    "checkerboard": 4.5,  # support [−4, 4]²
    "rings": 4.5,  # radius 3 + 18 sd of 0.08
    "circles": 5.5,  # radius 3 + 10 sd of 0.24
    "moons": 4.5,  # |x| ≤ 3, |y| ≤ 2.2 plus 10 sd of 0.2
    "swissroll": 4.5,  # radius ≤ 4.5π/5 = 2.83 plus 8 sd of 0.2
    "pinwheel": 6.0,  # radius 2|f| ≤ 2(1 + 6 × 0.3) = 5.6
    "2spirals": 4.5,  # radius ≤ (3π + ½√2)/3 = 3.3 plus 10 sd of 0.1
}
# Grid spacing: the midpoint rule on a smooth density that vanishes at the edges
# converges spectrally; its aliasing error is ~exp(−2π²σ²/h²) with σ the narrowest
# noise scale (0.08, rings): exp(−50) at h = 0.05. The checkerboard's edges (even
# integers) fall on cell boundaries of this grid, so its midpoint sums are exact.
GRID_H = 0.05


def _slow_marked(names):
    return [pytest.param(n, marks=pytest.mark.slow) if n in SLOW else n for n in names]


@functools.cache
def _grid(name: str):
    """Midpoint grid ``(centres (m, m, 2), log p (m, m) float64)`` over the data set's box."""
    half = HALF_WIDTH[name]
    m = round(2 * half / GRID_H)
    g = -half + GRID_H * (np.arange(m) + 0.5)
    pts = np.stack(np.meshgrid(g, g, indexing="ij"), axis=-1)
    log_prob = jax.jit(jax.vmap(toy_data.get(name).density.log_prob))
    log_p = np.asarray(log_prob(jnp.asarray(pts.reshape(-1, 2), jnp.float32)), np.float64)
    return pts, log_p.reshape(m, m)


def _chi_square(samples: np.ndarray, name: str, bin_cells: int = 10) -> tuple[float, int]:
    """Pearson's X² of ``samples`` against bins of ``bin_cells`` × ``bin_cells`` grid cells.

    Bin probabilities integrate ``exp(log_prob)`` with the midpoint rule; bins whose
    expected count is below 5 are pooled with the mass outside the box.
    """
    _, log_p = _grid(name)
    half, m = HALF_WIDTH[name], log_p.shape[0]
    b = m // bin_cells
    probs = np.exp(log_p).reshape(b, bin_cells, b, bin_cells).sum(axis=(1, 3)) * GRID_H**2
    idx = np.floor((samples + half) / (bin_cells * GRID_H)).astype(int)
    inside = np.all((idx >= 0) & (idx < b), axis=1)
    counts = np.zeros((b, b))
    np.add.at(counts, (idx[inside, 0], idx[inside, 1]), 1)
    n = len(samples)
    expected, observed = n * probs.ravel(), counts.ravel()
    keep = expected >= 5
    pooled_e = n - expected[keep].sum()  # small bins plus the mass outside the box
    pooled_o = n - observed[keep].sum()
    e = np.append(expected[keep], max(pooled_e, 1e-12))
    o = np.append(observed[keep], pooled_o)
    return float(np.sum((o - e) ** 2 / e)), len(e) - 1


def _chi_square_bound(dof: int) -> float:
    # X² ~ χ²(dof) with mean dof and sd √(2 dof); dof + 5 sd is a ~1e-6 false-alarm rate.
    return dof + 5 * math.sqrt(2 * dof)


# --- FFJORD's generators re-expressed in numpy (the oracle samplers) --------------------


def _ffjord_samples(name: str, n: int, seed: int) -> np.ndarray:
    rng = np.random.RandomState(seed)
    if name == "8gaussians":
        angles = np.arange(8) * np.pi / 4
        centres = 4 * np.stack([np.cos(angles), np.sin(angles)], -1)
        return (centres[rng.randint(8, size=n)] + 0.5 * rng.randn(n, 2)) / 1.414
    if name == "checkerboard":
        x1 = rng.rand(n) * 4 - 2
        x2 = rng.rand(n) - rng.randint(0, 2, n) * 2 + np.floor(x1) % 2
        return 2 * np.stack([x1, x2], -1)
    if name == "rings":
        per = n // 4
        sizes = [per, per, per, n - 3 * per]
        pts = [
            r * np.stack([np.cos(a), np.sin(a)], -1)
            for r, k in zip((1.0, 0.75, 0.5, 0.25), sizes, strict=True)
            for a in [np.linspace(0, 2 * np.pi, k, endpoint=False)]
        ]
        x = 3.0 * np.concatenate(pts)
        return rng.permutation(x) + rng.normal(scale=0.08, size=x.shape)
    if name == "circles":
        return 3 * make_circles(n_samples=n, factor=0.5, noise=0.08, random_state=rng)[0]
    if name == "moons":
        x = make_moons(n_samples=n, noise=0.1, random_state=rng)[0]
        return 2 * x + np.array([[-1.0, -0.2]])
    if name == "swissroll":
        return make_swiss_roll(n_samples=n, noise=1.0, random_state=rng)[0][:, [0, 2]] / 5
    if name == "pinwheel":
        per = n // 5
        rads = np.linspace(0, 2 * np.pi, 5, endpoint=False)
        feats = rng.randn(5 * per, 2) * np.array([[0.3, 0.1]])
        feats[:, 0] += 1.0
        angles = rads[np.repeat(np.arange(5), per)] + 0.25 * np.exp(feats[:, 0])
        rot = np.stack([np.cos(angles), -np.sin(angles), np.sin(angles), np.cos(angles)])
        rot = rot.T.reshape(-1, 2, 2)
        return 2 * rng.permutation(np.einsum("ti,tij->tj", feats, rot))
    if name == "2spirals":
        t = np.sqrt(rng.rand(n // 2, 1)) * 540 * (2 * np.pi) / 360
        d1x = -np.cos(t) * t + rng.rand(n // 2, 1) * 0.5
        d1y = np.sin(t) * t + rng.rand(n // 2, 1) * 0.5
        x = np.vstack([np.hstack([d1x, d1y]), np.hstack([-d1x, -d1y])]) / 3
        return x + rng.randn(*x.shape) * 0.1
    raise AssertionError(name)


# --- API --------------------------------------------------------------------------------


def test_names_are_the_ffjord_set():
    expected = {"8gaussians", "checkerboard", "rings", "circles", "moons", "swissroll"}
    assert set(ALL) == expected | {"pinwheel", "2spirals"}


def test_unknown_name_raises_listing_valid_names():
    with pytest.raises(ValueError, match="8gaussians.*2spirals"):
        toy_data.get("8gausians")


@pytest.mark.parametrize("name", ALL)
def test_sample_shape_dtype_determinism(name):
    data = toy_data.get(name)
    assert data.name == name
    key = jax.random.key(3)
    x = data.density.sample(key, 7)
    assert x.shape == (7, 2) and x.dtype == jnp.float32
    np.testing.assert_array_equal(x, data.density.sample(key, 7))
    # Jitted: the same draws up to float32 rounding (XLA may fuse and reorder ops).
    jitted = jax.jit(data.density.sample, static_argnums=1)(key, 7)
    np.testing.assert_allclose(x, jitted, rtol=1e-5, atol=1e-6)
    assert not np.array_equal(x, data.density.sample(jax.random.key(4), 7))


@pytest.mark.parametrize("name", ALL)
def test_log_prob_rejects_a_batch(name):
    with pytest.raises(ValueError, match="shape"):
        toy_data.get(name).density.log_prob(jnp.zeros((3, 2)))


@pytest.mark.parametrize("name", [n for n in ALL if n != "checkerboard"])
def test_log_prob_and_gradient_are_finite(name):
    # Origin (a branch point for ‖x‖), samples, and points far in the tails.
    data = toy_data.get(name)
    pts = jnp.concatenate(
        [
            jnp.zeros((1, 2)),
            data.density.sample(jax.random.key(0), 16),
            jnp.array([[7.0, -9.0], [0.0, 8.0]]),
        ]
    )
    value, grad = jax.jit(jax.vmap(jax.value_and_grad(data.density.log_prob)))(pts)
    assert bool(jnp.all(jnp.isfinite(value))) and bool(jnp.all(jnp.isfinite(grad)))


def test_checkerboard_log_prob_is_uniform_on_the_squares():
    log_prob = toy_data.get("checkerboard").density.log_prob
    inside = jnp.array([[1.0, 1.0], [-3.0, -3.0], [3.0, -1.0], [-1.0, 3.0]])
    outside = jnp.array([[1.0, -1.0], [-3.0, -1.0], [4.5, 0.5], [0.5, -4.5]])
    np.testing.assert_allclose(jax.vmap(log_prob)(inside), -math.log(32.0), rtol=1e-6)
    assert bool(jnp.all(jax.vmap(log_prob)(outside) == -jnp.inf))


def test_eight_gaussians_entropy_is_the_known_value():
    # Nearly separated components: H ≈ log 8 + log(2πe σ²) = 2.8379 less a small overlap term.
    assert abs(toy_data.get("8gaussians").entropy - 2.832) < 5e-4


# --- densities against independent float64 quadrature ------------------------------------


def _latent_oracle(name: str, x: np.ndarray) -> np.ndarray:
    """log p(x) by Simpson's rule on 400 001 latent nodes in float64 (error < 1e-9)."""
    out = []
    for point in x:
        if name == "moons":
            th = np.linspace(0, np.pi, 400_001)
            up = np.stack([2 * np.cos(th) - 1, 2 * np.sin(th) - 0.2], -1)
            lo = np.stack([1 - 2 * np.cos(th), 0.8 - 2 * np.sin(th)], -1)
            dens = sum(0.5 * np.prod(norm.pdf(point, c, 0.2), -1) / np.pi for c in (up, lo))
            out.append(simpson(dens, x=th))
        elif name == "swissroll":
            t = np.linspace(1.5 * np.pi, 4.5 * np.pi, 400_001)
            c = np.stack([t * np.cos(t), t * np.sin(t)], -1) / 5
            out.append(simpson(np.prod(norm.pdf(point, c, 0.2), -1) / (3 * np.pi), x=t))
        elif name == "2spirals":
            t = np.linspace(0, 3 * np.pi, 400_001)
            c = np.stack([-t * np.cos(t), t * np.sin(t)], -1) / 3
            total = 0.0
            for s in (1.0, -1.0):
                z = s * point - c  # mirror the − spiral onto the + one
                box = (norm.cdf(z / 0.1) - norm.cdf((z - 1 / 6) / 0.1)) * 6
                total += 0.5 * simpson(np.prod(box, -1) * 2 * t / (3 * np.pi) ** 2, x=t)
            out.append(total)
        else:
            raise AssertionError(name)
    return np.log(np.array(out))


@pytest.mark.parametrize("name", ["moons", "swissroll", "2spirals"])
def test_quadrature_log_prob_matches_float64_oracle(name):
    data = toy_data.get(name)
    x = np.concatenate(
        [np.asarray(data.density.sample(jax.random.key(1), 12), np.float64),
         [[0.3, -0.2], [2.5, 2.5]]]
    )
    got = jax.jit(jax.vmap(data.density.log_prob))(jnp.asarray(x, jnp.float32))
    got = np.asarray(got, np.float64)
    # Gauss–Legendre with the module's panel counts is within 5e-6 of a 4× finer rule
    # (measured), and float32 evaluation adds ~1e-6 per unit of |log p| ≤ 10.
    np.testing.assert_allclose(got, _latent_oracle(name, x), rtol=0, atol=3e-5)


# --- grid quadrature: mass, entropy, histograms --------------------------------------------


@pytest.mark.parametrize("name", _slow_marked(ALL))
def test_density_integrates_to_one(name):
    _, log_p = _grid(name)
    mass = np.exp(log_p).sum() * GRID_H**2
    # Truncation < 1e-8 and aliasing ~exp(−50) (see GRID_H); float32 log p carries a
    # relative error of a few 1e-6, which bounds the error of the mass.
    assert abs(mass - 1.0) < 2e-5


@pytest.mark.parametrize("name", _slow_marked(ALL))
def test_entropy_constant_matches_grid_quadrature(name):
    _, log_p = _grid(name)
    p = np.exp(log_p)
    entropy = -np.sum(p * np.where(p > 0, log_p, 0.0)) * GRID_H**2  # 0 log 0 = 0
    # Same quadrature error as the mass, times |log p| ≲ 10 where p is not negligible.
    assert abs(entropy - toy_data.get(name).entropy) < 1e-4


@pytest.mark.parametrize("name", _slow_marked(ALL))
def test_mean_log_prob_of_samples_is_minus_entropy(name):
    data = toy_data.get(name)
    n = 4_000 if name in SLOW else 20_000
    log_p = jax.jit(jax.vmap(data.density.log_prob))(data.density.sample(jax.random.key(11), n))
    log_p = np.asarray(log_p, np.float64)
    # E[log p(X)] = −H; the sample mean of n i.i.d. terms has sd std(log p)/√n, plus
    # float32 rounding of log p (~1e-7 |log p|; all that is left for the checkerboard).
    tol = 5 * log_p.std() / math.sqrt(n) + 1e-6
    assert abs(log_p.mean() + data.entropy) < tol


@pytest.mark.parametrize("name", _slow_marked(ALL))
def test_sampler_histogram_matches_log_prob(name):
    x = np.asarray(toy_data.get(name).density.sample(jax.random.key(5), 20_000), np.float64)
    stat, dof = _chi_square(x, name)
    assert stat < _chi_square_bound(dof), (stat, dof)


@pytest.mark.parametrize("name", _slow_marked(ALL))
def test_ffjord_generator_histogram_matches_log_prob(name):
    # FFJORD's (and scikit-learn's) generators, not ours: the densities are of the
    # published data sets. Their evenly spaced angles only lower X².
    stat, dof = _chi_square(_ffjord_samples(name, 20_000, seed=7), name)
    assert stat < _chi_square_bound(dof), (stat, dof)


def test_chi_square_detects_a_wrong_generator():
    # The histogram test has power: rings with its noise doubled fails it clearly.
    rng = np.random.default_rng(0)
    radius = rng.choice([0.75, 1.5, 2.25, 3.0], 20_000)
    angle = rng.uniform(0, 2 * np.pi, 20_000)
    x = radius[:, None] * np.stack([np.cos(angle), np.sin(angle)], -1)
    x += rng.normal(scale=0.16, size=x.shape)
    stat, dof = _chi_square(x, "rings")
    assert stat > 10 * _chi_square_bound(dof)


@pytest.mark.parametrize("name", ["pinwheel", "rings", "moons"])
def test_log_prob_gradient_matches_finite_differences(name):
    # pinwheel's gradient flows through its Newton root solve (implicit function).
    data = toy_data.get(name)
    x = data.density.sample(jax.random.key(9), 6)
    grad = np.asarray(jax.jit(jax.vmap(jax.grad(data.density.log_prob)))(x), np.float64)
    log_prob = jax.jit(jax.vmap(data.density.log_prob))
    eps = 1e-2
    fd = np.stack(
        [
            (
                np.asarray(log_prob(x + eps * e[None]), np.float64)
                - np.asarray(log_prob(x - eps * e[None]))
            )
            / (2 * eps)
            for e in jnp.eye(2)
        ],
        axis=-1,
    )
    # Central differences: truncation eps²/6 |∂³ log p| ≲ 1e-4 × 0.2⁻³ / 6 ≈ 2e-3 at the
    # narrowest noise scale here (0.2 tangential for pinwheel, 0.08 rings: ×15), plus
    # float32 rounding ~1e-7 |log p| / eps ≈ 1e-4.
    np.testing.assert_allclose(grad, fd, rtol=1e-2, atol=5e-2)
