"""Replay buffer and persistent CD: the buffer's invariants and PCD at the truth."""

import functools
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jebm.densities import uniform_box
from jebm.energies.analytic import gaussian
from jebm.objectives import (
    ReplayBuffer,
    init_replay_buffer,
    pcd,
    pcd_loss,
    sample_replay_buffer,
    update_replay_buffer,
)
from jebm.objectives.replay import distinct_indices
from jebm.samplers.base import SamplingAlgorithm
from jebm.samplers.mala import mala

TARGET = gaussian(jnp.array([0.5, -1.0]), jnp.array([[1.0, 0.5], [0.5, 2.0]]))
ENERGY = TARGET.energy_fn
MALA = functools.partial(mala, step_size=0.2)
BOX = uniform_box(-1.0, 1.0, (2,))


def flat(tree):
    return jnp.concatenate([jnp.ravel(leaf) for leaf in jax.tree.leaves(tree)])


class _State(NamedTuple):
    position: jax.Array


def gradient_step(logdensity_fn, step_size):
    """A deterministic 'sampler' x ← x + h ∇log p(x): every chain moves off the mode."""
    grad = jax.grad(logdensity_fn)
    return SamplingAlgorithm(
        init=lambda x: _State(x),
        step=lambda key, s: (_State(s.position + step_size * grad(s.position)), ()),
    )


def test_uniform_box():
    x = uniform_box(2.0, 5.0, (3, 2)).sample(jax.random.key(0), 1000)
    assert x.shape == (1000, 3, 2) and x.dtype == jnp.float32
    assert float(x.min()) >= 2.0 and float(x.max()) <= 5.0
    with pytest.raises(ValueError, match="high > low"):
        uniform_box(1.0, 1.0, (2,))


def test_sample_and_update_buffer(key):
    buffer = init_replay_buffer(key, BOX, 50)
    positions, indices, reinit = sample_replay_buffer(
        jax.random.key(1), buffer, 20, reinit_prob=0.0, init_density=BOX
    )
    assert len(set(np.asarray(indices).tolist())) == 20  # distinct entries
    assert not bool(reinit.any())
    np.testing.assert_array_equal(positions, buffer.samples[indices])
    new = update_replay_buffer(buffer, indices, positions + 100.0)
    assert new.samples.shape == (50, 2) and new.samples.dtype == jnp.float32
    np.testing.assert_array_equal(new.samples[indices], positions + 100.0)
    untouched = np.setdiff1d(np.arange(50), np.asarray(indices))
    np.testing.assert_array_equal(new.samples[untouched], buffer.samples[untouched])


def _floyd_loop(draws: np.ndarray, size: int) -> list[int]:
    """Floyd's algorithm, sequentially, on given draws ``t_i ~ U{0..size − num + i}``."""
    chosen, out = set(), []
    for i, t in enumerate(draws.tolist()):
        value = size - len(draws) + i if t in chosen else t
        chosen.add(value)
        out.append(value)
    return out


@pytest.mark.parametrize(
    "size, num",
    [(1, 1), (2, 1), (2, 2), (7, 7), (8, 5), (64, 63), (300, 256), (10_000, 256), (513, 400)],
)
def test_distinct_indices_is_floyds_algorithm(size, num):
    # The parallel form must return exactly what the sequential loop returns on the same
    # draws; small populations make collisions (and chains of them) frequent.
    for seed in range(20):
        key = jax.random.key(seed)
        idx = np.asarray(jax.jit(distinct_indices, static_argnums=(1, 2))(key, size, num))
        draws = np.asarray(jax.random.randint(
            key, (num,), 0, size - num + 1 + jnp.arange(num, dtype=jnp.int32), dtype=jnp.int32))
        assert idx.dtype == np.int32 and idx.shape == (num,)
        assert idx.tolist() == _floyd_loop(draws, size)
        assert len(set(idx.tolist())) == num  # distinct
        assert idx.min() >= 0 and idx.max() < size


def test_distinct_indices_subsets_are_uniform():
    # All C(6, 3) = 20 subsets of 3 out of 6: counts over 40 000 draws. Under uniformity
    # the Pearson statistic is χ²(19): its 0.999 quantile is 43.8.
    n = 40_000
    keys = jax.random.split(jax.random.key(11), n)
    idx = np.asarray(jax.jit(jax.vmap(lambda k: distinct_indices(k, 6, 3)))(keys))
    codes = np.sort(idx, axis=1) @ np.array([36, 6, 1])
    _, counts = np.unique(codes, return_counts=True)
    assert counts.size == 20
    chi2 = float(np.sum((counts - n / 20) ** 2 / (n / 20)))
    assert chi2 < 43.8, (chi2, counts)


def test_distinct_indices_inclusion_is_uniform():
    # 256 of 1000, 4000 draws: each entry is drawn ~ Binomial(4000, 0.256) times, sd 27.6;
    # every one of the 1000 counts within 5 sd (family-wise false alarm ~ 6e-4).
    n, size, num = 4000, 1000, 256
    keys = jax.random.split(jax.random.key(12), n)
    idx = np.asarray(jax.jit(jax.vmap(lambda k: distinct_indices(k, size, num)))(keys))
    counts = np.bincount(idx.ravel(), minlength=size)
    p = num / size
    assert np.all(np.abs(counts - n * p) <= 5 * np.sqrt(n * p * (1 - p))), counts


def test_distinct_indices_checks_arguments(key):
    for size, num in ((4, 5), (4, 0), (0, 0)):
        with pytest.raises(ValueError, match="num"):
            distinct_indices(key, size, num)


def test_reinit_fraction_is_binomial():
    # A buffer filled with 10s and a base on [−1, 1]: a chain came from the base iff it
    # is within the box, so the mask is checked against the positions themselves.
    size, p = 20_000, 0.05
    buffer = ReplayBuffer(jnp.full((size, 2), 10.0))
    positions, _, reinit = sample_replay_buffer(
        jax.random.key(2), buffer, size, reinit_prob=p, init_density=BOX
    )
    from_base = np.all(np.abs(np.asarray(positions)) <= 1.0, axis=1)
    np.testing.assert_array_equal(from_base, np.asarray(reinit))
    # Count ~ Binomial(20000, 0.05): mean 1000, sd √(20000·0.05·0.95) ≈ 30.8; 5 sd.
    count = int(reinit.sum())
    assert abs(count - size * p) <= 5 * np.sqrt(size * p * (1 - p)), count
    for prob, expected in ((0.0, 0), (1.0, size)):
        _, _, mask = sample_replay_buffer(
            jax.random.key(3), buffer, size, reinit_prob=prob, init_density=BOX
        )
        assert int(mask.sum()) == expected


def test_pcd_state_is_a_fixed_shape_buffer(key):
    data = TARGET.sample(jax.random.key(4), 16)
    objective = pcd(
        ENERGY, functools.partial(gradient_step, step_size=0.1), num_steps=2, buffer_size=64
    )
    state = objective.init(key, data)
    # The default base is uniform on [−1, 1] with the batch's event shape and dtype.
    assert isinstance(state, ReplayBuffer)
    assert state.samples.shape == (64, 2) and state.samples.dtype == jnp.float32
    assert float(jnp.abs(state.samples).max()) <= 1.0
    loss_fn = jax.jit(objective.loss)
    for t in range(3):
        loss, (metrics, new_state) = loss_fn(TARGET.params, jax.random.key(10 + t), data, state)
        assert new_state.samples.shape == (64, 2) and new_state.samples.dtype == jnp.float32
        # The deterministic step moves every chain: exactly num_chains (= 16) rows change.
        changed = np.any(np.asarray(new_state.samples != state.samples), axis=1)
        assert changed.sum() == 16
        assert 0.0 <= float(metrics["reinit_fraction"]) <= 1.0
        state = new_state


def test_pcd_reinit_fraction_metric():
    # 1000 chains, p = 0.3: fraction within 5 binomial sd √(0.3·0.7/1000) ≈ 0.0145.
    data = TARGET.sample(jax.random.key(5), 1000)
    buffer = init_replay_buffer(jax.random.key(6), BOX, 2000)
    loss_fn = functools.partial(
        pcd_loss, energy_fn=ENERGY, sampler=MALA, num_steps=1, reinit_prob=0.3
    )
    _, (metrics, _) = jax.jit(loss_fn)(TARGET.params, jax.random.key(7), data, buffer)
    assert abs(float(metrics["reinit_fraction"]) - 0.3) <= 5 * np.sqrt(0.3 * 0.7 / 1000)


def test_pcd_gradient_vanishes_at_truth():
    # Buffer and base are exact model draws and MALA keeps the model invariant, so the
    # negatives follow the model and E[g] = 0 exactly at the true parameters.
    def one(k):
        k_data, k_buf, k_loss = jax.random.split(k, 3)
        data = TARGET.sample(k_data, 128)
        buffer = init_replay_buffer(k_buf, TARGET.density, 256)
        g = jax.grad(
            lambda p: pcd_loss(
                p,
                k_loss,
                data,
                buffer,
                energy_fn=ENERGY,
                sampler=MALA,
                num_steps=3,
                init_density=TARGET.density,
            )[0]
        )(TARGET.params)
        return flat(g)

    grads = np.asarray(jax.jit(jax.vmap(one))(jax.random.split(jax.random.key(8), 32)), np.float64)
    # 32 independent gradients: per-entry t-test at 5 standard errors.
    se = grads.std(axis=0, ddof=1) / np.sqrt(32)
    np.testing.assert_array_less(np.abs(grads.mean(axis=0)), 5 * se)
    assert np.all(se > 0)


def test_pcd_sign():
    # Same buffer and keys: with −E the chains climb away from the mode (E⁻ drops), so
    # E⁺ − E⁻ is larger than at the true E, where it is 0 in expectation (buffer and data
    # both follow the model). 16 keys: true loss within 5 s.e. of 0, difference > 5 s.e.
    def losses(k):
        k_data, k_buf, k_loss = jax.random.split(k, 3)
        data = TARGET.sample(k_data, 128)
        buffer = init_replay_buffer(k_buf, TARGET.density, 128)
        opts = dict(sampler=MALA, num_steps=5, reinit_prob=0.0)
        true = pcd_loss(TARGET.params, k_loss, data, buffer, energy_fn=ENERGY, **opts)[0]
        flip = pcd_loss(
            TARGET.params, k_loss, data, buffer, energy_fn=lambda p, x: -ENERGY(p, x), **opts
        )[0]
        return true, flip

    true, flip = jax.jit(jax.vmap(losses))(jax.random.split(jax.random.key(9), 16))
    true, diffs = np.asarray(true, np.float64), np.asarray(flip - true, np.float64)
    assert abs(true.mean()) <= 5 * true.std(ddof=1) / np.sqrt(16), true
    assert diffs.mean() > 5 * diffs.std(ddof=1) / np.sqrt(16), diffs


def test_pcd_options_are_checked(key):
    with pytest.raises(ValueError, match="buffer_size"):
        pcd(ENERGY, MALA, num_steps=1, buffer_size=0)
    with pytest.raises(ValueError, match="num_chains"):
        pcd(ENERGY, MALA, num_steps=1, buffer_size=8, num_chains=9)
    buffer = init_replay_buffer(key, BOX, 8)
    data = jnp.zeros((4, 2))
    with pytest.raises(ValueError, match="reinit_prob"):
        pcd_loss(
            TARGET.params,
            key,
            data,
            buffer,
            energy_fn=ENERGY,
            sampler=MALA,
            num_steps=1,
            reinit_prob=1.5,
        )
    with pytest.raises(ValueError, match="num_chains"):
        pcd_loss(
            TARGET.params,
            key,
            jnp.zeros((9, 2)),
            buffer,
            energy_fn=ENERGY,
            sampler=MALA,
            num_steps=1,
        )
    with pytest.raises(ValueError, match="ReplayBuffer"):
        pcd_loss(TARGET.params, key, data, (), energy_fn=ENERGY, sampler=MALA, num_steps=1)
