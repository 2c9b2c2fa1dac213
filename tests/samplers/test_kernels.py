"""Kernel-level contracts: per-chain tunables through vmap, pytree positions, config errors."""

import importlib

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jebm.samplers import hmc, mala, run_chains, rwmh, ula

LD = lambda x: -0.5 * jnp.sum(x**2)
STEP_SIZES = jnp.array([0.05, 0.3, 1.0, 3.0])


def _module(name):
    # jebm.samplers.mala is the factory function; the module is reached by its path.
    return importlib.import_module(f"jebm.samplers.{name}")


# name -> (build_kernel args, extra tunables after step_size, their in_axes)
KERNELS = {
    "mala": ((), (), ()),
    "rwmh": ((), (), ()),
    "ula": ((), (), ()),
    "hmc": ((5,), (jnp.ones(3),), (None,)),
}


@pytest.mark.parametrize("name", list(KERNELS))
def test_per_chain_step_sizes_through_vmap(name):
    # vmap over (key, state, step_size) equals calling the kernel chain by chain with
    # the scalar step size: same keys, so same noise and same decisions; positions to
    # float32 rounding.
    module = _module(name)
    build_args, extra, extra_axes = KERNELS[name]
    kernel = module.build_kernel(*build_args)
    x = jnp.linspace(-1.5, 1.5, 12).reshape(4, 3)
    keys = jax.random.split(jax.random.key(0), 4)
    states = jax.vmap(module.init, (0, None))(x, LD)
    in_axes = (0, 0, None, 0) + extra_axes
    batched_state, batched_info = jax.vmap(kernel, in_axes)(keys, states, LD, STEP_SIZES, *extra)
    single = jax.jit(kernel, static_argnums=2)
    for c in range(4):
        state_c = jax.tree.map(lambda v, c=c: v[c], states)
        single_state, single_info = single(keys[c], state_c, LD, STEP_SIZES[c], *extra)
        np.testing.assert_allclose(batched_state.position[c], single_state.position, rtol=1e-5)
        for field, value in single_info._asdict().items():
            if value.dtype == bool:
                assert getattr(batched_info, field)[c] == value, field


@pytest.mark.parametrize(
    "name, step_sizes",
    [
        ("mala", [0.1, 0.6, 1.2, 1.6]),  # (h = 2 maps x to −x + 2ξ: acceptance rises again)
        ("rwmh", [0.05, 0.3, 1.0, 3.0]),
        # HMC with fixed L on an isotropic Gaussian has resonances (ε = 1.2, 1.6, 1.9 accept
        # more than their neighbours at L = 5); these values avoid them.
        ("hmc", [0.3, 0.9, 1.5, 1.8]),
    ],
)
def test_per_chain_step_sizes_order_the_acceptance(name, step_sizes):
    # 16 chains per step size, 200 steps each, from exact N(0, I) draws: the mean
    # acceptance per step size must fall as the step grows. An acceptance rate is in
    # [0, 1], so each 16-chain, 200-step mean has SE ≤ 0.5·√(τ/3200) ≲ 0.03 for
    # integrated autocorrelation τ ≲ 10; adjacent rates must differ by more than 0.1.
    module = _module(name)
    build_args, extra, extra_axes = KERNELS[name]
    kernel = module.build_kernel(*build_args)
    step = jax.vmap(kernel, (0, 0, None, 0) + extra_axes)
    per_chain = jnp.repeat(jnp.array(step_sizes), 16)
    x = jax.random.normal(jax.random.key(2), (64, 3))

    @jax.jit
    def run(key, step_sizes):
        def body(states, k):
            states, info = step(jax.random.split(k, 64), states, LD, step_sizes, *extra)
            return states, info.acceptance_rate

        states = jax.vmap(module.init, (0, None))(x, LD)
        return jax.lax.scan(body, states, jax.random.split(key, 200))[1].mean(0)

    rates = np.asarray(run(jax.random.key(1), per_chain)).reshape(4, 16).mean(1)
    assert np.all(np.diff(rates) < -0.1), rates


# A pytree target: a ~ N((1, −1), diag(0.5, 2)), b ~ N(3, 0.25), independent.
MEANS = {"a": np.array([1.0, -1.0]), "b": np.array(3.0)}
VARS = {"a": np.array([0.5, 2.0]), "b": np.array(0.25)}


def _tree_ld(x):
    return -0.5 * (jnp.sum((x["a"] - MEANS["a"]) ** 2 / VARS["a"]) + (x["b"] - 3.0) ** 2 / 0.25)


def _ula_vars(h):
    # Coupled ULA on N(m, v) per coordinate: Lyapunov v' = (1 − h/v)² v' + 2h, i.e.
    # v' = v / (1 − h/(2v)).
    return {k: v / (1 - h / (2 * v)) for k, v in VARS.items()}


PYTREE_CASES = {
    "mala": (lambda: mala(_tree_ld, 0.2), VARS, 800),
    "mala-preconditioned": (lambda: mala(_tree_ld, 0.5, jnp.array([0.5, 2.0, 0.25])), VARS, 600),
    "rwmh": (lambda: rwmh(_tree_ld, {"a": jnp.array([0.9, 1.8]), "b": 0.6}), VARS, 1500),
    "hmc": (lambda: hmc(_tree_ld, 0.3, jnp.array([0.5, 2.0, 0.25]), 5), VARS, 300),
    "hmc-dense": (lambda: hmc(_tree_ld, 0.3, jnp.diag(jnp.array([0.5, 2.0, 0.25])), 5), VARS, 300),
    "ula": (lambda: ula(_tree_ld, 0.1), _ula_vars(0.1), 800),
}


@pytest.mark.parametrize("name", list(PYTREE_CASES))
def test_pytree_positions(name):
    # Mean and variance of every leaf within 5 between-chain SEs (64 chains, t with 63
    # dof; 6 statistics). ULA's oracle is its own stationary (Lyapunov) variance.
    factory, variances, num_steps = PYTREE_CASES[name]
    key0, key1 = jax.random.split(jax.random.key(5))
    z = np.asarray(jax.random.normal(key0, (64, 3)))
    x0 = {
        "a": jnp.asarray(MEANS["a"] + np.sqrt(VARS["a"]) * z[:, :2], jnp.float32),
        "b": jnp.asarray(3.0 + 0.5 * z[:, 2], jnp.float32),
    }
    result = jax.jit(lambda key: run_chains(key, factory(), x0, num_steps, burn_in=50))(key1)
    for leaf in ("a", "b"):
        x = np.asarray(result.trace[leaf], np.float64)  # (T, C, ...)
        per_chain_mean = x.mean(0)
        per_chain_var = ((x - MEANS[leaf]) ** 2).mean(0)  # about the true mean: unbiased
        for stat, truth in ((per_chain_mean, MEANS[leaf]), (per_chain_var, variances[leaf])):
            se = stat.std(0, ddof=1) / np.sqrt(stat.shape[0])
            z_score = np.abs(stat.mean(0) - truth) / se
            assert np.all(z_score < 5.0), (leaf, stat.mean(0), truth, se)


def test_rwmh_step_size_must_fit_the_position():
    with pytest.raises(ValueError, match="step_size of shape"):
        rwmh(LD, jnp.ones(3)).step(jax.random.key(0), rwmh(LD, 1.0).init(jnp.zeros(2)))


@pytest.mark.parametrize(
    "inverse_mass_matrix", [jnp.ones(2), jnp.ones((3, 2)), jnp.ones((3, 3, 3))], ids=str
)
def test_hmc_mass_matrix_shape_is_checked(inverse_mass_matrix):
    alg = hmc(LD, 0.1, inverse_mass_matrix, 3)
    with pytest.raises(ValueError, match="inverse_mass_matrix must have shape"):
        alg.step(jax.random.key(0), alg.init(jnp.zeros(3)))


@pytest.mark.parametrize("num_integration_steps", [0, 2.0, None])
def test_hmc_num_integration_steps_is_a_positive_int(num_integration_steps):
    with pytest.raises(ValueError, match="num_integration_steps"):
        hmc(LD, 0.1, jnp.ones(3), num_integration_steps)
