"""Drawing from a trained run: the model's own sampling procedure, with the adapted step.

:func:`sample_model` draws the way the run's objective says
(:attr:`~jebm.experiment.ObjectiveRecipe.sample`); :func:`sample_trained` and
:func:`sample_conditional_trained` read a trained state (its EMA when kept, the step size
training adapted); :func:`sampling_label` describes the draws.
"""

from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp

from jebm.experiment.components import JOINT_MODELS
from jebm.experiment.recipes import OBJECTIVES, initial_positions
from jebm.experiment.run import Run
from jebm.tasks import conditional_samples
from jebm.train import model_params
from jebm.types import Array, PRNGKey, PyTree

__all__ = ["adapted_step_size", "replay_samples", "trained_sampler", "sample_trained",
           "sample_model", "sample_conditional", "sample_conditional_trained",
           "sampling_label"]  # fmt: skip


def adapted_step_size(objective_state: Any) -> float | None:
    """The step size a PCD (or JEM) run with ``sampler.target_acceptance`` adapted to
    (read from its objective state), or ``None`` when nothing was adapted.

    Args:
      objective_state: a trained state's ``objective_state``.

    Returns:
      ``exp(log h)`` as a float, or ``None``.
    """
    log_h = getattr(objective_state, "log_step_size", None)
    return None if log_h is None else float(jnp.exp(log_h))


def replay_samples(objective_state: Any) -> Array | None:
    """The replay buffer's positions of a PCD-type objective state (plain, or wrapped
    with an adapted step size), or ``None`` for objectives without a buffer.

    Args:
      objective_state: a trained state's ``objective_state``.

    Returns:
      ``(buffer_size, *event)`` positions, or ``None``.
    """
    buffer = getattr(objective_state, "buffer", objective_state)
    return getattr(buffer, "samples", None)


def trained_sampler(run: Run, objective_state: Any = None) -> Callable | None:
    """The run's sampler as training left it, for :func:`sample_model`'s (and
    :func:`sample_conditional`'s) ``sampler``: with the :func:`adapted_step_size` of a
    PCD or JEM run with ``sampler.target_acceptance``;
    ``None`` (the model's own sampling) when nothing was adapted.

    Args:
      run: the :class:`Run`.
      objective_state: the trained state's ``objective_state``.

    Returns:
      ``factory(logdensity_fn) -> SamplingAlgorithm``, or ``None``.
    """
    step_size = adapted_step_size(objective_state)
    if step_size is None:
        return None
    return lambda logdensity_fn, **overrides: run.sampler(
        logdensity_fn, **{"step_size": step_size, **overrides})


def sample_trained(run: Run, state: Any, key: PRNGKey, num_chains: int,
                   num_steps: int) -> Array:
    """:func:`sample_model` of a trained :class:`~jebm.train.TrainState`: its
    :func:`~jebm.train.model_params` (the EMA when kept), with the
    :func:`trained_sampler` (the adapted step size, if any).

    Args:
      run: the :class:`Run`.
      state: the trained state.
      key: PRNG key of the starting positions and the transitions.
      num_chains: independent chains (static).
      num_steps: transitions per chain (static).

    Returns:
      ``(num_chains, *event_shape)`` final positions.
    """

    return sample_model(run, model_params(state), key, num_chains, num_steps,
                        sampler=trained_sampler(run, state.objective_state))


def sample_model(run: Run, params: PyTree, key: PRNGKey, num_chains: int, num_steps: int,
                 sampler: Callable | None = None) -> Array:
    """Final positions of ``num_chains`` draws of the trained model, made the way its
    objective says (:attr:`ObjectiveRecipe.sample`), from :func:`initial_positions`.

    * Energy models (and ``jem``, whose marginal is ``E(x) = −logsumexp g(x)``):
      ``num_steps`` transitions of the run's sampler (or ``sampler``) on
      ``run.model_energy_fn``.
    * ``dsm`` with a noise ladder (NCSN): annealed Langevin dynamics
      (:func:`jebm.samplers.annealed_langevin`) over the ladder, ``num_steps // L`` steps
      per level (at least one), ``ε = sampler.step_size`` the step at ``σ_min``.
    * ``drl`` with a noise ladder: :func:`jebm.objectives.recovery_sample` down the
      ladder in ``objective.drl_form``, ``num_steps // L`` conditional Langevin steps per
      level (``// (L − 1)`` in the diffusion form) with step ``objective.step_scale · σ²``.

    A ``sampler`` given explicitly always runs plain chains on ``run.model_energy_fn``
    (for a ladder, the energy at ``σ_min``). It jits the chains itself.

    Args:
      run: the :class:`Run`.
      params: the trained params (read through ``run.model_energy_fn``).
      key: PRNG key of the starting positions and the transitions.
      num_chains: independent chains (static).
      num_steps: transitions per chain (static); over a ladder, the total over its levels.
      sampler: ``factory(logdensity_fn) -> SamplingAlgorithm`` (e.g. from
        :func:`build_sampler`); ``None`` for the objective's own procedure.

    Returns:
      ``(num_chains, *event_shape)`` final positions; no trace is kept.
    """
    recipe = OBJECTIVES[run.config.objective.name]
    return recipe.sample(run, params, key, num_chains, num_steps, sampler)


def sample_conditional(run: Run, params: PyTree, key: PRNGKey, labels: Array,
                       num_steps: int, sampler: Callable | None = None) -> Array:
    """Class-conditional draws of a joint (JEM) run: chain ``i`` samples
    ``p(x | labels[i]) ∝ exp(−E(x, labels[i]))`` (``exp(g(x)[y]) q(x)`` with a
    ``model.base`` ``q``, else ``exp(g(x)[y])``) with the run's sampler, or ``sampler``.

    Chains start at :func:`initial_positions` (draws of ``q`` when the model has one);
    :func:`jebm.tasks.conditional_samples` runs them. It jits the chains itself. Pass
    ``sampler=trained_sampler(run, state.objective_state)`` (or call
    :func:`sample_conditional_trained`) to use the step size training adapted.

    Args:
      run: a :class:`Run` of a joint model (``run.joint`` is set).
      params: the trained params.
      key: PRNG key of the starting positions and the transitions.
      labels: ``(n,)`` integer classes, one per chain.
      num_steps: transitions per chain (static).
      sampler: ``factory(logdensity_fn) -> SamplingAlgorithm``; ``None`` for
        ``run.sampler`` (the config's tunables).

    Returns:
      ``(n, *event_shape)`` final positions.

    Raises:
      ValueError: if the run's model is not a joint model.
    """

    if run.joint is None:
        raise ValueError(f"class-conditional samples need a joint model; model.kind="
                         f"{run.config.model.kind} is not one of {JOINT_MODELS}.")
    labels = jnp.asarray(labels, jnp.int32)
    k_init, k_run = jax.random.split(key)
    x0 = initial_positions(run, k_init, labels.shape[0])
    return jax.jit(lambda k, p, y, x: conditional_samples(
        k, run.joint.conditional_energy_fn, p, y, x, sampler=sampler or run.sampler,
        num_steps=num_steps))(k_run, params, labels, x0)


def sample_conditional_trained(run: Run, state: Any, key: PRNGKey, labels: Array,
                               num_steps: int) -> Array:
    """:func:`sample_conditional` of a trained :class:`~jebm.train.TrainState`: its
    :func:`~jebm.train.model_params` (the EMA when kept), with the
    :func:`trained_sampler` (the adapted step size, if any), as :func:`sample_trained`
    does for unconditional draws.

    Args:
      run: a :class:`Run` of a joint model.
      state: the trained state.
      key: PRNG key of the starting positions and the transitions.
      labels: ``(n,)`` integer classes, one per chain.
      num_steps: transitions per chain (static).

    Returns:
      ``(n, *event_shape)`` final positions.
    """

    return sample_conditional(run, model_params(state), key, labels, num_steps,
                              sampler=trained_sampler(run, state.objective_state))


def sampling_label(run: Run, num_steps: int) -> str:
    """A one-line description of how :func:`sample_model` draws (for figure titles).

    Args:
      run: the :class:`~jebm.experiment.Run`.
      num_steps: the ``num_steps`` given to :func:`sample_model`.

    Returns:
      e.g. ``"ula chains from noise (60 steps)"`` or ``"annealed Langevin, 10 levels
      σ 3 → 0.02 (20 steps each)"``.
    """
    return OBJECTIVES[run.config.objective.name].label(run, num_steps)
