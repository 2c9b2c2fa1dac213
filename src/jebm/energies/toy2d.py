"""Two-dimensional toy energies with an exact partition function.

Three densities of the FFJORD toy set (Grathwohl et al., 2019) have a closed
form, and this module is their one implementation (:mod:`jebm.energies.toy_data`
builds its ``log_prob`` from these energies):

* :func:`eight_gaussians`: eight isotropic Gaussians on a circle, a
  :func:`~jebm.energies.analytic.gaussian_mixture`;
* :func:`rings`: concentric circles, uniform in angle, blurred by isotropic
  Gaussian noise. Averaging ``N(x; r(cos θ, sin θ), σ²I)`` over ``θ`` gives, with
  ``ρ = ‖x‖``,

      (2πσ²)⁻¹ exp(−(ρ² + r²)/(2σ²)) I₀(ρr/σ²)
        = (2πσ²)⁻¹ exp(−(ρ − r)²/(2σ²)) i0e(ρr/σ²),

  where ``i0e(z) = e^{−z} I₀(z)`` is the exponentially scaled modified Bessel
  function (the second form never overflows). So ``log Z = log 2πσ²`` exactly.
* :func:`checkerboard`: uniform on eight 2×2 squares of ``[−4, 4]²`` (area 32),
  exactly (``E = 0`` inside, ``+∞`` outside), or convolved with ``N(0, s²I)``
  for gradient-based samplers. The convolution keeps ``Z = 32`` exactly: a
  square ``[a, a+2] × [b, b+2]`` blurs to ``Π_i [Φ((x_i − lo_i)/s) − Φ((x_i − hi_i)/s)]``.

Like the rest of :mod:`jebm.energies.analytic`, the energies are deliberately
unnormalised (``log_z ≠ 0``), and each comes with an exact sampler.

References:
  Grathwohl, W., Chen, R. T. Q., Bettencourt, J., Sutskever, I. and Duvenaud, D.
  (2019). FFJORD: Free-form continuous dynamics for scalable reversible generative
  models. ICLR. (the toy data sets, ``lib/toy_data.py`` of its code release)
  Abramowitz, M. and Stegun, I. A. (1964). Handbook of Mathematical Functions,
  9.6.16 (``I₀(z) = π⁻¹ ∫₀^π exp(z cos θ) dθ``).
"""

import math

import jax
import jax.numpy as jnp
import numpy as np
from jax.scipy.special import i0e, log_ndtr

from jebm._validate import check_float
from jebm.energies.analytic import AnalyticEnergy, check_event_shape, gaussian_mixture
from jebm.types import Array, PRNGKey

__all__ = ["eight_gaussians", "rings", "checkerboard", "CHECKERBOARD_SQUARES"]

# Lower-left corners of the eight 2×2 squares of the FFJORD checkerboard: the cells
# [2i, 2i+2] × [2j, 2j+2], i, j ∈ {−2, −1, 0, 1}, with i + j even.
CHECKERBOARD_SQUARES = np.array(
    [(2.0 * i, 2.0 * j) for i in range(-2, 2) for j in range(-2, 2) if (i + j) % 2 == 0]
)
_CHECKERBOARD_LOG_AREA = math.log(32.0)


def _safe_norm(x: Array) -> Array:
    """``‖x‖`` with a zero (not NaN) gradient at the origin."""
    sq = jnp.sum(x**2)
    positive = sq > 0
    return jnp.where(positive, jnp.sqrt(jnp.where(positive, sq, 1.0)), 0.0)


def _log_ndtr_diff(upper: Array, lower: Array) -> Array:
    """``log(Φ(upper) − Φ(lower))`` for ``upper > lower``, stable in both tails.

    When the interval lies mostly right of zero, ``Φ(u) − Φ(l) = Φ(−l) − Φ(−u)``
    is used instead, so neither form subtracts two numbers close to one.
    """
    flip = upper + lower > 0
    hi = jnp.where(flip, -lower, upper)
    lo = jnp.where(flip, -upper, lower)
    log_hi = log_ndtr(hi)
    return log_hi + jnp.log(-jnp.expm1(log_ndtr(lo) - log_hi))


def eight_gaussians(
    radius: float = 2.0 * math.sqrt(2.0), scale: float = 0.5 / math.sqrt(2.0)
) -> AnalyticEnergy:
    """FFJORD's "8gaussians": eight equal isotropic Gaussians on a circle.

    FFJORD draws centres ``4(cos kπ/4, sin kπ/4)`` plus ``N(0, 0.5²I)`` noise and
    divides by 1.414, i.e. radius ``4/√2 = 2√2`` and standard deviation ``0.5/√2``
    (here ``√2`` exactly rather than FFJORD's rounded 1.414, a relative change of
    1.5e-4).

    Args:
      radius: distance of the centres from the origin.
      scale: standard deviation of each component.

    Returns:
      A :func:`~jebm.energies.analytic.gaussian_mixture` energy (whose
      convention gives ``log_z = log 2π`` in two dimensions).

    Examples:
      >>> import jax.numpy as jnp
      >>> from jebm.energies.toy2d import eight_gaussians
      >>> target = eight_gaussians()
      >>> round(float(target.log_z), 4)  # log 2π
      1.8379

    References:
      Grathwohl et al. (2019), FFJORD, ICLR.
    """
    angles = np.arange(8) * np.pi / 4
    centres = radius * np.stack([np.cos(angles), np.sin(angles)], axis=-1)
    return gaussian_mixture(centres, scale)


def rings(
    radii: tuple[float, ...] = (0.75, 1.5, 2.25, 3.0),
    scale: float = 0.08,
    weights: tuple[float, ...] | None = None,
) -> AnalyticEnergy:
    """Concentric circles, uniform in angle, convolved with ``N(0, scale²I)``.

    ``E(x) = −log Σₖ wₖ exp(−(ρ − rₖ)²/(2σ²)) i0e(ρ rₖ/σ²)`` with ``ρ = ‖x‖``,
    ``Σ wₖ = 1`` and ``log Z = log 2πσ²`` (see the module docstring). The defaults
    are FFJORD's "rings": radii ``3 × (1/4, 1/2, 3/4, 1)``, equal weights (FFJORD
    puts a quarter of each batch on each circle), noise 0.08. FFJORD's "circles"
    is ``rings((1.5, 3.0), 0.24)``.

    Args:
      radii: the circles' radii, each positive.
      scale: standard deviation of the Gaussian blur, positive.
      weights: probability of each circle (normalised here); equal by default.

    Returns:
      An :class:`~jebm.energies.analytic.AnalyticEnergy` with ``params`` holding
      ``radii``, ``log_weights`` and ``scale``.

    Examples:
      >>> import jax, jax.numpy as jnp
      >>> from jebm.energies.toy2d import rings
      >>> target = rings()
      >>> target.sample(jax.random.key(0), 5).shape
      (5, 2)
      >>> bool(target.energy_fn(target.params, jnp.array([3.0, 0.0]))
      ...      < target.energy_fn(target.params, jnp.array([2.6, 0.0])))
      True

    References:
      Grathwohl et al. (2019), FFJORD, ICLR.
    """
    radii_np = np.asarray(radii, np.float64)
    if radii_np.ndim != 1 or radii_np.size == 0 or np.any(radii_np <= 0):
        raise ValueError(f"radii must be a non-empty sequence of positive numbers, got {radii}.")
    check_float("scale", scale)
    (k,) = radii_np.shape
    weights_np = np.full(k, 1.0 / k) if weights is None else np.asarray(weights, np.float64)
    if weights_np.shape != (k,) or np.any(weights_np < 0) or weights_np.sum() <= 0:
        raise ValueError(f"weights must be {k} non-negative numbers, not all zero, got {weights}.")
    log_w = np.log(weights_np / weights_np.sum())

    def energy_fn(params, x):
        check_event_shape(x, (2,), "rings energy")
        rho = _safe_norm(x)
        r, s2 = params["radii"], params["scale"] ** 2
        terms = params["log_weights"] - 0.5 * (rho - r) ** 2 / s2 + jnp.log(i0e(rho * r / s2))
        return -jax.nn.logsumexp(terms)

    radii_j = jnp.asarray(radii_np, jnp.float32)
    log_w_j = jnp.asarray(log_w, jnp.float32)

    def sample(key: PRNGKey, n: int) -> Array:
        k_comp, k_angle, k_noise = jax.random.split(key, 3)
        r = radii_j[jax.random.categorical(k_comp, log_w_j, shape=(n,))]
        angle = jax.random.uniform(k_angle, (n,), maxval=2 * jnp.pi)
        on_circle = r[:, None] * jnp.stack([jnp.cos(angle), jnp.sin(angle)], axis=-1)
        return on_circle + scale * jax.random.normal(k_noise, (n, 2))

    params = {"radii": radii_j, "log_weights": log_w_j, "scale": jnp.float32(scale)}
    log_z = jnp.float32(math.log(2 * math.pi * scale**2))
    return AnalyticEnergy(energy_fn, params, log_z, sample, (2,))


def _checkerboard_exact_sample(key: PRNGKey, n: int) -> Array:
    # FFJORD's recipe: x₁ ~ U[−2, 2]; x₂ ~ U[0, 1] or U[−2, −1], shifted up by one in
    # the columns where ⌊x₁⌋ is odd; everything doubled.
    k1, k2, k3 = jax.random.split(key, 3)
    x1 = jax.random.uniform(k1, (n,), minval=-2.0, maxval=2.0)
    x2 = jax.random.uniform(k2, (n,)) - 2.0 * jax.random.bernoulli(k3, 0.5, (n,))
    x2 = x2 + jnp.floor(x1) % 2
    return 2.0 * jnp.stack([x1, x2], axis=-1)


def checkerboard(smoothing: float = 0.0) -> AnalyticEnergy:
    """FFJORD's "checkerboard": uniform on eight 2×2 squares of ``[−4, 4]²``.

    With ``smoothing = 0`` the energy is exact: ``E = 0`` on the squares and
    ``+∞`` elsewhere, ``log Z = log 32``. Its gradient is zero wherever it is
    finite, so gradient-based samplers see nothing; for them use
    ``smoothing = s > 0``, the checkerboard convolved with ``N(0, s²I)``:

        exp(−E(x)) = Σ_squares Π_{i=1,2} [Φ((x_i − lo_i)/s) − Φ((x_i − hi_i)/s)],

    still with ``log Z = log 32`` exactly (a convolution preserves mass) and an
    exact sampler (checkerboard draw plus Gaussian noise). ``s`` is stored in
    ``params["smoothing"]`` and may be changed (or traced) without changing
    ``log_z``.

    Args:
      smoothing: standard deviation of the Gaussian blur; 0 for the sharp density.

    Returns:
      An :class:`~jebm.energies.analytic.AnalyticEnergy`.

    Examples:
      >>> import jax.numpy as jnp
      >>> from jebm.energies.toy2d import checkerboard
      >>> sharp = checkerboard()
      >>> float(sharp.energy_fn(sharp.params, jnp.array([1.0, 1.0])))
      0.0
      >>> float(sharp.energy_fn(sharp.params, jnp.array([1.0, -1.0])))
      inf

    References:
      Grathwohl et al. (2019), FFJORD, ICLR.
    """
    if not smoothing >= 0:
        raise ValueError(f"smoothing must be non-negative, got {smoothing}.")
    log_z = jnp.float32(_CHECKERBOARD_LOG_AREA)
    if smoothing == 0:

        def energy_fn(params, x):
            check_event_shape(x, (2,), "checkerboard energy")
            cell = jnp.floor(x / 2.0)
            inside = jnp.all(jnp.abs(x) < 4.0) & ((cell[0] + cell[1]) % 2 == 0)
            return jnp.where(inside, 0.0, jnp.inf)

        return AnalyticEnergy(energy_fn, {}, log_z, _checkerboard_exact_sample, (2,))

    lower = jnp.asarray(CHECKERBOARD_SQUARES, jnp.float32)

    def smooth_energy_fn(params, x):
        check_event_shape(x, (2,), "checkerboard energy")
        s = params["smoothing"]
        rel = (x[None, :] - lower) / s  # (8, 2)
        log_mass = _log_ndtr_diff(rel, rel - 2.0 / s)
        return -jax.nn.logsumexp(jnp.sum(log_mass, axis=-1))

    def sample(key: PRNGKey, n: int) -> Array:
        k_board, k_noise = jax.random.split(key)
        noise = smoothing * jax.random.normal(k_noise, (n, 2))
        return _checkerboard_exact_sample(k_board, n) + noise

    params = {"smoothing": jnp.float32(smoothing)}
    return AnalyticEnergy(smooth_energy_fn, params, log_z, sample, (2,))
