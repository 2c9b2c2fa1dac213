"""Type aliases and callable protocols shared across jebm."""

from collections.abc import Callable
from typing import Any, Protocol

import jax

__all__ = ["Array", "PRNGKey", "PyTree", "ArrayTree", "EnergyFn", "LogDensityFn", "ScoreFn"]

Array = jax.Array
PRNGKey = jax.Array  # a typed key from ``jax.random.key``
PyTree = Any
ArrayTree = Any  # a pytree whose leaves are arrays


class EnergyFn(Protocol):
    """``energy_fn(params, x) -> scalar`` for one unbatched ``x``; density ∝ exp(−E)."""

    def __call__(self, params: PyTree, x: ArrayTree, /) -> Array: ...


LogDensityFn = Callable[[ArrayTree], Array]
ScoreFn = Callable[[ArrayTree], ArrayTree]
