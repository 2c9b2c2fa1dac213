"""The sampler contract shared by every jebm kernel (BlackJAX's, exactly).

An algorithm is ``SamplingAlgorithm(init, step)``:

* ``state = init(position)`` caches what the kernel needs (the log-density and,
  for gradient samplers, its gradient), so each step costs one ``value_and_grad``;
* ``state, info = step(key, state)`` is one Markov transition; ``key`` is an
  argument, never stored.

Each kernel module also exposes ``init(position, logdensity_fn)`` and
``build_kernel() -> kernel(key, state, logdensity_fn, *tunables)``. Tunables are
traced arguments, so ``jax.vmap(kernel, in_axes=(0, 0, None, 0))`` gives per-chain
step sizes and schedules never recompile.

Randomness: a kernel draws everything one step needs (Gaussian noise for every
leaf and the Metropolis uniform) from *one* call of ``jax.random.uniform`` on its
key; see :func:`normal_and_uniform`. This avoids a key split per step, which on
cheap targets costs as much as the target itself.
"""

from collections.abc import Callable
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from jebm.types import Array, ArrayTree, PRNGKey

__all__ = [
    "SamplingAlgorithm",
    "normal_and_uniform",
    "normal_like",
    "mh_accept",
    "tree_vdot",
    "tree_all_finite",
]


class SamplingAlgorithm(NamedTuple):
    """A pair of pure functions: ``init(position)`` and ``step(key, state)``."""

    init: Callable
    step: Callable


def _uniform_to_normal(u: Array) -> Array:
    # u is uniform on (-1, 1): sqrt(2) erfinv(u) is standard normal (as in jax.random.normal).
    return np.sqrt(2.0).astype(u.dtype) * jax.lax.erf_inv(u)


def normal_and_uniform(key: PRNGKey, position: ArrayTree) -> tuple[ArrayTree, Array]:
    """Standard normal noise shaped like ``position`` and one log-uniform, from one draw.

    Args:
      key: a PRNG key.
      position: a pytree of floating arrays.

    Returns:
      ``(noise, log_u)``: a pytree of N(0, 1) draws like ``position`` and
      ``log u`` for ``u ~ U(0, 1)``, for a Metropolis–Hastings test.
    """
    leaves, treedef = jax.tree.flatten(position)
    dtype = jnp.result_type(*leaves)
    sizes = [leaf.size for leaf in leaves]
    tiny = np.nextafter(np.array(-1.0, dtype), np.array(0.0, dtype))
    u = jax.random.uniform(key, (sum(sizes) + 1,), dtype, minval=tiny, maxval=1.0)
    splits = np.cumsum(sizes)[:-1]
    noise = [
        _uniform_to_normal(chunk).reshape(leaf.shape).astype(leaf.dtype)
        for chunk, leaf in zip(jnp.split(u[:-1], splits), leaves, strict=True)
    ]
    log_u = jnp.log1p(u[-1]) - jnp.log(2.0).astype(dtype)  # (u + 1) / 2 is U(0, 1)
    return jax.tree.unflatten(treedef, noise), log_u


def normal_like(key: PRNGKey, position: ArrayTree) -> ArrayTree:
    """Standard normal noise shaped like ``position``."""
    return normal_and_uniform(key, position)[0]


def mh_accept(log_accept_ratio: Array, log_u: Array, proposal_finite: Array) -> Array:
    """Metropolis–Hastings test in log space; NaN ratios and non-finite proposals reject."""
    return proposal_finite & (log_u < log_accept_ratio)


def tree_vdot(a: ArrayTree, b: ArrayTree) -> Array:
    """Σ over leaves of the elementwise product."""
    return sum(jnp.vdot(x, y) for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b), strict=True))


def tree_all_finite(tree: ArrayTree) -> Array:
    """True when every entry of every leaf is finite."""
    return jnp.all(jnp.stack([jnp.all(jnp.isfinite(x)) for x in jax.tree.leaves(tree)]))
