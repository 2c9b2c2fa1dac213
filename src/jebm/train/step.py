"""One optimisation step: ``train_step(state, batch, key) -> (state, metrics)``.

The step is pure and does not jit itself; :func:`jebm.train.train_loop` (or the
caller) jits a ``lax.scan`` of it. The key for update ``t`` is
``fold_in(key, t)`` with ``t = state.step``, so resuming from a checkpoint at step
``t`` replays exactly the keys of an uninterrupted run.

With ``ema_decay = β > 0`` the step also updates the state's moving average of the
parameters after the optimizer's update, ``θ̄_t = β θ̄_{t−1} + (1 − β) θ_t``
(``optax.incremental_update``), so after ``n`` updates from ``θ̄_0 = θ_0``

    θ̄_n = βⁿ θ_0 + (1 − β) Σ_{t=1}^{n} β^{n−t} θ_t.

References:
  Polyak, B. T. and Juditsky, A. B. (1992). Acceleration of stochastic approximation by
  averaging. SIAM Journal on Control and Optimization 30(4), 838-855.
"""

from collections.abc import Callable

import jax
import jax.numpy as jnp
import optax

from jebm._validate import is_static_number
from jebm.objectives.base import Objective
from jebm.train.state import TrainState
from jebm.types import Array, ArrayTree, PRNGKey

__all__ = ["make_train_step"]

TrainStep = Callable[[TrainState, ArrayTree, PRNGKey], tuple[TrainState, dict[str, Array]]]


def make_train_step(objective: Objective, optimizer: optax.GradientTransformation, *,
                    ema_decay: float = 0.0) -> TrainStep:
    """Bind an objective and an optax optimizer into a pure train step.

    Args:
      objective: an :class:`~jebm.objectives.base.Objective`; its loss is
        differentiated with respect to ``params`` only.
      optimizer: an optax gradient transformation (chain clipping and schedules
        into it with ``optax.chain``).
      ema_decay: 0 (no average), or the decay ``β`` in (0, 1) of the moving average of
        the parameters kept in ``state.ema_params`` (see the module docstring); the state
        must then come from ``init_train_state(..., ema=True)``.

    Returns:
      ``train_step(state, batch, key) -> (state, metrics)``. ``metrics`` holds the
      objective's metrics plus ``loss`` and ``grad_norm`` (the global L2 norm of the
      gradient before the optimizer), all float32 scalars.

    Raises:
      ValueError: if ``ema_decay`` is neither 0 nor in (0, 1); when the step is called
        (traced), if the state keeps no average but ``ema_decay > 0``, or keeps one but
        ``ema_decay == 0`` (it would stay frozen at its start).

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
    if not is_static_number(ema_decay) or not (ema_decay == 0 or 0 < ema_decay < 1):
        raise ValueError(f"ema_decay must be 0 (off) or a number in (0, 1), got {ema_decay!r}.")
    ema_decay = float(ema_decay)
    grad_fn = jax.value_and_grad(objective.loss, has_aux=True)

    def train_step(
        state: TrainState, batch: ArrayTree, key: PRNGKey
    ) -> tuple[TrainState, dict[str, Array]]:
        if (state.ema_params is None) != (ema_decay == 0.0):
            raise ValueError(
                f"make_train_step got ema_decay={ema_decay} but the state "
                + ("keeps no moving average: build it with init_train_state(..., ema=True)."
                   if state.ema_params is None else
                   "keeps one (ema_params): pass its decay, make_train_step(..., ema_decay=β)."))
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
        ema_params = None
        if state.ema_params is not None:  # θ̄ ← β θ̄ + (1 − β) θ
            ema_params = optax.incremental_update(params, state.ema_params, 1.0 - ema_decay)
        new_state = TrainState(params, opt_state, state.step + 1, objective_state, ema_params)
        return new_state, metrics

    return train_step
