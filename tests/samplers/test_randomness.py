"""The one-hash draw in ``normal_and_uniform`` gives exact N(0, 1) and U(0, 1) marginals."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy import stats

from jebm.samplers.base import normal_and_uniform

N = 100_000


def _draws(impl):
    keys = jax.random.split(jax.random.key(3, impl=impl), N)
    position = {"a": jnp.zeros(3), "b": jnp.zeros((2,))}
    noise, log_u = jax.vmap(normal_and_uniform, (0, None))(keys, position)
    z = np.concatenate([np.asarray(noise["a"]), np.asarray(noise["b"])], axis=1)
    return z, np.exp(np.asarray(log_u, np.float64))


@pytest.mark.parametrize("impl", ["threefry2x32", "rbg"])
def test_marginals_and_independence(impl):
    z, u = _draws(impl)
    # Means: standard error 1/sqrt(N) ≈ 0.0032 for normals, sqrt(1/12/N) ≈ 0.0009 for u; 5 SE.
    np.testing.assert_array_less(np.abs(z.mean(0)), 5 / np.sqrt(N))
    assert abs(u.mean() - 0.5) < 5 * np.sqrt(1 / 12 / N)
    # Variances: SE of a sample variance of N(0,1) is sqrt(2/N) ≈ 0.0045; 5 SE.
    np.testing.assert_array_less(np.abs(z.var(0) - 1.0), 5 * np.sqrt(2 / N))
    # Cross-correlations between the words of one draw: SE 1/sqrt(N); 5 SE.
    corr = np.corrcoef(np.concatenate([z, u[:, None]], axis=1).T)
    off = corr[~np.eye(corr.shape[0], dtype=bool)]
    np.testing.assert_array_less(np.abs(off), 5 / np.sqrt(N))
    # Whole-distribution checks; seeds are fixed, so a p-value below 1e-4 means a real defect.
    for j in range(z.shape[1]):
        assert stats.kstest(z[:, j], "norm").pvalue > 1e-4
    assert stats.kstest(u, "uniform").pvalue > 1e-4
    assert u.min() > 0.0 and u.max() < 1.0


def test_different_keys_give_independent_streams():
    keys = jax.random.split(jax.random.key(5), 2 * N).reshape(N, 2)
    draw = jax.vmap(jax.vmap(lambda k: normal_and_uniform(k, jnp.zeros(1))[0][0]))
    z = np.asarray(draw(keys))
    # Correlation between neighbouring chains' draws: SE 1/sqrt(N); 5 SE.
    assert abs(np.corrcoef(z[:, 0], z[:, 1])[0, 1]) < 5 / np.sqrt(N)


def test_normal_like_marginals():
    from jebm.samplers.base import normal_like

    keys = jax.random.split(jax.random.key(7), N)
    z = np.asarray(jax.vmap(normal_like, (0, None))(keys, jnp.zeros(2)))
    # Mean SE 1/sqrt(N), variance SE sqrt(2/N); 5 SE each; fixed seed, so p < 1e-4 is a defect.
    np.testing.assert_array_less(np.abs(z.mean(0)), 5 / np.sqrt(N))
    np.testing.assert_array_less(np.abs(z.var(0) - 1.0), 5 * np.sqrt(2 / N))
    assert stats.kstest(z[:, 0], "norm").pvalue > 1e-4
    assert abs(np.corrcoef(z.T)[0, 1]) < 5 / np.sqrt(N)
