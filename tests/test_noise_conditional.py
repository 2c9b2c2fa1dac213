"""The noise-conditional conv energy: contract, σ-conditioning and use with NCSN pieces."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from jebm.energies import NoiseConditionalConvEnergy, noise_conditional_conv_energy
from jebm.energy import logdensity_fn
from jebm.objectives import denoising_score_matching_loss
from jebm.samplers import annealed_langevin

SHAPE = (8, 8)


@pytest.fixture(scope="module")
def model():
    return noise_conditional_conv_energy(jax.random.key(0), SHAPE, features=(8, 16), hidden=32)


def test_scalar_energy_and_one_over_sigma_at_init(model):
    # FiLM layers start at zero, so at initialisation σ·E(x, σ) does not depend on σ
    # (exactly, up to float32 round-off of the division).
    energy_fn, params = model
    x = jax.random.uniform(jax.random.key(1), SHAPE)
    values = jnp.array([s * energy_fn(params, x, s) for s in (0.01, 0.1, 1.0)])
    assert energy_fn(params, x, 0.1).shape == ()
    np.testing.assert_allclose(values, values[0], rtol=1e-5)


def test_sigma_conditioning_is_learnable(model):
    # The FiLM weights get a non-zero gradient, and once they are non-zero σ·E depends on σ.
    energy_fn, params = model
    x = jax.random.uniform(jax.random.key(2), SHAPE)
    grads = jax.grad(lambda p: energy_fn(p, x, 0.3))(params)
    assert float(jnp.abs(grads["films"][0]["kernel"][...]).max()) > 0
    bumped = jax.tree.map(lambda g, p: p + 0.5 * jnp.sign(g), grads, params)
    a, b = 0.1 * energy_fn(bumped, x, 0.1), 1.0 * energy_fn(bumped, x, 1.0)
    assert abs(float(a - b)) > 1e-3


def test_works_with_dsm_ladder_and_annealed_langevin(model, key):
    energy_fn, params = model
    batch = jax.random.uniform(key, (4, *SHAPE))
    sigmas = jnp.array([1.0, 0.3, 0.1])
    loss_and_grad = jax.jit(jax.value_and_grad(lambda p: denoising_score_matching_loss(
        p, key, batch, energy_fn=energy_fn, sigmas=sigmas)[0]))  # fmt: skip
    loss, grads = loss_and_grad(params)
    assert jnp.isfinite(loss)
    assert all(bool(jnp.all(jnp.isfinite(g))) for g in jax.tree.leaves(grads))
    alg = annealed_langevin(logdensity_fn(energy_fn, params), sigmas,
                            num_steps_per_level=2, eps=1e-3)  # fmt: skip
    state = alg.init(jnp.zeros(SHAPE))
    state, info = jax.jit(alg.step)(key, state)
    assert state.position.shape == SHAPE


def test_channels_and_errors():
    energy_fn, params = noise_conditional_conv_energy(jax.random.key(0), (4, 4, 3), features=(4,),
                                                      hidden=8)  # fmt: skip
    assert energy_fn(params, jnp.zeros((4, 4, 3)), 0.5).shape == ()
    with pytest.raises(ValueError, match="expects images"):
        energy_fn(params, jnp.zeros((4, 4)), 0.5)
    with pytest.raises(ValueError, match="embedding_dim must be even"):
        NoiseConditionalConvEnergy(SHAPE, embedding_dim=5, rngs=nnx.Rngs(0))
    with pytest.raises(ValueError, match="activation"):
        noise_conditional_conv_energy(jax.random.key(0), SHAPE, activation="nope")
