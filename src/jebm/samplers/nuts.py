"""The No-U-Turn sampler (NUTS): BlackJAX's implementation behind jebm's contract.

**Decision: wrap, not reimplement.** NUTS is the one jebm sampler whose correctness rests
on a long, subtle algorithm (iterative trajectory doubling, multinomial sampling of the
proposal, the generalised U-turn criterion across sub-trees). BlackJAX's iterative NUTS
(Phan et al., 2019; Lao et al., 2020) is maintained and already tested against the same
statistical oracles jebm uses, so jebm does not keep a second copy. BlackJAX is only a
development dependency of jebm: it is imported when :func:`nuts` or :func:`build_kernel`
is *called*, and a missing install raises an ``ImportError`` that says what to install.
``import jebm`` never imports BlackJAX.

What the wrapper adds is jebm's contract: the state is jebm-checked at ``init`` (scalar
log-density, strong dtypes), a bad traced step size or a non-finite current state is a
divergence (state kept), and ``info`` is a small :class:`NUTSInfo` (BlackJAX's carries
the trajectory's end states, which would bloat every trace).

**When is NUTS worth it over many chains?** Under ``vmap`` every chain waits for the
longest trajectory in the batch (the doubling loop is a ``while_loop`` over the batch),
so the cost per step is ``max`` over chains of ``num_integration_steps`` gradient
evaluations, not their mean. NUTS pays when the right trajectory length varies a lot
across the target (so a fixed HMC length is wasteful) and chains are few; for many
chains on a well-conditioned target, HMC with a tuned length is usually cheaper per
effective sample. ``benchmarks/samplers.py`` measures ESS per gradient and per second of
both on a correlated 20-D Gaussian.

References:
  Hoffman, M. D. and Gelman, A. (2014). The No-U-Turn sampler: adaptively setting path
  lengths in Hamiltonian Monte Carlo. JMLR 15, 1593–1623.

  Betancourt, M. (2017). A conceptual introduction to Hamiltonian Monte Carlo.
  arXiv:1701.02434. (multinomial sampling, generalised U-turn)

  Phan, D., Pradhan, N. and Jankowiak, M. (2019). Composable effects for flexible and
  accelerated probabilistic programming in NumPyro. arXiv:1912.11554. (iterative NUTS)

  Cabezas, A., Corenflos, A., Lao, J., Louf, R. et al. (2024). BlackJAX: composable
  Bayesian inference in JAX. arXiv:2402.10797.
"""

from typing import NamedTuple

import jax
import jax.numpy as jnp

from jebm._validate import check_float, check_int
from jebm.samplers.base import (
    SamplingAlgorithm,
    scalar_tunable,
    tunables_valid,
)
from jebm.samplers.hmc import (
    HMCState,
    init,  # the NUTS state is HMC's (position, log-density, grad)
)
from jebm.types import Array, LogDensityFn, PRNGKey

__all__ = ["NUTSInfo", "init", "build_kernel", "nuts"]


class NUTSInfo(NamedTuple):
    """Diagnostics of one NUTS transition.

    Attributes:
      acceptance_rate: the mean Metropolis acceptance along the trajectory.
      is_divergent: whether the energy error exceeded the threshold, or a tunable or the
        starting state was bad.
      num_integration_steps: the leapfrog steps (gradient evaluations) of this transition.
      num_trajectory_expansions: the number of trajectory doublings.
      energy: the Hamiltonian of the new state.
    """

    acceptance_rate: Array  # mean Metropolis acceptance along the trajectory
    is_divergent: Array  # energy error above the threshold, or a bad tunable / start
    num_integration_steps: Array  # leapfrog steps (gradient evaluations) of this step
    num_trajectory_expansions: Array  # doublings
    energy: Array  # the Hamiltonian of the new state


def _blackjax():
    try:
        import blackjax.mcmc.hmc
        import blackjax.mcmc.nuts
    except ImportError as err:  # pragma: no cover - exercised with blackjax hidden
        raise ImportError(
            "jebm.samplers.nuts wraps BlackJAX's NUTS, and BlackJAX is not installed. "
            "Install it with `pip install blackjax` (it is in jebm's `dev` extra), or use "
            "jebm.samplers.hmc with jebm.samplers.dual_averaging_warmup."
        ) from err
    return blackjax.mcmc


def build_kernel(max_num_doublings: int = 10, divergence_threshold: float = 1000.0):
    """Return ``kernel(key, state, logdensity_fn, step_size, inverse_mass_matrix)``.

    Args:
      max_num_doublings: at most ``2^max_num_doublings − 1`` leapfrog steps per step.
      divergence_threshold: energy error that marks a divergence.

    Raises:
      ImportError: if BlackJAX is not installed.
      ValueError: for bad arguments.
    """
    max_num_doublings = check_int("max_num_doublings", max_num_doublings)
    divergence_threshold = check_float("divergence_threshold", divergence_threshold)
    mcmc = _blackjax()
    base = mcmc.nuts.build_kernel(divergence_threshold=divergence_threshold)

    def kernel(
        key: PRNGKey,
        state: HMCState,
        logdensity_fn: LogDensityFn,
        step_size: Array,
        inverse_mass_matrix: Array,
    ) -> tuple[HMCState, NUTSInfo]:
        step_size = scalar_tunable(step_size, "step_size")
        bj_state = mcmc.hmc.HMCState(*state)
        new, info = base(
            key, bj_state, logdensity_fn, step_size, inverse_mass_matrix, max_num_doublings
        )
        ok = tunables_valid(step_size) & jnp.isfinite(state.logdensity)
        new = HMCState(*jax.tree.map(lambda a, b: jnp.where(ok, a, b), tuple(new), tuple(state)))
        return new, NUTSInfo(
            jnp.where(ok, info.acceptance_rate, 0.0),
            info.is_divergent | ~ok,
            info.num_integration_steps,
            info.num_trajectory_expansions,
            info.energy,
        )

    return kernel


def nuts(
    logdensity_fn: LogDensityFn,
    step_size: float | Array,
    inverse_mass_matrix: Array,
    *,
    max_num_doublings: int = 10,
    divergence_threshold: float = 1000.0,
) -> SamplingAlgorithm:
    """NUTS (BlackJAX's, imported lazily) as a jebm ``SamplingAlgorithm``.

    Args:
      logdensity_fn: ``x ↦ log p(x)`` up to a constant.
      step_size: leapfrog step; a Python number is checked here (finite, > 0).
      inverse_mass_matrix: ``(d,)`` diagonal or ``(d, d)`` dense over the flattened
        position.
      max_num_doublings: cap on trajectory doublings (static).
      divergence_threshold: energy error that marks a divergence.

    Returns:
      ``SamplingAlgorithm(init, step)``; ``init(position, rng_key=None)``;
      ``step(rng_key, state)``.

    Raises:
      ImportError: if BlackJAX is not installed.
      ValueError: for bad Python-number arguments.

    Examples:
      >>> import jax, jax.numpy as jnp
      >>> from jebm.samplers import nuts
      >>> alg = nuts(lambda x: -0.5 * jnp.sum(x**2), 0.5, jnp.ones(3))
      >>> state, info = alg.step(jax.random.key(0), alg.init(jnp.zeros(3)))
      >>> int(info.num_integration_steps) >= 1
      True

    References:
      Hoffman and Gelman (2014); Betancourt (2017); see the module docstring.
    """
    step_size = check_float("step_size", step_size)
    kernel = build_kernel(max_num_doublings, divergence_threshold)

    def step(rng_key: PRNGKey, state: HMCState) -> tuple[HMCState, NUTSInfo]:
        return kernel(rng_key, state, logdensity_fn, step_size, inverse_mass_matrix)

    return SamplingAlgorithm(
        init=lambda position, rng_key=None: init(position, logdensity_fn), step=step
    )
