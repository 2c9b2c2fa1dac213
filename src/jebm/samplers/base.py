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
leaf and the Metropolis uniform) from *one* counter-mode hash of its key; see
:func:`normal_and_uniform`. No key is split inside a step, and for threefry keys
both 32-bit words of each Threefry-2x32 block are used (``jax.random.uniform``
keeps one word per block), which halves the hashing. On cheap targets randomness
costs as much as the target itself (``benchmarks/samplers.py``).
"""

from collections.abc import Callable
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jax.extend.random import threefry_2x32

from jebm._tree import tree_all_finite
from jebm.types import Array, ArrayTree, PRNGKey

__all__ = [
    "SamplingAlgorithm",
    "normal_and_uniform",
    "normal_like",
    "metropolis_select",
    "tree_vdot",
    "tree_all_finite",
    "tree_broadcast",
]


class SamplingAlgorithm(NamedTuple):
    """A pair of pure functions: ``init(position)`` and ``step(key, state)``."""

    init: Callable
    step: Callable


def _uniform_to_normal(u: Array) -> Array:
    # u is uniform on (-1, 1): sqrt(2) erfinv(u) is standard normal (as in jax.random.normal).
    return np.sqrt(2.0).astype(u.dtype) * jax.lax.erf_inv(u)


def _symmetric_uniform(key: PRNGKey, n: int, dtype) -> Array:
    """``n`` draws uniform on (−1, 1) in ``dtype``.

    For float32 and threefry keys, ``n`` counters are hashed as ``⌈n/2⌉`` Threefry-2x32
    blocks and both output words are kept; each word's top 23 bits fill a float32
    mantissa in [1, 2). Otherwise ``jax.random.uniform`` is used.
    """
    tiny = np.nextafter(np.array(-1.0, dtype), np.array(0.0, dtype))
    if dtype != jnp.float32 or str(jax.random.key_impl(key)) != "threefry2x32":
        return jax.random.uniform(key, (n,), dtype, minval=tiny, maxval=1.0)
    bits = threefry_2x32(jax.random.key_data(key), jnp.arange(n, dtype=jnp.uint32))
    one_two = jax.lax.bitcast_convert_type((bits >> 9) | np.uint32(0x3F800000), jnp.float32)
    return jnp.maximum(tiny, 2.0 * one_two - 3.0)


def _normals(key: PRNGKey, position: ArrayTree, num_uniforms: int) -> tuple[ArrayTree, Array]:
    """N(0, 1) noise shaped like ``position`` and ``num_uniforms`` U(−1, 1) draws, one hash."""
    leaves, treedef = jax.tree.flatten(position)
    dtype = jnp.result_type(*leaves)
    sizes = [leaf.size for leaf in leaves]
    u = _symmetric_uniform(key, sum(sizes) + num_uniforms, dtype)
    splits = np.cumsum(sizes)[:-1]
    noise = [
        _uniform_to_normal(chunk).reshape(leaf.shape).astype(leaf.dtype)
        for chunk, leaf in zip(jnp.split(u[: sum(sizes)], splits), leaves, strict=True)
    ]
    return jax.tree.unflatten(treedef, noise), u[sum(sizes) :]


def normal_and_uniform(key: PRNGKey, position: ArrayTree) -> tuple[ArrayTree, Array]:
    """Standard normal noise shaped like ``position`` and one log-uniform, from one draw.

    Args:
      key: a PRNG key (any implementation; threefry keys take the fast path).
      position: a pytree of floating arrays.

    Returns:
      ``(noise, log_u)``: a pytree of N(0, 1) draws like ``position`` and
      ``log u`` for ``u ~ U(0, 1)``, for a Metropolis–Hastings test.

    References:
      Salmon, J. K., Moraes, M. A., Dror, R. O. and Shaw, D. E. (2011). Parallel
      random numbers: as easy as 1, 2, 3. SC '11. (Threefry, counter mode)
    """
    noise, u = _normals(key, position, 1)
    log_u = jnp.log1p(u[0]) - jnp.log(2.0).astype(u.dtype)  # (u + 1) / 2 is U(0, 1)
    return noise, log_u


def normal_like(key: PRNGKey, position: ArrayTree) -> ArrayTree:
    """Standard normal noise shaped like ``position`` (no uniform is drawn)."""
    return _normals(key, position, 0)[0]


def metropolis_select(
    state: ArrayTree, proposal: ArrayTree, log_ratio: Array, log_u: Array, valid: Array
) -> tuple[ArrayTree, Array, Array]:
    """The Metropolis–Hastings test in log space, and the state it keeps.

    Args:
      state: the current kernel state.
      proposal: the proposed state (same structure).
      log_ratio: the log acceptance ratio; a NaN ratio rejects.
      log_u: ``log u`` for ``u ~ U(0, 1)``.
      valid: False for a proposal that must be rejected whatever the ratio (a
        non-finite position, log-density or gradient; an HMC divergence).

    Returns:
      ``(new_state, acceptance_rate, is_accepted)``; the rate is
      ``min(1, exp(log_ratio))`` for a valid proposal and 0 otherwise.
    """
    accept = valid & (log_u < log_ratio)
    new_state = jax.tree.map(lambda a, b: jnp.where(accept, a, b), proposal, state)
    rate = jnp.where(valid, jnp.exp(jnp.minimum(log_ratio, 0.0)), 0.0)
    return new_state, rate, accept


def tree_vdot(a: ArrayTree, b: ArrayTree) -> Array:
    """Σ over leaves of the elementwise product."""
    return sum(jnp.vdot(x, y) for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b), strict=True))


def tree_broadcast(value: ArrayTree, tree: ArrayTree, name: str = "value") -> ArrayTree:
    """Broadcast a tunable to every leaf of ``tree``.

    A pytree with the structure of ``tree`` is matched leaf by leaf; a single array
    (or scalar) is used for every leaf. Each result is ``jnp.broadcast_to`` the leaf's
    shape, so a per-dimension array must broadcast against the leaf explicitly.

    Raises:
      ValueError: naming ``name`` when the structures or shapes do not fit.
    """
    leaves, treedef = jax.tree.flatten(tree)
    value_leaves, value_def = jax.tree.flatten(value)
    if value_def == treedef:
        pairs = zip(value_leaves, leaves, strict=True)
    elif len(value_leaves) == 1:
        pairs = ((value_leaves[0], leaf) for leaf in leaves)
    else:
        raise ValueError(
            f"{name} must be one array or a pytree shaped like the position; got structure "
            f"{value_def} for position structure {treedef}."
        )
    out = []
    for v, leaf in pairs:
        v = jnp.asarray(v)
        try:
            out.append(jnp.broadcast_to(v, jnp.shape(leaf)).astype(jnp.result_type(leaf)))
        except ValueError as err:
            raise ValueError(
                f"{name} of shape {v.shape} does not broadcast to a position leaf of shape "
                f"{jnp.shape(leaf)}."
            ) from err
    return jax.tree.unflatten(treedef, out)
