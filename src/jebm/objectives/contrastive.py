"""Contrastive divergence: CD-k and persistent CD with a replay buffer.

The maximum-likelihood gradient of an energy-based model is

    ∇θ NLL = E_data[∇θ E(x⁺)] − E_model[∇θ E(x⁻)],

so the surrogate loss ``mean E(x⁺) − mean E(stop_gradient(x⁻))`` has it as its
gradient once negatives ``x⁻`` approximately follow the model. The negatives come
from ``num_steps`` transitions of *any* :class:`~jebm.samplers.SamplingAlgorithm`
(ULA, MALA, HMC, a BlackJAX kernel, ...) built by the ``sampler`` factory,
``sampler(logdensity_fn) -> SamplingAlgorithm``, e.g.
``functools.partial(jebm.samplers.mala, step_size=0.05)``. All sampler options
(step size, noise scale, gradient clipping, clamping to a box, Metropolis
correction) are options of that factory. The chains run on
``stop_gradient(params)``; one chain per negative, ``vmap`` over chains.

* CD-k (:func:`cd_loss`) starts the chains at the data batch.
* Persistent CD (:func:`pcd_loss`) starts them from a replay buffer carried in the
  objective state (see :mod:`jebm.objectives.replay`) and writes them back.

Opt-in extras, all off by default:

* ``target_acceptance=δ`` (PCD only) adapts the sampler's step size *during training*
  towards mean acceptance ``δ``: the log step size is a traced value in the objective
  state (:class:`AdaptiveStepState`), updated after every loss evaluation by the
  Robbins–Monro step ``log h ← log h + rate · (ᾱ − δ)`` (ᾱ the mean acceptance of that
  evaluation's chains), so a changing step never recompiles. A constant rate (not dual
  averaging's decaying one) is used because the model, and with it the right step size,
  keeps changing. The sampler factory is called as ``sampler(logdensity_fn,
  step_size=h)``, so ``functools.partial(jebm.samplers.mala, step_size=h0)`` works and
  ``h0`` is the initial value.

* ``persist_fields=("momentum",)`` (PCD only) keeps named fields of the sampler's state
  in the replay buffer next to the positions, so underdamped Langevin chains carry their
  momentum from one training step to the next (see :func:`pcd`).

* ``energy_l2 = α > 0`` adds ``α (mean E(x⁺)² + mean E(x⁻)²)`` (Du & Mordatch 2019),
  which keeps energies near zero.
* ``pathwise=True`` adds the KL term of Du et al. (2021). The first ``num_steps − 1``
  steps run on ``stop_gradient(params)`` as usual; the *last* step is rebuilt with
  the live ``params``, started from ``stop_gradient(x_{k−1})`` with the same random
  numbers, giving ``x⁻(θ)``. The added loss is ``kl_weight · mean E(stop_gradient(θ),
  x⁻(θ))``: its gradient flows *only* through the dependence of the last step's output
  position on ``θ`` (for Langevin, through ``h ∇ₓ log p_θ(x_{k−1})``), never through
  the energy's own parameters, the earlier steps or the starting point. For a
  Metropolis-adjusted sampler the accept decision is a piecewise constant of ``θ``:
  an accepted step differentiates through the proposal, a rejected step contributes
  zero. The negatives' *values* are identical with and without ``pathwise``, and the
  CD term still uses ``stop_gradient(x⁻)``. The entropy term of Du et al. is not
  included.

References:
  Hinton, G. E. (2002). Training products of experts by minimizing contrastive
  divergence. Neural Computation 14(8), 1771–1800.

  Tieleman, T. (2008). Training restricted Boltzmann machines using approximations
  to the likelihood gradient. ICML.

  Du, Y. and Mordatch, I. (2019). Implicit generation and modeling with energy-based
  models. NeurIPS.

  Du, Y., Li, S., Tenenbaum, J. and Mordatch, I. (2021). Improved contrastive
  divergence training of energy-based models. ICML.
"""

from collections.abc import Callable
from typing import NamedTuple

import jax
import jax.numpy as jnp

from jebm._validate import check_float, check_int, is_static_number
from jebm.densities import Density
from jebm.energy import batch_energy, logdensity_fn
from jebm.objectives.base import Objective, num_rows, stateless
from jebm.objectives.replay import (
    ReplayBuffer,
    _rows_where,
    _uniform_like,
    init_replay_buffer,
    sample_replay_buffer,
    update_replay_buffer,
)
from jebm.samplers.base import SamplingAlgorithm, tree_vdot
from jebm.samplers.runner import run_chains
from jebm.types import Array, ArrayTree, EnergyFn, LogDensityFn, PRNGKey, PyTree

__all__ = ["cd_loss", "cd", "pcd_loss", "pcd", "AdaptiveStepState"]

SamplerFactory = Callable[[LogDensityFn], SamplingAlgorithm]


class AdaptiveStepState(NamedTuple):
    """PCD state with an adapted step size (``pcd(..., target_acceptance=δ)``)."""

    buffer: ReplayBuffer
    log_step_size: Array  # float32 scalar: log h, updated after every loss evaluation


def _check_adaptation(sampler, target_acceptance, adaptation_rate, initial_step_size):
    """The initial step size (from the argument or the partial's ``step_size``), or None."""
    if target_acceptance is None:
        return None
    target = check_float("target_acceptance", target_acceptance)
    if is_static_number(target) and not target < 1.0:
        raise ValueError(f"target_acceptance must be in (0, 1), got {target_acceptance!r}.")
    check_float("adaptation_rate", adaptation_rate)
    if initial_step_size is None:
        initial_step_size = getattr(sampler, "keywords", {}).get("step_size")
    if initial_step_size is None:
        raise ValueError(
            "target_acceptance needs an initial step size: pass initial_step_size, or a "
            "sampler such as functools.partial(jebm.samplers.mala, step_size=0.05)."
        )
    return check_float("initial_step_size", initial_step_size)


def _is_concrete(value) -> bool:
    return not isinstance(value, jax.core.Tracer)


def _check_options(sampler, num_steps, pathwise, kl_weight, energy_l2) -> None:
    if not callable(sampler):
        raise ValueError(
            "sampler must be a callable logdensity_fn -> SamplingAlgorithm, e.g. "
            f"functools.partial(jebm.samplers.mala, step_size=0.05); got {sampler!r}."
        )
    check_int("num_steps", num_steps)
    if not isinstance(pathwise, bool):
        raise ValueError(f"pathwise must be a bool, got {pathwise!r}.")
    check_float("energy_l2", energy_l2, allow_zero=True)
    if _is_concrete(kl_weight) and not pathwise and float(kl_weight) != 1.0:
        raise ValueError(f"kl_weight={kl_weight!r} has no effect without pathwise=True.")


def _info_metrics(info: ArrayTree, weight: float, num_leading: int) -> dict[str, Array]:
    """Means of the per-chain scalar info fields, keyed ``sampler/<field>``."""
    out = {}
    for path, leaf in jax.tree_util.tree_leaves_with_path(info):
        leaf = jnp.asarray(leaf)
        if leaf.ndim != num_leading:  # keep per-chain scalars only (rates, flags)
            continue
        name = jax.tree_util.keystr(path).lstrip(".").strip("[]'\"")
        out[f"sampler/{name}"] = weight * jnp.mean(leaf.astype(jnp.float32))
    return out


def _merge_metrics(a: dict, b: dict) -> dict:
    return {k: a.get(k, 0.0) + b.get(k, 0.0) for k in a.keys() | b.keys()}


# Fields every sampler state recomputes from the position (and the parameters): never persisted.
_CACHED_FIELDS = ("position", "logdensity", "logdensity_grad")


def _check_persist_fields(persist_fields) -> tuple[str, ...]:
    ok = isinstance(persist_fields, tuple) and all(isinstance(f, str) for f in persist_fields)
    if not ok or len(set(persist_fields)) != len(persist_fields):
        raise ValueError(
            f"persist_fields must be a tuple of distinct field names, got {persist_fields!r}."
        )
    cached = sorted(set(persist_fields) & set(_CACHED_FIELDS))
    if cached:
        raise ValueError(
            f"persist_fields cannot name {cached}: the position is always kept, and the "
            "log-density and its gradient are recomputed for the current parameters."
        )
    return persist_fields


def _placeholder_logdensity(x: ArrayTree) -> Array:
    """``log N(x; 0, I)`` up to a constant: the target ``pcd``'s ``init`` builds its sampler on."""
    return -0.5 * tree_vdot(x, x)


def _state_fields(states, names: tuple[str, ...]) -> dict[str, ArrayTree]:
    """The named fields of a (batched) sampler state, with jebm's error for a missing one."""
    fields = getattr(states, "_fields", ())
    missing = [name for name in names if name not in fields]
    if missing:
        raise ValueError(
            f"persist_fields names {missing}, which the sampler's state "
            f"({type(states).__name__}, fields {fields}) does not have."
        )
    return {name: getattr(states, name) for name in names}


def _start_states(
    key: PRNGKey, algorithm: SamplingAlgorithm, positions: ArrayTree, stored: dict, restart: Array
):
    """States at ``positions`` carrying the ``stored`` fields, except where ``restart``.

    ``init(position, rng_key)`` computes the caches for the current parameters and, for
    the restarted chains, the fresh fields (underdamped Langevin draws its momentum from
    N(0, I) when given a key); the other chains get their stored fields back. Persisted
    fields therefore must not enter the caches (the momentum does not).
    """
    states = jax.vmap(algorithm.init)(positions, jax.random.split(key, num_rows(positions)))
    fresh = _state_fields(states, tuple(stored))
    kept = {
        name: _rows_where(restart, fresh[name], jax.tree.map(
            lambda s, f: s.astype(f.dtype), stored[name], fresh[name]))
        for name in stored
    }
    return states._replace(**kept)


def _negatives(
    key: PRNGKey,
    params: PyTree,
    positions: ArrayTree,
    *,
    energy_fn: EnergyFn,
    sampler: SamplerFactory,
    num_steps: int,
    pathwise: bool,
    persisted: tuple[PRNGKey, dict, Array] | None = None,
) -> tuple[ArrayTree, ArrayTree | None, dict[str, Array], dict[str, ArrayTree] | None]:
    """Run the chains; return ``(x⁻ stopped, x⁻(θ) or None, sampler metrics, fields)``.

    Step ``t`` of chain ``c`` uses the key stream of :func:`run_chains`, so the
    last step rebuilt for ``pathwise`` replays exactly the random numbers it would
    have used, and the negatives' values do not depend on ``pathwise``.

    ``persisted = (key, stored, restart)`` starts the chains from states carrying the
    ``stored`` sampler-state fields (fresh ones where ``restart``, see
    :func:`_start_states`); ``fields`` are then those fields after the last step, else
    ``None``.
    """
    frozen = jax.lax.stop_gradient(params)
    num_chains = num_rows(positions)
    frozen_alg = sampler(logdensity_fn(energy_fn, frozen))
    num_frozen = num_steps - 1 if pathwise else num_steps
    names = None if persisted is None else tuple(persisted[1])
    start = positions
    if persisted is not None:
        init_key, stored, restart = persisted
        start = _start_states(init_key, frozen_alg, positions, stored, restart)
    metrics, fields = {}, None
    if persisted is not None and not num_frozen:
        positions, fields = start.position, _state_fields(start, names)
    if num_frozen:
        result = run_chains(
            key,
            frozen_alg,
            start,
            num_frozen,
            thin=num_frozen,
            keep_trace=False,
            transform=lambda state: (),
        )
        positions = result.state.position
        metrics = _info_metrics(result.info, num_frozen / num_steps, 2)
        if persisted is not None:
            fields = _state_fields(result.state, names)
    if not pathwise:
        return positions, None, metrics, fields

    live_alg = sampler(logdensity_fn(energy_fn, params))
    states = jax.vmap(live_alg.init)(jax.lax.stop_gradient(positions))
    if persisted is not None:
        states = states._replace(**jax.lax.stop_gradient(fields))
    keys = jax.random.split(jax.random.fold_in(key, num_steps - 1), num_chains)
    states, info = jax.vmap(live_alg.step)(keys, states)
    live = states.position
    if persisted is not None:
        fields = jax.lax.stop_gradient(_state_fields(states, names))
    metrics = _merge_metrics(metrics, _info_metrics(info, 1.0 / num_steps, 1))
    return jax.lax.stop_gradient(live), live, metrics, fields


def _contrastive(
    params: PyTree,
    positives: ArrayTree,
    negatives: ArrayTree,
    live_negatives: ArrayTree | None,
    *,
    energy_fn: EnergyFn,
    kl_weight: float | Array,
    energy_l2: float | Array,
) -> tuple[Array, dict[str, Array]]:
    """The CD surrogate plus the optional KL and energy-magnitude terms."""
    e_pos = batch_energy(energy_fn, params, positives)
    e_neg = batch_energy(energy_fn, params, negatives)
    cd_term = jnp.mean(e_pos) - jnp.mean(e_neg)
    metrics = {
        "cd": cd_term,
        "energy_pos": jnp.mean(e_pos),
        "energy_neg": jnp.mean(e_neg),
    }
    loss = cd_term
    if live_negatives is not None:
        kl = jnp.mean(batch_energy(energy_fn, jax.lax.stop_gradient(params), live_negatives))
        loss = loss + kl_weight * kl
        metrics["kl"] = kl
    if not (_is_concrete(energy_l2) and float(energy_l2) == 0.0):
        reg = jnp.mean(e_pos**2) + jnp.mean(e_neg**2)
        loss = loss + energy_l2 * reg
        metrics["energy_l2"] = reg
    metrics["loss"] = loss
    return loss, metrics


def cd_loss(
    params: PyTree,
    key: PRNGKey,
    batch: ArrayTree,
    *,
    energy_fn: EnergyFn,
    sampler: SamplerFactory,
    num_steps: int,
    pathwise: bool = False,
    kl_weight: float | Array = 1.0,
    energy_l2: float | Array = 0.0,
) -> tuple[Array, dict[str, Array]]:
    """Contrastive divergence CD-k: negatives from ``num_steps`` sampler steps from the data.

    ``loss = mean E(x⁺) − mean E(stop_gradient(x⁻))`` (+ the opt-in terms described
    in :mod:`jebm.objectives.contrastive`).

    Args:
      params: energy parameters.
      key: PRNG key for the chains.
      batch: data ``(n, *event)``; each example starts one chain.
      energy_fn: ``energy_fn(params, x) -> scalar`` for one unbatched ``x``.
      sampler: ``logdensity_fn -> SamplingAlgorithm``.
      num_steps: sampler steps ``k`` per loss evaluation (static).
      pathwise: add Du et al.'s (2021) KL term, differentiating through the last step.
      kl_weight: weight of the KL term (only with ``pathwise``; setting it otherwise raises).
      energy_l2: weight ``α`` of ``α (mean E⁺² + mean E⁻²)``; 0 (off) by default.

    Returns:
      ``(loss, metrics)`` with metrics ``loss``, ``cd``, ``energy_pos``, ``energy_neg``,
      ``kl`` and ``energy_l2`` (when on), and ``sampler/<field>``: the mean of each
      per-chain info field over chains and steps (e.g. ``sampler/acceptance_rate``).

    Examples:
      >>> import functools, jax, jax.numpy as jnp
      >>> from jebm.objectives import cd_loss
      >>> from jebm.samplers import mala
      >>> energy_fn = lambda p, x: 0.5 * p * jnp.sum(x**2)
      >>> loss, metrics = cd_loss(
      ...     1.0, jax.random.key(0), jnp.zeros((4, 2)), energy_fn=energy_fn,
      ...     sampler=functools.partial(mala, step_size=0.1), num_steps=3)
      >>> loss.shape
      ()

    References:
      Hinton (2002); Du and Mordatch (2019); Du, Li, Tenenbaum and Mordatch (2021).
    """
    _check_options(sampler, num_steps, pathwise, kl_weight, energy_l2)
    negatives, live, sampler_metrics, _ = _negatives(
        key,
        params,
        batch,
        energy_fn=energy_fn,
        sampler=sampler,
        num_steps=num_steps,
        pathwise=pathwise,
    )
    loss, metrics = _contrastive(
        params, batch, negatives, live, energy_fn=energy_fn, kl_weight=kl_weight,
        energy_l2=energy_l2,
    )
    return loss, {**metrics, **sampler_metrics}


def cd(
    energy_fn: EnergyFn,
    sampler: SamplerFactory,
    num_steps: int,
    *,
    pathwise: bool = False,
    kl_weight: float | Array = 1.0,
    energy_l2: float | Array = 0.0,
) -> Objective:
    """CD-k as a stateless :class:`~jebm.objectives.base.Objective`; see :func:`cd_loss`.

    Args:
      energy_fn: ``energy_fn(params, x) -> scalar`` for one unbatched ``x``.
      sampler: ``logdensity_fn -> SamplingAlgorithm``.
      num_steps: sampler steps ``k`` per loss evaluation (static).
      pathwise: add Du et al.'s (2021) KL term, differentiating through the last step.
      kl_weight: weight of the KL term (only with ``pathwise``).
      energy_l2: weight ``α`` of ``α (mean E⁺² + mean E⁻²)``; 0 (off) by default.

    Returns:
      An ``Objective`` whose loss is :func:`cd_loss` with these settings.

    Examples:
      >>> import functools
      >>> import jax.numpy as jnp
      >>> from jebm.objectives import cd
      >>> from jebm.samplers import mala
      >>> objective = cd(lambda p, x: 0.5 * p * jnp.sum(x**2),
      ...                functools.partial(mala, step_size=0.1), num_steps=5)
    """
    _check_options(sampler, num_steps, pathwise, kl_weight, energy_l2)

    def loss(params, key, batch):
        return cd_loss(
            params,
            key,
            batch,
            energy_fn=energy_fn,
            sampler=sampler,
            num_steps=num_steps,
            pathwise=pathwise,
            kl_weight=kl_weight,
            energy_l2=energy_l2,
        )

    return stateless(loss)


def pcd_loss(
    params: PyTree,
    key: PRNGKey,
    batch: ArrayTree,
    state: ReplayBuffer,
    *,
    energy_fn: EnergyFn,
    sampler: SamplerFactory,
    num_steps: int,
    reinit_prob: float | Array = 0.05,
    init_density: Density | None = None,
    num_chains: int | None = None,
    pathwise: bool = False,
    kl_weight: float | Array = 1.0,
    energy_l2: float | Array = 0.0,
    target_acceptance: float | Array | None = None,
    adaptation_rate: float | Array = 0.05,
) -> tuple[Array, tuple[dict[str, Array], ReplayBuffer | AdaptiveStepState]]:
    """Persistent CD: negatives from chains kept in a replay buffer between steps.

    Draws ``num_chains`` distinct buffer entries, re-initialises each with
    probability ``reinit_prob`` from ``init_density``, runs ``num_steps`` sampler steps
    on ``stop_gradient(params)`` and writes the final positions back. The loss is that
    of :func:`cd_loss` with these negatives.

    A buffer that persists sampler-state fields (``buffer.persisted``, made by
    ``pcd(..., persist_fields=...)``) starts each drawn chain from ``init(position,
    rng_key)`` with its stored fields put back (a re-initialised chain keeps the fresh
    ones ``init`` drew), and writes the fields after the last step back with the
    positions. So with ``reinit_prob=0`` and fixed parameters, successive evaluations
    continue one chain exactly: ``tests/objectives/test_persistent_state.py`` checks
    that ``K`` evaluations of ``k`` underdamped steps equal one run of ``K·k`` steps.
    Key stream: ``k_buffer, k_chains = split(key)`` (``k_buffer`` draws the entries and
    restarts, ``k_chains`` is the :func:`~jebm.samplers.run_chains` key of the chains);
    when persisting, ``k_buffer, k_chains, k_init = split(key, 3)`` and
    ``split(k_init, num_chains)`` are the ``init`` keys.

    Args:
      params: energy parameters.
      key: PRNG key.
      batch: data ``(n, *event)``.
      state: the :class:`~jebm.objectives.replay.ReplayBuffer`.
      energy_fn: ``energy_fn(params, x) -> scalar``.
      sampler: ``logdensity_fn -> SamplingAlgorithm``.
      num_steps: sampler steps per loss evaluation (static).
      reinit_prob: probability that a drawn chain restarts from ``init_density``.
      init_density: a :class:`~jebm.densities.Density` chains restart from (its
        ``sample``); default uniform on ``[-1, 1]^event`` with the buffer's event shapes
        and dtypes.
      num_chains: negatives per step (static); default the batch size.
      pathwise: add the KL term of Du et al. (2021), see :func:`cd_loss`.
      kl_weight: weight of the KL term (only with ``pathwise``; setting it otherwise raises).
      energy_l2: weight ``α`` of ``α (mean E⁺² + mean E⁻²)``; 0 (off) by default.
      target_acceptance: if not ``None``, adapt the step size towards this mean
        acceptance; ``state`` is then an :class:`AdaptiveStepState` and ``sampler`` is
        called as ``sampler(logdensity_fn, step_size=h)`` (a sampler whose info has
        ``acceptance_rate``: MALA, HMC, RWMH, …).
      adaptation_rate: the constant Robbins–Monro rate on ``log h``.

    Returns:
      ``(loss, (metrics, new_state))``: the :class:`~jebm.objectives.base.Objective`
      signature. Metrics are those of :func:`cd_loss` plus ``reinit_fraction`` (and
      ``sampler/step_size``, the step used, when adapting).

    References:
      Tieleman (2008); Du and Mordatch (2019).
    """
    _check_options(sampler, num_steps, pathwise, kl_weight, energy_l2)
    if _is_concrete(reinit_prob) and not 0.0 <= float(reinit_prob) <= 1.0:
        raise ValueError(f"reinit_prob must be in [0, 1], got {reinit_prob!r}.")
    adapting = target_acceptance is not None
    expected = AdaptiveStepState if adapting else ReplayBuffer
    if not isinstance(state, expected):
        raise ValueError(
            f"pcd_loss needs a {expected.__name__} state"
            f"{' (target_acceptance is set)' if adapting else ''}, got {type(state).__name__}."
        )
    buffer = state.buffer if adapting else state
    if adapting:
        step_size = jnp.exp(jax.lax.stop_gradient(state.log_step_size))
        factory = sampler
        sampler = lambda ld: factory(ld, step_size=step_size)  # noqa: E731
    num_chains = num_rows(batch) if num_chains is None else num_chains
    init_density = _uniform_like(buffer.samples) if init_density is None else init_density
    persisting = buffer.persisted is not None
    k_buffer, k_chains, *k_init = jax.random.split(key, 3 if persisting else 2)
    positions, indices, reinit = sample_replay_buffer(
        k_buffer, buffer, num_chains, reinit_prob=reinit_prob, init_density=init_density
    )
    persisted = None
    if persisting:
        stored = jax.tree.map(lambda leaf: leaf[indices], buffer.persisted)
        persisted = (k_init[0], stored, reinit)
    negatives, live, sampler_metrics, fields = _negatives(
        k_chains,
        params,
        positions,
        energy_fn=energy_fn,
        sampler=sampler,
        num_steps=num_steps,
        pathwise=pathwise,
        persisted=persisted,
    )
    loss, metrics = _contrastive(
        params, batch, negatives, live, energy_fn=energy_fn, kl_weight=kl_weight,
        energy_l2=energy_l2,
    )
    reinit_fraction = jnp.mean(reinit.astype(jnp.float32))
    metrics = {**metrics, **sampler_metrics, "reinit_fraction": reinit_fraction}
    new_buffer = update_replay_buffer(buffer, indices, negatives, fields)
    if not adapting:
        return loss, (metrics, new_buffer)
    if "sampler/acceptance_rate" not in metrics:
        raise ValueError(
            "target_acceptance needs a sampler whose info has acceptance_rate (MALA, HMC, "
            "RWMH, ...); this one has none."
        )
    rate = jax.lax.stop_gradient(metrics["sampler/acceptance_rate"])
    log_step = state.log_step_size + adaptation_rate * (rate - target_acceptance)
    metrics["sampler/step_size"] = step_size
    return loss, (metrics, AdaptiveStepState(new_buffer, log_step.astype(jnp.float32)))


def pcd(
    energy_fn: EnergyFn,
    sampler: SamplerFactory,
    num_steps: int,
    *,
    buffer_size: int = 10_000,
    reinit_prob: float | Array = 0.05,
    init_density: Density | None = None,
    num_chains: int | None = None,
    pathwise: bool = False,
    kl_weight: float | Array = 1.0,
    energy_l2: float | Array = 0.0,
    target_acceptance: float | None = None,
    adaptation_rate: float = 0.05,
    initial_step_size: float | None = None,
    persist_fields: tuple[str, ...] = (),
) -> Objective:
    """Persistent CD as an :class:`~jebm.objectives.base.Objective`; see :func:`pcd_loss`.

    ``init(key, batch)`` fills a buffer of ``buffer_size`` entries from
    ``init_density`` (default uniform on ``[-1, 1]`` with the batch's event shape and
    dtype); the buffer is the objective state. With ``target_acceptance`` the state is
    an :class:`AdaptiveStepState` (the buffer and ``log h``, starting at
    ``initial_step_size``, default the sampler partial's ``step_size``).

    ``persist_fields`` names fields of the sampler's state that the buffer keeps per
    chain next to the position, e.g. ``("momentum",)`` for
    :func:`~jebm.samplers.underdamped_langevin`, whose chains then keep their momentum
    across training steps instead of restarting from zero momentum each step. ``init``
    fills them from ``sampler(...).init(position, rng_key)`` for each entry (a fresh
    N(0, I) momentum), as :func:`pcd_loss` does for re-initialised chains. The fields'
    initial values must not depend on the log-density: ``init`` builds the sampler on a
    standard normal placeholder, as it has no parameters yet. Off (``()``) by default,
    and then the buffer and each step are exactly as without the option.

    Args:
      energy_fn: ``energy_fn(params, x) -> scalar`` for one unbatched ``x``.
      sampler: ``logdensity_fn -> SamplingAlgorithm``.
      num_steps: sampler steps per loss evaluation (static).
      buffer_size: the number of persistent chains in the buffer.
      reinit_prob: probability that a drawn chain restarts from ``init_density``.
      init_density: a :class:`~jebm.densities.Density` the buffer is filled from and
        chains restart from; default uniform on ``[-1, 1]^event``.
      num_chains: negatives per step (static); default the batch size.
      pathwise: add the KL term of Du et al. (2021), see :func:`cd_loss`.
      kl_weight: weight of the KL term (only with ``pathwise``).
      energy_l2: weight ``α`` of ``α (mean E⁺² + mean E⁻²)``; 0 (off) by default.
      target_acceptance: if not ``None``, adapt the step size towards this mean
        acceptance (see :func:`pcd_loss`).
      adaptation_rate: the constant Robbins–Monro rate on ``log h``.
      initial_step_size: the starting step size when adapting; default the sampler
        partial's ``step_size``.
      persist_fields: sampler-state fields the buffer keeps per chain (static), e.g.
        ``("momentum",)``; not ``position``, ``logdensity`` or ``logdensity_grad``.

    Returns:
      An ``Objective`` whose state is the replay buffer (or an ``AdaptiveStepState``)
      and whose loss is :func:`pcd_loss` with these settings.

    Examples:
      >>> import functools, jax, jax.numpy as jnp
      >>> from jebm.objectives import pcd
      >>> from jebm.samplers import mala
      >>> objective = pcd(lambda p, x: 0.5 * p * jnp.sum(x**2),
      ...                 functools.partial(mala, step_size=0.1), num_steps=5, buffer_size=64)
      >>> state = objective.init(jax.random.key(0), jnp.zeros((8, 2)))
      >>> state.samples.shape
      (64, 2)
      >>> loss, (metrics, state) = objective.loss(1.0, jax.random.key(1), jnp.zeros((8, 2)), state)
    """
    _check_options(sampler, num_steps, pathwise, kl_weight, energy_l2)
    check_int("buffer_size", buffer_size)
    valid_chains = isinstance(num_chains, int) and 1 <= num_chains <= buffer_size
    if num_chains is not None and not valid_chains:
        raise ValueError(f"num_chains must be an int in [1, buffer_size], got {num_chains!r}.")
    initial = _check_adaptation(sampler, target_acceptance, adaptation_rate, initial_step_size)
    persist_fields = _check_persist_fields(persist_fields)

    def init(key: PRNGKey, batch: ArrayTree) -> ReplayBuffer | AdaptiveStepState:
        base = _uniform_like(batch) if init_density is None else init_density
        if persist_fields:
            key, k_fields = jax.random.split(key)
        buffer = init_replay_buffer(key, base, buffer_size)
        if persist_fields:
            tunables = {} if initial is None else {"step_size": initial}
            algorithm = sampler(_placeholder_logdensity, **tunables)
            keys = jax.random.split(k_fields, buffer_size)
            states = jax.vmap(algorithm.init)(buffer.samples, keys)
            buffer = buffer._replace(persisted=_state_fields(states, persist_fields))
        if initial is None:
            return buffer
        return AdaptiveStepState(buffer, jnp.log(jnp.float32(initial)))

    def loss(params, key, batch, state):
        return pcd_loss(
            params,
            key,
            batch,
            state,
            energy_fn=energy_fn,
            sampler=sampler,
            num_steps=num_steps,
            reinit_prob=reinit_prob,
            init_density=init_density,
            num_chains=num_chains,
            pathwise=pathwise,
            kl_weight=kl_weight,
            energy_l2=energy_l2,
            target_acceptance=target_acceptance,
            adaptation_rate=adaptation_rate,
        )

    return Objective(init=init, loss=loss)
