"""The training state: everything a resumed run needs, as one pytree.

``TrainState(params, opt_state, step, objective_state, ema_params)`` is a ``NamedTuple``,
so it passes through ``jax.jit``, ``lax.scan`` and orbax-checkpoint unchanged. ``step`` is
a traced ``int32`` scalar counting the updates applied so far; the per-step PRNG key
is ``fold_in(key, step)``, so a run restored at step ``k`` replays the same stream.

``ema_params`` is ``None`` (no leaves: the checkpoint of a run without an average is
unchanged), or an exponential moving average of ``params`` (Polyak averaging) that
:func:`jebm.train.make_train_step` updates after every optimizer update. Being part of
the state, it is checkpointed and restored with the rest, so a resumed run continues the
same average. :func:`model_params` picks the parameters to evaluate and sample.
"""

from typing import NamedTuple

import jax.numpy as jnp
import optax

from jebm.objectives.base import Objective
from jebm.types import Array, ArrayTree, PRNGKey, PyTree

__all__ = ["TrainState", "init_train_state", "model_params", "params_kind"]


class TrainState(NamedTuple):
    """Parameters, optimizer state, update count, the objective's carried state and the
    parameters' moving average (``None`` when not kept)."""

    params: PyTree
    opt_state: optax.OptState
    step: Array  # int32 scalar: updates applied so far
    objective_state: PyTree  # e.g. the replay buffer of persistent CD; () if stateless
    ema_params: PyTree = None  # EMA of params (same structure), or None when off


def init_train_state(
    key: PRNGKey,
    params: PyTree,
    optimizer: optax.GradientTransformation,
    objective: Objective,
    batch: ArrayTree,
    *,
    ema: bool = False,
) -> TrainState:
    """Build the state at step 0.

    Args:
      key: PRNG key for the objective's initial state (e.g. the replay buffer).
      params: the energy's initial parameters.
      optimizer: an optax gradient transformation.
      objective: an :class:`~jebm.objectives.base.Objective`.
      batch: an example batch (its shapes size the objective state).
      ema: keep an exponential moving average of the parameters, starting at
        ``params`` (train with ``make_train_step(..., ema_decay=β)``).

    Returns:
      A :class:`TrainState` with ``step == 0`` (and ``ema_params == params`` with ``ema``).

    Examples:
      >>> import jax, jax.numpy as jnp, optax
      >>> from jebm.objectives.base import stateless
      >>> from jebm.train import init_train_state
      >>> objective = stateless(lambda p, k, b: (jnp.sum(p**2), {}))
      >>> state = init_train_state(jax.random.key(0), jnp.ones(2), optax.sgd(0.1),
      ...                          objective, jnp.zeros((4, 2)))
      >>> int(state.step), state.ema_params is None
      (0, True)
    """
    return TrainState(
        params=params,
        opt_state=optimizer.init(params),
        step=jnp.zeros((), jnp.int32),
        objective_state=objective.init(key, batch),
        ema_params=params if ema else None,
    )


def model_params(state: TrainState) -> PyTree:
    """The parameters to evaluate, sample and ship: the moving average when the state
    keeps one, else the raw parameters.

    Every consumer of a trained state (evaluation, sample figures,
    :func:`jebm.experiment.load_model`, ``jebm sample`` and ``jebm evaluate``) reads its
    parameters through this function, so the choice is made in one place.

    Args:
      state: a :class:`TrainState`.

    Returns:
      ``state.ema_params`` if it is not ``None``, else ``state.params``.

    Examples:
      >>> import jax.numpy as jnp
      >>> from jebm.train import TrainState, model_params
      >>> state = TrainState(jnp.ones(2), (), jnp.zeros((), jnp.int32), (), jnp.zeros(2))
      >>> model_params(state).tolist()
      [0.0, 0.0]
    """
    return state.params if state.ema_params is None else state.ema_params


def params_kind(state: TrainState) -> str:
    """Which parameters :func:`model_params` picks: ``"ema"`` (the moving average) or
    ``"raw"``, as summaries report it.

    Args:
      state: a :class:`TrainState`.

    Returns:
      ``"ema"`` if the state keeps a moving average, else ``"raw"``.
    """
    return "raw" if state.ema_params is None else "ema"
