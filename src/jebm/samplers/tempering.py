"""Replica exchange (parallel tempering) over a ladder of inverse temperatures.

Replica ``r`` targets the tempered density p_r(x) ∝ p(x)^β_r for a ladder
``1 = β_0 > β_1 > … > β_{R−1} > 0``. The ladder is a leading axis of the state: one step
moves every replica with the base kernel (``vmap`` over replicas, each with its own
tunables, e.g. larger steps when hot), then proposes swaps between neighbours. A swap of
the positions of replicas i and i+1 is accepted with the exact Metropolis probability

    min(1, p(x_{i+1})^β_i p(x_i)^β_{i+1} / (p(x_i)^β_i p(x_{i+1})^β_{i+1}))
      = min(1, exp((β_i − β_{i+1}) (log p(x_{i+1}) − log p(x_i)))).

Pairs alternate deterministically (even pairs (0,1), (2,3), … on even steps, odd pairs on
odd steps; the "deterministic even-odd" scheme of Syed et al., 2022). Each step leaves the
product of the tempered densities invariant, so the β = 1 replica samples p. Hot
replicas cross between modes and hand the crossings down the ladder.

Cost: one base step per replica plus one uniform per pair; no extra log-density
evaluation, because a swapped state's cached tempered log-density and gradient are those
of the other replica rescaled by β_new/β_old (any field named ``logdensity`` or
``logdensity_grad`` is rescaled; other fields, e.g. a momentum, move with the position).

``info.swap_acceptance_rate`` holds min(1, α) for the pairs proposed at that step and 0
for the others, and ``info.swap_proposed`` marks which; over a run the swap rate of pair
i is ``mean(swap_acceptance_rate[..., i]) / mean(swap_proposed[..., i])``.

References:
  Swendsen, R. H. and Wang, J.-S. (1986). Replica Monte Carlo simulation of spin
  glasses. Physical Review Letters 57(21), 2607–2609.

  Geyer, C. J. (1991). Markov chain Monte Carlo maximum likelihood. Computing Science and
  Statistics: Proc. 23rd Symposium on the Interface, 156–163.

  Syed, S., Bouchard-Côté, A., Deligiannidis, G. and Doucet, A. (2022). Non-reversible
  parallel tempering: a scalable highly parallel MCMC scheme. JRSS B 84(2), 321–350.
"""

from collections.abc import Callable
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from jebm.samplers.base import SamplingAlgorithm
from jebm.types import Array, ArrayTree, LogDensityFn, PRNGKey

__all__ = [
    "TemperedState",
    "TemperedInfo",
    "init",
    "build_kernel",
    "parallel_tempering",
    "cold_position",
]


class TemperedState(NamedTuple):
    """State of a replica-exchange chain.

    Attributes:
      replicas: the base-kernel states with a leading ``(R,)`` axis; replica ``r`` is at
        inverse temperature ``β_r``.
      step: the int32 step counter; its parity chooses the swap pairs.
    """

    replicas: ArrayTree  # base-kernel states with a leading (R,) axis; replica r at β_r
    step: Array  # int32 step counter: its parity chooses the swap pairs


class TemperedInfo(NamedTuple):
    """Diagnostics of one replica-exchange step.

    Attributes:
      replica_info: the base-kernel infos, with a leading ``(R,)`` axis.
      swap_proposed: ``(R − 1,)`` bool; pair ``(i, i + 1)`` was proposed at this step.
      swap_accepted: ``(R − 1,)`` bool; pair ``(i, i + 1)`` was swapped.
      swap_acceptance_rate: ``(R − 1,)``; ``min(1, α)`` for proposed pairs, 0 otherwise.
      is_divergent: whether any replica's base step was divergent.
    """

    replica_info: ArrayTree  # base-kernel infos, leading (R,) axis
    swap_proposed: Array  # (R − 1,) bool: pair (i, i + 1) was proposed at this step
    swap_accepted: Array  # (R − 1,) bool
    swap_acceptance_rate: Array  # (R − 1,) min(1, α) for proposed pairs, 0 otherwise
    is_divergent: Array  # any replica's base step was divergent


def _tempered(logdensity_fn: LogDensityFn, beta: Array) -> LogDensityFn:
    return lambda x: beta * logdensity_fn(x)


def init(
    position: ArrayTree,
    logdensity_fn: LogDensityFn,
    inverse_temperatures: Array,
    base_init: Callable,
) -> TemperedState:
    """Every replica starts at ``position`` (one unbatched position).

    Args:
      position: the starting position (a pytree of arrays, unbatched).
      logdensity_fn: ``x ↦ log p(x)`` up to a constant, untempered.
      inverse_temperatures: the ladder ``β``, shape ``(R,)``.
      base_init: ``base_init(position, logdensity_fn) -> state`` of the base kernel.

    Returns:
      A ``TemperedState`` with ``R`` replicas at ``position`` and ``step = 0``.
    """
    betas = jnp.asarray(inverse_temperatures)
    replicas = jax.vmap(lambda b: base_init(position, _tempered(logdensity_fn, b)))(betas)
    return TemperedState(replicas, jnp.zeros((), jnp.int32))


def _rescale(state, ratio: Array):
    """Multiply cached tempered log-densities and gradients by ``ratio`` (shape (R,))."""
    fields = {}
    for name in ("logdensity", "logdensity_grad"):
        if hasattr(state, name):
            fields[name] = jax.tree.map(
                lambda v: v * ratio.reshape(ratio.shape + (1,) * (v.ndim - 1)).astype(v.dtype),
                getattr(state, name),
            )
    return state._replace(**fields)


def build_kernel(base_kernel: Callable):
    """Return ``kernel(key, state, logdensity_fn, inverse_temperatures, *tunables)``.

    ``base_kernel(key, state, logdensity_fn, *tunables)`` is any jebm kernel whose state
    caches ``logdensity`` (and ``logdensity_grad``). Each tunable is a scalar (shared by
    all replicas) or an array with a leading ``(R,)`` axis (one value per replica).

    Args:
      base_kernel: the kernel each replica runs at its own temperature.

    Returns:
      The kernel function; it returns ``(TemperedState, TemperedInfo)``.
    """

    def kernel(
        key: PRNGKey,
        state: TemperedState,
        logdensity_fn: LogDensityFn,
        inverse_temperatures: Array,
        *tunables,
    ) -> tuple[TemperedState, TemperedInfo]:
        betas = jnp.asarray(inverse_temperatures)
        num_replicas = betas.shape[0]
        keys = jax.random.split(key, num_replicas + 1)
        axes = tuple(None if jnp.ndim(t) == 0 else 0 for t in tunables)

        def move(k, s, b, *t):
            return base_kernel(k, s, _tempered(logdensity_fn, b), *t)

        replicas, replica_info = jax.vmap(move, (0, 0, 0) + axes)(
            keys[:num_replicas], state.replicas, betas, *tunables
        )
        # Untempered log p of each replica's position, from its cached β log p.
        logp = replicas.logdensity / betas
        pair = jnp.arange(num_replicas - 1)
        proposed = (pair % 2) == (state.step % 2)
        log_alpha = (betas[:-1] - betas[1:]) * (logp[1:] - logp[:-1])
        u = jax.random.uniform(keys[-1], (num_replicas - 1,), logp.dtype)
        accepted = proposed & (jnp.log(u) < log_alpha)  # a NaN ratio rejects
        no = jnp.zeros((1,), bool)
        with_next = jnp.concatenate([accepted, no])  # replica k takes k + 1's position
        with_prev = jnp.concatenate([no, accepted])  # replica k takes k − 1's position
        perm = jnp.arange(num_replicas) + with_next.astype(jnp.int32) - with_prev.astype(
            jnp.int32
        )
        replicas = jax.tree.map(lambda v: v[perm], replicas)
        replicas = _rescale(replicas, betas / betas[perm])
        log_alpha = jnp.nan_to_num(log_alpha, nan=-jnp.inf)
        rate = jnp.where(proposed, jnp.exp(jnp.minimum(log_alpha, 0.0)), 0.0)
        divergent = getattr(replica_info, "is_divergent", jnp.zeros((num_replicas,), bool))
        info = TemperedInfo(replica_info, proposed, accepted, rate, jnp.any(divergent))
        return TemperedState(replicas, state.step + 1), info

    return kernel


def cold_position(state: TemperedState) -> ArrayTree:
    """The β = 1 replica's position, for one state or a batch of chains.

    Use as ``run_chains(..., transform=cold_position)``.

    Args:
      state: a ``TemperedState``, or one batched over chains.

    Returns:
      The position of replica 0 (``β = 1``), batched like ``state``.
    """
    axis = jnp.ndim(state.step)  # 0 for one chain, 1 for (num_chains, R, ...)
    return jax.tree.map(lambda v: jnp.take(v, 0, axis=axis), state.replicas.position)


def parallel_tempering(
    logdensity_fn: LogDensityFn,
    inverse_temperatures: Array,
    base_init: Callable,
    base_kernel: Callable,
    *tunables,
) -> SamplingAlgorithm:
    """Parallel tempering around any jebm kernel, as a ``SamplingAlgorithm``.

    Args:
      logdensity_fn: ``x ↦ log p(x)`` (the β = 1 target).
      inverse_temperatures: the ladder ``(R,)``, ``β_0 = 1 > β_1 > … > 0``; checked
        when concrete.
      base_init: the base kernel module's ``init(position, logdensity_fn)``.
      base_kernel: its ``build_kernel(...)`` result.
      *tunables: the base kernel's tunables, each a scalar or one value per replica
        ``(R,)`` (e.g. MALA step sizes growing as ``1/β``).

    Returns:
      ``SamplingAlgorithm(init, step)``; ``init(position, rng_key=None)`` copies one
      position to every replica; ``step(rng_key, state)``. Trace the cold chain with
      ``transform=cold_position``.

    Raises:
      ValueError: if the ladder is not 1-D with at least 2 entries, or (when concrete)
        not strictly decreasing in (0, 1] from 1.

    Examples:
      >>> import jax, jax.numpy as jnp
      >>> from jebm.samplers.mala import build_kernel, init
      >>> from jebm.samplers import parallel_tempering, cold_position
      >>> betas = jnp.array([1.0, 0.3, 0.1])
      >>> alg = parallel_tempering(lambda x: -0.5 * jnp.sum(x**2), betas, init,
      ...                          build_kernel(), 0.5 / betas)
      >>> state = alg.init(jnp.zeros(2))
      >>> state, info = alg.step(jax.random.key(0), state)
      >>> cold_position(state).shape, info.swap_proposed.shape
      ((2,), (2,))

    References:
      Swendsen and Wang (1986); Geyer (1991); Syed et al. (2022); see the module
      docstring.
    """
    betas = jnp.asarray(inverse_temperatures)
    if betas.ndim != 1 or betas.shape[0] < 2:
        raise ValueError(
            f"inverse_temperatures must be a 1-D ladder of at least 2 values, got shape "
            f"{betas.shape}."
        )
    if not isinstance(betas, jax.core.Tracer):
        b = np.asarray(betas)
        if not (b[0] == 1.0 and np.all(b > 0) and np.all(np.diff(b) < 0)):
            raise ValueError(
                f"inverse_temperatures must start at 1 and decrease strictly in (0, 1], "
                f"got {b}."
            )
    kernel = build_kernel(base_kernel)

    def step(rng_key: PRNGKey, state: TemperedState):
        return kernel(rng_key, state, logdensity_fn, betas, *tunables)

    return SamplingAlgorithm(
        init=lambda position, rng_key=None: init(position, logdensity_fn, betas, base_init),
        step=step,
    )
