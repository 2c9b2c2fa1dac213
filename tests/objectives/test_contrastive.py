"""CD-k on a Gaussian model, where the stationary point and all gradients are known.

If the data follow the model exactly and the sampler leaves the model invariant
(MALA does), the negatives ``x⁻ = K^k(x⁺)`` follow the model too, so the expected
CD gradient ``E[∇θE(x⁺)] − E[∇θE(x⁻)]`` is exactly zero at the true parameters.
"""

import functools
from typing import NamedTuple

import blackjax
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jebm import samplers
from jebm.energies.analytic import gaussian
from jebm.objectives import cd, cd_loss
from jebm.samplers.base import SamplingAlgorithm
from jebm.samplers.mala import mala

TARGET = gaussian(jnp.array([0.5, -1.0]), jnp.array([[1.0, 0.5], [0.5, 2.0]]))
ENERGY = TARGET.energy_fn
MALA = functools.partial(mala, step_size=0.2)


def flipped_energy(params, x):
    return -ENERGY(params, x)


def flat(tree):
    return jnp.concatenate([jnp.ravel(leaf) for leaf in jax.tree.leaves(tree)])


def assert_mean_zero(samples, n_sd=5.0):
    """|mean| ≤ n_sd · sd/√K entrywise (t-test; ~1e-4 per entry for K = 32)."""
    samples = np.asarray(samples, np.float64)
    se = samples.std(axis=0, ddof=1) / np.sqrt(samples.shape[0])
    np.testing.assert_array_less(np.abs(samples.mean(axis=0)), n_sd * se)


def assert_positive_mean(samples, n_sd=5.0):
    samples = np.asarray(samples, np.float64)
    se = samples.std(ddof=1) / np.sqrt(samples.size)
    assert samples.mean() > n_sd * se, (samples.mean(), se)


class _State(NamedTuple):
    position: jax.Array


def gradient_step(logdensity_fn, step_size):
    """A deterministic 'sampler' x ← x + h ∇log p(x): makes the negatives exact."""
    grad = jax.grad(logdensity_fn)
    return SamplingAlgorithm(
        init=lambda x: _State(x),
        step=lambda key, s: (_State(s.position + step_size * grad(s.position)), ()),
    )


def cd_gradients(params, energy_fn, num_keys, n, num_steps, seed):
    """CD gradients over independent data batches and chain keys."""

    def one(k):
        k_data, k_loss = jax.random.split(k)
        data = TARGET.sample(k_data, n)
        g = jax.grad(
            lambda p: cd_loss(
                p, k_loss, data, energy_fn=energy_fn, sampler=MALA, num_steps=num_steps
            )[0]
        )(params)
        return flat(g)

    return jax.jit(jax.vmap(one))(jax.random.split(jax.random.key(seed), num_keys))


def test_cd_gradient_vanishes_at_truth():
    grads = cd_gradients(TARGET.params, ENERGY, num_keys=32, n=128, num_steps=5, seed=0)
    # E[g] = 0 exactly (data and negatives both follow the model); 32 independent
    # gradients, each a mean over 128 chains: t-test at 5 standard errors per entry.
    assert_mean_zero(grads)
    assert np.all(np.std(np.asarray(grads), axis=0) > 0)  # the gradients are not trivially 0


def test_cd_gradient_points_back_to_truth():
    # A model too narrow (precision × 1.5) and shifted: CD negatives drift from the data
    # towards it, and the descent direction −g has a positive projection on θ − θ′.
    wrong = {
        "mean": TARGET.params["mean"] + jnp.array([0.3, -0.2]),
        "precision": 1.5 * TARGET.params["precision"],
    }
    grads = cd_gradients(wrong, ENERGY, num_keys=32, n=128, num_steps=10, seed=1)
    away = flat(wrong) - flat(TARGET.params)
    # ⟨g, θ′ − θ⟩ over 32 independent gradients: mean > 5 standard errors.
    assert_positive_mean(grads @ away)


def test_cd_sign():
    # With −E, chains started at the data climb away from the mode (E⁻ ≪ E⁺), so the
    # loss E⁺ − E⁻ grows; at the true E it is 0 in expectation (the negatives follow the
    # data distribution). Paired over 16 keys: the true loss is within 5 s.e. of 0 and
    # the difference is above 5 s.e. (a sampler run on +E would fail the first check).
    def losses(k):
        k_data, k_loss = jax.random.split(k)
        data = TARGET.sample(k_data, 128)
        opts = dict(sampler=MALA, num_steps=5)
        true = cd_loss(TARGET.params, k_loss, data, energy_fn=ENERGY, **opts)[0]
        flip = cd_loss(TARGET.params, k_loss, data, energy_fn=flipped_energy, **opts)[0]
        return true, flip

    true, flip = jax.jit(jax.vmap(losses))(jax.random.split(jax.random.key(2), 16))
    assert_mean_zero(true[:, None])
    assert_positive_mean(flip - true)


@pytest.mark.parametrize("pathwise", [False, True], ids=["stopgrad", "pathwise"])
@pytest.mark.parametrize("energy_l2", [0.0, 0.1], ids=["noreg", "l2"])
def test_cd_loss_and_gradient_match_oracle(pathwise, energy_l2, key):
    # With a deterministic gradient step x ← x − h P(x − μ) the negatives are exact, so
    # loss and gradient have a closed-form oracle written here from the definitions.
    h, k, kl_weight = 0.1, 3, 0.7
    data = TARGET.sample(jax.random.key(3), 16)
    params = {"mean": jnp.array([0.2, -0.5]), "precision": jnp.array([[1.2, 0.1], [0.1, 0.8]])}
    sampler = functools.partial(gradient_step, step_size=h)
    opts = dict(kl_weight=kl_weight) if pathwise else {}
    loss_fn = lambda p: cd_loss(
        p,
        key,
        data,
        energy_fn=ENERGY,
        sampler=sampler,
        num_steps=k,
        pathwise=pathwise,
        energy_l2=energy_l2,
        **opts,
    )

    def energies(p, x):  # ½ (x − μ)ᵀ P (x − μ), batched
        diff = x - p["mean"][None, :]
        return 0.5 * jnp.einsum("ni,ij,nj->n", diff, p["precision"], diff)

    def step(p, x):  # ∇ₓ½ dᵀPd = ½(P + Pᵀ)d: as a function of P's entries, not just Pd
        sym = 0.5 * (p["precision"] + p["precision"].T)
        return x - h * (x - p["mean"][None, :]) @ sym

    def oracle(p):
        p0 = jax.lax.stop_gradient(p)
        x = data
        for _ in range(k - 1):
            x = step(p0, x)
        x_neg = step(p0, x)
        loss = jnp.mean(energies(p, data)) - jnp.mean(energies(p, x_neg))
        if pathwise:  # KL term: E at frozen params of the last step taken with live params
            loss = loss + kl_weight * jnp.mean(energies(p0, step(p, x)))
        if energy_l2:
            loss = loss + energy_l2 * (
                jnp.mean(energies(p, data) ** 2) + jnp.mean(energies(p, x_neg) ** 2)
            )
        return loss

    (loss, metrics), grad = jax.value_and_grad(loss_fn, has_aux=True)(params)
    expected, expected_grad = jax.value_and_grad(oracle)(params)
    # float32 on O(1) quantities through ≤ 4 affine steps: relative rounding ≲ 1e-6.
    np.testing.assert_allclose(loss, expected, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(flat(grad), flat(expected_grad), rtol=1e-5, atol=1e-6)
    assert ("kl" in metrics) == pathwise and ("energy_l2" in metrics) == (energy_l2 > 0)
    if not (pathwise or energy_l2):
        assert float(loss) == float(metrics["cd"])  # nothing on silently


def test_cd_pathwise_keeps_the_negatives(key):
    # The last step is rebuilt with the same random numbers: E(x⁻) agrees with and
    # without pathwise (to float32 rounding of one differently fused step).
    data = TARGET.sample(jax.random.key(4), 64)
    opts = dict(energy_fn=ENERGY, sampler=MALA, num_steps=4)
    _, plain = jax.jit(lambda k: cd_loss(TARGET.params, k, data, **opts))(key)
    _, path = jax.jit(lambda k: cd_loss(TARGET.params, k, data, pathwise=True, **opts))(key)
    np.testing.assert_allclose(path["energy_neg"], plain["energy_neg"], rtol=1e-5)
    np.testing.assert_allclose(path["kl"], plain["energy_neg"], rtol=1e-5)
    np.testing.assert_allclose(
        path["sampler/acceptance_rate"], plain["sampler/acceptance_rate"], rtol=1e-5
    )


def _factories():
    out = [
        pytest.param(MALA, id="jebm-mala"),
        pytest.param(functools.partial(blackjax.mala, step_size=0.2), id="blackjax-mala"),
    ]
    if hasattr(samplers, "ula"):
        out.append(pytest.param(functools.partial(samplers.ula, step_size=0.05), id="jebm-ula"))
    if hasattr(samplers, "hmc"):
        hmc = functools.partial(
            samplers.hmc, step_size=0.2, inverse_mass_matrix=jnp.ones(2), num_integration_steps=3
        )
        out.append(pytest.param(hmc, id="jebm-hmc"))
    return out


@pytest.mark.parametrize("sampler", _factories())
def test_cd_accepts_any_sampler_factory(sampler, key):
    objective = cd(ENERGY, sampler, num_steps=3)
    data = TARGET.sample(jax.random.key(5), 32)
    state = objective.init(key, data)
    loss, (metrics, new_state) = jax.jit(objective.loss)(TARGET.params, key, data, state)
    assert new_state == () and loss.shape == () and np.isfinite(float(loss))
    assert all(np.shape(v) == () for v in metrics.values())


def test_cd_options_are_checked():
    with pytest.raises(ValueError, match="num_steps"):
        cd(ENERGY, MALA, num_steps=0)
    with pytest.raises(ValueError, match="sampler"):
        cd(ENERGY, "mala", num_steps=1)
    with pytest.raises(ValueError, match="energy_l2"):
        cd(ENERGY, MALA, num_steps=1, energy_l2=-1.0)
    with pytest.raises(ValueError, match="pathwise"):
        cd(ENERGY, MALA, num_steps=1, kl_weight=0.5)
