"""Tests of jebm.energies.mlp: shapes, the forward pass, validation, functional use."""

import os
import subprocess
import sys
import textwrap

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from jebm.energies.mlp import MLPEnergy, mlp_energy
from jebm.energy import batch_energy, score_fn

# Written out independently of the module's table, from the textbook definitions.
_REFERENCE_ACTIVATIONS = {
    "silu": lambda h: h / (1 + np.exp(-h)),
    "swish": lambda h: h / (1 + np.exp(-h)),
    "softplus": lambda h: np.logaddexp(0.0, h),
    "elu": lambda h: np.where(h > 0, h, np.expm1(h)),
    "gelu": lambda h: 0.5 * h * (1 + np.tanh(np.sqrt(2 / np.pi) * (h + 0.044715 * h**3))),
    "tanh": np.tanh,
    "relu": lambda h: np.maximum(h, 0.0),
}


def _reference_forward(params, x, activation):
    """NumPy forward pass from the pure parameter dict, float64."""
    p = jax.tree.map(lambda a: np.asarray(a, np.float64), nnx.to_pure_dict(params))
    act = _REFERENCE_ACTIVATIONS[activation]
    h = np.asarray(x, np.float64)
    for i in range(len(p["layers"])):
        h = act(h @ p["layers"][i]["kernel"] + p["layers"][i]["bias"][None])
    return (h @ p["head"]["kernel"] + p["head"]["bias"][None])[:, 0]


@pytest.mark.parametrize("activation", sorted(_REFERENCE_ACTIVATIONS))
def test_forward_pass_matches_numpy_reference(activation):
    model = MLPEnergy(3, hidden=(16, 8), activation=activation, rngs=nnx.Rngs(0))
    x = jax.random.normal(jax.random.key(1), (5, 3)) * 2.0
    out = model(x)
    assert out.shape == (5,)
    _, params = nnx.split(model, nnx.Param)
    # float32 matmuls of width ≤ 16 with O(1) entries: ~1e-6 relative error.
    np.testing.assert_allclose(out, _reference_forward(params, x, activation), rtol=1e-5, atol=1e-5)


def test_layer_widths_and_no_hidden_layers():
    model = MLPEnergy(4, hidden=(7, 5, 3), rngs=nnx.Rngs(0))
    shapes = [layer.kernel.shape for layer in model.layers] + [model.head.kernel.shape]
    assert shapes == [(4, 7), (7, 5), (5, 3), (3, 1)]
    linear = MLPEnergy(4, hidden=(), rngs=nnx.Rngs(0))  # E(x) = wᵀx + b
    x = jnp.eye(4)
    np.testing.assert_allclose(
        linear(x), linear.head.kernel[...][:, 0] + linear.head.bias[...][0], rtol=1e-6
    )


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(in_features=2, activation="sigmoid"), "activation"),
        (dict(in_features=2, activation="SiLU"), "activation"),
        (dict(in_features=0), "in_features"),
        (dict(in_features=2.0), "in_features"),
        (dict(in_features=2, hidden=(16, 0)), "hidden"),
        (dict(in_features=2, hidden=32), "sequence"),
    ],
    ids=[
        "unknown-activation",
        "case-sensitive",
        "zero-features",
        "float-features",
        "zero-width",
        "int-hidden",
    ],
)
def test_bad_config_raises(kwargs, match):
    with pytest.raises(ValueError, match=match):
        MLPEnergy(rngs=nnx.Rngs(0), **kwargs)
    with pytest.raises(ValueError, match=match):
        mlp_energy(jax.random.key(0), **kwargs)


@pytest.mark.parametrize("shape", [(5, 3), (3,), (1, 2, 2), ()])
def test_bad_input_shape_raises(shape):
    model = MLPEnergy(2, hidden=(4,), rngs=nnx.Rngs(0))
    with pytest.raises(ValueError, match=r"\(n, 2\) or one example of shape \(2,\)"):
        model(jnp.zeros(shape))


def test_one_example_matches_its_batch_row():
    # the unbatched call (what mlp_energy adapts) is the batched call's row, and vmap of it
    # is the batched call
    model = MLPEnergy(3, hidden=(8, 8), fourier_features=4, rngs=nnx.Rngs(1))
    x = jax.random.normal(jax.random.key(2), (5, 3))
    np.testing.assert_allclose(model(x[2]), model(x)[2], rtol=1e-6)
    assert model(x[2]).shape == ()
    np.testing.assert_allclose(jax.vmap(model)(x), model(x), rtol=1e-6)
    energy_fn, params = mlp_energy(jax.random.key(3), 3, hidden=(8,))
    with pytest.raises(ValueError, match="one scalar energy per unbatched example"):
        energy_fn(params, x)  # a batch given where one example belongs


def test_functional_split_merge_jit_and_grad():
    model = MLPEnergy(2, hidden=(16, 16), rngs=nnx.Rngs(3))
    x = jax.random.normal(jax.random.key(4), (6, 2))
    graphdef, params = nnx.split(model, nnx.Param)
    apply = jax.jit(lambda p, x: nnx.merge(graphdef, p)(x))
    np.testing.assert_allclose(apply(params, x), model(x), rtol=1e-6)

    # Gradient of the mean energy w.r.t. the head bias is exactly 1 (E = … + b).
    grads = jax.grad(lambda p: apply(p, x).mean())(params)
    np.testing.assert_allclose(grads["head"]["bias"][...], [1.0], rtol=1e-6)
    assert jax.tree.structure(grads) == jax.tree.structure(params)
    # A gradient step changes the energies: params really flow through the pure function.
    stepped = jax.tree.map(lambda p, g: p - 0.1 * g, params, grads)
    assert not np.allclose(apply(stepped, x), apply(params, x))


def test_mlp_energy_follows_the_energy_contract(key):
    energy_fn, params = mlp_energy(key, 3, hidden=(8,), activation="softplus")
    model = MLPEnergy(3, hidden=(8,), activation="softplus", rngs=nnx.Rngs(key))
    xs = jax.random.normal(jax.random.key(5), (4, 3))
    assert energy_fn(params, xs[0]).shape == ()
    # Same key, same initialisation: the adapter's energies are the module's.
    np.testing.assert_allclose(
        jax.jit(batch_energy, static_argnums=0)(energy_fn, params, xs), model(xs), rtol=1e-6
    )
    # Score = −∇ₓE, checked against central finite differences (float32: h = 1e-2,
    # truncation O(h²·E‴) ~ 1e-4, roundoff ~1e-7/h = 1e-5).
    s = score_fn(energy_fn, params)(xs[0])
    eye = jnp.eye(3) * 1e-2
    fd = jnp.array(
        [(energy_fn(params, xs[0] + e) - energy_fn(params, xs[0] - e)) / 2e-2 for e in eye]
    )
    np.testing.assert_allclose(s, -fd, atol=5e-4)
    # Different keys give different networks.
    _, other = mlp_energy(jax.random.key(99), 3, hidden=(8,), activation="softplus")
    assert not np.allclose(energy_fn(other, xs[0]), energy_fn(params, xs[0]))


def test_tree_mode_gives_the_same_model():
    # NNX_GRAPH_MODE=false sets flax's `nnx_graph_mode` flag at import; nnx.set_graph_mode
    # is its in-process equivalent. Tree mode must build and run the same network.
    x = jax.random.normal(jax.random.key(6), (4, 2))
    energy_fn, params = mlp_energy(jax.random.key(7), 2, hidden=(8, 8))
    with nnx.set_graph_mode(False):
        tree_fn, tree_params = mlp_energy(jax.random.key(7), 2, hidden=(8, 8))
        model = MLPEnergy(2, hidden=(8, 8), rngs=nnx.Rngs(jax.random.key(7)))
        graphdef, p = nnx.split(model, nnx.Param)
        merged = jax.jit(lambda p, x: nnx.merge(graphdef, p)(x))(p, x)
        tree_energies = jax.vmap(tree_fn, in_axes=(None, 0))(tree_params, x)
        tree_grad = jax.grad(lambda p: tree_fn(p, x[0]))(tree_params)
    graph_energies = jax.vmap(energy_fn, in_axes=(None, 0))(params, x)
    np.testing.assert_allclose(tree_energies, graph_energies, rtol=1e-6)
    np.testing.assert_allclose(merged, graph_energies, rtol=1e-6)
    graph_grad = jax.grad(lambda p: energy_fn(p, x[0]))(params)
    jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-6), tree_grad, graph_grad)


@pytest.mark.slow
def test_env_var_tree_mode_in_a_fresh_process():
    # The literal NNX_GRAPH_MODE=false, read by flax at import: needs a new interpreter.
    script = textwrap.dedent(
        """
        import flax, jax, jax.numpy as jnp
        assert flax.config.nnx_graph_mode is False
        from jebm.energies.mlp import mlp_energy
        energy_fn, params = mlp_energy(jax.random.key(7), 2, hidden=(8, 8))
        e = jax.jit(energy_fn)(params, jnp.ones(2))
        g = jax.grad(energy_fn)(params, jnp.ones(2))
        print(float(e))
        """
    )
    env = {**os.environ, "NNX_GRAPH_MODE": "false", "JAX_PLATFORMS": "cpu"}
    out = subprocess.run(
        [sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=300
    )
    assert out.returncode == 0, out.stderr
    energy_fn, params = mlp_energy(jax.random.key(7), 2, hidden=(8, 8))
    np.testing.assert_allclose(float(out.stdout), energy_fn(params, jnp.ones(2)), rtol=1e-6)


def test_fourier_features_are_fixed_and_feed_the_first_layer(key):
    # E(x) = MLP([sin(Bᵀx), cos(Bᵀx)]) with B fixed: the NumPy reference on the mapped
    # input, B outside the parameters (so its gradient never exists) and the same B
    # from the same key.
    model = MLPEnergy(2, hidden=(8,), fourier_features=5, fourier_scale=3.0, rngs=nnx.Rngs(0))
    freqs = np.asarray(model.fourier[...], np.float64)
    assert freqs.shape == (2, 5)
    assert 1.0 < freqs.std() < 6.0  # scale 3: a loose check that the scale is applied
    graphdef, params, rest = nnx.split(model, nnx.Param, ...)
    assert not any(leaf.shape == (2, 5) for leaf in jax.tree.leaves(params))
    x = np.asarray(jax.random.normal(key, (4, 2)), np.float64)
    mapped = np.concatenate([np.sin(x @ freqs), np.cos(x @ freqs)], axis=1)
    expected = _reference_forward(params, mapped, "silu")
    np.testing.assert_allclose(model(jnp.asarray(x, jnp.float32)), expected, rtol=2e-5,
                               atol=2e-5)
    fn, p = mlp_energy(jax.random.key(0), 2, (8,), fourier_features=5, fourier_scale=3.0)
    np.testing.assert_array_equal(fn(p, jnp.asarray(x[0], jnp.float32)),
                                  model(jnp.asarray(x[:1], jnp.float32))[0])
    with pytest.raises(ValueError, match="fourier_features"):
        MLPEnergy(2, fourier_features=-1, rngs=nnx.Rngs(0))
    with pytest.raises(ValueError, match="fourier_scale"):
        MLPEnergy(2, fourier_features=3, fourier_scale=0.0, rngs=nnx.Rngs(0))
