"""Annealed importance sampling (AIS): log Z of exp(−E) in any dimension, forward and reverse.

**The path.** With a normalised base density ``p₀`` (a :class:`jebm.densities.Density`,
e.g. :func:`jebm.densities.gaussian` or :func:`jebm.densities.uniform_box`) and the
unnormalised target ``f(x) = exp(−E(params, x))``, the geometric bridges are

    log f_β(x) = (1 − β) log p₀(x) + β (−E(x)),   0 = β₀ < β₁ < … < β_K = 1,

so ``Z_{β₀} = 1`` and ``Z_{β_K} = Z``, the partition function of ``exp(−E)``.

**Forward AIS** (Neal, 2001). Draw ``x₀ ~ p₀`` and, for ``k = 1 … K``,

    log w += log f_{β_k}(x_{k−1}) − log f_{β_{k−1}}(x_{k−1})
           = (β_k − β_{k−1}) (−E(x_{k−1}) − log p₀(x_{k−1})),
    x_k ~ T_k(x_{k−1}, ·),

where ``T_k`` is any Markov kernel leaving ``π_{β_k} ∝ f_{β_k}`` invariant (here
``num_mcmc_steps_per_bridge`` steps of MALA, HMC or any jebm kernel, vmapped over
chains; the last transition, at β = 1, does not enter the weight and only refines the
returned positions). Then ``E[w] = Z`` exactly, and over ``N`` independent chains

    log Ẑ = logmeanexp(log w).

Because ``E[Ẑ] = Z``, Jensen gives ``E[log Ẑ] ≤ log Z`` (a *stochastic lower bound*) and
Markov's inequality gives ``P(log Ẑ > log Z + t) ≤ e^{−t}``: over-estimates are rare,
under-estimates (too few bridges, stuck chains) are the usual failure.

**Reverse AIS** (Burda, Grosse and Salakhutdinov, 2015; Grosse, Ghahramani and Adams,
2015). Start from *exact* target samples ``x ~ p = f/Z``, run the same bridges from
β = 1 down to 0 with the same reversible kernels (MALA and HMC are reversible, so the
reverse kernel of ``T_k`` is ``T_k``), and accumulate

    log w_rev += log f_{β_{k−1}}(x) − log f_{β_k}(x),   k = K … 1.

Then ``E[w_rev] = Z₀/Z = 1/Z``, so ``Ẑ_rev = 1 / mean(w_rev)`` satisfies
``E[1/Ẑ_rev] = 1/Z``, hence ``E[log Ẑ_rev] ≥ log Z`` (a *stochastic upper bound*) and
``P(log Ẑ_rev < log Z − t) ≤ e^{−t}``. Together,

    E[log Ẑ_fwd] ≤ log Z ≤ E[log Ẑ_rev],

the bidirectional Monte Carlo "sandwich"; the gap between the two shrinks to 0 as the
annealing gets slower. The upper bound needs exact target samples: with approximate
ones (e.g. long MCMC runs of a trained EBM) it is only a heuristic, conservative in
practice (Burda et al., 2015) but not guaranteed.

**Error bars (delta method).** With normalised weights ``ŵᵢ = wᵢ / Σⱼ wⱼ`` and
``ESS = 1 / Σ ŵᵢ²``, the sample variance of the weights over the squared mean is
``(N Σ ŵᵢ² − 1)·N/(N − 1)``, so the delta method ``Var(log Ẑ) ≈ Var(Ẑ)/Ẑ²`` gives

    stderr(log Ẑ) = sqrt((N/ESS − 1) / (N − 1)).

The same formula holds for ``log Ẑ_rev = −log mean(w_rev)``. It is a first-order,
large-N approximation: when the log-weights are heavy-tailed (ESS of a few chains) the
sample variance itself is unreliable and the true error can be much larger than
reported; trust it only with a healthy ESS.

**Step-size adaptation, kept valid.** AIS stays exact for any step size ``h_k`` chosen
*independently* of the chains whose weights are averaged: each ``T_k`` must be a fixed
``π_{β_k}``-invariant kernel given everything that does not depend on those chains.
Adapting from the chains' own acceptance (even at the previous bridge) makes ``h_k`` a
function of each chain's past, which breaks the reverse-kernel argument behind
``E[w] = Z`` (by O(1/N) when the statistic is a mean over N chains). So with
``adapt_step_size=True`` jebm runs a *pilot* AIS pass on an independent key with
``num_pilot_chains`` chains, where bridge ``k`` uses

    log h_k = log h_{k−1} + adaptation_rate · (ā_{k−1} − target_acceptance),

``ā_{k−1}`` being the pilot chains' mean acceptance at the *previous* bridge (the step
size has to be fixed before a bridge's transitions run). The resulting per-bridge step
sizes are then frozen and used by the actual run, which is therefore exact AIS; the pilot
costs ``num_pilot_chains / num_chains`` of the main run.

References:
  Neal, R. M. (2001). Annealed importance sampling. Statistics and Computing 11(2),
  125–139.

  Grosse, R. B., Ghahramani, Z. and Adams, R. P. (2015). Sandwiching the marginal
  likelihood using bidirectional Monte Carlo. arXiv:1511.02543.

  Burda, Y., Grosse, R. B. and Salakhutdinov, R. (2015). Accurate and conservative
  estimates of MRF log-likelihood using reverse annealing. AISTATS.
"""

from collections.abc import Callable
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Float

from jebm._validate import check_float, check_int
from jebm.densities import Density
from jebm.energy import logdensity_fn
from jebm.samplers.base import SamplingAlgorithm
from jebm.samplers.registry import TARGET_ACCEPTANCE, by_name
from jebm.types import Array, EnergyFn, LogDensityFn, PRNGKey, PyTree

__all__ = [
    "linear_schedule",
    "power_schedule",
    "sigmoid_schedule",
    "AISResult",
    "ais",
    "reverse_ais",
]

KernelFactory = Callable[[LogDensityFn, Array], SamplingAlgorithm]

# ------------------------------------------------------------------------- schedules


def linear_schedule(num_bridges: int) -> Float[Array, " num_bridges_plus_1"]:
    """``β_t = t / K`` for ``t = 0 … K``; ``num_bridges = K`` (``K + 1`` betas).

    Args:
      num_bridges: ``K``, a positive int (static).

    Returns:
      ``(K + 1,)`` float32 inverse temperatures from 0 to 1.

    Raises:
      ValueError: if ``num_bridges`` is not a positive int.

    Examples:
      >>> from jebm.partition.ais import linear_schedule
      >>> linear_schedule(4)
      Array([0.  , 0.25, 0.5 , 0.75, 1.  ], dtype=float32)
    """
    check_int("num_bridges", num_bridges)
    return jnp.linspace(0.0, 1.0, num_bridges + 1, dtype=jnp.float32)


def power_schedule(num_bridges: int, power: float | Array = 4.0) -> Float[Array, " K1"]:
    """``β_t = (t / K)^p``: with ``p > 1`` bridges crowd near the base, where geometric
    paths change fastest.

    Args:
      num_bridges: ``K``, a positive int (static).
      power: ``p > 0`` (not checked); may be a traced scalar.

    Returns:
      ``(K + 1,)`` inverse temperatures from 0 to 1.

    Raises:
      ValueError: if ``num_bridges`` is not a positive int.
    """
    return linear_schedule(num_bridges) ** power


def sigmoid_schedule(num_bridges: int, delta: float | Array = 4.0) -> Float[Array, " K1"]:
    """The sigmoidal schedule of Grosse, Ghahramani and Adams (2015).

    ``β̃_t = σ(δ (2t/K − 1))`` rescaled to ``β_t = (β̃_t − β̃_0) / (β̃_K − β̃_0)``, so
    ``β_0 = 0`` and ``β_K = 1``, with bridges crowded at both ends.

    Args:
      num_bridges: ``K``, a positive int (static).
      delta: ``δ > 0``, the steepness (not checked); larger crowds the ends more. May
        be a traced scalar.

    Returns:
      ``(K + 1,)`` inverse temperatures from 0 to 1.

    Raises:
      ValueError: if ``num_bridges`` is not a positive int.

    References:
      Grosse, R. B., Ghahramani, Z. and Adams, R. P. (2015). Sandwiching the marginal
      likelihood using bidirectional Monte Carlo. arXiv:1511.02543.
    """
    raw = jax.nn.sigmoid(delta * (2.0 * linear_schedule(num_bridges) - 1.0))
    return (raw - raw[0]) / (raw[-1] - raw[0])


_SCHEDULES = {"linear": linear_schedule, "power": power_schedule, "sigmoid": sigmoid_schedule}


def _resolve_betas(betas, num_bridges, schedule) -> Array:
    if betas is not None:
        if num_bridges is not None:
            raise ValueError("Pass either betas or num_bridges (with a schedule), not both.")
        betas = jnp.asarray(betas, jnp.float32)
    else:
        if num_bridges is None:
            raise ValueError("AIS needs betas or num_bridges.")
        if callable(schedule):
            betas = jnp.asarray(schedule(num_bridges), jnp.float32)
        elif schedule in _SCHEDULES:
            betas = _SCHEDULES[schedule](num_bridges)
        else:
            raise ValueError(
                f"Unknown schedule {schedule!r}; use one of {sorted(_SCHEDULES)} or a callable "
                "num_bridges -> betas."
            )
    if betas.ndim != 1 or betas.shape[0] < 2:
        raise ValueError(f"betas must be a 1-D array of >= 2 values, got shape {betas.shape}.")
    if not isinstance(betas, jax.core.Tracer):
        b = np.asarray(betas)
        if b[0] != 0.0 or b[-1] != 1.0:
            raise ValueError(f"betas must start at 0 and end at 1, got {b[0]} … {b[-1]}.")
        if np.any(np.diff(b) < 0):
            raise ValueError("betas must be non-decreasing.")
    return betas


# ---------------------------------------------------------------------------- kernels


def _resolve_kernel(kernel, num_integration_steps: int, event_shape: tuple[int, ...]):
    """Return ``(factory(logdensity_fn, step_size) -> SamplingAlgorithm, default target)``."""
    if callable(kernel):
        return kernel, None
    if kernel not in ("mala", "hmc", "rwmh"):
        raise ValueError(
            f"kernel must be 'mala', 'hmc', 'rwmh' (Metropolis-adjusted, so each bridge is left "
            f"invariant) or a callable (logdensity_fn, step_size) -> SamplingAlgorithm, got "
            f"{kernel!r}."
        )
    extra = {}
    if kernel == "hmc":
        extra["num_integration_steps"] = check_int("num_integration_steps", num_integration_steps)
    named = by_name(kernel, event_shape, **extra)
    return (lambda logdensity, step_size: named(logdensity, step_size=step_size),
            TARGET_ACCEPTANCE[kernel])


# ----------------------------------------------------------------------------- core


def _scaled(c: Array, v: Array) -> Array:
    """``c · v`` with ``0 · (±inf) = 0`` (a uniform base is −inf outside its box)."""
    return jnp.where(c == 0, jnp.zeros_like(v), c * v)


class _Anneal(NamedTuple):
    log_weights: Array
    positions: Array
    step_sizes: Array  # (K,) the step size used at each bridge
    acceptance_rate: Array  # (K,) mean acceptance at each bridge


def _anneal(
    key: PRNGKey,
    positions: Array,
    betas: Array,
    step_sizes: Array,
    factory: KernelFactory,
    neg_energy: LogDensityFn,
    log_base: LogDensityFn,
    num_steps: int,
    adapt: tuple[float, float] | None,
) -> _Anneal:
    """Anneal ``positions`` along ``betas``; at bridge k: weight increment, then transitions.

    ``step_sizes`` has one entry per bridge k = 1 … K (the transitions at ``betas[k]``);
    with ``adapt=(rate, target)`` only ``step_sizes[0]`` is used, as the initial value.
    """
    num_chains = positions.shape[0]

    def bridge_logdensity(beta):
        return lambda x: _scaled(1.0 - beta, log_base(x)) + _scaled(beta, neg_energy(x))

    states = jax.vmap(factory(bridge_logdensity(betas[0]), step_sizes[0]).init)(positions)
    fields = set(getattr(type(states), "_fields", ()))
    # States caching only the log-density (and its gradient) are re-targeted at the new
    # bridge from one evaluation of −E and log p₀, which the weight needs anyway.
    fused = {"position", "logdensity"} <= fields <= {"position", "logdensity", "logdensity_grad"}
    with_grad = fused and "logdensity_grad" in fields

    def parts(x):
        if with_grad:
            u, gu = jax.value_and_grad(neg_energy)(x)
            b, gb = jax.value_and_grad(log_base)(x)
            return u, b, gu, gb
        return neg_energy(x), log_base(x), None, None

    def bridge(carry, xs):
        states, log_w, log_h = carry
        beta_prev, beta, h_fixed, key_k = xs
        h = jnp.exp(log_h) if adapt else h_fixed
        logdensity = bridge_logdensity(beta)
        algorithm = factory(logdensity, h)
        u, b, gu, gb = jax.vmap(parts)(states.position)
        log_w = log_w + _scaled(beta - beta_prev, u - b)
        if fused:
            update = {"logdensity": _scaled(1.0 - beta, b) + _scaled(beta, u)}
            if with_grad:
                update["logdensity_grad"] = jax.tree.map(
                    lambda g0, g1: (1.0 - beta) * g0 + beta * g1, gb, gu
                )
            states = states._replace(**update)
        else:
            states = jax.vmap(algorithm.init)(states.position)
        step = jax.vmap(algorithm.step)
        keys = jax.random.split(key_k, (num_steps, num_chains))
        states, infos = jax.lax.scan(lambda s, k: step(k, s), states, keys)
        rate = getattr(infos, "acceptance_rate", None)
        acc = jnp.mean(rate) if rate is not None else jnp.float32(jnp.nan)
        if adapt:
            log_h = log_h + adapt[0] * (acc - adapt[1])
        return (states, log_w, log_h), (h, acc)

    num_bridges = betas.shape[0] - 1
    xs = (betas[:-1], betas[1:], step_sizes, jax.random.split(key, num_bridges))
    carry = (states, jnp.zeros(num_chains, jnp.float32), jnp.log(step_sizes[0]))
    (states, log_w, _), (hs, accs) = jax.lax.scan(bridge, carry, xs)
    return _Anneal(log_w, states.position, hs, accs)


class AISResult(NamedTuple):
    """The outcome of :func:`ais` or :func:`reverse_ais`.

    Attributes:
      log_z: the estimate of log Z for ``exp(−E)``: ``logmeanexp(log w)`` forward (a
        stochastic lower bound), ``−logmeanexp(log w_rev)`` reverse (a stochastic upper
        bound with exact target samples).
      log_z_stderr: the delta-method standard error ``sqrt((N/ESS − 1)/(N − 1))``.
      ess: effective sample size ``1 / Σ ŵᵢ²`` of the (forward or reverse) weights.
      log_weights: ``(num_chains,)`` per-chain log-weights (``log w_rev`` for reverse AIS).
      final_positions: ``(num_chains, *event)``: approximate target draws (forward; the
        unweighted positions, to be weighted by ``exp(log_weights)``) or approximate
        base draws (reverse).
      betas: the ``(K + 1,)`` inverse temperatures, in the order they were visited.
      step_sizes: ``(K,)`` the step size used at each bridge, in visiting order.
      acceptance_rate: ``(K,)`` the chains' mean acceptance at each bridge.
    """

    log_z: Array
    log_z_stderr: Array
    ess: Array
    log_weights: Array
    final_positions: Array
    betas: Array
    step_sizes: Array
    acceptance_rate: Array


def _weight_summary(log_w: Array) -> tuple[Array, Array, Array]:
    """``(logmeanexp, delta-method stderr of it, ESS)`` of log-weights."""
    n = log_w.shape[0]
    log_mean = jax.nn.logsumexp(log_w) - jnp.log(n)
    normalised = jax.nn.softmax(log_w)
    ess = 1.0 / jnp.sum(normalised**2)
    stderr = jnp.sqrt(jnp.maximum(n / ess - 1.0, 0.0) / (n - 1))
    return log_mean, stderr, ess


def _check_config(num_chains, num_mcmc_steps_per_bridge, adaptation_rate) -> None:
    check_int("num_chains", num_chains, minimum=2)  # two at least, for an error bar
    check_int("num_mcmc_steps_per_bridge", num_mcmc_steps_per_bridge)
    check_float("adaptation_rate", adaptation_rate)


def _run(
    key: PRNGKey,
    energy_fn: EnergyFn,
    params: PyTree,
    base: Density,
    start: Array | None,
    num_chains: int,
    *,
    reverse: bool,
    betas,
    num_bridges,
    schedule,
    kernel,
    step_size,
    num_mcmc_steps_per_bridge,
    adapt_step_size,
    target_acceptance,
    adaptation_rate,
    num_pilot_chains,
    num_integration_steps,
) -> AISResult:
    _check_config(num_chains, num_mcmc_steps_per_bridge, adaptation_rate)
    betas = _resolve_betas(betas, num_bridges, schedule)
    num_bridges = betas.shape[0] - 1
    key_init, key_anneal, key_pilot = jax.random.split(key, 3)
    neg_energy = logdensity_fn(energy_fn, params)
    if start is None:
        start = base.sample(key_init, num_chains)
    factory, default_target = _resolve_kernel(kernel, num_integration_steps, start.shape[1:])

    step_size = jnp.asarray(step_size, jnp.float32)
    if step_size.ndim == 0:
        step_sizes = jnp.full(num_bridges + 1, step_size)
    elif step_size.shape == (num_bridges + 1,):
        step_sizes = step_size
    else:
        raise ValueError(
            f"step_size must be a scalar or one value per beta, shape ({num_bridges + 1},); "
            f"got shape {step_size.shape}."
        )

    if adapt_step_size:
        if target_acceptance is None:
            target_acceptance = default_target
        if target_acceptance is None:
            raise ValueError("adapt_step_size with a custom kernel needs target_acceptance.")
        if num_pilot_chains is None:
            num_pilot_chains = min(num_chains, 128)
        check_int("num_pilot_chains", num_pilot_chains)
        # The pilot anneals forward from fresh base draws on its own key, so the frozen
        # step sizes are independent of the chains whose weights are averaged below.
        k_pilot_init, k_pilot_anneal = jax.random.split(key_pilot)
        pilot = _anneal(
            k_pilot_anneal,
            base.sample(k_pilot_init, num_pilot_chains),
            betas,
            step_sizes[1:],
            factory,
            neg_energy,
            base.log_prob,
            num_mcmc_steps_per_bridge,
            (adaptation_rate, target_acceptance),
        )
        # One step size per beta: the pilot's at β_1 … β_K; β_0 keeps the initial value.
        step_sizes = jax.lax.stop_gradient(jnp.concatenate([step_sizes[:1], pilot.step_sizes]))

    if reverse:
        betas, step_sizes = betas[::-1], step_sizes[::-1]
    out = _anneal(
        key_anneal,
        start,
        betas,
        step_sizes[1:],
        factory,
        neg_energy,
        base.log_prob,
        num_mcmc_steps_per_bridge,
        None,
    )
    log_mean, stderr, ess = _weight_summary(out.log_weights)
    log_z = -log_mean if reverse else log_mean
    return AISResult(
        log_z, stderr, ess, out.log_weights, out.positions, betas, out.step_sizes,
        out.acceptance_rate,
    )  # fmt: skip


def ais(
    key: PRNGKey,
    energy_fn: EnergyFn,
    params: PyTree,
    base: Density,
    num_chains: int,
    *,
    betas: Array | None = None,
    num_bridges: int | None = None,
    schedule: str | Callable[[int], Array] = "sigmoid",
    kernel: str | KernelFactory = "mala",
    step_size: float | Array = 0.1,
    num_mcmc_steps_per_bridge: int = 1,
    adapt_step_size: bool = False,
    target_acceptance: float | None = None,
    adaptation_rate: float = 1.0,
    num_pilot_chains: int | None = None,
    num_integration_steps: int = 5,
) -> AISResult:
    """Forward AIS estimate of log Z for ``exp(−E(params, ·))``.

    Args:
      key: PRNG key.
      energy_fn: ``energy_fn(params, x) -> scalar`` for one unbatched ``x``.
      params: the energy's parameters.
      base: a normalised :class:`~jebm.densities.Density` (e.g.
        :func:`jebm.densities.gaussian`, :func:`jebm.densities.uniform_box`).
      num_chains: number of independent AIS chains ``N`` (static, ``>= 2``).
      betas: ``(K + 1,)`` inverse temperatures from 0 to 1 (may be traced; then the
        endpoints are not checked). Alternatively give ``num_bridges``.
      num_bridges: ``K``, with ``schedule``.
      schedule: ``"linear"``, ``"power"`` (p = 4), ``"sigmoid"`` (δ = 4) or a callable
        ``num_bridges -> betas``.
      kernel: a Metropolis-adjusted sampler of :func:`jebm.samplers.by_name`,
        ``"mala"``, ``"rwmh"`` or ``"hmc"`` (identity mass matrix,
        ``num_integration_steps`` leapfrog steps), or any factory
        ``(logdensity_fn, step_size) -> SamplingAlgorithm`` such as
        :func:`jebm.samplers.mala.mala`. Reverse AIS needs it reversible.
      step_size: a scalar or ``(K + 1,)`` per-beta step sizes (traced); with adaptation,
        the initial value.
      num_mcmc_steps_per_bridge: transitions per bridge (static).
      adapt_step_size: tune per-bridge step sizes on an independent pilot run first
        (see the module docstring for why this keeps AIS exact).
      target_acceptance: the pilot's acceptance target; defaults to 0.574 (MALA) and
        0.65 (HMC), required for custom kernels.
      adaptation_rate: ``γ`` in ``log h_k = log h_{k−1} + γ (ā_{k−1} − target)``.
      num_pilot_chains: pilot chains (default ``min(num_chains, 128)``).
      num_integration_steps: leapfrog steps for ``kernel="hmc"``.

    Returns:
      An :class:`AISResult`; ``log_z`` is a stochastic lower bound on log Z.

    Examples:
      >>> import jax, jax.numpy as jnp
      >>> from jebm.energies import gaussian
      >>> from jebm import densities
      >>> from jebm.partition import ais
      >>> target = gaussian(jnp.ones(2), 0.5 * jnp.eye(2))
      >>> out = ais(jax.random.key(0), target.energy_fn, target.params,
      ...           densities.gaussian(jnp.zeros(2), 2.0), 256, num_bridges=50, step_size=0.2)
      >>> out.log_weights.shape
      (256,)

    References:
      Neal, R. M. (2001). Annealed importance sampling. Statistics and Computing 11(2),
      125–139.
    """
    return _run(
        key, energy_fn, params, base, None, num_chains, reverse=False, betas=betas,
        num_bridges=num_bridges, schedule=schedule, kernel=kernel, step_size=step_size,
        num_mcmc_steps_per_bridge=num_mcmc_steps_per_bridge, adapt_step_size=adapt_step_size,
        target_acceptance=target_acceptance, adaptation_rate=adaptation_rate,
        num_pilot_chains=num_pilot_chains, num_integration_steps=num_integration_steps,
    )  # fmt: skip


def reverse_ais(
    key: PRNGKey,
    energy_fn: EnergyFn,
    params: PyTree,
    base: Density,
    samples: Float[Array, "n ..."],
    *,
    betas: Array | None = None,
    num_bridges: int | None = None,
    schedule: str | Callable[[int], Array] = "sigmoid",
    kernel: str | KernelFactory = "mala",
    step_size: float | Array = 0.1,
    num_mcmc_steps_per_bridge: int = 1,
    adapt_step_size: bool = False,
    target_acceptance: float | None = None,
    adaptation_rate: float = 1.0,
    num_pilot_chains: int | None = None,
    num_integration_steps: int = 5,
) -> AISResult:
    """Reverse AIS from target samples: a stochastic *upper* bound on log Z.

    The chains start at ``samples`` (one chain per sample) and anneal from β = 1 to
    β = 0 with the same bridges and kernels as :func:`ais`. With exact target samples
    and reversible kernels, ``E[exp(−log_z)] = 1/Z``, so ``E[log_z] ≥ log Z`` and
    ``P(log_z < log Z − t) ≤ e^{−t}``; paired with :func:`ais` this brackets log Z in
    expectation (bidirectional Monte Carlo). With approximate samples the bound is
    heuristic only.

    Args:
      key: PRNG key.
      energy_fn: ``energy_fn(params, x) -> scalar``.
      params: the energy's parameters.
      base: the normalised :class:`~jebm.densities.Density` the path ends at.
      samples: ``(num_chains, *event)`` draws from ``exp(−E)/Z``, exact where possible.
      betas, num_bridges, schedule, kernel, step_size, num_mcmc_steps_per_bridge,
      adapt_step_size, target_acceptance, adaptation_rate, num_pilot_chains,
      num_integration_steps: as in :func:`ais` (``betas`` and ``step_size`` are given
        in forward order; the pilot, when adapting, anneals forward from the base so
        the step sizes do not depend on ``samples``).

    Returns:
      An :class:`AISResult` whose ``log_z = −logmeanexp(log w_rev)``, ``log_weights``
      are the reverse log-weights and ``betas``/``step_sizes`` are in visiting order
      (from 1 to 0).

    References:
      Burda, Y., Grosse, R. B. and Salakhutdinov, R. (2015). Accurate and conservative
      estimates of MRF log-likelihood using reverse annealing. AISTATS.

      Grosse, R. B., Ghahramani, Z. and Adams, R. P. (2015). Sandwiching the marginal
      likelihood using bidirectional Monte Carlo. arXiv:1511.02543.
    """
    samples = jnp.asarray(samples)
    if samples.ndim < 1:
        raise ValueError("samples must have a leading chain axis (num_chains, *event).")
    return _run(
        key, energy_fn, params, base, samples, samples.shape[0], reverse=True, betas=betas,
        num_bridges=num_bridges, schedule=schedule, kernel=kernel, step_size=step_size,
        num_mcmc_steps_per_bridge=num_mcmc_steps_per_bridge, adapt_step_size=adapt_step_size,
        target_acceptance=target_acceptance, adaptation_rate=adaptation_rate,
        num_pilot_chains=num_pilot_chains, num_integration_steps=num_integration_steps,
    )  # fmt: skip
