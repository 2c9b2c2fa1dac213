"""Hamiltonian Monte Carlo (HMC) with a leapfrog integrator.

Augment x with a momentum r ~ N(0, M) and define the Hamiltonian

    H(x, r) = −log p(x) + ½ rᵀ M⁻¹ r.

One transition draws r, runs L leapfrog steps of size ε,

    r ← r + (ε/2) ∇log p(x);   x ← x + ε M⁻¹ r;   r ← r + (ε/2) ∇log p(x),

and accepts the end point with probability min(1, exp(−ΔH)), ΔH = H(end) − H(start).
Leapfrog is volume-preserving and reversible, so this is exact MH; its energy error
is O(ε²) over a fixed trajectory length. The inverse mass matrix M⁻¹ is diagonal
(a 1-D array) or dense (a 2-D array) over the flattened position; pytree positions
are flattened with ``jax.flatten_util.ravel_pytree``.

The state caches ``logdensity`` and its gradient, so a transition costs exactly L
``value_and_grad`` calls. A transition is *divergent* when the end point is not
finite or ΔH exceeds ``divergence_threshold`` (1000); it is then rejected.

References:
  Duane, S., Kennedy, A. D., Pendleton, B. J. and Roweth, D. (1987). Hybrid Monte
  Carlo. Physics Letters B 195(2), 216–222.

  Neal, R. M. (2011). MCMC using Hamiltonian dynamics. In Handbook of Markov Chain
  Monte Carlo, chapter 5. Chapman & Hall/CRC.
"""

from typing import NamedTuple

import jax
import jax.numpy as jnp
from jax.flatten_util import ravel_pytree

from jebm._validate import check_float, check_int
from jebm.samplers.base import (
    GradientState,
    SamplingAlgorithm,
    gradient_state,
    logdensity_and_grad,
    mass_matrix,
    metropolis_select,
    normal_and_uniform,
    scalar_tunable,
    tunables_valid,
)
from jebm.types import Array, LogDensityFn, PRNGKey

__all__ = ["HMCState", "HMCInfo", "init", "build_kernel", "hmc"]


HMCState = GradientState  # position, log p and ∇log p, cached


class HMCInfo(NamedTuple):
    """Diagnostics of one HMC transition.

    Attributes:
      acceptance_rate: the acceptance probability ``min(1, exp(−ΔH))``.
      is_accepted: whether the trajectory's end point was accepted.
      is_divergent: whether the end point was not finite or the energy error exceeded
        the divergence threshold; the end point is then rejected.
      energy_error: ``ΔH = H(end) − H(start)``; the log acceptance ratio is ``−ΔH``.
    """

    acceptance_rate: Array
    is_accepted: Array
    is_divergent: Array  # non-finite end point or energy error above the threshold
    energy_error: Array  # ΔH = H(end) − H(start); the log acceptance ratio is −ΔH


init = gradient_state


def build_kernel(num_integration_steps: int, divergence_threshold: float = 1000.0):
    """Return ``kernel(key, state, logdensity_fn, step_size, inverse_mass_matrix)``.

    Args:
      num_integration_steps: the number ``L`` of leapfrog steps (a static int).
      divergence_threshold: an energy error ΔH above this marks a divergence.

    Raises:
      ValueError: if ``num_integration_steps`` is not a positive int, or
        ``divergence_threshold`` not a finite positive number.
    """
    num_integration_steps = check_int("num_integration_steps", num_integration_steps)
    divergence_threshold = check_float("divergence_threshold", divergence_threshold)

    def kernel(
        key: PRNGKey,
        state: HMCState,
        logdensity_fn: LogDensityFn,
        step_size: Array,
        inverse_mass_matrix: Array,
    ) -> tuple[HMCState, HMCInfo]:
        step_size = scalar_tunable(step_size, "step_size")
        x0, unravel = ravel_pytree(state.position)
        g0, _ = ravel_pytree(state.logdensity_grad)
        metric = mass_matrix(inverse_mass_matrix, x0.size)
        velocity = metric.inverse
        noise, log_u = normal_and_uniform(key, state.position)
        r0 = metric.sample_momentum(ravel_pytree(noise)[0])

        def flat_value_and_grad(x):
            logdensity, grad = logdensity_and_grad(logdensity_fn, unravel(x))
            return logdensity, ravel_pytree(grad)[0]

        half = 0.5 * step_size

        def leapfrog(carry, _):
            x, r, _, g = carry
            r = r + half * g
            x = x + step_size * velocity(r)
            logdensity, g = flat_value_and_grad(x)
            r = r + half * g
            return (x, r, logdensity, g), None

        carry = (x0, r0, state.logdensity, g0)
        (x, r, logdensity, g), _ = jax.lax.scan(leapfrog, carry, None, length=num_integration_steps)
        kinetic0 = 0.5 * jnp.vdot(r0, velocity(r0))
        kinetic = 0.5 * jnp.vdot(r, velocity(r))
        energy_error = (-logdensity + kinetic) - (-state.logdensity + kinetic0)
        finite = jnp.isfinite(energy_error) & jnp.all(jnp.isfinite(x)) & jnp.all(jnp.isfinite(g))
        ok = finite & jnp.isfinite(state.logdensity) & tunables_valid(step_size) & metric.valid
        divergent = ~ok | (energy_error > divergence_threshold)
        log_ratio = -energy_error
        proposal = HMCState(unravel(x), logdensity, unravel(g))
        new_state, rate, accept = metropolis_select(
            state, proposal, log_ratio, log_u, ~divergent
        )
        return new_state, HMCInfo(rate, accept, divergent, energy_error)

    return kernel


def hmc(
    logdensity_fn: LogDensityFn,
    step_size: float | Array,
    inverse_mass_matrix: Array,
    num_integration_steps: int,
    *,
    divergence_threshold: float = 1000.0,
) -> SamplingAlgorithm:
    """Leapfrog HMC as a ``SamplingAlgorithm``.

    Args:
      logdensity_fn: ``x ↦ log p(x)`` up to a constant (``−E`` for an energy).
      step_size: leapfrog step ``ε``; a Python number is checked here (finite, > 0),
        a traced one that is not gives a divergence at run time; a size-1 array (as
        BlackJAX allows) is taken as the scalar.
      inverse_mass_matrix: ``M⁻¹`` over the flattened position, shape ``(d,)``
        (diagonal) or ``(d, d)`` (dense); may be traced. A good choice is the
        target covariance.
      num_integration_steps: leapfrog steps per transition (a static int).
      divergence_threshold: energy error above which a transition is divergent.

    Returns:
      ``SamplingAlgorithm(init, step)``; ``init(position, rng_key=None)`` ignores
      the key (it is accepted for BlackJAX compatibility); ``step(rng_key, state)``.

    Raises:
      ValueError: for a Python-number ``step_size`` or ``divergence_threshold`` that is
        not finite and positive, or a bad ``num_integration_steps``.

    Examples:
      >>> import jax, jax.numpy as jnp
      >>> from jebm.samplers import hmc
      >>> alg = hmc(lambda x: -0.5 * jnp.sum(x**2), 0.2, jnp.ones(2), 10)
      >>> state = alg.init(jnp.zeros(2))
      >>> state, info = alg.step(jax.random.key(0), state)
      >>> info.energy_error.shape
      ()

    References:
      Duane et al. (1987); Neal (2011); see the module docstring.
    """
    step_size = check_float("step_size", step_size)
    kernel = build_kernel(num_integration_steps, divergence_threshold)

    def step(rng_key: PRNGKey, state: HMCState) -> tuple[HMCState, HMCInfo]:
        return kernel(rng_key, state, logdensity_fn, step_size, inverse_mass_matrix)

    return SamplingAlgorithm(
        init=lambda position, rng_key=None: init(position, logdensity_fn), step=step
    )
