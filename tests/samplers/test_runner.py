"""run_chains: layout, thinning, running moments, resumed runs and compilation counts."""

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jebm.samplers import mala, run_chains, rwmh

LD = lambda x: -0.5 * jnp.sum(x**2)
X0 = jnp.linspace(-1.0, 1.0, 8 * 3).reshape(8, 3)
MALA = mala(LD, 0.3)

# The library does not jit itself; the tests jit the top level (algorithm and counts static).
run_jit = jax.jit(
    run_chains,
    static_argnums=(1, 3),
    static_argnames=("thin", "burn_in", "transform", "keep_trace"),
)


def test_trace_and_info_shapes_with_burn_in_and_thin():
    # 50 steps, 10 burned, thin 3: num_kept = 40 // 3 = 13, one leftover step.
    result = run_jit(jax.random.key(0), MALA, X0, 50, burn_in=10, thin=3)
    assert result.trace.shape == (13, 8, 3)
    for field in result.info:
        assert field.shape == (13, 8)
    assert result.state.position.shape == (8, 3)
    assert int(result.moments.count) == 13
    # Thinning and burn-in only choose what is *kept*: the final state (after the
    # leftover step) is bit-identical to an unthinned run of the same 50 steps, and the
    # kept draws are every 3rd state from step 13 on.
    full = run_jit(jax.random.key(0), MALA, X0, 50)
    np.testing.assert_array_equal(result.state.position, full.state.position)
    np.testing.assert_array_equal(result.trace, full.trace[12:49:3])
    # Info is the block average over each thin block (booleans become rates).
    np.testing.assert_allclose(
        result.info.acceptance_rate,
        full.info.acceptance_rate[10:49].reshape(13, 3, 8).mean(axis=1),
        rtol=1e-6,
    )


def test_transform_hook():
    result = run_jit(jax.random.key(0), rwmh(LD, 0.5), X0, 20, transform=lambda s: s.position[:, 0])
    assert result.trace.shape == (20, 8)


def test_keep_trace_false_moments_equal_trace_moments():
    # Welford's running moments equal the two-pass moments of the trace to float32
    # rounding (rtol 1e-5 on 40 draws of order-1 values).
    kwargs = dict(burn_in=5, thin=2)
    with_trace = run_jit(jax.random.key(1), MALA, X0, 85, **kwargs)
    no_trace = run_jit(jax.random.key(1), MALA, X0, 85, keep_trace=False, **kwargs)
    assert no_trace.trace is None
    trace = np.asarray(with_trace.trace, np.float64)
    np.testing.assert_allclose(no_trace.moments.mean, trace.mean(0), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(
        no_trace.moments.variance, trace.var(0, ddof=1), rtol=1e-5, atol=1e-6
    )
    np.testing.assert_array_equal(no_trace.state.position, with_trace.state.position)


def test_resumed_run_replays_the_same_stream():
    # 30 steps, then 20 more from the final states with start_step=30, is bit-identical
    # to 50 uninterrupted steps (keys are fold_in(key, t) of the global step t).
    key = jax.random.key(2)
    full = run_jit(key, MALA, X0, 50)
    first = run_jit(key, MALA, X0, 30)
    second = run_jit(key, MALA, first.state, 20, start_step=30)
    np.testing.assert_array_equal(second.state.position, full.state.position)
    np.testing.assert_array_equal(jnp.concatenate([first.trace, second.trace]), full.trace)


def test_jitted_run_traces_the_energy_a_bounded_number_of_times():
    # Under one jit the log-density is traced once by init and once per scan body:
    # burn-in, kept blocks, leftover steps: 4 traces. A second call with a new key and
    # step size (both traced) must not retrace; a new shape must (the check can fail).
    # (Keep the step size's type fixed: a Python float and a jnp.float32 differ in weak
    # type, which is a legitimate jit cache miss.)
    chex.clear_trace_counter()

    @chex.assert_max_traces(n=4)
    def logdensity(x):
        return -0.5 * jnp.sum(x**2)

    @jax.jit
    def run(key, x0, step_size):
        return run_chains(key, mala(logdensity, step_size), x0, 20, burn_in=3, thin=4).trace

    run(jax.random.key(0), X0, 0.3)
    run(jax.random.key(1), X0, 0.1)
    with pytest.raises(AssertionError, match="traced > 4 times"):
        run(jax.random.key(1), X0[:4], 0.1)
    chex.clear_trace_counter()


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(num_steps=0), "num_steps"),
        (dict(thin=0), "thin"),
        (dict(burn_in=20), "burn_in"),
        (dict(thin=30), "No draw is kept"),
    ],
    ids=["steps", "thin", "burn_in", "nothing-kept"],
)
def test_bad_run_configuration_raises(kwargs, match):
    args = dict(num_steps=20) | kwargs
    with pytest.raises(ValueError, match=match):
        run_chains(jax.random.key(0), mala(LD, 0.3), X0, **args)
