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
    init: Callable  # (key, batch) -> objective state
    loss: Callable  # (params, key, batch, state) -> (scalar, (metrics, state))


def stateless(loss: Callable) -> Objective:
    """Wrap ``loss(params, key, batch) -> (scalar, metrics)`` as an :class:`Objective`."""

    def wrapped(params, key, batch, state):
        value, metrics = loss(params, key, batch)
        return value, (metrics, state)

    return Objective(init=lambda key, batch: (), loss=wrapped)


def num_rows(batch) -> int:
    """The batch size: the leading axis of the first leaf of ``batch`` (layout ``(n, *event)``)."""
    return jax.tree.leaves(batch)[0].shape[0]
