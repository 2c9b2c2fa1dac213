"""Tests of jebm.energy: adapters, derived functions and composition, against closed forms."""

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx
from jax.scipy.stats import multivariate_normal

from jebm.energies import gaussian
from jebm.energy import (
    batch_energy,
    conditioned,
    from_fn,
    from_linen,
    from_nnx,
    log_ratio,
    logdensity_fn,
    score_fn,
    sum_energies,
    tempered,
)

# All checks below are exact identities evaluated in float32 on O(1) inputs; 1e-5
# relative (plus 1e-5 absolute near zero) covers a few ulps of each matmul and sum.
RTOL, ATOL = 1e-5, 1e-5

MEAN = jnp.array([0.5, -1.0])
COV = jnp.array([[1.0, 0.3], [0.3, 0.5]])


def _points(n=6, d=2, seed=0):
    return jax.random.normal(jax.random.key(seed), (n, d)) * 1.5


# ------------------------------------------------------------------------ adapters


class _LinenEnergy(nn.Module):
    @nn.compact
    def __call__(self, x):  # (n, d) → (n, 1)
        h = nn.silu(nn.Dense(8)(x))
        scale = self.variable("consts", "scale", lambda: jnp.float32(2.0)).value
        return scale * nn.Dense(1)(h)


class _NNXEnergy(nnx.Module):
    def __init__(self, rngs):
        self.linear = nnx.Linear(2, 1, rngs=rngs)
        self.scale = nnx.Variable(jnp.float32(3.0))  # not a Param: closed over as a constant

    def __call__(self, x):  # (n, d) → (n,)
        return self.scale[...] * self.linear(x)[:, 0]


def test_from_nnx_matches_the_module_and_keeps_non_params_constant():
    model = _NNXEnergy(nnx.Rngs(0))
    energy_fn, params = from_nnx(model)
    xs = _points()
    np.testing.assert_allclose(batch_energy(energy_fn, params, xs), model(xs), rtol=RTOL)
    # Closed form: E(x) = 3 (wᵀx + b).
    w, b = model.linear.kernel[...][:, 0], model.linear.bias[...][0]
    np.testing.assert_allclose(energy_fn(params, xs[0]), 3.0 * (xs[0] @ w + b), rtol=RTOL)
    # Only nnx.Param leaves are params; the constant scale is not among them.
    assert len(jax.tree.leaves(params)) == 2
    # Gradient w.r.t. the bias is the constant scale 3.
    g = jax.grad(energy_fn)(params, xs[0])
    np.testing.assert_allclose(g["linear"]["bias"][...], [3.0], rtol=RTOL)


def test_from_nnx_unbatched_module():
    model = nnx.Linear(2, 1, rngs=nnx.Rngs(1))
    energy_fn, params = from_nnx(model, batched=False)  # called on one x of shape (2,)
    x = _points()[0]
    np.testing.assert_allclose(energy_fn(params, x), model(x)[0], rtol=RTOL)


def test_from_linen_matches_apply_and_closes_over_other_collections():
    module = _LinenEnergy()
    xs = _points()
    variables = module.init(jax.random.key(0), xs)
    energy_fn, params = from_linen(module, variables)
    assert params is variables["params"]
    expected = module.apply(variables, xs)[:, 0]
    np.testing.assert_allclose(
        jax.jit(batch_energy, static_argnums=0)(energy_fn, params, xs),
        expected,
        rtol=RTOL,
        atol=ATOL,
    )
    # The Dense head's bias enters as 2·b (the closed-over scale), so ∂E/∂b = 2.
    g = jax.grad(energy_fn)(params, xs[0])
    np.testing.assert_allclose(g["Dense_1"]["bias"], [2.0], rtol=RTOL)


def test_from_linen_without_params_raises():
    with pytest.raises(ValueError, match="params"):
        from_linen(_LinenEnergy(), {"consts": {}})


def test_from_fn_and_its_scalar_check():
    energy_fn = from_fn(lambda params, x: params * jnp.sum(x**2))
    np.testing.assert_allclose(energy_fn(2.0, jnp.array([1.0, 2.0])), 10.0, rtol=RTOL)
    # A (1,)-shaped result is accepted and reshaped to a scalar.
    assert from_fn(lambda p, x: jnp.sum(x, keepdims=True))(None, jnp.ones(2)).shape == ()
    with pytest.raises(ValueError, match=r"shape \(2,\)"):
        from_fn(lambda params, x: x**2)(None, jnp.ones(2))


@pytest.mark.parametrize("adapter", ["nnx", "linen"])
def test_module_with_non_scalar_output_per_example_raises(adapter):
    x = jnp.ones(3)
    if adapter == "nnx":
        energy_fn, params = from_nnx(nnx.Linear(3, 2, rngs=nnx.Rngs(0)))
    else:
        module = nn.Dense(2)
        energy_fn, params = from_linen(module, module.init(jax.random.key(0), x[None]))
    with pytest.raises(ValueError, match=r"one scalar energy.*\(1, 2\)"):
        energy_fn(params, x)
    with pytest.raises(ValueError, match="one scalar energy"):  # also under jit (trace time)
        jax.jit(energy_fn)(params, x)


# ------------------------------------------------------------- derived functions


def test_logdensity_is_minus_energy_and_matches_gaussian_up_to_log_z():
    target = gaussian(MEAN, COV)
    logp = logdensity_fn(target.energy_fn, target.params)
    for x in _points():
        np.testing.assert_allclose(logp(x), -target.energy_fn(target.params, x), rtol=RTOL)
        # Normalised by the exact log Z it is the Gaussian log-pdf.
        np.testing.assert_allclose(
            logp(x) - target.log_z, multivariate_normal.logpdf(x, MEAN, COV), rtol=RTOL, atol=ATOL
        )


def test_score_is_minus_energy_gradient_closed_form():
    # For N(μ, Σ): ∇ₓ log p(x) = −Σ⁻¹ (x − μ); a sign flip would negate it.
    target = gaussian(MEAN, COV)
    xs = _points()
    scores = jax.vmap(score_fn(target.energy_fn, target.params))(xs)
    expected = -(xs - MEAN[None]) @ jnp.linalg.inv(COV).T
    np.testing.assert_allclose(scores, expected, rtol=1e-4, atol=1e-4)  # inv(COV) in float32
    # At a point above the mean along e₀ the score points back towards it.
    assert score_fn(target.energy_fn, target.params)(MEAN + jnp.array([1.0, 0.0]))[0] < 0


def test_log_ratio_on_batches_has_the_right_sign():
    target = gaussian(MEAN, COV)
    x = _points(seed=1)
    x_prime = _points(seed=2) * 2.0
    ratio = log_ratio(target.energy_fn, target.params, x, x_prime)
    assert ratio.shape == (6,)
    e = lambda xs: batch_energy(target.energy_fn, target.params, xs)
    np.testing.assert_allclose(ratio, e(x_prime) - e(x), rtol=RTOL, atol=ATOL)
    # Oracle: log p(x) − log p(x′) from the normalised log-pdf (Z cancels).
    logpdf = jax.vmap(lambda x: multivariate_normal.logpdf(x, MEAN, COV))
    oracle = logpdf(x) - logpdf(x_prime)
    np.testing.assert_allclose(ratio, oracle, rtol=1e-4, atol=1e-4)
    # The mode is more probable than a point 3 units away: the ratio is positive.
    near, far = MEAN[None], (MEAN + 3.0)[None]
    assert log_ratio(target.energy_fn, target.params, near, far)[0] > 0


def test_batch_energy_matches_a_loop():
    target = gaussian(MEAN, COV)
    xs = _points()
    loop = jnp.stack([target.energy_fn(target.params, x) for x in xs])
    np.testing.assert_allclose(batch_energy(target.energy_fn, target.params, xs), loop, rtol=RTOL)


# -------------------------------------------------------------------- composition


def test_sum_of_two_gaussian_energies_is_the_product_gaussian():
    # N(μ₁, Σ₁)·N(μ₂, Σ₂) ∝ N(μ, Σ), Σ = (P₁ + P₂)⁻¹, μ = Σ(P₁μ₁ + P₂μ₂), and
    # E₁ + E₂ = E_{μ,Σ} + c with c = ½(μ₁ᵀP₁μ₁ + μ₂ᵀP₂μ₂ − μᵀPμ).
    g1 = gaussian(MEAN, COV)
    g2 = gaussian(jnp.array([-1.0, 2.0]), jnp.array([[2.0, -0.5], [-0.5, 1.0]]))
    p1, p2 = (
        np.linalg.inv(np.asarray(COV, np.float64)),
        np.linalg.inv(np.array([[2.0, -0.5], [-0.5, 1.0]])),
    )
    m1, m2 = np.asarray(MEAN, np.float64), np.array([-1.0, 2.0])
    cov = np.linalg.inv(p1 + p2)
    mean = cov @ (p1 @ m1 + p2 @ m2)
    c = 0.5 * (m1 @ p1 @ m1 + m2 @ p2 @ m2 - mean @ (p1 + p2) @ mean)
    product = gaussian(jnp.asarray(mean, jnp.float32), jnp.asarray(cov, jnp.float32))

    energy_fn = sum_energies(g1.energy_fn, g2.energy_fn)
    params = (g1.params, g2.params)
    xs = _points()
    np.testing.assert_allclose(
        batch_energy(energy_fn, params, xs),
        batch_energy(product.energy_fn, product.params, xs) + c,
        rtol=1e-4,  # float32 inverses of the covariances
    )
    np.testing.assert_allclose(
        jax.vmap(score_fn(energy_fn, params))(xs),
        -(xs - jnp.asarray(mean, jnp.float32)[None]) @ jnp.asarray(p1 + p2, jnp.float32).T,
        rtol=1e-4,
        atol=1e-4,
    )


def test_sum_energies_validates():
    with pytest.raises(ValueError, match="at least one"):
        sum_energies()
    energy_fn = sum_energies(gaussian(MEAN, COV).energy_fn, gaussian(MEAN, COV).energy_fn)
    with pytest.raises(ValueError, match="2 energies got 1 params"):
        energy_fn((gaussian(MEAN, COV).params,), MEAN)


def test_tempered_gaussian_is_the_gaussian_with_scaled_covariance():
    # exp(−E/T) for E = ½ dᵀΣ⁻¹d is N(μ, TΣ) with no additive constant.
    target = gaussian(MEAN, COV)
    xs = _points()
    temperatures = jnp.array([0.5, 1.0, 3.0])

    def energies(t):  # the temperature is traced (vmapped) here
        return batch_energy(tempered(target.energy_fn, t), target.params, xs)

    got = jax.jit(jax.vmap(energies))(temperatures)
    for t, row in zip([0.5, 1.0, 3.0], got, strict=True):
        hot = gaussian(MEAN, t * COV)
        np.testing.assert_allclose(row, batch_energy(hot.energy_fn, hot.params, xs), rtol=1e-4)


def test_conditioned_energy_is_the_conditional_gaussian():
    # E(x | y) = ½‖x − A y‖²: conditioning on y gives N(A y, I) exactly.
    a = jnp.array([[1.0, 2.0, 0.0], [0.0, -1.0, 0.5]])

    def joint(params, x, y):
        return 0.5 * jnp.sum((x - params @ y) ** 2)

    y = jnp.array([0.3, -0.2, 1.0])
    cond = gaussian(a @ y, jnp.eye(2))
    xs = _points()
    np.testing.assert_allclose(
        batch_energy(conditioned(joint, y), a, xs),
        batch_energy(cond.energy_fn, cond.params, xs),
        rtol=RTOL,
        atol=ATOL,
    )


def test_batched_adapters_accept_pytree_examples():
    # The contract allows any pytree x; the batched adapters add the batch axis per leaf.
    class TwoInputs(nnx.Module):
        def __init__(self, rngs):
            self.linear = nnx.Linear(2, 1, rngs=rngs)

        def __call__(self, x):  # {"a": (n, 2), "b": (n,)} → (n,)
            return self.linear(x["a"])[:, 0] + x["b"] ** 2

    model = TwoInputs(nnx.Rngs(0))
    energy_fn, params = from_nnx(model)
    xs = {"a": _points(), "b": jnp.arange(6.0)}
    np.testing.assert_allclose(batch_energy(energy_fn, params, xs), model(xs), rtol=RTOL)
