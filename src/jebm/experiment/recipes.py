"""Objective recipes: how each ``objective.name`` is built, what it trains, how it is sampled.

:data:`OBJECTIVES` maps every objective name to an :class:`ObjectiveRecipe`: its builder,
the params it trains, the model energy it yields, how the trained model is sampled (plain
chains, annealed Langevin down an NCSN ladder, or recovery sampling down a DRL ladder),
how those draws are described, and what it adds to a run's summary. Whatever differs
between objectives lives here, so no other module tests an objective's name.
"""

from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp

from jebm import densities
from jebm.densities import Density
from jebm.energy import logdensity_fn
from jebm.experiment.components import JOINT_MODELS, build_sampler, fit_density
from jebm.experiment.devices import chain_spread
from jebm.objectives import (
    cd,
    denoising_score_matching,
    energy_discrepancy,
    exact_score_matching,
    jem,
    nce,
    nce_params,
    pcd,
    recovery_likelihood,
    recovery_sample,
    sliced_score_matching,
)
from jebm.samplers import annealed_langevin, run_chains
from jebm.types import Array, EnergyFn, PRNGKey, PyTree

__all__ = ["ObjectiveRecipe", "OBJECTIVES", "build_objective", "initial_density",
           "initial_positions"]  # fmt: skip


# ------------------------------------------------------------------ where chains start


def initial_density(config, data, base: Density | None) -> Density:
    """Where chains start, in training (PCD's buffer and restarts) and in sampling:
    ``model.base`` if the model has one, else uniform on the box
    ``[objective.init_low, objective.init_high]``.

    Args:
      config: the run's config.
      data: the run's :class:`~jebm.experiment.Data` (its event shape).
      base: the fitted base density, or ``None``.

    Returns:
      A :class:`~jebm.densities.Density`.
    """
    if base is not None:
        return base
    obj = config.objective
    return densities.uniform_box(obj.init_low, obj.init_high, data.event_shape)


def initial_positions(run, key: PRNGKey, n: int) -> Array:
    """Where sampling chains start: draws of ``model.base`` if the model has one; with a
    noise ladder, the mean training point plus ``σ_max`` Gaussian noise; else uniform in
    the box ``[objective.init_low, objective.init_high]``.

    The ladder's start approximates the data smoothed at ``σ_max`` (each data point plus
    ``N(0, σ_max² I)``) by the data's mean plus that noise: it uses no single training
    point, and for ``σ_max`` near the data's spread the difference is washed out by the
    first levels.

    Args:
      run: the :class:`~jebm.experiment.Run`.
      key: PRNG key of the draws.
      n: the number of chains (static).

    Returns:
      ``(n, *event_shape)`` starting positions.
    """
    ladder = run.config.objective.ladder
    if ladder is not None and run.base is None:
        points = run.data.train if run.data.train is not None else run.data.sample(
            jax.random.fold_in(key, 1), 10_000)
        mean = jnp.mean(points, axis=0, keepdims=True)
        return mean + max(ladder) * jax.random.normal(key, (n, *run.data.event_shape))
    return initial_density(run.config, run.data, run.base).sample(key, n)


# ----------------------------------------------------------------------------- builders


def _cd(config, energy_fn, sampler, data, noise_key, joint, base):
    return cd(energy_fn, sampler, config.sampler.num_steps, energy_l2=config.objective.energy_l2)


def _pcd(config, energy_fn, sampler, data, noise_key, joint, base):
    obj = config.objective
    return pcd(energy_fn, sampler, config.sampler.num_steps, buffer_size=obj.buffer_size,
               reinit_prob=obj.reinit_prob, init_density=initial_density(config, data, base),
               num_chains=obj.num_chains or None, energy_l2=obj.energy_l2,
               target_acceptance=config.sampler.target_acceptance,
               initial_step_size=config.sampler.step_size)


def _esm(config, energy_fn, sampler, data, noise_key, joint, base):
    return exact_score_matching(energy_fn)


def _ssm(config, energy_fn, sampler, data, noise_key, joint, base):
    obj = config.objective
    return sliced_score_matching(energy_fn, num_projections=obj.num_projections,
                                 variance_reduced=obj.variance_reduced)


def _levels(config) -> dict:
    """``sigma=`` (one level) or ``sigmas=`` (the ladder) of ``config.objective``."""
    ladder = config.objective.ladder
    if ladder is None:
        return {"sigma": config.objective.sigma}
    return {"sigmas": jnp.asarray(ladder, jnp.float32)}


def _dsm(config, energy_fn, sampler, data, noise_key, joint, base):
    return denoising_score_matching(energy_fn, **_levels(config))


def _nce(config, energy_fn, sampler, data, noise_key, joint, base):
    noise = fit_density(data, config.objective.noise, noise_key, "objective.noise")
    return nce(energy_fn, noise, noise_ratio=config.objective.noise_ratio)


def _ed(config, energy_fn, sampler, data, noise_key, joint, base):
    obj = config.objective
    return energy_discrepancy(energy_fn, sigma=obj.sigma, num_negatives=obj.num_negatives,
                              stabilizer=obj.stabilizer)


def _drl(config, energy_fn, sampler, data, noise_key, joint, base):
    levels = _levels(config)
    form = {"form": config.objective.drl_form} if "sigmas" in levels else {}
    return recovery_likelihood(energy_fn, num_steps=config.sampler.num_steps,
                               step_scale=config.objective.step_scale, **levels, **form)


def _jem(config, energy_fn, sampler, data, noise_key, joint, base):
    return jem(_pcd(config, energy_fn, sampler, data, noise_key, joint, base), joint.logits_fn,
               generative_weight=config.objective.generative_weight)


# ------------------------------------------------------------------- sampling a model


# ------------------------------------------------------------ sampling a trained model


def _sample_chains(run, params, key, num_chains: int, num_steps: int, sampler):
    """The run's sampler (or ``sampler``) on ``run.model_energy_fn`` from the initial
    positions: energy models."""
    spread = chain_spread(num_chains)

    def draw(key, params):  # one program: the starting draws and the chains
        algorithm = (sampler or run.sampler)(logdensity_fn(run.model_energy_fn, params))
        k_init, k_run = jax.random.split(key)
        x0 = spread(initial_positions(run, k_init, num_chains))
        return run_chains(k_run, algorithm, x0, num_steps, keep_trace=False).state.position

    return jax.jit(draw)(key, params)


def _steps_per_level(num_steps: int, num_levels: int) -> int:
    return max(1, num_steps // num_levels)


def _recovery_levels(objective) -> int:
    """How many levels a DRL ladder's sampler runs chains at: all of them, except in the
    diffusion form, whose top level has no conditional (``L − 1``)."""
    diffusion = objective.drl_form == "diffusion"
    return len(objective.ladder) - 1 if diffusion else len(objective.ladder)


def _sample_annealed(run, params, key, num_chains: int, num_steps: int, sampler):
    """A noise ladder trained by DSM (NCSN): annealed Langevin dynamics down the ladder,
    ``num_steps // L`` steps per level with ``ε = sampler.step_size`` at ``σ_min``."""
    ladder = run.config.objective.ladder
    if ladder is None or sampler is not None:
        return _sample_chains(run, params, key, num_chains, num_steps, sampler)
    per_level = _steps_per_level(num_steps, len(ladder))
    algorithm = annealed_langevin(logdensity_fn(run.energy_fn, params),
                                  jnp.asarray(ladder, jnp.float32), per_level,
                                  run.config.sampler.step_size)
    k_init, k_run = jax.random.split(key)
    x0 = initial_positions(run, k_init, num_chains)
    result = jax.jit(lambda k, x: run_chains(k, algorithm, x, per_level * len(ladder),
                                             keep_trace=False))(k_run, x0)
    return result.state.position


def _sample_recovery(run, params, key, num_chains: int, num_steps: int, sampler):
    """A noise ladder trained by recovery likelihood: :func:`jebm.objectives.recovery_sample`
    down the ladder in the form it was trained, ``num_steps`` split evenly over the levels
    that run chains (``L``, or ``L − 1`` in the diffusion form)."""
    obj = run.config.objective
    ladder = obj.ladder
    if ladder is None or sampler is not None:
        return _sample_chains(run, params, key, num_chains, num_steps, sampler)
    per_level = _steps_per_level(num_steps, _recovery_levels(obj))
    k_init, k_run = jax.random.split(key)
    x0 = initial_positions(run, k_init, num_chains)
    return jax.jit(lambda k, p, x: recovery_sample(
        k, p, x, energy_fn=run.energy_fn, sigmas=jnp.asarray(ladder, jnp.float32),
        num_steps=per_level, step_scale=obj.step_scale, form=obj.drl_form))(k_run, params, x0)


def _chains_label(run, num_steps: int) -> str:
    start = "the base" if run.base is not None else "noise"
    return f"{run.config.sampler.name} chains from {start} ({num_steps} steps)"


def _ladder_label(how: str, obj, per_level: int) -> str:
    ladder = obj.ladder
    return (f"{how}, {len(ladder)} levels σ {max(ladder):.3g} → {min(ladder):.3g} "
            f"({per_level} steps each)")


def _annealed_label(run, num_steps: int) -> str:
    obj = run.config.objective
    if obj.ladder is None:
        return _chains_label(run, num_steps)
    return _ladder_label("annealed Langevin", obj, _steps_per_level(num_steps, len(obj.ladder)))


def _recovery_label(run, num_steps: int) -> str:
    obj = run.config.objective
    if obj.ladder is None:
        return _chains_label(run, num_steps)
    return _ladder_label(f"recovery sampling ({obj.drl_form})", obj,
                         _steps_per_level(num_steps, _recovery_levels(obj)))


def _at_smallest_level(config, energy_fn):
    """A noise-conditional energy read at ``σ_min``, the model of the data (else as is)."""
    ladder = config.objective.ladder
    if ladder is None:
        return energy_fn
    sigma_min = float(min(ladder))
    return lambda p, x: energy_fn(p, x, sigma_min)


def _nce_model_energy(config, energy_fn):
    return lambda p, x: energy_fn(p["energy"], x)


# ----------------------------------------------------------------- what a summary says


def _nce_extras(config, params) -> dict:
    return {"nce_log_z": float(params["log_z"])}


def _dsm_model(obj) -> str:
    return ("DSM fits E(x, sigma) to the data smoothed by N(0, sigma^2 I), so this is a "
            "model of the smoothed data")


def _drl_model(obj) -> str:
    if obj.drl_form == "clean":
        return ("recovery likelihood fits each level's E(x, sigma) to the clean data "
                "through p(x | x + sigma eps), at small sigma only near the data")
    return ("diffusion recovery likelihood fits E(x, sigma_i) to the data smoothed by "
            "N(0, sigma_i^2 I) through p(x_i | x_{i+1}), so this is a model of the "
            "smoothed data")


# ---------------------------------------------------------------------- the registry


class ObjectiveRecipe(NamedTuple):
    """How a config's objective is built, what it trains, and how its model is sampled.

    Attributes:
      build: ``build(config, energy_fn, sampler, data, noise_key, joint, base) ->
        Objective``; ``sampler`` is ``factory(logdensity_fn)`` of ``config.sampler``,
        ``joint`` the :class:`~jebm.energies.conv.JointEnergy` of a joint model (else
        ``None``) and ``base`` the fitted ``model.base`` density (else ``None``).
      params: ``params(energy_params)``: the params the objective trains.
      model_energy: ``model_energy(config, energy_fn) -> EnergyFn``: the model's energy
        ``E(trained_params, x)`` of one ``x`` (what evaluation and plain samplers use),
        from the energy the objective trains.
      sample: ``sample(run, params, key, num_chains, num_steps, sampler)``: final draws of
        the trained model, ``(num_chains, *event)`` (see
        :func:`jebm.experiment.sample_model`).
      label: ``label(run, num_steps) -> str``: how ``sample`` draws, for figure titles.
      extras: ``extras(config, params) -> dict``: what the objective adds to a run's
        summary (NCE: its learned ``log Z``).
      ladder_model: ``ladder_model(objective_config) -> str``: with a noise ladder, what
        the energy at ``σ_min`` is a model of (said beside its test NLL).
      ladder: the objective trains a noise-conditional energy ``E(params, x, σ)`` when
        the config gives a noise ladder (``objective.sigmas`` or ``sigma_max``,
        ``sigma_min``, ``num_levels``); without one, a plain energy at ``objective.sigma``.
      joint: the objective trains a joint model (:data:`JOINT_MODELS`) on labelled
        batches ``(x, y)`` (:data:`jebm.experiment.LABELLED_DATASETS`).
      adapts_step_size: the objective's PCD negatives can adapt the sampler's step size
        (``sampler.target_acceptance``; see :func:`jebm.experiment.adapted_step_size`).
    """

    build: Callable
    params: Callable[[PyTree], PyTree] = lambda p: p
    model_energy: Callable = lambda config, energy_fn: energy_fn
    sample: Callable = _sample_chains
    label: Callable[[Any, int], str] = _chains_label
    extras: Callable[[Any, PyTree], dict] = lambda config, params: {}
    ladder_model: Callable[[Any], str] = lambda obj: "see the objective"
    ladder: bool = False
    joint: bool = False
    adapts_step_size: bool = False


OBJECTIVES: dict[str, ObjectiveRecipe] = {
    "cd": ObjectiveRecipe(_cd),
    "pcd": ObjectiveRecipe(_pcd, adapts_step_size=True),
    "esm": ObjectiveRecipe(_esm),
    "ssm": ObjectiveRecipe(_ssm),
    "dsm": ObjectiveRecipe(_dsm, model_energy=_at_smallest_level, sample=_sample_annealed,
                           label=_annealed_label, ladder_model=_dsm_model, ladder=True),
    "nce": ObjectiveRecipe(_nce, params=nce_params, model_energy=_nce_model_energy,
                           extras=_nce_extras),
    "ed": ObjectiveRecipe(_ed),
    "drl": ObjectiveRecipe(_drl, model_energy=_at_smallest_level, sample=_sample_recovery,
                           label=_recovery_label, ladder_model=_drl_model, ladder=True),
    "jem": ObjectiveRecipe(_jem, joint=True, adapts_step_size=True),
}


def build_objective(config, energy_fn: EnergyFn, data, noise_key: PRNGKey,
                    *, joint: Any = None, base: Density | None = None):
    """The :class:`~jebm.objectives.Objective` of ``config.objective`` on ``energy_fn``.

    ``noise_key`` draws the toy points an NCE noise is fitted to.

    Args:
      config: the run's config (``objective``, and ``sampler`` for cd/pcd/jem/drl).
      energy_fn: the energy to train (with its base, if any); noise-conditional
        ``energy_fn(params, x, sigma)`` with a noise ladder.
      data: the run's :class:`~jebm.experiment.Data` (event shape; NCE's noise is fitted to it).
      noise_key: PRNG key of the toy draws behind the NCE noise.
      joint: the :class:`~jebm.energies.conv.JointEnergy` of a joint model (``jem``
        reads its ``logits_fn``); ``energy_fn`` is then its marginal energy.
      base: the fitted ``model.base`` density, if any (PCD restarts its chains from it,
        see :func:`initial_density`).

    Returns:
      The objective. Its params are the energy's params, except for NCE, which trains
      :func:`jebm.objectives.nce_params` of them (``{"energy", "log_z"}``).

    Raises:
      ValueError: for ``objective.name=jem`` without a joint model.
    """
    recipe = OBJECTIVES[config.objective.name]
    if recipe.joint and joint is None:
        raise ValueError(f"objective.name={config.objective.name} needs a joint model (class "
                         f"logits): set model.kind to one of {JOINT_MODELS}, or pass a "
                         "JointEnergy as build_run(config, energy=...).")
    sampler = build_sampler(config.sampler, data.event_shape)
    return recipe.build(config, energy_fn, sampler, data, noise_key, joint, base)


# -------------------------------------------------------------------------- optimizer
