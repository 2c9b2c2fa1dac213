"""A fixed-size replay buffer of persistent chains for persistent contrastive divergence.

The buffer is a pytree of arrays with a leading axis of ``buffer_size`` entries,
layout ``(buffer_size, *event)``. It lives in the objective state, so it is jitted,
checkpointed and resumed with the parameters, and its shape and dtype never change.

One training step (see :func:`jebm.objectives.pcd_loss`):

1. :func:`sample_replay_buffer` draws ``num_chains`` distinct entries uniformly at
   random and re-initialises each, independently with probability ``reinit_prob``,
   from draws of a :class:`~jebm.densities.Density` ``init_density`` (by default
   uniform on the box ``[-1, 1]^event``, see :func:`jebm.densities.uniform_box`);
2. the caller runs its sampler from these positions;
3. :func:`update_replay_buffer` writes the chains' final positions back to the same
   entries.

With ``reinit_prob = 0`` and ``num_chains = buffer_size`` this is Tieleman's
persistent CD with a fixed set of chains; with a large buffer and ``reinit_prob =
0.05`` it is the replay buffer of Du & Mordatch.

References:
  Tieleman, T. (2008). Training restricted Boltzmann machines using approximations
  to the likelihood gradient. ICML.

  Du, Y. and Mordatch, I. (2019). Implicit generation and modeling with energy-based
  models. NeurIPS. (Replay buffer, Sec. 3.1: 95% of chains from the buffer, 5% from
  uniform noise.)
"""

from typing import NamedTuple

import jax
import jax.numpy as jnp

from jebm._validate import check_int
from jebm.densities import Density
from jebm.types import Array, ArrayTree, PRNGKey

__all__ = [
    "ReplayBuffer",
    "init_replay_buffer",
    "sample_replay_buffer",
    "update_replay_buffer",
]


class ReplayBuffer(NamedTuple):
    """Persistent chain positions, a pytree with leaves ``(buffer_size, *event)``."""

    samples: ArrayTree

    @property
    def size(self) -> int:
        return jax.tree.leaves(self.samples)[0].shape[0]


def _uniform_like(template: ArrayTree) -> Density:
    """Uniform on ``[-1, 1]`` with the event shapes and dtypes of a batched template."""
    leaves, treedef = jax.tree.flatten(template)

    def log_prob(x: ArrayTree) -> Array:
        inside = jnp.all(jnp.stack([jnp.all(jnp.abs(v) <= 1.0) for v in jax.tree.leaves(x)]))
        log_volume = sum(leaf[0].size for leaf in leaves) * jnp.log(2.0)
        return jnp.where(inside, -log_volume, -jnp.inf)

    def sample(key: PRNGKey, n: int) -> ArrayTree:
        keys = jax.random.split(key, len(leaves))
        out = [
            jax.random.uniform(k, (n, *leaf.shape[1:]), leaf.dtype, -1.0, 1.0)
            for k, leaf in zip(keys, leaves, strict=True)
        ]
        return jax.tree.unflatten(treedef, out)

    return Density(log_prob, sample)


def _rows_where(mask: Array, a: ArrayTree, b: ArrayTree) -> ArrayTree:
    """Per-row select: row ``i`` of every leaf from ``a`` where ``mask[i]``, else from ``b``."""
    return jax.tree.map(
        lambda x, y: jnp.where(mask.reshape(mask.shape + (1,) * (x.ndim - 1)), x, y), a, b
    )


def init_replay_buffer(key: PRNGKey, init_density: Density, buffer_size: int) -> ReplayBuffer:
    """Fill a buffer of ``buffer_size`` entries with draws of ``init_density``.

    Args:
      key: PRNG key.
      init_density: a :class:`~jebm.densities.Density` (its ``sample``).
      buffer_size: number of entries (static).

    Returns:
      A :class:`ReplayBuffer`.
    """
    check_int("buffer_size", buffer_size)
    return ReplayBuffer(init_density.sample(key, buffer_size))


def sample_replay_buffer(
    key: PRNGKey,
    buffer: ReplayBuffer,
    num_chains: int,
    *,
    reinit_prob: float | Array,
    init_density: Density,
) -> tuple[ArrayTree, Array, Array]:
    """Draw ``num_chains`` distinct entries and re-initialise each with prob. ``reinit_prob``.

    Args:
      key: PRNG key.
      buffer: the current buffer.
      num_chains: number of entries to draw, at most the buffer size (static).
      reinit_prob: probability that a drawn chain restarts from a draw of
        ``init_density``; may be a traced array.
      init_density: a :class:`~jebm.densities.Density` (its ``sample``).

    Returns:
      ``(positions, indices, reinit)``: the chains' starting positions ``(num_chains,
      *event)``, the buffer ``indices`` they came from (distinct, ``int32``), and the
      boolean mask of the chains that were re-initialised.
    """
    size = buffer.size
    if not isinstance(num_chains, int) or not 1 <= num_chains <= size:
        raise ValueError(
            f"num_chains must be an int in [1, buffer_size={size}], got {num_chains!r}."
        )
    k_idx, k_mask, k_base = jax.random.split(key, 3)
    # Without replacement, so that writing back never puts two chains in one entry.
    indices = jax.random.choice(k_idx, size, (num_chains,), replace=False).astype(jnp.int32)
    reinit = jax.random.bernoulli(k_mask, reinit_prob, (num_chains,))
    stored = jax.tree.map(lambda leaf: leaf[indices], buffer.samples)
    fresh = init_density.sample(k_base, num_chains)
    fresh = jax.tree.map(lambda f, s: f.astype(s.dtype), fresh, stored)
    return _rows_where(reinit, fresh, stored), indices, reinit


def update_replay_buffer(
    buffer: ReplayBuffer, indices: Array, positions: ArrayTree
) -> ReplayBuffer:
    """Write ``positions`` ``(num_chains, *event)`` into the entries ``indices``."""
    samples = jax.tree.map(
        lambda leaf, x: leaf.at[indices].set(x.astype(leaf.dtype)), buffer.samples, positions
    )
    return ReplayBuffer(samples)
