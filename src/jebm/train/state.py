"""The training state: everything a resumed run needs, as one pytree.

``TrainState(params, opt_state, step, objective_state)`` is a ``NamedTuple``, so it
passes through ``jax.jit``, ``lax.scan`` and orbax-checkpoint unchanged. ``step`` is a
traced ``int32`` scalar counting the updates applied so far; the per-step PRNG key
is ``fold_in(key, step)``, so a run restored at step ``k`` replays the same stream.
"""

from typing import NamedTuple

import jax.numpy as jnp
import optax

from jebm.objectives.base import Objective
from jebm.types import Array, ArrayTree, PRNGKey, PyTree

__all__ = ["TrainState", "init_train_state"]


class TrainState(NamedTuple):
    """Parameters, optimizer state, update count and the objective's carried state."""

    params: PyTree
    opt_state: optax.OptState
    step: Array  # int32 scalar: updates applied so far
    objective_state: PyTree  # e.g. the replay buffer of persistent CD; () if stateless


def init_train_state(
    key: PRNGKey,
    params: PyTree,
    optimizer: optax.GradientTransformation,
    objective: Objective,
    batch: ArrayTree,
) -> TrainState:
    """Build the state at step 0.

    Args:
      key: PRNG key for the objective's initial state (e.g. the replay buffer).
      params: the energy's initial parameters.
      optimizer: an optax gradient transformation.
      objective: an :class:`~jebm.objectives.base.Objective`.
      batch: an example batch (its shapes size the objective state).

    Returns:
      A :class:`TrainState` with ``step == 0``.

    Examples:
      >>> import jax, jax.numpy as jnp, optax
      >>> from jebm.objectives.base import stateless
      >>> from jebm.train import init_train_state
      >>> objective = stateless(lambda p, k, b: (jnp.sum(p**2), {}))
      >>> state = init_train_state(jax.random.key(0), jnp.ones(2), optax.sgd(0.1),
      ...                          objective, jnp.zeros((4, 2)))
      >>> int(state.step)
      0
    """
    return TrainState(
        params=params,
        opt_state=optimizer.init(params),
        step=jnp.zeros((), jnp.int32),
        objective_state=objective.init(key, batch),
    )
