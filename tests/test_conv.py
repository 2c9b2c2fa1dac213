"""Tests of jebm.energies.conv: shapes, the scalar contract, spectral norm, JEM identities."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx
from scipy.special import logsumexp, softmax

from jebm.energies.conv import ConvEnergy, conv_energy, joint_energy_fns
from jebm.energy import batch_energy, from_nnx

SMALL = {"features": (4, 8), "hidden": 16}


def test_module_output_shapes():
    x = jnp.zeros((5, 8, 8))
    assert ConvEnergy((8, 8), rngs=nnx.Rngs(0), **SMALL)(x).shape == (5,)
    assert ConvEnergy((8, 8), num_outputs=10, rngs=nnx.Rngs(0), **SMALL)(x).shape == (5, 10)
    assert ConvEnergy((8, 8), rngs=nnx.Rngs(0), **SMALL)(x[..., None]).shape == (5,)
    rgb = ConvEnergy((6, 6, 3), features=(4,), hidden=8, rngs=nnx.Rngs(0))
    assert rgb(jnp.zeros((2, 6, 6, 3))).shape == (2,)


def test_scalar_contract_through_from_nnx_matches_the_batched_module(key):
    module = ConvEnergy((8, 8), rngs=nnx.Rngs(0), **SMALL)
    energy_fn, params = from_nnx(module)
    x = jax.random.uniform(key, (6, 8, 8))
    assert energy_fn(params, x[0]).shape == ()
    # One example at a time through the adapter = the module on the batch (same float32
    # ops per example; tolerance a few ulps of the O(0.1) outputs).
    np.testing.assert_allclose(batch_energy(energy_fn, params, x), module(x), atol=1e-6)
    grad = jax.jit(jax.grad(energy_fn, argnums=1))(params, x[0])
    assert grad.shape == (8, 8) and bool(jnp.all(jnp.isfinite(grad)))


def test_conv_energy_builder(key):
    energy_fn, params = conv_energy(key, (8, 8), **SMALL)
    assert energy_fn(params, jnp.ones((8, 8))).shape == ()
    with pytest.raises(ValueError, match="joint_energy_fns"):
        conv_energy(key, (8, 8), num_outputs=3)


@pytest.mark.parametrize("bad", [(7, 8), (8, 8, 2), (64,)])
def test_bad_image_shape_raises(key, bad):
    energy_fn, params = conv_energy(key, (8, 8), **SMALL)
    with pytest.raises(ValueError, match=r"expects images of shape \(n, 8, 8\)"):
        energy_fn(params, jnp.zeros(bad))


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"image_shape": (8,)}, "image_shape"),
        ({"features": ()}, "features"),
        ({"hidden": 0}, "hidden"),
        ({"activation": "sigmoidal"}, "activation"),
    ],
)
def test_bad_config_raises(kwargs, match):
    args = {"image_shape": (8, 8), **SMALL, **kwargs}
    with pytest.raises(ValueError, match=match):
        ConvEnergy(rngs=nnx.Rngs(0), **args)


def test_spectral_norm_runs_and_is_invariant_to_weight_scale(key):
    energy_fn, params = conv_energy(key, (8, 8), spectral_norm=True, **SMALL)
    x = jax.random.uniform(key, (8, 8))
    value, grad = jax.jit(jax.value_and_grad(energy_fn))(params, x)
    assert value.shape == () and all(
        bool(jnp.all(jnp.isfinite(g))) for g in jax.tree.leaves(grad)
    )
    # Each layer uses W / σ̂(W) with σ̂ from power iteration started at a stored vector:
    # σ̂(cW) = c σ̂(W), so scaling every weight matrix (not the biases) by 10 leaves the
    # energy unchanged up to float32 rounding.
    scaled = jax.tree_util.tree_map_with_path(
        lambda path, p: p * 10.0 if "kernel" in jax.tree_util.keystr(path) else p, params
    )
    np.testing.assert_allclose(energy_fn(scaled, x), value, rtol=1e-4, atol=1e-5)
    # Without spectral norm the same scaling changes the energy.
    plain_fn, plain = conv_energy(key, (8, 8), **SMALL)
    scaled_plain = jax.tree_util.tree_map_with_path(
        lambda path, p: p * 10.0 if "kernel" in jax.tree_util.keystr(path) else p, plain
    )
    assert abs(float(plain_fn(scaled_plain, x) - plain_fn(plain, x))) > 1e-2


def _power_iteration_sigma(w: np.ndarray, u: np.ndarray, num_steps: int) -> float:
    """σ̂ of ``w`` (in, out) after ``num_steps`` power iterations from the row vector ``u``
    (1, out), in closed form from the SVD ``w = Σ σ_i a_i b_iᵀ``: with ``c_i = u·b_i``,

        σ̂² = Σ c_i² σ_i^(4n) / Σ c_i² σ_i^(4n−2),

    (the last iterate ``u_n`` ∝ ``u (wᵀw)^n`` and ``σ̂ = ‖u_{n−1} wᵀw‖ / ‖u_{n−1} wᵀ‖``).
    Its excess over 1 is bounded: ``σ₁²/σ̂² − 1 <= tan²θ₀ (σ₂/σ₁)^(4n−2)``, ``θ₀`` the
    angle between ``u`` and ``b₁``."""
    _, sigma, bt = np.linalg.svd(w, full_matrices=False)
    c2 = (u @ bt.T)[0] ** 2
    s = sigma / sigma[0]  # scaled for range; σ̂ scales back by σ₁
    return float(sigma[0] * np.sqrt(np.sum(c2 * s ** (4 * num_steps))
                                    / np.sum(c2 * s ** (4 * num_steps - 2))))


@pytest.mark.parametrize("num_steps", [5, 20])
def test_spectral_norm_normalises_every_layer_on_digits(num_steps):
    from jebm.datasets import digits
    from jebm.energy import _fresh

    split = digits.load_digits(test_fraction=0.2, seed=0)
    x = digits.dequantize(jax.random.key(1), split.test_counts)[:8]
    module = ConvEnergy((8, 8), spectral_norm=True, spectral_norm_steps=num_steps,
                        rngs=nnx.Rngs(0), **SMALL)
    graphdef, params, rest = nnx.split(module, nnx.Param, ...)
    used = nnx.merge(graphdef, _fresh(params), rest)  # a copy: its call normalises in place
    assert bool(jnp.all(jnp.isfinite(used(x))))
    layers = {f"convs[{i}]": (raw, new) for i, (raw, new) in
              enumerate(zip(module.convs, used.convs, strict=True))}
    layers.update(dense=(module.dense, used.dense), head=(module.head, used.head))
    for name, (raw, new) in layers.items():
        kernel = np.asarray(raw.layer_instance.kernel[...], np.float64)
        w = kernel.reshape(-1, kernel.shape[-1])  # (kh·kw·c_in, c_out), as flax reshapes it
        w_used = np.asarray(new.layer_instance.kernel[...], np.float64).reshape(w.shape)
        u0 = np.asarray(raw.batch_stats[("kernel", "u")][...], np.float64)
        sigma_hat = _power_iteration_sigma(w, u0, num_steps)
        # The layer computes with W / σ̂, σ̂ the power-iteration estimate from the stored
        # vector (update_stats=False: the same estimate every call); float32 rounding 1e-5.
        np.testing.assert_allclose(w_used, w / sigma_hat, rtol=1e-5, atol=1e-7, err_msg=name)
        # So the normalised kernel's spectral norm (np.linalg.svd) is σ₁/σ̂: at least 1
        # (σ̂ <= σ₁), and at most √(1 + tan²θ₀ (σ₂/σ₁)^(4n−2)).
        _, sigma, bt = np.linalg.svd(w, full_matrices=False)
        top = np.linalg.svd(w_used, compute_uv=False)[0]
        assert top >= 1.0 - 1e-5, (name, top)
        if len(sigma) > 1:
            cos2 = (u0 @ bt[0]) ** 2 / np.sum(u0**2)
            bound = np.sqrt(1 + (1 - cos2) / cos2 * (sigma[1] / sigma[0]) ** (4 * num_steps - 2))
            assert top <= bound * (1 + 1e-5), (name, top, bound)
        if num_steps == 20:  # enough iterations for these small layers: ≈ 1
            assert abs(top - 1.0) <= 1e-3, (name, top)


def test_jem_identities(key):
    jem = joint_energy_fns(key, (8, 8), 10, **SMALL)
    xs = jax.random.uniform(key, (4, 8, 8))
    for x in xs:
        logits = np.asarray(jem.logits_fn(jem.params, x), np.float64)
        assert logits.shape == (10,)
        # E(x) = −logsumexp_y g(x)[y], against scipy in float64 (float32 rounding: 1e-5).
        np.testing.assert_allclose(jem.energy_fn(jem.params, x), -logsumexp(logits), atol=1e-5)
        cond = np.array([jem.conditional_energy_fn(jem.params, x, y) for y in range(10)])
        np.testing.assert_allclose(cond, -logits, atol=1e-6)
        # p(y | x) = exp(E(x) − E(x, y)) is the softmax of the logits and sums to one.
        p_y = np.exp(float(jem.energy_fn(jem.params, x)) - cond)
        np.testing.assert_allclose(p_y, softmax(logits), atol=1e-5)
        np.testing.assert_allclose(p_y.sum(), 1.0, atol=1e-5)
    # The conditional energy accepts a traced label (for vmapped class-conditional chains).
    ys = jnp.arange(4)
    vmapped = jax.vmap(jem.conditional_energy_fn, in_axes=(None, 0, 0))(jem.params, xs, ys)
    assert vmapped.shape == (4,)


def test_joint_energy_fns_validation(key):
    with pytest.raises(ValueError, match="num_classes"):
        joint_energy_fns(key, (8, 8), 1)
    with pytest.raises(ValueError, match="num_outputs"):
        joint_energy_fns(key, (8, 8), 3, num_outputs=3)
