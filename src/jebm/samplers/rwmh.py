"""Gaussian random-walk Metropolis–Hastings (RWMH).

The proposal adds isotropic (or per-dimension) Gaussian noise,

    x′ = x + s ⊙ ξ,   ξ ~ N(0, I),

where ``s`` is the proposal standard deviation (``step_size``). The proposal is
symmetric, q(x′ | x) = q(x | x′), so x′ is accepted with probability
min(1, p(x′) / p(x)). Only the log-density is needed: no gradient, one
evaluation per step.

References:
  Metropolis, N., Rosenbluth, A. W., Rosenbluth, M. N., Teller, A. H. and Teller, E.
  (1953). Equation of state calculations by fast computing machines. J. Chem. Phys.
  21(6), 1087–1092.

  Hastings, W. K. (1970). Monte Carlo sampling methods using Markov chains and their
  applications. Biometrika 57(1), 97–109.
"""

from typing import NamedTuple

import jax
import jax.numpy as jnp

from jebm._validate import check_float
from jebm.samplers.base import (
    MetropolisInfo,
    SamplingAlgorithm,
    logdensity_value,
    metropolis_select,
    normal_and_uniform,
    strong_dtype,
    tree_all_finite,
    tree_broadcast,
    tunables_valid,
)
from jebm.types import Array, ArrayTree, LogDensityFn, PRNGKey

__all__ = ["RWMHState", "RWMHInfo", "init", "build_kernel", "rwmh"]


class RWMHState(NamedTuple):
    """State of a random-walk Metropolis–Hastings chain.

    Attributes:
      position: the current position (a pytree of arrays).
      logdensity: ``log p(position)``, cached.
    """

    position: ArrayTree
    logdensity: Array


RWMHInfo = MetropolisInfo


def init(position: ArrayTree, logdensity_fn: LogDensityFn) -> RWMHState:
    """Build an RWMH state at ``position``.

    Args:
      position: the starting position (a pytree of arrays); Python and weakly typed
        scalars are made strongly typed.
      logdensity_fn: ``x ↦ log p(x)`` up to a constant.

    Returns:
      An ``RWMHState`` holding the position and its log-density.
    """
    position = strong_dtype(position)
    return RWMHState(position, logdensity_value(logdensity_fn, position))


def build_kernel():
    """Return ``kernel(key, state, logdensity_fn, step_size) -> (state, info)``.

    ``step_size`` is the proposal standard deviation: a scalar, an array that
    broadcasts to every position leaf (per-dimension scales), a 1-D array over the
    flattened position (as BlackJAX's ``sigma``), or a pytree shaped like the position.
    """

    def kernel(
        key: PRNGKey, state: RWMHState, logdensity_fn: LogDensityFn, step_size: ArrayTree
    ) -> tuple[RWMHState, RWMHInfo]:
        noise, log_u = normal_and_uniform(key, state.position)
        scale = tree_broadcast(step_size, state.position, "step_size")
        position = jax.tree.map(lambda x, s, z: x + s * z, state.position, scale, noise)
        proposal = init(position, logdensity_fn)
        log_ratio = proposal.logdensity - state.logdensity
        valid = tree_all_finite(proposal) & jnp.isfinite(state.logdensity) & tunables_valid(scale)
        new_state, rate, accept = metropolis_select(state, proposal, log_ratio, log_u, valid)
        return new_state, RWMHInfo(rate, accept, ~valid)

    return kernel


def rwmh(logdensity_fn: LogDensityFn, step_size: float | ArrayTree) -> SamplingAlgorithm:
    """Gaussian random-walk Metropolis–Hastings as a ``SamplingAlgorithm``.

    Args:
      logdensity_fn: ``x ↦ log p(x)`` up to a constant (``−E`` for an energy).
      step_size: proposal standard deviation; a scalar, a per-dimension array
        broadcastable to each position leaf, or a pytree like the position. May be
        a traced array. A Python number is checked here (finite, > 0); traced values
        that are not make the step a divergence.

    Returns:
      ``SamplingAlgorithm(init, step)``; ``init(position, rng_key=None)`` ignores
      the key (it is accepted for BlackJAX compatibility); ``step(rng_key, state)``.

    Raises:
      ValueError: for a Python-number ``step_size`` that is not finite and positive.

    Examples:
      >>> import jax, jax.numpy as jnp
      >>> from jebm.samplers import rwmh
      >>> alg = rwmh(lambda x: -0.5 * jnp.sum(x**2), step_size=jnp.array([0.5, 1.0]))
      >>> state = alg.init(jnp.zeros(2))
      >>> state, info = alg.step(jax.random.key(0), state)
      >>> state.position.shape
      (2,)

    References:
      Metropolis et al. (1953); Hastings (1970); see the module docstring.
    """
    step_size = check_float("step_size", step_size)
    kernel = build_kernel()

    def step(rng_key: PRNGKey, state: RWMHState) -> tuple[RWMHState, RWMHInfo]:
        return kernel(rng_key, state, logdensity_fn, step_size)

    return SamplingAlgorithm(
        init=lambda position, rng_key=None: init(position, logdensity_fn), step=step
    )
