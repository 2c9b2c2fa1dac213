"""Conditional sampling tasks: inpainting, denoising and class-conditional chains."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jebm import tasks
from jebm.energies.conv import conv_energy
from jebm.samplers import by_name


def _descent(shape, step_size, **kw):
    """Noise-free ULA: gradient descent on the energy, x ← x − h ∇E."""
    return by_name("ula", shape, step_size=step_size, noise_scale=0.0, **kw)


def _gaussian_energy(dim, seed=0):
    a = np.random.default_rng(seed).normal(size=(dim, dim))
    precision = jnp.asarray(a @ a.T / dim + np.eye(dim), jnp.float32)
    mean = jnp.linspace(0.2, 0.8, dim)
    return (lambda p, x: 0.5 * (x - p).reshape(-1) @ precision @ (x - p).reshape(-1)), mean, \
        precision


def test_inpaint_holds_observed_pixels_and_finds_the_conditional_mode(key):
    energy_fn, mean, precision = _gaussian_energy(16)
    image = jax.random.uniform(jax.random.key(3), (16,))
    mask = jnp.arange(16) % 3 == 0
    start = jnp.where(mask, jax.random.uniform(jax.random.key(4), (16,)), image)
    out = tasks.inpaint(key, energy_fn, mean, image, mask, num_steps=400,
                        sampler=_descent((16,), 0.05), init=start)
    np.testing.assert_array_equal(np.asarray(out)[~np.asarray(mask)],
                                  np.asarray(image)[~np.asarray(mask)])
    assert float(energy_fn(mean, out)) < float(energy_fn(mean, start))
    # Noise-free Langevin is gradient descent on the masked block: it converges to the
    # conditional mean μ_m − P_mm⁻¹ P_mo (x_o − μ_o). Step 0.05 against eigenvalues of P_mm
    # in ~[1, 6] contracts by ≤ 0.95 per step, 0.95^400 ~ 1e-9; float32: 1e-4.
    m, o = np.asarray(mask), ~np.asarray(mask)
    p = np.asarray(precision, np.float64)
    mu, x = np.asarray(mean, np.float64), np.asarray(image, np.float64)
    expected = mu[m] - np.linalg.solve(p[np.ix_(m, m)], p[np.ix_(m, o)] @ (x[o] - mu[o]))
    np.testing.assert_allclose(np.asarray(out)[m], expected, atol=1e-4)


def test_inpaint_with_noise_and_bounds_on_a_conv_energy(key):
    energy_fn, params = conv_energy(jax.random.key(1), (8, 8), features=(4,), hidden=8)
    image = jax.random.uniform(jax.random.key(2), (8, 8))
    mask = jnp.zeros((8, 8), bool).at[4:].set(True)  # the bottom half is missing
    start = jnp.where(mask, 0.5, image)
    langevin = by_name("ula", (8, 8), step_size=1.0, noise_scale=0.005, bounds=(0.0, 1.0))
    out = jax.jit(lambda k: tasks.inpaint(k, energy_fn, params, image, mask, num_steps=30,
                                          sampler=langevin, init=start))(key)
    np.testing.assert_array_equal(np.asarray(out)[:4], np.asarray(image)[:4])
    assert float(out.min()) >= 0.0 and float(out.max()) <= 1.0
    assert float(energy_fn(params, out)) < float(energy_fn(params, start))
    with pytest.raises(ValueError, match="mask shape"):
        tasks.inpaint(key, energy_fn, params, image, mask[:4], sampler=langevin, num_steps=1)


def test_denoise_lowers_the_energy(key):
    energy_fn, mean, _ = _gaussian_energy(16)
    noisy = mean + 0.3 * jax.random.normal(jax.random.key(5), (16,))
    out = tasks.denoise(key, energy_fn, mean, noisy, num_steps=50,
                        sampler=_descent((16,), 0.05))
    assert float(energy_fn(mean, out)) < 0.1 * float(energy_fn(mean, noisy))


def test_conditional_and_unconditional_chains(key):
    centres = jnp.array([[0.2, 0.2], [0.8, 0.5]])
    cond_energy = lambda p, x, y: 0.5 * jnp.sum((x - p[y]) ** 2)
    labels = jnp.array([0, 1, 1, 0])
    start = jax.random.uniform(key, (4, 2))
    out = tasks.conditional_samples(key, cond_energy, centres, labels, start, num_steps=200,
                                    sampler=_descent((2,), 0.1))
    # Gradient descent contracting by 0.9 per step: 0.9^200 ~ 7e-10.
    np.testing.assert_allclose(out, centres[labels], atol=1e-5)
    frames = tasks.sample_chains(key, lambda p, x: cond_energy(p, x, 1), centres, start,
                                 num_steps=200, num_frames=4, sampler=_descent((2,), 0.1))
    assert frames.shape == (4, 4, 2)
    np.testing.assert_allclose(frames[-1], jnp.broadcast_to(centres[1], (4, 2)), atol=1e-5)
    with pytest.raises(ValueError, match="num_frames"):
        tasks.sample_chains(key, lambda p, x: cond_energy(p, x, 1), centres, start,
                            num_steps=10, num_frames=3, sampler=_descent((2,), 0.1))


