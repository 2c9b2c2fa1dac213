"""PCD with sampler-state fields persisted in the replay buffer (``persist_fields``).

Oracle: with fixed parameters, ``reinit_prob = 0`` and one chain, ``K`` PCD evaluations of
``k`` underdamped Langevin steps that keep the momentum are one BAOAB run of ``K·k``
steps with the same per-step keys (those of ``pcd_loss``'s documented key stream). The
log-density cache is recomputed at each evaluation, at the same position with the same
parameters, so the two agree to float32 rounding.
"""

import functools
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jebm.densities import uniform_box
from jebm.energies.analytic import gaussian
from jebm.energy import logdensity_fn
from jebm.objectives import ReplayBuffer, pcd
from jebm.samplers import underdamped as ud
from jebm.samplers import underdamped_langevin
from jebm.samplers.base import SamplingAlgorithm

TARGET = gaussian(jnp.array([0.5, -1.0, 0.0]), jnp.diag(jnp.array([1.0, 0.5, 2.0])))
BOX = uniform_box(-1.0, 1.0, (3,))
NUM_UPDATES, NUM_STEPS = 4, 5
# Small friction: exp(−γh) = 0.985 of the momentum survives a step, so restarting it at
# zero (the default path) moves the chain far from the long run.
SAMPLER = functools.partial(underdamped_langevin, step_size=0.3, friction=0.05)


def _pcd_run(pathwise=False, **options):
    objective = pcd(TARGET.energy_fn, SAMPLER, NUM_STEPS, buffer_size=1, num_chains=1,
                    reinit_prob=0.0, init_density=BOX, pathwise=pathwise, **options)
    batch = jnp.zeros((1, 3))
    state = objective.init(jax.random.key(0), batch)
    loss = jax.jit(objective.loss)
    start = state
    for u in range(NUM_UPDATES):
        _, (_, state) = loss(TARGET.params, jax.random.key(100 + u), batch, state)
    return start, state


def _long_run(position, momentum):
    """One BAOAB chain of NUM_UPDATES·NUM_STEPS steps, step t of update u keyed as in PCD."""
    logdensity = logdensity_fn(TARGET.energy_fn, TARGET.params)
    kernel = ud.build_kernel()
    keys = []
    for u in range(NUM_UPDATES):
        _, k_chains, _ = jax.random.split(jax.random.key(100 + u), 3)
        keys += [jax.random.split(jax.random.fold_in(k_chains, t), 1)[0] for t in range(NUM_STEPS)]

    def step(state, key):
        return kernel(key, state, logdensity, 0.3, 0.05)[0], None

    state = ud.init(position, logdensity, momentum)
    return jax.lax.scan(step, state, jnp.stack(keys))[0]


@pytest.mark.parametrize("pathwise", [False, True], ids=["plain", "pathwise"])
def test_persisted_momentum_continues_one_long_run(pathwise):
    start, end = _pcd_run(pathwise, persist_fields=("momentum",))
    assert set(end.persisted) == {"momentum"}
    oracle = _long_run(start.samples[0], start.persisted["momentum"][0])
    # float32 rounding of 20 steps on a well-conditioned Gaussian: ~1e-6 relative.
    np.testing.assert_allclose(end.samples[0], oracle.position, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(end.persisted["momentum"][0], oracle.momentum, rtol=1e-5,
                               atol=1e-5)
    # The initial momentum is a fresh N(0, I) draw, not zero.
    assert float(jnp.abs(start.persisted["momentum"]).max()) > 0.0


def test_default_path_restarts_the_momentum_and_stores_positions_only():
    start, end = _pcd_run()
    assert isinstance(end, ReplayBuffer) and end.persisted is None
    assert jax.tree.leaves(end) == [end.samples]  # same leaves (and checkpoints) as before
    oracle = _long_run(start.samples[0], jnp.zeros(3))
    # Without the momentum the chain is another chain: O(1) apart after 20 steps (measured
    # 1.4; persisted, the two agree bitwise on CPU).
    assert float(jnp.max(jnp.abs(end.samples[0] - oracle.position))) > 0.05


class _AgeState(NamedTuple):
    position: jax.Array
    age: jax.Array  # steps since the chain (re)started
    tag: jax.Array  # drawn by init from its key


def _aging_sampler(logdensity_fn):
    """A toy sampler whose state counts its steps: shows which chains kept their fields."""
    return SamplingAlgorithm(
        init=lambda x, rng_key: _AgeState(x, jnp.int32(0), jax.random.normal(rng_key)),
        step=lambda key, s: (s._replace(age=s.age + 1), ()),
    )


@pytest.mark.parametrize("reinit_prob", [0.0, 0.5, 1.0])
def test_restarted_chains_get_fresh_fields(reinit_prob):
    size = 64
    objective = pcd(TARGET.energy_fn, _aging_sampler, 3, buffer_size=size, num_chains=size,
                    reinit_prob=reinit_prob, init_density=BOX, persist_fields=("age", "tag"))
    batch = jnp.zeros((size, 3))
    state = objective.init(jax.random.key(0), batch)
    np.testing.assert_array_equal(state.persisted["age"], 0)
    loss = jax.jit(objective.loss)
    for u in range(4):
        before = state
        _, (metrics, state) = loss(TARGET.params, jax.random.key(u), batch, state)
        restarted = state.persisted["age"] == 3
        kept = state.persisted["age"] == before.persisted["age"] + 3
        assert bool(jnp.all(restarted | kept))
        # A kept chain keeps its tag; a restarted one draws a new one.
        same_tag = state.persisted["tag"] == before.persisted["tag"]
        assert bool(jnp.all(same_tag[kept & ~restarted]))
        assert not bool(jnp.any(same_tag[restarted & ~kept]))
        fraction = float(jnp.mean(restarted & ~kept))
        if u:  # in update 0 every age goes 0 -> 3, restarted or not
            np.testing.assert_allclose(fraction, float(metrics["reinit_fraction"]))
    expected = {0.0: 12, 1.0: 3}
    if reinit_prob in expected:
        np.testing.assert_array_equal(state.persisted["age"], expected[reinit_prob])


def test_persist_fields_are_checked():
    with pytest.raises(ValueError, match="cannot name"):
        pcd(TARGET.energy_fn, SAMPLER, 1, buffer_size=4, persist_fields=("position",))
    with pytest.raises(ValueError, match="tuple of distinct"):
        pcd(TARGET.energy_fn, SAMPLER, 1, buffer_size=4, persist_fields="momentum")
    objective = pcd(TARGET.energy_fn, SAMPLER, 1, buffer_size=4, persist_fields=("velocity",))
    with pytest.raises(ValueError, match=r"velocity.*does not have"):
        objective.init(jax.random.key(0), jnp.zeros((2, 3)))
