"""The FFJORD two-dimensional toy data sets, with their true densities and entropies.

They are distributions built on the analytic energies of this package, so they live in the
energies layer (``jebm.datasets`` holds data read from files and arrays).

Eight data sets of Grathwohl et al. (2019), ``lib/toy_data.py`` of the FFJORD code:
``8gaussians``, ``checkerboard``, ``rings``, ``circles``, ``moons``, ``swissroll``,
``pinwheel`` and ``2spirals``. Each is a :class:`Toy2D` with

* ``sample(key, n) -> (n, 2) float32``: i.i.d. draws, a pure function of the key
  (written in JAX, so it can be jitted with ``n`` static and vmapped over keys);
* ``log_prob(x) -> scalar``: the exact log-density of one unbatched point, in
  closed form or by a fixed quadrature rule over the generator's latent variable;
* ``entropy``: the differential entropy ``H = −∫ p log p`` in nats.

The generative parameters are FFJORD's (and scikit-learn's, which FFJORD calls
for ``circles``, ``moons`` and ``swissroll``). Where FFJORD or scikit-learn
place points on a deterministic, evenly spaced grid of angles with fixed counts
per component (``rings``, ``circles``, ``moons``, ``pinwheel``'s classes), the
samplers here draw the angle and component at random: the same distribution in
the limit of large batches, and one whose law is exactly ``log_prob``.

==============  =================================================================
name            generator (latent → point)
==============  =================================================================
8gaussians      centre ``2√2 (cos kπ/4, sin kπ/4)``, k ~ U{0..7}, + N(0, (0.5/√2)²I)
checkerboard    uniform on the 8 squares ``[2i, 2i+2] × [2j, 2j+2]``, i + j even
rings           radius ~ U{0.75, 1.5, 2.25, 3}, angle ~ U[0, 2π), + N(0, 0.08²I)
circles         radius ~ U{1.5, 3}, angle ~ U[0, 2π), + N(0, 0.24²I)
moons           θ ~ U[0, π], ``(2cos θ − 1, 2sin θ − 0.2)`` or
                ``(1 − 2cos θ, 0.8 − 2sin θ)``, + N(0, 0.2²I)
swissroll       t ~ U[1.5π, 4.5π], ``(t cos t, t sin t)/5`` + N(0, 0.2²I)
pinwheel        class k ~ U{0..4}, f ~ N((1, 0), diag(0.3², 0.1²)),
                ``2 R(−a) f`` with ``a = 2πk/5 + exp(f₁)/4``
2spirals        t = 3π√u, ``±(−t cos t + v₁, t sin t + v₂)/3 + N(0, 0.1²I)``,
                u ~ U[0, 1], v ~ U[0, ½]²
==============  =================================================================

Densities. ``8gaussians``, ``rings``, ``circles`` and ``checkerboard`` are the
exact energies of :mod:`jebm.energies.toy2d` (``log_prob = −E − log Z``).
``moons`` and ``swissroll`` integrate ``N(x; c(t), σ²I)`` over the uniform curve
parameter with composite Gauss–Legendre quadrature, i.e. a Gaussian mixture with
one component per node; ``2spirals`` does the same with its box-times-Gaussian
kernel; ``pinwheel`` inverts the generator (for each class, a scalar Newton solve
for the latent angle) and applies the change-of-variables formula. The quadrature
and root-finding errors are far below float32 resolution of the log-density where
the density is not negligible (see ``tests/test_toy_data.py``).

Entropies. The constants in ``_ENTROPIES`` were computed once, offline, as
``−Σ p log p h²``, the midpoint rule with spacing ``h = 0.025`` on a square holding
all but < 1e-8 of the mass (half-width 4.5 to 6), evaluating this module's
``log_prob`` in float64 (``jax_enable_x64``). For these smooth densities the rule
converges spectrally: ``h = 0.05`` agreed to 3e-7 nats and the grid mass was 1 to
2e-7. ``checkerboard``'s is exactly ``log 32``. The tests recompute them.

References:
  Grathwohl, W., Chen, R. T. Q., Bettencourt, J., Sutskever, I. and Duvenaud, D.
  (2019). FFJORD: Free-form continuous dynamics for scalable reversible generative
  models. ICLR.
  Pedregosa, F. et al. (2011). Scikit-learn: Machine learning in Python. JMLR 12.
  (``make_circles``, ``make_moons``, ``make_swiss_roll``)
"""

import math
from collections.abc import Callable
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jax.scipy.stats import norm

from jebm.densities import Density
from jebm.energies.analytic import AnalyticEnergy, gaussian_mixture
from jebm.energies.toy2d import _log_ndtr_diff, _safe_norm, checkerboard, eight_gaussians, rings
from jebm.energy import logdensity_fn
from jebm.types import Array, PRNGKey

__all__ = ["Toy2D", "NAMES", "get"]


class Toy2D(NamedTuple):
    """A two-dimensional toy data set: its true density and the entropy of it.

    Attributes:
      name: the FFJORD name, e.g. ``"8gaussians"``.
      density: the data's :class:`~jebm.densities.Density`: ``sample(key, n) -> (n, 2)``
        float32 i.i.d. draws (``n`` static) and the exact (or quadrature) ``log_prob(x)``
        of one point ``x`` of shape ``(2,)``.
      entropy: the differential entropy in nats.
    """

    name: str
    density: Density
    entropy: float


# Differential entropies in nats; see the module docstring for how they were computed.
_ENTROPIES = {
    "8gaussians": 2.831578288,
    "checkerboard": math.log(32.0),
    "rings": 2.623182563,
    "circles": 3.268135635,
    "moons": 2.393879199,
    "swissroll": 2.669646265,
    "pinwheel": 2.317788053,
    "2spirals": 2.645450300,
}

NAMES = tuple(_ENTROPIES)


def _from_energy(name: str, target: AnalyticEnergy) -> Toy2D:
    """A data set whose density is an energy with exact ``log Z``."""
    def sample(key: PRNGKey, n: int) -> Array:
        return target.sample(key, n).astype(jnp.float32)

    log_prob = logdensity_fn(target.energy_fn, target.params, target.log_z)
    return Toy2D(name, Density(log_prob, sample), _ENTROPIES[name])


def _gauss_legendre(edges: np.ndarray, order: int = 8) -> tuple[np.ndarray, np.ndarray]:
    """Composite Gauss–Legendre nodes and weights on the panels ``edges`` (float64)."""
    base_x, base_w = np.polynomial.legendre.leggauss(order)
    half = 0.5 * np.diff(edges)
    mid = 0.5 * (edges[:-1] + edges[1:])
    nodes = (mid[:, None] + half[:, None] * base_x[None, :]).ravel()
    weights = (half[:, None] * base_w[None, :]).ravel()
    return nodes, weights


def _arc_length_panels(speed: Callable, lo: float, hi: float, num_panels: int) -> np.ndarray:
    """Panel edges on ``[lo, hi]`` cutting a curve of ``speed(t) = ‖c′(t)‖`` into equal arcs.

    Equal arcs give every panel the same number of noise widths, so a fixed number
    of Gauss–Legendre nodes resolves the kernel everywhere along the curve.
    """
    t = np.linspace(lo, hi, 20001)
    v = speed(t)
    arc = np.concatenate([[0.0], np.cumsum(0.5 * (v[1:] + v[:-1]) * np.diff(t))])
    return np.interp(np.linspace(0.0, arc[-1], num_panels + 1), arc, t)


def _curve_mixture(centres: np.ndarray, weights: np.ndarray, scale: float) -> AnalyticEnergy:
    """``∫ p(t) N(x; c(t), σ²I) dt`` as a Gaussian mixture over quadrature nodes."""
    return gaussian_mixture(centres, scale, weights)


# --- moons ---------------------------------------------------------------------------
# scikit-learn's make_moons(noise=0.1), then FFJORD's x ↦ 2x + (−1, −0.2): two half
# circles of radius 2 traced at constant speed, θ ~ U[0, π], noise sd 0.2.
_MOONS_NOISE = 0.2
_MOONS_PANELS = 16


def _moons_curves(theta: Array) -> tuple[Array, Array]:
    cos, sin = jnp.cos(theta), jnp.sin(theta)
    upper = jnp.stack([2 * cos - 1, 2 * sin - 0.2], axis=-1)
    lower = jnp.stack([1 - 2 * cos, 0.8 - 2 * sin], axis=-1)
    return upper, lower


def _moons() -> Toy2D:
    theta, w = _gauss_legendre(np.linspace(0.0, math.pi, _MOONS_PANELS + 1))
    upper, lower = (np.asarray(c, np.float64) for c in _moons_curves(theta))
    centres = np.concatenate([upper, lower])
    mixture = _curve_mixture(centres, np.concatenate([w, w]), _MOONS_NOISE)

    def sample(key: PRNGKey, n: int) -> Array:
        k_which, k_theta, k_noise = jax.random.split(key, 3)
        theta = jax.random.uniform(k_theta, (n,), maxval=jnp.pi)
        upper, lower = _moons_curves(theta)
        which = jax.random.bernoulli(k_which, 0.5, (n,))
        on_curve = jnp.where(which[:, None], upper, lower)
        return on_curve + _MOONS_NOISE * jax.random.normal(k_noise, (n, 2))

    return _from_energy("moons", mixture._replace(sample=sample))


# --- swissroll -----------------------------------------------------------------------
# scikit-learn's make_swiss_roll(noise=1.0), coordinates (x, z), divided by 5 (FFJORD):
# t ~ U[1.5π, 4.5π], (t cos t, t sin t)/5 plus N(0, 0.2²I).
_SWISSROLL_NOISE = 0.2
_SWISSROLL_T = (1.5 * math.pi, 4.5 * math.pi)
_SWISSROLL_PANELS = 32


def _swissroll_curve(t: Array) -> Array:
    return jnp.stack([t * jnp.cos(t), t * jnp.sin(t)], axis=-1) / 5.0


def _swissroll() -> Toy2D:
    lo, hi = _SWISSROLL_T
    speed = lambda t: np.sqrt(1 + t**2) / 5.0
    t, w = _gauss_legendre(_arc_length_panels(speed, lo, hi, _SWISSROLL_PANELS))
    centres = np.asarray(_swissroll_curve(t), np.float64)
    mixture = _curve_mixture(centres, w / (hi - lo), _SWISSROLL_NOISE)

    def sample(key: PRNGKey, n: int) -> Array:
        k_t, k_noise = jax.random.split(key)
        t = jax.random.uniform(k_t, (n,), minval=lo, maxval=hi)
        return _swissroll_curve(t) + _SWISSROLL_NOISE * jax.random.normal(k_noise, (n, 2))

    return _from_energy("swissroll", mixture._replace(sample=sample))


# --- 2spirals ------------------------------------------------------------------------
# FFJORD: t = 3π√u (so p(t) = 2t/(3π)² on [0, 3π]); d = (−t cos t + v₁, t sin t + v₂)
# with v ~ U[0, ½]²; the point is ±d/3 (sign equally likely) plus N(0, 0.1²I). Given t
# and the sign +, each coordinate is U[c_i/3, c_i/3 + 1/6] ⊛ N(0, 0.1²), whose density
# is 6 [Φ((z − c_i/3)/0.1) − Φ((z − c_i/3 − 1/6)/0.1)]; the − spiral is the mirror image.
_SPIRALS_NOISE = 0.1
_SPIRALS_BOX = 0.5 / 3.0
_SPIRALS_T_MAX = 3.0 * math.pi
_SPIRALS_PANELS = 56


def _spiral_curve(t: Array) -> Array:
    return jnp.stack([-t * jnp.cos(t), t * jnp.sin(t)], axis=-1) / 3.0


def _two_spirals() -> Toy2D:
    speed = lambda t: np.sqrt(1 + t**2) / 3.0
    t, w = _gauss_legendre(_arc_length_panels(speed, 0.0, _SPIRALS_T_MAX, _SPIRALS_PANELS))
    log_w = jnp.asarray(np.log(w * 2 * t / _SPIRALS_T_MAX**2), jnp.float32)
    corners = jnp.asarray(np.asarray(_spiral_curve(t), np.float64), jnp.float32)
    log_box = math.log(_SPIRALS_BOX)

    def log_one_spiral(x: Array) -> Array:
        rel = (x[None, :] - corners) / _SPIRALS_NOISE  # (nodes, 2)
        log_kernel = _log_ndtr_diff(rel, rel - _SPIRALS_BOX / _SPIRALS_NOISE) - log_box
        return jax.nn.logsumexp(log_w + jnp.sum(log_kernel, axis=-1))

    def log_prob(x: Array) -> Array:
        if x.shape != (2,):
            raise ValueError(f"2spirals log_prob expects one point of shape (2,), got {x.shape}.")
        return jnp.logaddexp(log_one_spiral(x), log_one_spiral(-x)) - math.log(2.0)

    def sample(key: PRNGKey, n: int) -> Array:
        k_t, k_box, k_sign, k_noise = jax.random.split(key, 4)
        t = _SPIRALS_T_MAX * jnp.sqrt(jax.random.uniform(k_t, (n,)))
        box = _SPIRALS_BOX * jax.random.uniform(k_box, (n, 2))
        sign = jnp.where(jax.random.bernoulli(k_sign, 0.5, (n,)), 1.0, -1.0)
        noise = _SPIRALS_NOISE * jax.random.normal(k_noise, (n, 2))
        return sign[:, None] * (_spiral_curve(t) + box) + noise

    return Toy2D("2spirals", Density(log_prob, sample), _ENTROPIES["2spirals"])


# --- pinwheel ------------------------------------------------------------------------
# FFJORD: class k ~ U{0..4}; f = (f₁, f₂) ~ N((1, 0), diag(0.3², 0.1²)); angle
# a = 2πk/5 + exp(f₁)/4; the point is y = 2 R(−a) f. In polar coordinates f = s(cos β,
# sin β), y has radius 2s and angle ψ = β − a, so for a given y and class, s = ‖y‖/2 and
# β solves G(β) := β − exp(s cos β)/4 = ψ + 2πk/5 (mod 2π). The change of variables
# (R, ψ) ← (s, β) has Jacobian 2 G′(β), so p(y | k) = Σ_roots p_f(f) / (4 |G′(β)|).
#
# Finding every root. G′(β) = 1 + s e^{s cos β} sin β / 4 exceeds 1 on (0, π) and on
# (−π, 0) falls to a single minimum, where G″ = 0, i.e. cos β = 2s / (1 + √(1 + 4s²)),
# then rises. When that minimum is negative (s ≳ 1.2), G folds: it decreases between
# the two zeros of G′ (found by bisection on either side of the minimum) and a level
# can be hit three times. Cutting [−π, π] at a grid of 16 angles and at the minimum and
# the zeros of G′ leaves intervals on which G is monotone and varies by less than 2π
# (for s ≤ 3, i.e. ‖y‖ ≤ 6, beyond which the density is below e⁻³⁰⁰), so each interval
# holds at most one root, which bisection brackets and Newton's method polishes (the
# Newton steps also carry the implicit-function gradient). Checked against a brute-force
# root scan in float64: |Δ log p| < 3e-5 where log p > −10 and < 1e-3 down to −80.
_PINWHEEL_CLASSES = 5
_PINWHEEL_STD = (0.3, 0.1)
_PINWHEEL_RATE = 0.25
_PINWHEEL_GRID = 16
_PINWHEEL_BISECTIONS = 8
_PINWHEEL_NEWTON_STEPS = 4


def _pinwheel_sample(key: PRNGKey, n: int) -> Array:
    k_class, k_f = jax.random.split(key)
    k = jax.random.randint(k_class, (n,), 0, _PINWHEEL_CLASSES)
    std, mean = jnp.asarray([_PINWHEEL_STD]), jnp.asarray([[1.0, 0.0]])
    f = jax.random.normal(k_f, (n, 2)) * std + mean
    a = 2 * jnp.pi * k / _PINWHEEL_CLASSES + _PINWHEEL_RATE * jnp.exp(f[:, 0])
    cos, sin = jnp.cos(a), jnp.sin(a)
    return 2 * jnp.stack([f[:, 0] * cos + f[:, 1] * sin, -f[:, 0] * sin + f[:, 1] * cos], -1)


def _bisect(fn: Callable[[Array], Array], lo: Array, hi: Array, num_steps: int):
    """Shrink brackets with ``fn(lo) ≤ 0 < fn(hi)`` (elementwise) ``num_steps`` times."""

    def step(_, bounds):
        lo, hi = bounds
        mid = 0.5 * (lo + hi)
        left = fn(mid) <= 0
        return jnp.where(left, mid, lo), jnp.where(left, hi, mid)

    return jax.lax.fori_loop(0, num_steps, step, (lo, hi))


def _pinwheel_log_prob(x: Array) -> Array:
    if x.shape != (2,):
        raise ValueError(f"pinwheel log_prob expects one point of shape (2,), got {x.shape}.")
    s = 0.5 * _safe_norm(x)
    safe_x = jnp.where(s == 0, jnp.array([1.0, 0.0]), x)  # atan2 has no gradient at 0
    psi = jnp.arctan2(safe_x[1], safe_x[0])
    mean, std = jnp.array([1.0, 0.0]), jnp.asarray(_PINWHEEL_STD)

    def g(beta):
        return beta - _PINWHEEL_RATE * jnp.exp(s * jnp.cos(beta))

    def g_prime(beta):
        return 1 + _PINWHEEL_RATE * s * jnp.exp(s * jnp.cos(beta)) * jnp.sin(beta)

    # Cut points: the minimum of G′ on (−π, 0) and, if it is negative, the zeros of G′.
    s_ = jax.lax.stop_gradient(s)
    beta_min = -jnp.arccos(2 * s_ / (1 + jnp.sqrt(1 + 4 * s_**2)))
    folds = g_prime(beta_min) < 0
    # G′ falls from 1 at −π to the minimum, then rises back to 1 at 0.
    fold_a, _ = _bisect(lambda b: -g_prime(b), -jnp.pi, beta_min, 30)
    _, fold_b = _bisect(g_prime, beta_min, 0.0, 30)
    fold_a, fold_b = jnp.where(folds, fold_a, beta_min), jnp.where(folds, fold_b, beta_min)
    edges = jnp.sort(
        jnp.concatenate(
            [
                jnp.linspace(-jnp.pi, jnp.pi, _PINWHEEL_GRID + 1),
                jnp.stack([fold_a, beta_min, fold_b]),
            ]
        )
    )
    lo0, hi0 = edges[:-1], edges[1:]
    g_lo, g_hi = g(lo0), g(hi0)
    rising = g_hi >= g_lo
    sign = jnp.where(rising, 1.0, -1.0)

    def log_prob_class(k):
        # Per interval, the first level ψ + 2πk/5 + 2πm met when moving from G(lo).
        c = psi + 2 * jnp.pi * k / _PINWHEEL_CLASSES
        turns = (g_lo - c) / (2 * jnp.pi)
        level = c + 2 * jnp.pi * jnp.where(rising, jnp.ceil(turns), jnp.floor(turns))
        has_root = jnp.where(rising, g_hi > level, g_hi < level)  # root in [lo, hi)
        lo, hi = _bisect(lambda b: sign * (g(b) - level), lo0, hi0, _PINWHEEL_BISECTIONS)
        lo, hi = jax.lax.stop_gradient(lo), jax.lax.stop_gradient(hi)

        def newton(_, beta):
            slope = g_prime(beta)
            slope = jnp.where(jnp.abs(slope) > 1e-6, slope, 1e-6)
            return jnp.clip(beta - (g(beta) - level) / slope, lo, hi)

        beta = jax.lax.fori_loop(0, _PINWHEEL_NEWTON_STEPS, newton, 0.5 * (lo + hi))
        f = s * jnp.stack([jnp.cos(beta), jnp.sin(beta)], axis=-1)
        log_pf = jnp.sum(norm.logpdf(f, mean[None, :], std[None, :]), axis=-1)
        log_jac = jnp.log(4 * jnp.maximum(jnp.abs(g_prime(beta)), 1e-30))
        return jnp.where(has_root, log_pf - log_jac, -jnp.inf)

    per_root = jax.vmap(log_prob_class)(jnp.arange(_PINWHEEL_CLASSES))
    return jax.nn.logsumexp(per_root) - math.log(_PINWHEEL_CLASSES)


_BUILDERS: dict[str, Callable[[], Toy2D]] = {
    "8gaussians": lambda: _from_energy("8gaussians", eight_gaussians()),
    "checkerboard": lambda: _from_energy("checkerboard", checkerboard()),
    "rings": lambda: _from_energy("rings", rings()),
    # scikit-learn's make_circles(factor=0.5, noise=0.08), scaled by 3 (FFJORD).
    "circles": lambda: _from_energy("circles", rings((1.5, 3.0), 0.24)),
    "moons": _moons,
    "swissroll": _swissroll,
    "pinwheel": lambda: Toy2D(
        "pinwheel", Density(_pinwheel_log_prob, _pinwheel_sample), _ENTROPIES["pinwheel"]
    ),
    "2spirals": _two_spirals,
}


def get(name: str) -> Toy2D:
    """The toy data set called ``name``.

    Args:
      name: one of :data:`NAMES`.

    Returns:
      A :class:`Toy2D`.

    Raises:
      ValueError: for an unknown name; the message lists the valid ones.

    Examples:
      >>> import jax
      >>> from jebm.energies import toy_data
      >>> data = toy_data.get("8gaussians")
      >>> data.density.sample(jax.random.key(0), 4).shape
      (4, 2)
      >>> round(data.entropy, 3)
      2.832
    """
    if name not in _BUILDERS:
        raise ValueError(f"unknown toy data set {name!r}; valid names are {', '.join(NAMES)}.")
    return _BUILDERS[name]()
