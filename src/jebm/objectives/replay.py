"""A fixed-size replay buffer of persistent chains for persistent contrastive divergence.

The buffer is a pytree of arrays with a leading axis of ``buffer_size`` entries,
layout ``(buffer_size, *event)``. It lives in the objective state, so it is jitted,
checkpointed and resumed with the parameters, and its shape and dtype never change.

One training step (see :func:`jebm.objectives.pcd_loss`):

1. :func:`sample_replay_buffer` draws ``num_chains`` distinct entries uniformly at
   random (a uniform ``num_chains``-subset, :func:`distinct_indices`, whose cost does
   not grow with ``buffer_size``) and re-initialises each, independently with
   probability ``reinit_prob``, from draws of a :class:`~jebm.densities.Density`
   ``init_density`` (by default uniform on the box ``[-1, 1]^event``, see
   :func:`jebm.densities.uniform_box`);
2. the caller runs its sampler from these positions;
3. :func:`update_replay_buffer` writes the chains' final positions back to the same
   entries.

A buffer can also persist named fields of the sampler's state next to the positions
(``persisted``, e.g. the momentum of underdamped Langevin chains), so a chain carries
them from one training step to the next; see ``pcd(..., persist_fields=...)``. By default
it persists nothing and holds the positions only.

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

import math
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
    "distinct_indices",
]


class ReplayBuffer(NamedTuple):
    """Persistent chains: positions, and optionally fields of the sampler's state.

    Attributes:
      samples: the positions, a pytree with leaves ``(buffer_size, *event)``.
      persisted: ``None`` (the default: positions only), or a dict ``{field: pytree}``
        of sampler-state fields kept per entry, leaves ``(buffer_size, ...)``.
    """

    samples: ArrayTree
    persisted: dict[str, ArrayTree] | None = None

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


def distinct_indices(key: PRNGKey, size: int, num: int) -> Array:
    """``num`` distinct indices in ``[0, size)``, a uniformly random ``num``-subset.

    Floyd's algorithm, computed in parallel in ``O(num log num)`` work, independent of
    ``size`` (``jax.random.choice(..., replace=False)`` permutes all ``size`` entries).

    Floyd's sequential form: with ``offset = size − num``, for ``i = 0, …, num − 1`` and
    ``j = offset + i``, draw ``t_i ~ U{0, …, j}``; put ``t_i`` into the set ``S`` unless
    it is already there, in which case put ``j``. Then (Floyd, by induction on ``i``)

    * *distinct*: every value in ``S`` before step ``i`` is at most ``j − 1``, so the
      fallback ``j`` is new, and ``t_i`` is only taken when new;
    * *uniform*: after step ``i``, ``S`` is uniform over the ``(i + 1)``-subsets of
      ``{0, …, j}``: a subset ``A`` with ``j ∈ A`` arises from ``S = A∖{j}`` and any of
      the ``i + 1`` draws ``t ∈ A``, one with ``j ∉ A`` from ``S = A∖{x}`` and
      ``t = x`` for each of its ``i + 1`` elements ``x``; both have probability
      ``(i + 1) / ((j + 1) C(j, i)) = 1 / C(j + 1, i + 1)``.

    In parallel: every ``t_k`` (``k < i``) is in ``S`` before step ``i`` (taken, or
    already there), so ``S = {t_k} ∪ {offset + k : k collided}`` and step ``i``
    *collides* iff ``t_i`` repeats an earlier ``t_k`` (found by one stable sort) or
    ``t_i = offset + k`` for an earlier step ``k`` that collided. The second case
    points strictly backwards, so ``collided`` is an OR along chains of pointers,
    resolved exactly by ``⌈log₂ num⌉`` rounds of pointer jumping. The result equals
    the sequential algorithm's on the same draws (``tests/objectives/test_replay.py``
    checks it against a Python loop), in the order of the steps ``i``.

    Args:
      key: PRNG key.
      size: the population size (static).
      num: how many distinct indices, ``1 <= num <= size`` (static).

    Returns:
      ``int32`` array ``(num,)`` of distinct indices. As a set it is uniform over the
      ``num``-subsets (up to ``jax.random.randint``'s modulo bias, below ``size / 2⁶⁴``);
      the order is not a uniform shuffle (a collision's fallback is the largest value
      so far), which does not matter to callers that treat the entries alike.

    Examples:
      >>> import jax
      >>> from jebm.objectives.replay import distinct_indices
      >>> idx = distinct_indices(jax.random.key(0), 10, 10)
      >>> sorted(idx.tolist()) == list(range(10))
      True

    References:
      Bentley, J. and Floyd, R. W. (1987). Programming pearls: a sample of
      brilliance. Communications of the ACM 30(9), 754–757.
    """
    if not isinstance(size, int) or not isinstance(num, int) or not 1 <= num <= size:
        raise ValueError(f"need ints 1 <= num <= size, got num={num!r}, size={size!r}.")
    offset = size - num
    step = jnp.arange(num, dtype=jnp.int32)
    last = offset + step  # Floyd's j
    draws = jax.random.randint(key, (num,), 0, last + 1, dtype=jnp.int32)  # t_i ~ U{0..j}
    order = jnp.argsort(draws, stable=True)
    ranked = draws[order]
    repeat = jnp.zeros((num,), bool).at[order].set(
        jnp.concatenate([jnp.zeros((1,), bool), ranked[1:] == ranked[:-1]])
    )
    pointer = draws - offset  # t_i is the fallback of step t_i − offset ...
    pointer = jnp.where((pointer >= 0) & (pointer < step), pointer, step)  # ... if earlier
    collided = repeat
    for _ in range(math.ceil(math.log2(num))):
        collided = collided | collided[pointer]
        pointer = pointer[pointer]
    return jnp.where(collided, last, draws)


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
    indices = distinct_indices(k_idx, size, num_chains)
    reinit = jax.random.bernoulli(k_mask, reinit_prob, (num_chains,))
    stored = jax.tree.map(lambda leaf: leaf[indices], buffer.samples)
    fresh = init_density.sample(k_base, num_chains)
    fresh = jax.tree.map(lambda f, s: f.astype(s.dtype), fresh, stored)
    return _rows_where(reinit, fresh, stored), indices, reinit


def update_replay_buffer(
    buffer: ReplayBuffer,
    indices: Array,
    positions: ArrayTree,
    persisted: dict[str, ArrayTree] | None = None,
) -> ReplayBuffer:
    """Write ``positions`` ``(num_chains, *event)`` into the entries ``indices``.

    Args:
      buffer: the replay buffer.
      indices: the entries to overwrite, shape ``(num_chains,)``.
      positions: the new positions, a pytree with leaves ``(num_chains, *event)``; cast to
        the buffer's dtypes.
      persisted: for a buffer that persists sampler-state fields, their new values
        ``{field: leaves (num_chains, ...)}`` (the buffer's fields); ``None`` otherwise.

    Returns:
      The updated ``ReplayBuffer``.
    """

    def write(stored, new):
        return jax.tree.map(lambda leaf, x: leaf.at[indices].set(x.astype(leaf.dtype)), stored, new)

    if (persisted is None) != (buffer.persisted is None):
        raise ValueError(
            "persisted must be given exactly when the buffer persists sampler-state fields "
            f"(the buffer's: {None if buffer.persisted is None else sorted(buffer.persisted)})."
        )
    new_persisted = None if persisted is None else write(buffer.persisted, persisted)
    return ReplayBuffer(write(buffer.samples, positions), new_persisted)
