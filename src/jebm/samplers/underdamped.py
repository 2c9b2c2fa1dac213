"""Underdamped (kinetic) Langevin dynamics with the BAOAB splitting.

The diffusion on position x and momentum p (unit mass, friction γ),

    dx = p dt,   dp = ∇log p(x) dt − γ p dt + √(2γ) dW,

has the stationary law p(x) ⊗ N(0, I). BAOAB (Leimkuhler and Matthews, 2013) splits one
step of size h into half kicks (B), half drifts (A) and an exact Ornstein–Uhlenbeck
momentum refresh (O) in the middle:

    B: p ← p + (h/2) ∇log p(x)        A: x ← x + (h/2) p
    O: p ← c p + √(1 − c²) ξ,  c = exp(−γh),  ξ ~ N(0, I)
    A: x ← x + (h/2) p                B: p ← p + (h/2) ∇log p(x)

One step costs one ``value_and_grad`` (the state caches the gradient at x). There is no
Metropolis test, so the chain is biased at finite h in general (O(h²) for the
configurational averages), with one exact case:

**Gaussian targets.** For log p(x) = −xᵀPx/2 the stationary law of BAOAB at any stable
step (h² λ_max(P) < 4) has position covariance exactly P⁻¹ and momentum covariance
I − h²P/4, uncorrelated. Derivation (1-D, P = ω²; the d-D case decouples in the
eigenbasis of P): let x ~ N(0, 1/ω²), p ~ N(0, 1 − h²ω²/4) independent. After B A,
p′ = p − (h/2)ω²x has variance 1 − h²ω²/4 + h²ω²/4 = 1, and x′ = x + (h/2)p′ has
Cov(x′, p′) = −h/2 + h/2 = 0 and variance 1/ω² − h²/4. O keeps p′ ~ N(0, 1) independent
of x′. Then A B gives x″ = x′ + (h/2)p″ with variance 1/ω² − h²/4 + h²/4 = 1/ω², and
p‴ = p″ − (h/2)ω²x″ with variance 1 − h²ω²/2 + h²ω²/4 = 1 − h²ω²/4 and
Cov(x″, p‴) = h/2 − h/2 = 0: the law is invariant. (``tests/samplers/test_underdamped.py``
also checks it against the discrete Lyapunov equation of the linear map.)

Friction ``γ`` and ``h`` are traced tunables. ``γ = 0`` is noise-free Hamiltonian
dynamics (allowed); large ``γ h`` approaches overdamped (ULA-like) behaviour. A step with a
non-finite result, a non-finite or non-positive traced ``h``, or a negative or non-finite
``γ`` is not taken and sets ``info.is_divergent``. ``init`` sets the momentum to zero
(the top-level ``init(position, rng_key)`` draws it from N(0, I) when given a key). PCD
restarts each drawn chain at zero momentum unless its replay buffer keeps the momentum:
``jebm.objectives.pcd(..., persist_fields=("momentum",))``.

References:
  Leimkuhler, B. and Matthews, C. (2013). Rational construction of stochastic numerical
  methods for molecular sampling. Applied Mathematics Research eXpress 2013(1), 34–56.

  Leimkuhler, B. and Matthews, C. (2015). Molecular Dynamics with Deterministic and
  Stochastic Numerical Methods. Springer. Chapter 7.
"""

from typing import NamedTuple

import jax
import jax.numpy as jnp

from jebm._validate import check_float
from jebm.samplers.base import (
    SamplingAlgorithm,
    logdensity_and_grad,
    normal_like,
    scalar_tunable,
    strong_dtype,
    tree_all_finite,
    tree_vdot,
    tunables_valid,
)
from jebm.types import Array, ArrayTree, LogDensityFn, PRNGKey

__all__ = [
    "UnderdampedLangevinState",
    "UnderdampedLangevinInfo",
    "init",
    "build_kernel",
    "underdamped_langevin",
]


class UnderdampedLangevinState(NamedTuple):
    """State of an underdamped Langevin chain.

    Attributes:
      position: the current position ``x`` (a pytree of arrays).
      momentum: the momentum ``p``; same structure as ``position``.
      logdensity: ``log p(position)``, cached.
      logdensity_grad: ``∇log p(position)``, cached; same structure as ``position``.
    """

    position: ArrayTree
    momentum: ArrayTree
    logdensity: Array
    logdensity_grad: ArrayTree


class UnderdampedLangevinInfo(NamedTuple):
    """Diagnostics of one BAOAB step.

    Attributes:
      kinetic_energy: ``|p|²/2`` after the step (its mean is ``d/2 − h² tr(P)/8`` on a
        Gaussian target with precision ``P``).
      is_divergent: whether the result was not finite or a traced tunable was bad; the
        step was then not taken.
    """

    kinetic_energy: Array  # |p|²/2 after the step (its mean is d/2 − h² tr(P)/8 on a Gaussian)
    is_divergent: Array  # non-finite result or bad traced tunable: the step was not taken


def init(
    position: ArrayTree, logdensity_fn: LogDensityFn, momentum: ArrayTree | None = None
) -> UnderdampedLangevinState:
    """A state at ``position`` with the given momentum (zero by default).

    Args:
      position: the starting position (a pytree of arrays).
      logdensity_fn: ``x ↦ log p(x)`` up to a constant.
      momentum: the starting momentum, same structure as ``position``; ``None`` for zero.

    Returns:
      An ``UnderdampedLangevinState`` with the log-density and gradient at ``position``.
    """
    position = strong_dtype(position)
    logdensity, grad = logdensity_and_grad(logdensity_fn, position)
    if momentum is None:
        momentum = jax.tree.map(jnp.zeros_like, position)
    return UnderdampedLangevinState(position, strong_dtype(momentum), logdensity, grad)


def build_kernel():
    """Return ``kernel(key, state, logdensity_fn, step_size, friction) -> (state, info)``.

    ``step_size`` (h) and ``friction`` (γ) are scalars; both may be traced.
    """

    def kernel(
        key: PRNGKey,
        state: UnderdampedLangevinState,
        logdensity_fn: LogDensityFn,
        step_size: Array,
        friction: Array,
    ) -> tuple[UnderdampedLangevinState, UnderdampedLangevinInfo]:
        h = scalar_tunable(step_size, "step_size")
        gamma = scalar_tunable(friction, "friction")
        half = 0.5 * h
        c = jnp.exp(-gamma * h)
        s = jnp.sqrt(jnp.maximum(1.0 - c * c, 0.0))
        noise = normal_like(key, state.position)
        p = jax.tree.map(lambda p, g: p + half * g, state.momentum, state.logdensity_grad)
        x = jax.tree.map(lambda x, p: x + half * p, state.position, p)
        p = jax.tree.map(lambda p, z: c * p + s * z, p, noise)
        x = jax.tree.map(lambda x, p: x + half * p, x, p)
        logdensity, grad = logdensity_and_grad(logdensity_fn, x)
        p = jax.tree.map(lambda p, g: p + half * g, p, grad)
        proposal = UnderdampedLangevinState(x, p, logdensity, grad)
        valid = (
            tree_all_finite(proposal)
            & tunables_valid(h)
            & jnp.isfinite(gamma)
            & (gamma >= 0)
        )
        new_state = jax.tree.map(lambda a, b: jnp.where(valid, a, b), proposal, state)
        kinetic = 0.5 * tree_vdot(new_state.momentum, new_state.momentum)
        return new_state, UnderdampedLangevinInfo(kinetic, ~valid)

    return kernel


def underdamped_langevin(
    logdensity_fn: LogDensityFn, step_size: float | Array, friction: float | Array = 1.0
) -> SamplingAlgorithm:
    """BAOAB underdamped Langevin as a ``SamplingAlgorithm``.

    Args:
      logdensity_fn: ``x ↦ log p(x)`` up to a constant (``−E`` for an energy).
      step_size: ``h``; a Python number is checked here (finite, > 0).
      friction: ``γ`` (≥ 0); ``exp(−γh)`` of the momentum survives each step.

    Returns:
      ``SamplingAlgorithm(init, step)``. ``init(position, rng_key=None)`` starts at zero
      momentum, or at an N(0, I) draw when given a key; ``step(rng_key, state)``.

    Raises:
      ValueError: for a Python-number ``step_size`` that is not finite and positive, or a
        ``friction`` that is negative or not finite.

    Examples:
      >>> import jax, jax.numpy as jnp
      >>> from jebm.samplers import underdamped_langevin
      >>> alg = underdamped_langevin(lambda x: -0.5 * jnp.sum(x**2), 0.5, friction=1.0)
      >>> state = alg.init(jnp.zeros(2), jax.random.key(1))
      >>> state, info = alg.step(jax.random.key(0), state)
      >>> state.momentum.shape
      (2,)

    References:
      Leimkuhler and Matthews (2013); see the module docstring.
    """
    step_size = check_float("step_size", step_size)
    friction = check_float("friction", friction, allow_zero=True)
    kernel = build_kernel()

    def init_fn(position, rng_key=None):
        momentum = None if rng_key is None else normal_like(rng_key, strong_dtype(position))
        return init(position, logdensity_fn, momentum)

    def step(rng_key: PRNGKey, state):
        return kernel(rng_key, state, logdensity_fn, step_size, friction)

    return SamplingAlgorithm(init=init_fn, step=step)
