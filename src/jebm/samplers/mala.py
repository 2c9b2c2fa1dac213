"""Metropolis-adjusted Langevin algorithm (MALA), optionally preconditioned.

The proposal is one step of the coupled Langevin discretisation,

    x′ = x + h ∇log p(x) + √(2h) ξ,   ξ ~ N(0, I),

so q(x′ | x) = N(x′; x + h∇log p(x), 2hI), accepted with probability
min(1, p(x′) q(x | x′) / (p(x) q(x′ | x))). The correction removes the O(h) bias
of the unadjusted chain (see :mod:`jebm.samplers.ula`).

**Preconditioned MALA.** With an inverse mass matrix (preconditioner) ``M⁻¹ = L Lᵀ``,
diagonal ``(d,)`` or dense ``(d, d)`` over the flattened position, the proposal is the
Langevin step of the diffusion dX = M⁻¹∇log p(X) dt + √2 L dW,

    x′ = x + h M⁻¹ ∇log p(x) + √(2h) L ξ,   q(x′ | x) = N(x′; x + h M⁻¹∇log p(x), 2h M⁻¹),

whose log-density is −(x′ − x − hM⁻¹g)ᵀ M (x′ − x − hM⁻¹g) / (4h) up to a constant that
cancels in the ratio. ``M⁻¹ ≈ Cov(x)`` makes a badly scaled target isotropic, so one
step size fits every direction. ``inverse_mass_matrix=None`` is plain MALA (M = I, no
flattening).

A step is *divergent* (rejected, ``info.is_divergent``) when the proposal has a
non-finite position, log-density or gradient, when the traced ``step_size`` (or
preconditioner) is not finite and positive, or when the current state's own
log-density is not finite (a NaN start under ``jit``).

References:
  Roberts, G. O. and Tweedie, R. L. (1996). Exponential convergence of Langevin
  distributions and their discrete approximations. Bernoulli 2(4), 341–363.

  Roberts, G. O. and Stramer, O. (2002). Langevin diffusions and Metropolis–Hastings
  algorithms. Methodology and Computing in Applied Probability 4, 337–357.
  (preconditioned MALA)

  Girolami, M. and Calderhead, B. (2011). Riemann manifold Langevin and Hamiltonian
  Monte Carlo methods. JRSS B 73(2), 123–214. (constant-metric MALA, Sec. 5)
"""


import jax
import jax.numpy as jnp
from jax.flatten_util import ravel_pytree

from jebm._validate import check_float
from jebm.samplers.base import (
    GradientState,
    MetropolisInfo,
    SamplingAlgorithm,
    gradient_state,
    mass_matrix,
    metropolis_select,
    normal_and_uniform,
    scalar_tunable,
    tree_all_finite,
    tree_vdot,
    tunables_valid,
)
from jebm.types import Array, ArrayTree, LogDensityFn, PRNGKey

__all__ = ["MALAState", "MALAInfo", "init", "build_kernel", "mala"]


# MALA's state caches log p and its gradient; its info is a Metropolis step's.
MALAState = GradientState
MALAInfo = MetropolisInfo
init = gradient_state


def _log_q(to: ArrayTree, frm: ArrayTree, frm_grad: ArrayTree, step_size: Array) -> Array:
    # log N(to; frm + h ∇log p(frm), 2h I) up to a constant that cancels in the ratio.
    diff = jax.tree.map(lambda t, f, g: t - f - step_size * g, to, frm, frm_grad)
    return -tree_vdot(diff, diff) / (4.0 * step_size)


def build_kernel():
    """Return ``kernel(key, state, logdensity_fn, step_size, inverse_mass_matrix=None)``.

    ``step_size`` is a scalar (a size-1 array is accepted); ``inverse_mass_matrix`` is
    ``None`` (plain MALA) or a diagonal ``(d,)`` / dense ``(d, d)`` preconditioner over
    the flattened position, ``d`` its number of elements. Both may be traced.
    """

    def kernel(
        key: PRNGKey,
        state: MALAState,
        logdensity_fn: LogDensityFn,
        step_size: Array,
        inverse_mass_matrix: Array | None = None,
    ) -> tuple[MALAState, MALAInfo]:
        step_size = scalar_tunable(step_size, "step_size")
        noise, log_u = normal_and_uniform(key, state.position)
        if inverse_mass_matrix is None:
            scale = jnp.sqrt(2.0 * step_size)
            position = jax.tree.map(
                lambda x, g, z: x + step_size * g + scale * z,
                state.position,
                state.logdensity_grad,
                noise,
            )
            proposal = init(position, logdensity_fn)
            log_q_back = _log_q(state.position, position, proposal.logdensity_grad, step_size)
            log_q_fwd = _log_q(position, state.position, state.logdensity_grad, step_size)
            metric_ok = jnp.asarray(True)
        else:
            x0, unravel = ravel_pytree(state.position)
            g0 = ravel_pytree(state.logdensity_grad)[0]
            metric = mass_matrix(inverse_mass_matrix, x0.size)
            z = ravel_pytree(noise)[0]
            x1 = x0 + step_size * metric.inverse(g0) + jnp.sqrt(2.0 * step_size) * metric.scale(z)
            proposal = init(unravel(x1), logdensity_fn)
            g1 = ravel_pytree(proposal.logdensity_grad)[0]
            four_h = 4.0 * step_size
            log_q_back = -metric.quadratic(x0 - x1 - step_size * metric.inverse(g1)) / four_h
            log_q_fwd = -metric.quadratic(x1 - x0 - step_size * metric.inverse(g0)) / four_h
            metric_ok = metric.valid
        log_ratio = proposal.logdensity - state.logdensity + log_q_back - log_q_fwd
        valid = (
            tree_all_finite(proposal)
            & jnp.isfinite(state.logdensity)
            & tunables_valid(step_size)
            & metric_ok
        )
        new_state, rate, accept = metropolis_select(state, proposal, log_ratio, log_u, valid)
        return new_state, MALAInfo(rate, accept, ~valid)

    return kernel


def mala(
    logdensity_fn: LogDensityFn,
    step_size: float | Array,
    inverse_mass_matrix: Array | None = None,
) -> SamplingAlgorithm:
    """MALA (preconditioned when ``inverse_mass_matrix`` is given) as a ``SamplingAlgorithm``.

    Args:
      logdensity_fn: ``x ↦ log p(x)`` up to a constant (``−E`` for an energy).
      step_size: the Langevin step ``h``; a Python number is checked here (finite,
        > 0); a traced array that is not is a divergence at run time.
      inverse_mass_matrix: ``None``, or the preconditioner ``M⁻¹`` over the flattened
        position, shape ``(d,)`` (diagonal) or ``(d, d)`` (dense, symmetric positive
        definite); a good choice is the target covariance
        (:func:`jebm.samplers.adaptation.window_adaptation` estimates a diagonal one).

    Returns:
      ``SamplingAlgorithm(init, step)``; ``init(position, rng_key=None)`` ignores
      the key (it is accepted for BlackJAX compatibility); ``step(rng_key, state)``.

    Raises:
      ValueError: for a Python-number ``step_size`` that is not finite and positive.

    Examples:
      >>> import jax, jax.numpy as jnp
      >>> from jebm.samplers import mala
      >>> alg = mala(lambda x: -0.5 * jnp.sum(x**2), step_size=0.5)
      >>> state = alg.init(jnp.zeros(2))
      >>> state, info = alg.step(jax.random.key(0), state)
      >>> state.position.shape
      (2,)

    References:
      Roberts and Tweedie (1996); Roberts and Stramer (2002); see the module docstring.
    """
    step_size = check_float("step_size", step_size)
    kernel = build_kernel()

    def step(rng_key: PRNGKey, state: MALAState) -> tuple[MALAState, MALAInfo]:
        return kernel(rng_key, state, logdensity_fn, step_size, inverse_mass_matrix)

    return SamplingAlgorithm(
        init=lambda position, rng_key=None: init(position, logdensity_fn), step=step
    )
