"""One optimisation step: ``train_step(state, batch, key) -> (state, metrics)``.

The step is pure and does not jit itself; :func:`jebm.train.train_loop` (or the
caller) jits a ``lax.scan`` of it. The key for update ``t`` is
``fold_in(key, t)`` with ``t = state.step``, so resuming from a checkpoint at step
``t`` replays exactly the keys of an uninterrupted run.
"""

from collections.abc import Callable

import jax
import jax.numpy as jnp
import optax

from jebm.objectives.base import Objective
from jebm.train.state import TrainState
from jebm.types import Array, ArrayTree, PRNGKey

__all__ = ["make_train_step"]

TrainStep = Callable[[TrainState, ArrayTree, PRNGKey], tuple[TrainState, dict[str, Array]]]


def make_train_step(objective: Objective, optimizer: optax.GradientTransformation) -> TrainStep:
    """Bind an objective and an optax optimizer into a pure train step.

    Args:
      objective: an :class:`~jebm.objectives.base.Objective`; its loss is
        differentiated with respect to ``params`` only.
      optimizer: an optax gradient transformation (chain clipping and schedules
        into it with ``optax.chain``).

    Returns:
      ``train_step(state, batch, key) -> (state, metrics)``. ``metrics`` holds the
      objective's metrics plus ``loss`` and ``grad_norm`` (the global L2 norm of the
      gradient before the optimizer), all float32 scalars.

    Examples:
      >>> import jax, jax.numpy as jnp, optax
      >>> from jebm.objectives.base import stateless
      >>> from jebm.train import init_train_state, make_train_step
      >>> objective = stateless(lambda p, k, b: (jnp.sum((p - b.mean(0)) ** 2), {}))
      >>> opt = optax.sgd(0.1)
      >>> batch = jnp.ones((4, 2))
      >>> state = init_train_state(jax.random.key(0), jnp.zeros(2), opt, objective, batch)
      >>> step = jax.jit(make_train_step(objective, opt))
      >>> state, metrics = step(state, batch, jax.random.key(1))
      >>> int(state.step), sorted(metrics)
      (1, ['grad_norm', 'loss'])
    """
    grad_fn = jax.value_and_grad(objective.loss, has_aux=True)

    def train_step(
        state: TrainState, batch: ArrayTree, key: PRNGKey
    ) -> tuple[TrainState, dict[str, Array]]:
        step_key = jax.random.fold_in(key, state.step)
        (loss, (metrics, objective_state)), grads = grad_fn(
            state.params, step_key, batch, state.objective_state
        )
        updates, opt_state = optimizer.update(grads, state.opt_state, state.params)
        params = optax.apply_updates(state.params, updates)
        metrics = {
            **{name: jnp.asarray(value, jnp.float32) for name, value in metrics.items()},
            "loss": jnp.asarray(loss, jnp.float32),
            "grad_norm": optax.tree.norm(grads).astype(jnp.float32),
        }
        new_state = TrainState(params, opt_state, state.step + 1, objective_state)
        return new_state, metrics

    return train_step
