"""Sampler-level validation (issue 10) and BlackJAX contract gaps (issue 12).

Every bad tunable is refused: Python numbers at construction, traced values as a
divergence at run time (state kept, acceptance 0). These are exact checks, no Monte Carlo.
"""

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jebm.samplers import (
    annealed_langevin,
    hmc,
    mala,
    nuts,
    run_chains,
    rwmh,
    ula,
    underdamped_langevin,
)

LD = lambda x: -0.5 * jnp.sum(x**2)
BAD_NUMBERS = [0.0, -0.1, float("nan"), float("inf"), True]
BAD_IDS = ["zero", "negative", "nan", "inf", "bool"]

CONSTRUCTORS = {
    "mala.step_size": lambda v: mala(LD, v),
    "rwmh.step_size": lambda v: rwmh(LD, v),
    "hmc.step_size": lambda v: hmc(LD, v, jnp.ones(2), 3),
    "hmc.divergence_threshold": lambda v: hmc(LD, 0.1, jnp.ones(2), 3, divergence_threshold=v),
    "ula.step_size": lambda v: ula(LD, v),
    "ula.clip_grad": lambda v: ula(LD, 0.1, clip_grad=v),
    "underdamped_langevin.step_size": lambda v: underdamped_langevin(LD, v),
    "nuts.step_size": lambda v: nuts(LD, v, jnp.ones(2)),
    "annealed_langevin.eps": lambda v: annealed_langevin(
        lambda x, s: LD(x), jnp.array([1.0, 0.5]), 2, v
    ),
}


@pytest.mark.parametrize("bad", BAD_NUMBERS, ids=BAD_IDS)
@pytest.mark.parametrize("where", list(CONSTRUCTORS))
def test_bad_python_tunables_are_refused_at_construction(where, bad):
    name = where.split(".")[1]
    with pytest.raises(ValueError, match=name):
        CONSTRUCTORS[where](bad)


def test_ula_noise_scale_may_be_zero_but_not_negative():
    ula(LD, 0.1, noise_scale=0.0)  # noise-free gradient ascent is a legitimate use
    with pytest.raises(ValueError, match="noise_scale"):
        ula(LD, 0.1, noise_scale=-1.0)
    with pytest.raises(ValueError, match="low < high"):
        ula(LD, 0.1, bounds=(1.0, 0.0))


@pytest.mark.parametrize("num_steps", [0, 2.0, True])
def test_hmc_num_integration_steps_named(num_steps):
    with pytest.raises(ValueError, match="num_integration_steps"):
        hmc(LD, 0.1, jnp.ones(2), num_steps)


# Factories taking one traced tunable t (the step size, or a mass-matrix entry).
TRACED = {
    "mala": lambda t: mala(LD, t),
    "mala-preconditioned": lambda t: mala(LD, 0.5, jnp.array([1.0, 1.0]) * t),
    "rwmh": lambda t: rwmh(LD, t),
    "hmc": lambda t: hmc(LD, t, jnp.ones(2), 3),
    "hmc-mass": lambda t: hmc(LD, 0.3, jnp.array([1.0, 1.0]) * t, 3),
    "ula": lambda t: ula(LD, t),
    "ula-clip": lambda t: ula(LD, 0.1, clip_grad=t),
    "underdamped": lambda t: underdamped_langevin(LD, t),
    "nuts": lambda t: nuts(LD, t, jnp.ones(2)),
}


@pytest.mark.parametrize("name", list(TRACED))
def test_bad_traced_tunable_is_a_divergence(name):
    # Under jit the value is unknown at construction: the step must be refused (state
    # kept bit for bit), flagged divergent, and never accepted with a NaN rate. All bad
    # values (0, −0.1, NaN, inf) and 5 keys each in one vmapped call (one compile);
    # a good value (0.2) in the same batch still moves.
    x0 = jnp.array([0.3, -0.7])
    values = jnp.repeat(jnp.array([0.0, -0.1, jnp.nan, jnp.inf, 0.2], jnp.float32), 5)
    keys = jax.random.split(jax.random.key(0), values.shape[0])

    @jax.jit
    @jax.vmap
    def one_step(t, key):
        alg = TRACED[name](t)
        return alg.step(key, alg.init(x0))

    state, info = one_step(values, keys)
    bad = slice(0, 20)
    np.testing.assert_array_equal(state.position[bad], jnp.broadcast_to(x0, (20, 2)))
    assert np.all(np.asarray(info.is_divergent[bad]))
    if hasattr(info, "acceptance_rate"):
        assert np.all(np.asarray(info.acceptance_rate[bad]) == 0.0)
    if hasattr(info, "is_accepted"):  # (NUTS samples its trajectory: no such flag)
        assert not np.any(np.asarray(info.is_accepted[bad]))
    assert not np.any(np.asarray(info.is_divergent[20:]))  # the good value


def test_annealed_bad_traced_eps_is_a_divergence():
    @jax.jit
    def one_step(eps):
        alg = annealed_langevin(lambda x, s: LD(x), jnp.array([1.0, 0.5]), 2, eps)
        return alg.step(jax.random.key(0), alg.init(jnp.ones(2)))

    state, info = one_step(jnp.float32(-1.0))
    assert bool(info.is_divergent)
    np.testing.assert_array_equal(state.position, jnp.ones(2))
    assert not bool(one_step(jnp.float32(0.01))[1].is_divergent)


ALL = {
    "mala": lambda ld: mala(ld, 0.5),
    "mala-preconditioned": lambda ld: mala(ld, 0.5, jnp.ones(2)),
    "rwmh": lambda ld: rwmh(ld, 1.0),
    "hmc": lambda ld: hmc(ld, 0.5, jnp.ones(2), 3),
    "ula": lambda ld: ula(ld, 0.5),
    "underdamped": lambda ld: underdamped_langevin(ld, 0.5),
    "nuts": lambda ld: nuts(ld, 0.5, jnp.ones(2)),
}


@pytest.mark.parametrize("name", list(ALL))
def test_non_scalar_logdensity_gets_jebms_error(name):
    with pytest.raises(ValueError, match=r"must return a scalar .* got shape \(2,\)"):
        run_chains(jax.random.key(0), ALL[name](lambda x: -0.5 * x**2), jnp.zeros((4, 2)), 5)


def test_non_scalar_logdensity_annealed():
    alg = annealed_langevin(lambda x, s: -0.5 * x**2, jnp.array([1.0]), 2, 0.1)
    with pytest.raises(ValueError, match="must return a scalar"):
        alg.step(jax.random.key(0), alg.init(jnp.zeros(2)))


def test_rank_one_positions_are_refused_with_the_fix():
    with pytest.raises(ValueError, match=r"x\[None\].*\(num_chains, 2\)"):
        run_chains(jax.random.key(0), mala(LD, 0.5), jnp.zeros(2), 5)
    # The two documented ways out both run.
    assert run_chains(jax.random.key(0), mala(LD, 0.5), jnp.zeros(2)[None], 5).trace.shape == (
        5, 1, 2,
    )
    scalar = mala(LD, 0.5)
    states = jax.vmap(scalar.init)(jnp.zeros(3))
    assert run_chains(jax.random.key(0), scalar, states, 5).trace.shape == (5, 3)


@pytest.mark.parametrize("name", list(ALL))
def test_nan_start_under_jit_shows_as_divergence(name):
    # run_chains cannot check a traced start; the kernels flag the bad chain (chain 1)
    # as divergent, and only that chain: the MH kernels at every step (the chain cannot
    # move), ULA (which ignores log p) at least until it has left the NaN region.
    # (The NaN region x₀ > 3 is rarely reached from 0, even by NUTS' long trajectories.)
    ld = lambda x: jnp.where(x[0] > 3.0, jnp.nan, -0.5 * jnp.sum(x**2))
    x0 = jnp.zeros((3, 2)).at[1, 0].set(3.5)
    result = jax.jit(lambda x: run_chains(jax.random.key(0), ALL[name](ld), x, 20))(x0)
    divergent = np.asarray(result.info.is_divergent)  # (20, 3) per-step 0/1
    stuck = np.asarray(result.trace)[:, 1, 0] > 3.0  # chain 1 still in the NaN region
    assert divergent[0, 1] == 1.0 and np.all(divergent[1:, 1][stuck[:-1]] == 1.0)
    if name not in ("ula", "underdamped"):
        assert np.all(divergent[:, 1] == 1.0)
    assert np.mean(divergent[:, [0, 2]]) < 0.2


@pytest.mark.parametrize("name", list(ALL))
def test_step_takes_rng_key_by_keyword(name):
    alg = ALL[name](LD)
    state, _ = alg.step(rng_key=jax.random.key(0), state=alg.init(jnp.zeros(2)))
    positional, _ = alg.step(jax.random.key(0), alg.init(jnp.zeros(2)))
    np.testing.assert_array_equal(state.position, positional.position)


SCALAR = {
    "mala": lambda s: mala(LD, s),
    "rwmh": lambda s: rwmh(LD, s),
    "hmc": lambda s: hmc(LD, s, jnp.ones(1), 3),
    "ula": lambda s: ula(LD, s),
    "underdamped": lambda s: underdamped_langevin(LD, s),
    "nuts": lambda s: nuts(LD, s, jnp.ones(1)),
}


@pytest.mark.parametrize("name", list(SCALAR))
def test_weak_typed_scalar_state_compiles_once(name):
    # init(1.0) is a weakly typed ~float32[] state; the step must return the same types,
    # so that a jitted step fed its own output is traced once.
    alg = SCALAR[name](0.3)
    chex.clear_trace_counter()  # chex counts by code object, shared across parametrizations

    @jax.jit
    @chex.assert_max_traces(n=1)
    def step(key, state):
        return alg.step(key, state)

    state = alg.init(1.0)
    for key in jax.random.split(jax.random.key(0), 3):
        new_state, _ = step(key, state)
        assert jax.tree.map(jax.typeof, new_state) == jax.tree.map(jax.typeof, state)
        state = new_state


@pytest.mark.parametrize("name", list(SCALAR))
def test_step_size_of_shape_one_for_a_scalar_position(name):
    # BlackJAX flattens the position, so a (1,) step size fits a scalar position; jebm
    # takes it as the scalar and gives bit-identical draws.
    alg_vec, alg_num = SCALAR[name](jnp.array([0.3])), SCALAR[name](0.3)
    key = jax.random.key(3)
    a, _ = alg_vec.step(key, alg_vec.init(jnp.float32(0.5)))
    b, _ = alg_num.step(key, alg_num.init(jnp.float32(0.5)))
    assert a.position.shape == ()
    np.testing.assert_allclose(a.position, b.position, rtol=1e-6)


def test_rwmh_step_size_over_the_flattened_pytree():
    # BlackJAX's sigma scales the ravelled position: (3,) for {"a": (2,), "b": ()}.
    ld = lambda x: -0.5 * (jnp.sum(x["a"] ** 2) + x["b"] ** 2)
    x = {"a": jnp.zeros(2), "b": jnp.float32(0.0)}
    flat = rwmh(ld, jnp.array([0.1, 0.2, 3.0]))
    tree = rwmh(ld, {"a": jnp.array([0.1, 0.2]), "b": jnp.float32(3.0)})
    key = jax.random.key(0)
    a, _ = flat.step(key, flat.init(x))
    b, _ = tree.step(key, tree.init(x))
    jax.tree.map(np.testing.assert_array_equal, a.position, b.position)
    with pytest.raises(ValueError, match="must be a scalar"):
        mala(LD, jnp.ones(2)).step(key, mala(LD, 0.1).init(jnp.zeros(2)))
