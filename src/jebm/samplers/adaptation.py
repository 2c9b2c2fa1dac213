"""Warm-up: dual-averaging step-size adaptation and a diagonal mass-matrix estimate.

**Dual averaging** (Hoffman and Gelman, 2014, Sec. 3.2; Nesterov, 2009) tunes the step
size ``ε`` so that the mean acceptance rate ``α_t`` reaches a target ``δ``. With
``μ = log(10 ε₀)``, after step ``t = 1, 2, …``:

    H̄_t = (1 − 1/(t + t₀)) H̄_{t−1} + (δ − α_t) / (t + t₀),
    log ε_t = μ − √t H̄_t / γ,
    log ε̄_t = t^(−κ) log ε_t + (1 − t^(−κ)) log ε̄_{t−1},

with ``γ = 0.05``, ``t₀ = 10``, ``κ = 0.75``. The iterates ``ε_t`` are used during
warm-up; the averaged ``ε̄`` is the tuned value. ``α_t`` is either each chain's own
acceptance (``per_chain=True``: one step size per chain, through ``vmap``) or the mean
over chains (one shared step size, much less noisy).

**Diagonal mass matrix** (``adapt_mass_matrix=True``; HMC's ``M⁻¹``, MALA's
preconditioner). The warm-up runs in three windows, as Stan's does, in outline:
15 % of the steps adapt ``ε`` alone; the next 60 % also accumulate the variance of every
coordinate (Welford; pooled over chains unless ``per_chain``); then ``M⁻¹`` is set to that
variance, regularised towards ``10⁻³`` as Stan does,
``(n / (n + 5)) var + 10⁻³ · 5 / (n + 5)``, dual averaging restarts from the current
``ε`` and the last 25 % tune ``ε`` for the new metric.

Everything is one pure function of its key, run as ``lax.scan`` (static step counts,
traced tunables); jit it at the top level.

References:
  Hoffman, M. D. and Gelman, A. (2014). The No-U-Turn sampler: adaptively setting path
  lengths in Hamiltonian Monte Carlo. JMLR 15, 1593–1623. Algorithm 5.

  Nesterov, Y. (2009). Primal-dual subgradient methods for convex problems.
  Mathematical Programming 120(1), 221–259.

  Stan Development Team. Stan Reference Manual, "HMC algorithm parameters": adaptation
  windows and the regularised variance estimate.
"""

from collections.abc import Callable
from typing import NamedTuple

import jax
import jax.numpy as jnp
from jax.flatten_util import ravel_pytree

from jebm._validate import check_float, check_int
from jebm.types import Array, ArrayTree, LogDensityFn, PRNGKey

__all__ = [
    "DualAveragingState",
    "dual_averaging_init",
    "dual_averaging_update",
    "WarmupResult",
    "dual_averaging_warmup",
]


class DualAveragingState(NamedTuple):
    """State of dual-averaging step-size adaptation.

    Attributes:
      log_step_size: ``log ε_t``, the value to use at the next step.
      log_step_size_avg: ``log ε̄_t``, the tuned value.
      error_avg: ``H̄_t``, the running average of ``target − acceptance``.
      step: ``t``, the number of updates so far.
      mu: ``log(10 ε₀)``, the shrinkage point.
    """

    log_step_size: Array  # log ε_t, the value to use at the next step
    log_step_size_avg: Array  # log ε̄_t, the tuned value
    error_avg: Array  # H̄_t
    step: Array  # t
    mu: Array  # log(10 ε₀)


def dual_averaging_init(step_size: Array) -> DualAveragingState:
    """The dual-averaging state for an initial step size ``ε₀`` (any shape).

    Args:
      step_size: the initial step size ``ε₀``, positive; any shape.

    Returns:
      A ``DualAveragingState`` shaped like ``step_size``.
    """
    log_step = jnp.log(jnp.asarray(step_size, jnp.float32))
    zeros = jnp.zeros_like(log_step)
    return DualAveragingState(log_step, log_step, zeros, zeros, jnp.log(10.0) + log_step)


def dual_averaging_update(
    state: DualAveragingState,
    acceptance_rate: Array,
    target: Array,
    *,
    gamma: float = 0.05,
    t0: float = 10.0,
    kappa: float = 0.75,
) -> DualAveragingState:
    """One dual-averaging step towards ``target`` acceptance (Hoffman and Gelman, Alg. 5).

    A NaN acceptance (a kernel without a Metropolis test, or a NaN log-density) counts
    as 0, so a divergent step pushes the step size down.

    Args:
      state: the current ``DualAveragingState``.
      acceptance_rate: the acceptance rate of the last step; broadcasts to the state.
      target: the target acceptance rate.
      gamma: ``γ``, the adaptation regularisation scale.
      t0: ``t₀``, which damps the first iterations.
      kappa: ``κ``, the exponent of the averaging weight ``t^(−κ)``.

    Returns:
      The updated ``DualAveragingState``.
    """
    acceptance_rate = jnp.nan_to_num(acceptance_rate, nan=0.0)
    t = state.step + 1.0
    w = 1.0 / (t + t0)
    error_avg = (1.0 - w) * state.error_avg + w * (target - acceptance_rate)
    log_step = state.mu - jnp.sqrt(t) / gamma * error_avg
    eta = t ** (-kappa)
    log_step_avg = eta * log_step + (1.0 - eta) * state.log_step_size_avg
    return DualAveragingState(log_step, log_step_avg, error_avg, t, state.mu)


class WarmupResult(NamedTuple):
    """The outcome of a warm-up run.

    Attributes:
      state: the final kernel states, batched over chains; continue sampling from here.
      step_size: the tuned ``ε̄``; shape ``()`` if shared, ``(num_chains,)`` per chain.
      inverse_mass_matrix: the estimate, ``(d,)`` if shared, ``(num_chains, d)`` per
        chain, or as given.
      acceptance_rate: ``(num_steps,)``, the mean over chains at each warm-up step.
      step_sizes: ``(num_steps,)`` or ``(num_steps, num_chains)``, the ``ε_t`` used at
        each step.
    """

    state: ArrayTree  # final kernel states, batched over chains: continue sampling from here
    step_size: Array  # tuned ε̄: () shared, (num_chains,) per chain
    inverse_mass_matrix: Array | None  # (d,) shared, (num_chains, d) per chain, or as given
    acceptance_rate: Array  # (num_steps,) mean over chains at each warm-up step
    step_sizes: Array  # (num_steps,) or (num_steps, num_chains): the ε_t used at each step


def _pooled_variance(count, mean, m2, per_chain):
    # mean, m2: (C, d) Welford statistics of each chain over `count` draws.
    if per_chain:
        return count, m2 / jnp.maximum(count - 1, 1)
    grand = jnp.mean(mean, axis=0)
    total_m2 = jnp.sum(m2, axis=0) + count * jnp.sum((mean - grand[None]) ** 2, axis=0)
    n = count * mean.shape[0]
    return n, total_m2 / jnp.maximum(n - 1, 1)


def dual_averaging_warmup(
    key: PRNGKey,
    kernel: Callable,
    init: Callable,
    logdensity_fn: LogDensityFn,
    initial_positions: ArrayTree,
    num_steps: int,
    *,
    initial_step_size: float | Array = 0.1,
    target_acceptance: float = 0.8,
    per_chain: bool = False,
    inverse_mass_matrix: Array | None = None,
    adapt_mass_matrix: bool = False,
    tunables: tuple = (),
) -> WarmupResult:
    """Tune the step size (and optionally a diagonal ``M⁻¹``) of a kernel by dual averaging.

    Args:
      key: PRNG key for the warm-up.
      kernel: a jebm ``build_kernel()`` result (MALA, HMC, …) called as
        ``kernel(key, state, logdensity_fn, step_size, [inverse_mass_matrix,] *tunables)``;
        the inverse mass matrix is passed when given or adapted.
      init: the kernel module's ``init(position, logdensity_fn)``.
      logdensity_fn: ``x ↦ log p(x)``.
      initial_positions: pytree with leaves ``(num_chains, *event)``.
      num_steps: warm-up steps (static; at least 20 with ``adapt_mass_matrix``).
      initial_step_size: ``ε₀``.
      target_acceptance: ``δ``; e.g. 0.574 for MALA, 0.65–0.8 for HMC.
      per_chain: one step size (and ``M⁻¹``) per chain, tuned on that chain alone,
        instead of one shared value tuned on the mean acceptance.
      inverse_mass_matrix: a fixed ``M⁻¹`` for the kernel, or the starting one when
        adapting (default: ones).
      adapt_mass_matrix: estimate a diagonal ``M⁻¹`` from the warm-up draws.
      tunables: further traced arguments of ``kernel`` (shared by every chain).

    Returns:
      A :class:`WarmupResult`. Sample on with the same kernel, ``result.step_size`` and
      ``result.inverse_mass_matrix`` from ``result.state`` (for per-chain values, vmap
      the kernel over them: ``in_axes=(0, 0, None, 0, 0)``).

    Raises:
      ValueError: for bad counts or Python-number arguments.

    Examples:
      >>> import jax, jax.numpy as jnp
      >>> from jebm.samplers.mala import build_kernel, init
      >>> from jebm.samplers.adaptation import dual_averaging_warmup
      >>> ld = lambda x: -0.5 * jnp.sum(x**2 / jnp.array([0.1, 1.0, 10.0]))
      >>> result = dual_averaging_warmup(
      ...     jax.random.key(0), build_kernel(), init, ld,
      ...     jnp.zeros((8, 3)), 100, target_acceptance=0.574, adapt_mass_matrix=True)
      >>> result.inverse_mass_matrix.shape
      (3,)

    References:
      Hoffman and Gelman (2014), Algorithm 5; see the module docstring.
    """
    num_steps = check_int("num_steps", num_steps, minimum=20 if adapt_mass_matrix else 1)
    initial_step_size = check_float("initial_step_size", initial_step_size)
    target_acceptance = check_float("target_acceptance", target_acceptance)
    if isinstance(target_acceptance, float) and not target_acceptance < 1.0:
        raise ValueError(f"target_acceptance must be in (0, 1), got {target_acceptance!r}.")
    leaves = jax.tree.leaves(initial_positions)
    num_chains = leaves[0].shape[0]
    states = jax.vmap(init, (0, None))(initial_positions, logdensity_fn)
    dim = sum(leaf[0].size for leaf in leaves)
    use_mass = adapt_mass_matrix or inverse_mass_matrix is not None
    if inverse_mass_matrix is None and adapt_mass_matrix:
        inverse_mass_matrix = jnp.ones((num_chains, dim) if per_chain else (dim,), jnp.float32)
    mass_axis = 0 if per_chain and adapt_mass_matrix else None
    step_axis = 0 if per_chain else None
    in_axes = (0, 0, None, step_axis) + ((mass_axis,) if use_mass else ()) + (None,) * len(
        tunables
    )
    step_chains = jax.vmap(kernel, in_axes)
    shape = (num_chains,) if per_chain else ()
    target = jnp.asarray(target_acceptance, jnp.float32)

    def run(states, da, inv_mass, ts, collect_from):
        zeros = jnp.zeros((num_chains, dim), jnp.float32)
        welford = (jnp.zeros((), jnp.float32), zeros, zeros)

        def body(carry, t):
            states, da, (count, mean, m2) = carry
            keys = jax.random.split(jax.random.fold_in(key, t), num_chains)
            step_size = jnp.exp(da.log_step_size)
            mass = (inv_mass,) if use_mass else ()
            states, info = step_chains(keys, states, logdensity_fn, step_size, *mass, *tunables)
            rate = info.acceptance_rate.astype(jnp.float32)
            da = dual_averaging_update(da, rate if per_chain else jnp.mean(rate), target)
            # Welford over the flattened positions of each chain, from `collect_from` on.
            x = jax.vmap(lambda p: ravel_pytree(p)[0])(states.position).astype(jnp.float32)
            on = t >= collect_from
            new_count = count + 1.0
            delta = x - mean
            new_mean = mean + delta / new_count
            new_m2 = m2 + delta * (x - new_mean)
            welford = jax.tree.map(
                lambda a, b: jnp.where(on, a, b), (new_count, new_mean, new_m2), (count, mean, m2)
            )
            return (states, da, welford), (jnp.mean(rate), step_size)

        (states, da, welford), trace = jax.lax.scan(body, (states, da, welford), ts)
        return states, da, welford, trace

    da = dual_averaging_init(jnp.full(shape, initial_step_size, jnp.float32))
    ts = jnp.arange(num_steps)
    if not adapt_mass_matrix:
        states, da, _, (rates, steps) = run(states, da, inverse_mass_matrix, ts, num_steps)
    else:
        first = max(1, int(0.15 * num_steps))
        slow_end = first + max(2, int(0.60 * num_steps))
        states, da, (count, mean, m2), trace_a = run(
            states, da, inverse_mass_matrix, ts[:slow_end], first
        )
        n, var = _pooled_variance(count, mean, m2, per_chain)
        inverse_mass_matrix = (n / (n + 5.0)) * var + 1e-3 * (5.0 / (n + 5.0))
        da = dual_averaging_init(jnp.exp(da.log_step_size_avg))
        states, da, _, trace_b = run(states, da, inverse_mass_matrix, ts[slow_end:], num_steps)
        rates, steps = jax.tree.map(lambda a, b: jnp.concatenate([a, b]), trace_a, trace_b)
    return WarmupResult(
        states, jnp.exp(da.log_step_size_avg), inverse_mass_matrix, rates, steps
    )
