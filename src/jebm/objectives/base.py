"""The objective contract consumed by :func:`jebm.train.make_train_step`.

A loss is pure: ``loss(params, key, batch, state) -> (scalar, (metrics, state))``.
``state`` is the objective's own carried pytree (the replay buffer of persistent
CD; ``()`` for stateless objectives); it lives in the train state, so it is
jitted, checkpointed and resumed with the parameters. ``metrics`` is a flat dict
of scalars. ``init(key, batch) -> state`` builds the initial objective state.

Each objective module also exposes its plain ``*_loss`` function with explicit
keyword options; the factories bind ``energy_fn`` and options into an
:class:`Objective`.
"""

from collections.abc import Callable
from typing import NamedTuple

import jax

__all__ = ["Objective", "stateless", "num_rows"]


class Objective(NamedTuple):
    """A training objective: a pure loss and the initial state it carries.

    Attributes:
      init: ``init(key, batch) -> state``, the objective's initial state (``()`` for a
        stateless objective; the replay buffer of persistent CD).
      loss: ``loss(params, key, batch, state) -> (scalar, (metrics, state))``, the
        value to minimise, a flat dict of scalar metrics and the next state.
    """

    init: Callable  # (key, batch) -> objective state
    loss: Callable  # (params, key, batch, state) -> (scalar, (metrics, state))


def stateless(loss: Callable) -> Objective:
    """Wrap ``loss(params, key, batch) -> (scalar, metrics)`` as an :class:`Objective`.

    Args:
      loss: ``loss(params, key, batch) -> (scalar, metrics)``.

    Returns:
      An :class:`Objective` whose ``init`` returns ``()`` and whose ``loss`` passes the
      state through unchanged.

    Examples:
      >>> import jax, jax.numpy as jnp
      >>> from jebm.objectives.base import stateless
      >>> objective = stateless(lambda p, key, x: (jnp.mean((x - p) ** 2), {}))
      >>> objective.loss(1.0, jax.random.key(0), jnp.ones(3), objective.init(None, None))
      (Array(0., dtype=float32), ({}, ()))
    """

    def wrapped(params, key, batch, state):
        value, metrics = loss(params, key, batch)
        return value, (metrics, state)

    return Objective(init=lambda key, batch: (), loss=wrapped)


def num_rows(batch) -> int:
    """The batch size: the leading axis of the first leaf of ``batch`` (layout ``(n, *event)``).

    Args:
      batch: a pytree of arrays with a common leading batch axis.

    Returns:
      ``n``, a static Python int.
    """
    return jax.tree.leaves(batch)[0].shape[0]
