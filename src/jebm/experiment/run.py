"""A run: everything a config determines, composed from the registries (:func:`build_run`)."""

import functools
from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import optax

from jebm.densities import Density
from jebm.energies.conv import JointEnergy
from jebm.energy import with_base
from jebm.experiment.components import build_energy, build_optimizer, build_sampler, fit_density
from jebm.experiment.config import Config
from jebm.experiment.data import Data, build_data
from jebm.experiment.recipes import OBJECTIVES, build_objective
from jebm.train.state import init_train_state
from jebm.types import EnergyFn, PRNGKey

__all__ = ["Run", "build_run"]


class Run(NamedTuple):
    """Everything a config determines.

    Attributes:
      config: the :class:`~jebm.config.Config`.
      data: the :class:`Data`.
      energy_fn: the energy the objective trains, on the objective's params (for NCE,
        ``params["energy"]``): the network plus the base energy ``−log q``, if any; with
        a noise ladder the noise-conditional ``energy_fn(params, x, sigma)``.
      model_energy_fn: the model's energy on the *trained* params (what samplers,
        plots and evaluation use; for NCE it reads ``params["energy"]``; with a noise
        ladder it is the noise-conditional energy at ``σ_min``, the smallest level).
      base: the fitted base :class:`~jebm.densities.Density` ``q``, or ``None``.
      sampler: ``factory(logdensity_fn) -> SamplingAlgorithm`` of ``config.sampler``.
      objective: the :class:`~jebm.objectives.Objective`.
      optimizer: the optax optimizer.
      initial_state: the :class:`~jebm.train.TrainState` at step 0 (with
        ``ema_params`` when ``train.ema_decay > 0``).
      train_key: the key of the training loop.
      sample_key: the key of the draws for figures.
      eval_key: the key of evaluations (AIS).
      batches: ``batches(key, n)``: the training batches the objective consumes
        (``data.sample``; ``data.labelled`` pairs ``(x, y)`` for a joint objective).
      joint: the :class:`~jebm.energies.conv.JointEnergy` of a joint model (class
        logits, class-conditional energies, both energies with the base's ``−log q``
        when there is one), or ``None``.
    """

    config: Config
    data: Data
    energy_fn: EnergyFn
    model_energy_fn: EnergyFn
    base: Density | None
    sampler: Callable
    objective: Any
    optimizer: optax.GradientTransformation
    initial_state: Any
    train_key: PRNGKey
    sample_key: PRNGKey
    eval_key: PRNGKey
    batches: Callable
    joint: Any = None


def build_run(config: Config, *, energy: Any = None) -> Run:
    """Build every object of ``config``; pass ``energy=(energy_fn, params)`` to replace the
    config's network by your own (``config.model.base`` is still added to it).

    A ``model.base`` ``q`` enters every energy of the model through
    :func:`jebm.energy.with_base`: ``E(x) − log q(x)``, and for a joint model both its
    marginal ``−logsumexp g(x) − log q(x)`` and its class-conditional
    ``E(x, y) = −g(x)[y] − log q(x)`` (``run.joint`` carries both; its ``logits_fn``, hence
    ``p(y | x) = softmax g(x)``, is unchanged: ``q`` cancels in it).

    Keys: ``key(train.seed)`` split six ways (model, initial state, training loop, test
    set, fitted densities, figures), plus ``fold_in(key, 6)`` for evaluation.

    Args:
      config: the run's config.
      energy: optional ``(energy_fn, params)`` for one unbatched point of the data's
        event shape (``energy_fn(params, x, sigma)`` with a noise ladder), or a
        :class:`~jebm.energies.conv.JointEnergy` (for ``objective.name=jem``).

    Returns:
      A :class:`Run`.
    """

    (k_model, k_state, train_key, k_test, k_noise, sample_key), eval_key = _run_keys(
        config.train.seed)
    data = build_data(config, k_test)
    if config.sampler.space == "logit" and data.toy is not None:
        raise ValueError(f"sampler.space=logit samples densities on [0, 1]^d (images); "
                         f"{data.name} lives on R^2: use sampler.space=data.")
    built = energy if energy is not None else build_energy(config, k_model, data.event_shape)
    joint = built if isinstance(built, JointEnergy) else None
    energy_fn, params = (joint.energy_fn, joint.params) if joint is not None else built
    base = None
    if config.model.base != "none":
        base = fit_density(data, config.model.base, k_noise, "model.base")
        energy_fn = with_base(energy_fn, base)
        if joint is not None:  # E(x, y) = −g(x)[y] − log q(x); the logits, p(y | x), stay
            joint = joint._replace(
                energy_fn=energy_fn,
                conditional_energy_fn=with_base(joint.conditional_energy_fn, base))
    recipe = OBJECTIVES[config.objective.name]
    objective = build_objective(config, energy_fn, data, k_noise, joint=joint, base=base)
    params = recipe.params(params)
    model_energy_fn = recipe.model_energy(config, energy_fn)
    batches = data.labelled if recipe.joint else data.sample
    if batches is None:
        raise ValueError(f"objective.name={config.objective.name} trains on labelled data; "
                         f"data.name={config.data.name} has no labels.")
    optimizer = build_optimizer(config)
    batch_size, ema = config.data.batch_size, config.train.ema_decay > 0
    # the example batch, the optimizer state and the objective's (e.g. a replay buffer)
    # as one XLA program, not one per eager op
    state = jax.jit(lambda k, p: init_train_state(k, p, optimizer, objective,
                                                  batches(k, batch_size), ema=ema))(
        k_state, params)
    return Run(config, data, energy_fn, model_energy_fn, base,
               build_sampler(config.sampler, data.event_shape), objective, optimizer, state,
               train_key, sample_key, eval_key, batches, joint)


@functools.partial(jax.jit, static_argnums=0)  # static: any Python int seed, as eagerly
def _run_keys(seed: int):
    """``key(seed)`` split six ways, and ``fold_in(key, 6)``: :func:`build_run`'s keys,
    derived in one XLA program (eagerly, the seeding, the split, the unstacking and the
    fold-in compile one program each)."""
    key = jax.random.key(seed)
    return tuple(jax.random.split(key, 6)), jax.random.fold_in(key, 6)
