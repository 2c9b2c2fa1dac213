"""Training options of issue 11, each checked for correctness on digits (not for speed):
mixed precision (bfloat16 network, float32 energies and sampler state), an exponential
moving average of the parameters (optax), and spectral normalisation through a run."""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from train_helpers import data_sampler, tiny_objective

from jebm import experiment
from jebm.config import Config, apply_overrides, dump_config
from jebm.datasets import digits
from jebm.energies.conv import conv_energy, joint_energy_fns
from jebm.energies.mlp import mlp_energy
from jebm.energy import batch_energy, logdensity_fn
from jebm.samplers import run_chains, ula
from jebm.train import (
    init_train_state,
    make_train_step,
    model_params,
    train_loop,
)

SMALL = {"features": (4, 8), "hidden": 16}
# bfloat16 keeps 8 significant bits: rounding to it has relative error <= 2^-8 (half an
# ulp of an 8-bit significand).
BF16_U = 2.0**-8

# A digits PCD run shrunk to seconds: conv 4 -> 8, dense 16, 2 Langevin steps, 3 updates.
DIGITS_TINY = [
    "data.name=digits", "data.batch_size=16", "model.kind=conv", "model.features=[4,8]",
    "model.hidden=[16]", "objective.name=pcd", "objective.buffer_size=64",
    "objective.num_chains=16", "objective.init_low=0.0", "objective.init_high=1.0",
    "objective.energy_l2=1.0", "sampler.name=ula", "sampler.num_steps=2",
    "sampler.step_size=10.0", "sampler.noise_scale=0.005", "sampler.clip_grad=0.01",
    "sampler.bounds=[0.0,1.0]", "optimizer.learning_rate=1e-3", "optimizer.b1=0.0",
    "optimizer.schedule=constant", "train.num_steps=3", "train.chunk_size=3",
    "train.log_every=1", "train.checkpoint_every=3", "train.eval_every=0",
]


def _digits(n: int = 32):
    split = digits.load_digits(test_fraction=0.2, seed=0)
    return digits.dequantize(jax.random.key(1), split.test_counts)[:n]


def _tiny_digits_run(*overrides: str):
    return experiment.build_run(apply_overrides(Config(), [*DIGITS_TINY, *overrides]))


# ------------------------------------------------------------------ mixed precision


def test_bf16_conv_energy_is_float32_and_close_to_the_float32_model(key):
    x = _digits()
    f32_fn, params = conv_energy(key, (8, 8), **SMALL)
    bf16_fn, bf16_params = conv_energy(key, (8, 8), dtype=jnp.bfloat16, **SMALL)
    # parameters stay float32 (param_dtype) and equal for the same key
    for a, b in zip(jax.tree.leaves(params), jax.tree.leaves(bf16_params), strict=True):
        assert b.dtype == jnp.float32
        np.testing.assert_array_equal(a, b)
    energies = jax.jit(batch_energy, static_argnums=0)
    e32, e16 = energies(f32_fn, params, x), energies(bf16_fn, params, x)
    assert e16.dtype == jnp.float32
    # Each of the 4 layers (conv, strided conv, dense, head) rounds its input and its
    # weights to bfloat16 (relative error <= u = 2^-8 each: 8 roundings on every path,
    # products accumulated in float32), so to first order |ΔE| <= 8u times the size of
    # the energies, 8u * max|E| ≈ 3% of it.
    scale = float(jnp.max(jnp.abs(e32)))
    error = float(jnp.max(jnp.abs(e16 - e32)))
    assert error <= 8 * BF16_U * scale, (error, scale)
    # ... and the bf16 model really rounds: it is not the float32 computation
    assert error > 0.0
    grad_x = jax.jit(jax.grad(bf16_fn, argnums=1))(params, x[0])
    assert grad_x.dtype == jnp.float32 and grad_x.shape == (8, 8)
    grad_p = jax.jit(jax.grad(bf16_fn))(params, x[0])
    assert {leaf.dtype for leaf in jax.tree.leaves(grad_p)} == {jnp.dtype(jnp.float32)}
    # the backward pass rounds as often again (16u in all) relative to the float32
    # gradient's norm
    grad_x32 = jax.jit(jax.grad(f32_fn, argnums=1))(params, x[0])
    assert float(jnp.linalg.norm(grad_x - grad_x32)) <= 16 * BF16_U * float(
        jnp.linalg.norm(grad_x32))


def test_bf16_mlp_and_jem_energies_return_float32(key):
    x = _digits(4)
    energy_fn, params = mlp_energy(key, 64, (16,), dtype="bfloat16")
    value, grad = jax.value_and_grad(energy_fn, argnums=1)(params, x[0].reshape(-1))
    assert value.dtype == grad.dtype == jnp.float32
    assert {leaf.dtype for leaf in jax.tree.leaves(params)} == {jnp.dtype(jnp.float32)}
    jem = joint_energy_fns(key, (8, 8), 10, dtype=jnp.bfloat16, **SMALL)
    assert jem.logits_fn(jem.params, x[0]).dtype == jnp.float32
    assert jax.grad(jem.energy_fn, argnums=1)(jem.params, x[0]).dtype == jnp.float32
    with pytest.raises(ValueError, match="dtype must be a floating-point dtype"):
        conv_energy(key, (8, 8), dtype="int8", **SMALL)


def test_ula_on_a_bf16_energy_keeps_a_float32_state(key):
    energy_fn, params = conv_energy(key, (8, 8), dtype=jnp.bfloat16, **SMALL)
    algorithm = ula(logdensity_fn(energy_fn, params), 10.0, 0.005, clip_grad=0.01,
                    bounds=(0.0, 1.0))
    x0 = jax.random.uniform(jax.random.key(2), (4, 8, 8))
    result = jax.jit(lambda k, x: run_chains(k, algorithm, x, 5, keep_trace=False))(
        jax.random.key(3), x0)
    state = result.state
    assert state.position.dtype == jnp.float32 and state.position.shape == (4, 8, 8)
    assert state.logdensity.dtype == jnp.float32
    assert state.logdensity_grad.dtype == jnp.float32
    assert bool(jnp.all(jnp.isfinite(state.logdensity)))
    assert not bool(jnp.all(state.position == x0))  # the chains moved


def test_model_dtype_is_validated():
    with pytest.raises(ValueError, match=r"model\.dtype must be one of"):
        apply_overrides(Config(), ["model.dtype=float16"])


# ---------------------------------------------------------------------------- EMA


def _ema_setup(decay: float):
    objective = tiny_objective()
    optimizer = optax.adam(0.05)
    params = {"mu": jnp.zeros(2), "log_prec": jnp.zeros(())}
    key = jax.random.key(0)
    state = init_train_state(key, params, optimizer, objective, data_sampler(key, 8), ema=True)
    return state, make_train_step(objective, optimizer, ema_decay=decay)


def test_ema_is_the_geometric_average_of_the_parameter_trajectory():
    decay, n = 0.8, 12
    state, step = _ema_setup(decay)
    step = jax.jit(step)
    trajectory = [state.params]
    for t in range(n):
        state, _ = step(state, data_sampler(jax.random.key(10 + t), 8), jax.random.key(5))
        trajectory.append(state.params)
    assert int(state.step) == n
    # θ̄_n = βⁿ θ_0 + (1 − β) Σ_{t=1..n} β^{n−t} θ_t, in float64 from the recorded θ_t
    for name in ("mu", "log_prec"):
        thetas = np.stack([np.asarray(p[name], np.float64) for p in trajectory])
        weights = np.array([decay**n] + [(1 - decay) * decay ** (n - t)
                                         for t in range(1, n + 1)])
        np.testing.assert_allclose(weights.sum(), 1.0, rtol=1e-12)
        expected = np.tensordot(weights, thetas, axes=1)
        # float32 recursion of n steps: a few ulps of the O(1) values per step
        np.testing.assert_allclose(state.ema_params[name], expected, rtol=1e-5, atol=1e-6)
        # the average lags the moving parameters
        assert not np.allclose(state.ema_params[name], state.params[name], atol=1e-3)
    assert model_params(state) is state.ema_params


def test_resumed_run_continues_the_ema_exactly(tmp_path):
    state, step = _ema_setup(0.9)
    kw = dict(num_steps=12, batch_size=8, chunk_size=4, checkpoint_every=4, progress=False)
    full = train_loop(jax.random.key(3), state, step, data_sampler, workdir=tmp_path / "full",
                      **kw)
    # the same run stopped at its checkpoint at step 8, then resumed from it to 12
    train_loop(jax.random.key(3), state, step, data_sampler, workdir=tmp_path / "cut",
               **{**kw, "num_steps": 8})
    resumed = train_loop(jax.random.key(3), state, step, data_sampler,
                         workdir=tmp_path / "cut", **kw)
    assert int(resumed.state.step) == 12
    for a, b in zip(jax.tree.leaves(resumed.state), jax.tree.leaves(full.state), strict=True):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
    for a, b in zip(jax.tree.leaves(resumed.state.ema_params),
                    jax.tree.leaves(full.state.ema_params), strict=True):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))


@pytest.mark.parametrize("decay", [1.0, -0.1, 1.5, float("nan")])
def test_ema_decay_out_of_range_is_an_error(decay):
    with pytest.raises(ValueError, match=r"train\.ema_decay must be 0 \(off\) or in \(0, 1\)"):
        apply_overrides(Config(), [f"train.ema_decay={decay}"])
    objective = tiny_objective()
    with pytest.raises(ValueError, match=r"ema_decay must be 0 \(off\) or a number in \(0, 1\)"):
        make_train_step(objective, optax.sgd(0.1), ema_decay=decay)


def test_a_state_and_a_step_that_disagree_about_the_ema_are_an_error():
    objective, optimizer = tiny_objective(), optax.sgd(0.1)
    params = {"mu": jnp.zeros(2), "log_prec": jnp.zeros(())}
    batch = data_sampler(jax.random.key(0), 8)
    plain = init_train_state(jax.random.key(0), params, optimizer, objective, batch)
    averaged = init_train_state(jax.random.key(0), params, optimizer, objective, batch,
                                ema=True)
    with pytest.raises(ValueError, match=r"init_train_state\(\.\.\., ema=True\)"):
        make_train_step(objective, optimizer, ema_decay=0.9)(plain, batch, jax.random.key(1))
    with pytest.raises(ValueError, match=r"pass its decay"):
        make_train_step(objective, optimizer)(averaged, batch, jax.random.key(1))


def test_digits_run_with_ema_trains_and_load_model_returns_the_ema(tmp_path):
    run = _tiny_digits_run("train.ema_decay=0.5")
    assert run.initial_state.ema_params is not None
    result = experiment.train_run(run, tmp_path)
    assert np.isfinite(result.metrics["loss"])
    state = result.state
    assert int(state.step) == 3
    moved = [not np.array_equal(a, b) for a, b in zip(
        jax.tree.leaves(state.ema_params), jax.tree.leaves(state.params), strict=True)]
    assert any(moved)  # the average lags the raw parameters
    # a workdir as `jebm train` leaves it: load_model gives the average, not the raw params
    (tmp_path / "config.yaml").write_text(dump_config(run.config))
    energy_fn, params, _ = experiment.load_model(tmp_path)
    for a, b in zip(jax.tree.leaves(params), jax.tree.leaves(state.ema_params), strict=True):
        np.testing.assert_array_equal(a, b)
    assert bool(jnp.isfinite(energy_fn(params, run.data.test[0])))


# ----------------------------------------------------------------- training on digits


@pytest.mark.parametrize("options", [["model.dtype=bfloat16"], ["model.spectral_norm=true"]],
                         ids=["bfloat16", "spectral_norm"])
def test_pcd_updates_on_digits_train(options):
    run = _tiny_digits_run(*options)
    result = experiment.train_run(run)
    assert int(result.state.step) == 3 and np.isfinite(result.metrics["loss"])
    assert {leaf.dtype for leaf in jax.tree.leaves(result.state.params)} == {
        jnp.dtype(jnp.float32)}
    buffer = result.state.objective_state.samples
    assert buffer.dtype == jnp.float32 and bool(jnp.all(jnp.isfinite(buffer)))
    changed = [not np.array_equal(a, b) for a, b in zip(
        jax.tree.leaves(result.state.params), jax.tree.leaves(run.initial_state.params),
        strict=True)]
    assert any(changed)
