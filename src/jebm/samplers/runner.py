"""Run many chains of any ``SamplingAlgorithm``: one ``lax.scan`` over steps, ``vmap`` over chains.

Layout: positions ``(num_chains, *event)``; the trace is ``(num_kept, num_chains, *event)``
with ``num_kept = (num_steps - burn_in) // thin``. Infos are averaged over each block
of ``thin`` steps (booleans become rates), so memory stays proportional to
``num_kept``. With ``keep_trace=False`` only running per-chain moments of the kept
draws are carried, and memory is flat in ``num_steps``.

A chain whose initial log-density is not finite is refused with an error when the
positions are concrete. Under ``jit`` they are not, so that check cannot run; every jebm
kernel then reports such a chain as divergent at every step (``info.is_divergent`` is 1
for it), which is how a NaN start shows up in a jitted run.

Keys: step ``t`` of chain ``c`` uses ``fold_in(fold_in(key, t), c)``-equivalent keys,
made as ``split(fold_in(key, t), num_chains)``, so a run resumed at step ``t`` replays
the same stream.
"""

import functools
from collections.abc import Callable
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import AxisType
from jax.sharding import PartitionSpec as P

from jebm.samplers.base import SamplingAlgorithm
from jebm.types import Array, ArrayTree, PRNGKey

__all__ = [
    "RunningMoments", "ChainResult", "run_chains", "run_chains_chunked", "constrain_chains"]


class RunningMoments(NamedTuple):
    """Per-chain running mean and sum of squared deviations (Welford)."""

    count: Array
    mean: ArrayTree
    m2: ArrayTree

    @property
    def variance(self) -> ArrayTree:
        return jax.tree.map(lambda m2: m2 / jnp.maximum(self.count - 1, 1), self.m2)


def _moments_update(moments: RunningMoments, x: ArrayTree) -> RunningMoments:
    count = moments.count + 1
    delta = jax.tree.map(lambda x, m: x - m, x, moments.mean)
    mean = jax.tree.map(lambda m, d: m + d / count, moments.mean, delta)
    m2 = jax.tree.map(lambda s, x, m, d: s + d * (x - m), moments.m2, x, mean, delta)
    return RunningMoments(count, mean, m2)


class ChainResult(NamedTuple):
    """The outcome of running a batch of chains.

    Attributes:
      state: the final states, batched over chains.
      trace: the kept draws, ``(num_kept, num_chains, *event)``, or ``None``.
      info: ``(num_kept, num_chains)`` block averages of each info field.
      moments: the per-chain running moments of the kept draws.
    """

    state: ArrayTree  # final states, batched over chains
    trace: ArrayTree | None  # (num_kept, num_chains, *event) or None
    info: ArrayTree  # (num_kept, num_chains) block averages of each info field
    moments: RunningMoments  # per-chain moments of the kept draws


def _check_positions(initial_positions: ArrayTree, raw: bool = True) -> int:
    leaves = jax.tree.leaves(initial_positions)
    if not leaves:
        raise ValueError("initial_positions is empty.")
    if raw and len(leaves) == 1 and jnp.ndim(leaves[0]) == 1 and leaves[0] is initial_positions:
        n = jnp.shape(leaves[0])[0]
        raise ValueError(
            f"initial_positions has shape ({n},), which is ambiguous: run_chains needs a "
            "leading chain axis, (num_chains, *event). For one chain of this position "
            f"pass x[None] (shape (1, {n})); for many chains pass an array of shape "
            f"(num_chains, {n}). For {n} chains of a scalar, pass initialised states: "
            "run_chains(key, alg, jax.vmap(alg.init)(x), ...)."
        )
    sizes = {leaf.shape[0] if leaf.ndim else None for leaf in leaves}
    if None in sizes or len(sizes) != 1:
        raise ValueError(
            "initial_positions must have a leading chain axis (num_chains, *event) shared by "
            f"every leaf; got leaf shapes {[leaf.shape for leaf in leaves]}."
        )
    return sizes.pop()


def _check_finite_init(states: ArrayTree) -> None:
    logdensity = getattr(states, "logdensity", None)
    if logdensity is None or isinstance(logdensity, jax.core.Tracer):
        return
    bad = ~jnp.isfinite(logdensity)
    if bool(jnp.any(bad)):
        idx = jnp.flatnonzero(bad)[:5].tolist()
        raise ValueError(
            f"The log-density is not finite at the initial position of chains {idx} "
            f"(values {logdensity[bad][:5].tolist()}); a NaN or infinite energy cannot start "
            "a chain."
        )


def run_chains(
    key: PRNGKey,
    algorithm: SamplingAlgorithm,
    initial_positions: ArrayTree,
    num_steps: int,
    *,
    thin: int = 1,
    burn_in: int = 0,
    transform: Callable[[ArrayTree], ArrayTree] = lambda state: state.position,
    keep_trace: bool = True,
    start_step: int | Array = 0,
) -> ChainResult:
    """Run ``num_chains`` independent chains of ``algorithm`` for ``num_steps`` steps.

    Args:
      key: PRNG key for the whole run.
      algorithm: any ``SamplingAlgorithm`` (jebm or BlackJAX).
      initial_positions: pytree with leaves ``(num_chains, *event)``, or already
        initialised states (anything with a ``position`` field). A bare rank-1 array
        is refused as ambiguous (``x[None]`` is one chain of ``x``).
      num_steps: total number of steps (static).
      thin: keep every ``thin``-th draw after burn-in (static).
      burn_in: steps discarded before the first kept draw (static).
      transform: maps a state to what is traced and summarised.
      keep_trace: keep the trace, or only per-chain running moments.
      start_step: the global index of the first step (for resumed runs).

    Returns:
      A :class:`ChainResult`.

    Raises:
      ValueError: for bad counts, positions without a shared chain axis, a bare rank-1
        position array, or (when concrete) a non-finite initial log-density.
    """
    checks = (("num_steps", num_steps, 1), ("thin", thin, 1), ("burn_in", burn_in, 0))
    for name, value, low in checks:
        if not isinstance(value, int) or value < low:
            raise ValueError(f"{name} must be an int >= {low}, got {value!r}.")
    if burn_in >= num_steps:
        raise ValueError(f"burn_in ({burn_in}) must be smaller than num_steps ({num_steps}).")
    num_kept = (num_steps - burn_in) // thin
    if num_kept == 0:
        raise ValueError(f"No draw is kept: (num_steps - burn_in) // thin = 0 with thin={thin}.")

    if hasattr(initial_positions, "position"):
        states = initial_positions
        num_chains = _check_positions(states.position, raw=False)
    else:
        num_chains = _check_positions(initial_positions)
        states = jax.vmap(algorithm.init)(initial_positions)
    _check_finite_init(states)
    states = constrain_chains(states)  # under a mesh, each device steps only its own chains
    step_chains = jax.vmap(algorithm.step)

    def one_step(states, t):
        keys = jax.random.split(jax.random.fold_in(key, t), num_chains)
        return step_chains(keys, states)

    def skip(states, ts):
        return jax.lax.scan(lambda s, t: (one_step(s, t)[0], None), states, ts)[0]

    def block(carry, ts):
        states, moments = carry
        states, infos = jax.lax.scan(one_step, states, ts)
        info = jax.tree.map(lambda v: jnp.mean(v.astype(jnp.float32), axis=0), infos)
        out = transform(states)
        moments = _moments_update(moments, out)
        return (states, moments), ((out if keep_trace else None), info)

    ts = start_step + jnp.arange(num_steps)
    if burn_in:
        states = skip(states, ts[:burn_in])
    kept_ts = ts[burn_in : burn_in + num_kept * thin].reshape(num_kept, thin)
    template = jax.eval_shape(transform, states)
    zeros = jax.tree.map(lambda s: jnp.zeros(s.shape, s.dtype), template)
    moments = RunningMoments(jnp.zeros((), jnp.int32), zeros, zeros)
    (states, moments), (trace, info) = jax.lax.scan(block, (states, moments), kept_ts)
    leftover = num_steps - burn_in - num_kept * thin
    if leftover:
        states = skip(states, ts[num_steps - leftover :])
    return ChainResult(states, trace, info, moments)


def constrain_chains(tree: ArrayTree) -> ArrayTree:
    """Hint that axis 0 of ``tree`` holds independent chains: split it over every mesh axis.

    A no-op unless traced under an ambient mesh with ``Auto`` axes (as inside
    :func:`jebm.parallel.data_parallel_train_step`, or ``jax.set_mesh``), and for leaves whose
    leading axis is not divisible by the device count. Code that creates chains
    inside a jitted function (e.g. persistent chains drawn from a replay buffer) calls
    it so that each device steps only its own chains instead of all of them.

    Args:
      tree: a pytree of arrays with a leading chain axis.

    Returns:
      ``tree``, constrained to ``PartitionSpec(("chains", "data"))`` where it applies.
    """
    mesh = jax.sharding.get_abstract_mesh()
    if mesh.empty or any(t != AxisType.Auto for t in mesh.axis_types):
        return tree
    size = mesh.size
    spec = P(tuple(mesh.axis_names))

    def hint(leaf):
        shape = np.shape(leaf)
        if size == 1 or not shape or shape[0] % size:
            return leaf
        return jax.lax.with_sharding_constraint(leaf, spec)

    return jax.tree.map(hint, tree)


def run_chains_chunked(
    key: PRNGKey,
    algorithm: SamplingAlgorithm,
    initial_positions: ArrayTree,
    num_steps: int,
    *,
    chunk_size: int = 500,
    on_chunk: Callable[[int], None] | None = None,
):
    """:func:`run_chains` in jitted chunks of ``chunk_size`` steps, keeping the whole trace
    on the host (for progress reports and traces larger than device memory).

    The key stream is that of one :func:`run_chains` call (chunks pass ``start_step``).

    Args:
      key: PRNG key for the whole run.
      algorithm: any ``SamplingAlgorithm``.
      initial_positions: ``(num_chains, *event)`` (an array).
      num_steps: total transitions.
      chunk_size: transitions per jitted call (the last chunk may be shorter).
      on_chunk: called with the number of transitions of each finished chunk.

    Returns:
      ``(trace, acceptance_rate)``: the NumPy trace ``(num_steps, num_chains, *event)``
      and the mean acceptance rate (``None`` for kernels without one).
    """
    @functools.partial(jax.jit, static_argnums=2)
    def chunk(states, start, length):
        res = run_chains(key, algorithm, states, length, start_step=start)
        return res.state, res.trace, res.info

    states = jax.vmap(algorithm.init)(initial_positions)
    traces, accept = [], []
    start = 0
    while start < num_steps:
        length = min(chunk_size, num_steps - start)
        states, trace, info = chunk(states, jnp.int32(start), length)
        traces.append(np.asarray(trace))
        if hasattr(info, "acceptance_rate"):
            accept.append(np.asarray(info.acceptance_rate))
        start += length
        if on_chunk is not None:
            on_chunk(length)
    rate = float(np.mean(np.concatenate(accept))) if accept else None
    return np.concatenate(traces), rate
