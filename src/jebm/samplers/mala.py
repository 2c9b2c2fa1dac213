"""Metropolis-adjusted Langevin algorithm (MALA).

The proposal is one step of the coupled Langevin discretisation,

    x′ = x + h ∇log p(x) + √(2h) ξ,   ξ ~ N(0, I),

so q(x′ | x) = N(x′; x + h∇log p(x), 2hI), accepted with probability
min(1, p(x′) q(x | x′) / (p(x) q(x′ | x))). The correction removes the O(h) bias
of the unadjusted chain (see :mod:`jebm.samplers.ula`).

References:
  Roberts, G. O. and Tweedie, R. L. (1996). Exponential convergence of Langevin
  distributions and their discrete approximations. Bernoulli 2(4), 341–363.
"""

from typing import NamedTuple

import jax
import jax.numpy as jnp

from jebm.samplers.base import (
    SamplingAlgorithm,
    metropolis_select,
    normal_and_uniform,
    tree_all_finite,
    tree_vdot,
)
from jebm.types import Array, ArrayTree, LogDensityFn, PRNGKey

__all__ = ["MALAState", "MALAInfo", "init", "build_kernel", "mala"]


class MALAState(NamedTuple):
    position: ArrayTree
    logdensity: Array
    logdensity_grad: ArrayTree


class MALAInfo(NamedTuple):
    acceptance_rate: Array
    is_accepted: Array
    is_divergent: Array  # the proposal had a non-finite position, log-density or gradient


def init(position: ArrayTree, logdensity_fn: LogDensityFn) -> MALAState:
    logdensity, grad = jax.value_and_grad(logdensity_fn)(position)
    return MALAState(position, logdensity, grad)


def _log_q(to: ArrayTree, frm: ArrayTree, frm_grad: ArrayTree, step_size: Array) -> Array:
    # log N(to; frm + h ∇log p(frm), 2h I) up to a constant that cancels in the ratio.
    diff = jax.tree.map(lambda t, f, g: t - f - step_size * g, to, frm, frm_grad)
    return -tree_vdot(diff, diff) / (4.0 * step_size)


def build_kernel():
    """Return ``kernel(key, state, logdensity_fn, step_size) -> (state, info)``."""

    def kernel(
        key: PRNGKey, state: MALAState, logdensity_fn: LogDensityFn, step_size: Array
    ) -> tuple[MALAState, MALAInfo]:
        noise, log_u = normal_and_uniform(key, state.position)
        scale = jnp.sqrt(2.0 * step_size)
        position = jax.tree.map(
            lambda x, g, z: x + step_size * g + scale * z,
            state.position,
            state.logdensity_grad,
            noise,
        )
        proposal = init(position, logdensity_fn)
        log_ratio = (
            proposal.logdensity
            - state.logdensity
            + _log_q(state.position, position, proposal.logdensity_grad, step_size)
            - _log_q(position, state.position, state.logdensity_grad, step_size)
        )
        finite = tree_all_finite(proposal)
        new_state, rate, accept = metropolis_select(state, proposal, log_ratio, log_u, finite)
        return new_state, MALAInfo(rate, accept, ~finite)

    return kernel


def mala(logdensity_fn: LogDensityFn, step_size: float | Array) -> SamplingAlgorithm:
    """MALA as a ``SamplingAlgorithm``.

    Args:
      logdensity_fn: ``x ↦ log p(x)`` up to a constant (``−E`` for an energy).
      step_size: the Langevin step ``h``; may be a traced array.

    Returns:
      ``SamplingAlgorithm(init, step)``; ``init(position, rng_key=None)`` ignores
      the key (it is accepted for BlackJAX compatibility).

    Examples:
      >>> import jax, jax.numpy as jnp
      >>> from jebm.samplers import mala
      >>> alg = mala(lambda x: -0.5 * jnp.sum(x**2), step_size=0.5)
      >>> state = alg.init(jnp.zeros(2))
      >>> state, info = alg.step(jax.random.key(0), state)
      >>> state.position.shape
      (2,)
    """
    kernel = build_kernel()
    return SamplingAlgorithm(
        init=lambda position, rng_key=None: init(position, logdensity_fn),
        step=lambda key, state: kernel(key, state, logdensity_fn, step_size),
    )
