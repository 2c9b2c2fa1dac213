"""Energy discrepancy on a Gaussian family, where the population loss is known in closed form.

Data ``x ~ N(μ, s²)`` in one dimension; model ``E(θ, x) = (x − m)² / (2v)``, ``θ = (m, v)``
(no normalising constant: ED never needs one). With ``y = x + σξ`` and the Gaussian
integral ``∫ N(x′; y, σ²) exp(−(x′ − m)²/(2v)) dx′ = √(v/(v+σ²)) exp(−(y − m)²/(2(v+σ²)))``,
the contrastive potential is ``U(y) = (y − m)²/(2(v+σ²)) + ½ log((v+σ²)/v)`` and, with
``y ~ N(μ, s² + σ²)``, the population loss (``w = 0``, ``M → ∞``) is

    L(m, v) = (s² + (μ−m)²)/(2v) − (s² + σ² + (μ−m)²)/(2(v+σ²)) − ½ log((v+σ²)/v).

Its gradient vanishes at ``(m, v) = (μ, s²)``: ∂L/∂m ∝ (m − μ)(1/v − 1/(v+σ²)), and at m = μ
∂L/∂v = −s²/(2v²) + (s²+σ²)/(2(v+σ²)²) + σ²/(2v(v+σ²)), zero at v = s². So the optimum is the
data Gaussian.

The finite-``M`` estimator ``log mean_j Wⱼ`` is biased by about ``−Var W / (2M (E W)²)`` per
data point; averaged over the data, ``Var W/(E W)²`` is at most 0.8 at the four ``θ`` tested
(measured with numpy at these settings, σ = 0.5), so at ``M = 1024`` the bias of the loss is
below 4e-4; the tolerances below allow 1e-3 for it on top of 4 SE.
"""

import functools
import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jebm.objectives import energy_discrepancy, energy_discrepancy_loss

MU, S2, SIGMA = 0.5, 1.5, 0.5


def energy(theta, x):
    m, v = theta
    return jnp.sum((x - m) ** 2) / (2 * v)


def population_loss(theta):
    m, v = theta
    t = SIGMA**2
    gap = (MU - m) ** 2
    return (S2 + gap) / (2 * v) - (S2 + t + gap) / (2 * (v + t)) - 0.5 * jnp.log((v + t) / v)


@functools.partial(jax.jit, static_argnums=(2, 3))
def per_example(theta, key, n, num_negatives):
    """Loss and gradient of each data point separately (for their standard errors)."""
    k_data, k_loss = jax.random.split(key)
    x = MU + math.sqrt(S2) * jax.random.normal(k_data, (n, 1, 1))

    def one(xi, k):
        return jax.value_and_grad(lambda th: energy_discrepancy_loss(
            th, k, xi, energy_fn=energy, sigma=SIGMA, num_negatives=num_negatives,
            stabilizer=0.0)[0])(theta)  # fmt: skip

    return jax.vmap(one)(x, jax.random.split(k_loss, n))


THETAS = [
    pytest.param((MU, S2), id="optimum"),
    pytest.param((MU + 0.5, S2), id="mean-off"),
    pytest.param((MU, 0.5 * S2), id="too-narrow"),
    pytest.param((MU - 0.3, 2.0 * S2), id="both-off"),
]


@pytest.mark.parametrize("theta", THETAS)
def test_loss_and_gradient_match_the_population_closed_form(theta):
    # 2000 data points, M = 1024 negatives each; tolerance 4 × SE of the per-example means
    # (plus the ≤ 1e-3 finite-M bias bounded in the module docstring).
    theta = jnp.asarray(theta, jnp.float32)
    values, grads = per_example(theta, jax.random.key(0), 2000, 1024)
    se = lambda a: float(jnp.std(a, axis=0).max()) / math.sqrt(a.shape[0])
    assert abs(float(values.mean()) - float(population_loss(theta))) < 4 * se(values) + 1e-3
    oracle = np.asarray(jax.grad(population_loss)(theta))
    np.testing.assert_allclose(grads.mean(0), oracle, atol=4 * se(grads) + 1e-3)


def test_optimum_is_the_data_gaussian_and_sign():
    # At the data Gaussian the population gradient is zero (closed form above); away from it
    # the MC gradient points back towards it. A flipped sign in the loss
    # (exp(E(x⁻) − E(x))) reverses both inequalities below.
    grad = jax.grad(population_loss)
    np.testing.assert_allclose(grad(jnp.array([MU, S2])), 0.0, atol=1e-6)
    _, g_mean = per_example(jnp.array([MU + 0.5, S2]), jax.random.key(1), 1000, 256)
    _, g_narrow = per_example(jnp.array([MU, 0.5 * S2]), jax.random.key(2), 1000, 256)
    _, g_wide = per_example(jnp.array([MU, 2.0 * S2]), jax.random.key(3), 1000, 256)
    # Closed-form values 0.048, −0.29, 0.012; demand each be 4 SE on its side (SE ≈ 0.001–0.01).
    se = lambda g: float(jnp.std(g)) / math.sqrt(g.shape[0])
    assert float(g_mean[:, 0].mean()) > 4 * se(g_mean[:, 0])  # descent lowers m towards μ
    assert float(g_narrow[:, 1].mean()) < -4 * se(g_narrow[:, 1])  # descent widens v
    assert float(g_wide[:, 1].mean()) > 4 * se(g_wide[:, 1])  # descent narrows v


def test_flat_energy_gives_log_one_plus_w_over_m():
    # E ≡ 0: every term exp(E(x) − E(x⁻)) is 1, so the loss is log(w/M + 1) exactly.
    flat = lambda p, x: 0.0 * jnp.sum(x)
    batch = jnp.ones((5, 3))
    for w, m in [(0.0, 4), (1.0, 4), (2.5, 10)]:
        loss, metrics = energy_discrepancy_loss(
            0.0, jax.random.key(0), batch, energy_fn=flat, sigma=1.0, num_negatives=m,
            stabilizer=w)  # fmt: skip
        assert float(loss) == pytest.approx(math.log(w / m + 1.0), abs=1e-6)
        assert float(metrics["energy_gap"]) == 0.0


def test_objective_wrapper_and_validation(key):
    objective = energy_discrepancy(energy, sigma=SIGMA, num_negatives=8)
    batch = jnp.zeros((4, 2))
    state = objective.init(key, batch)
    loss, (metrics, state) = objective.loss(jnp.array([0.0, 1.0]), key, batch, state)
    direct, _ = energy_discrepancy_loss(jnp.array([0.0, 1.0]), key, batch, energy_fn=energy,
                                        sigma=SIGMA, num_negatives=8)  # fmt: skip
    assert float(loss) == float(direct) and state == ()
    with pytest.raises(ValueError, match="sigma"):
        energy_discrepancy(energy, sigma=0.0)
    with pytest.raises(ValueError, match="num_negatives"):
        energy_discrepancy(energy, sigma=0.1, num_negatives=0)
    with pytest.raises(ValueError, match="stabilizer"):
        energy_discrepancy(energy, sigma=0.1, stabilizer=-1.0)


def test_pytree_batches(key):
    # A batch given as a dict of leaves is perturbed leaf by leaf.
    tree_energy = lambda p, x: 0.5 * (jnp.sum(x["a"] ** 2) + jnp.sum(x["b"] ** 2))
    batch = {"a": jnp.zeros((3, 2)), "b": jnp.ones((3, 4, 2))}
    loss, _ = energy_discrepancy_loss(None, key, batch, energy_fn=tree_energy, sigma=0.3)
    assert jnp.isfinite(loss)
