"""A tiny stateful objective for the training-infrastructure tests.

Energy ``E(θ, x) = ½ exp(a) ‖x − μ‖²`` (a Gaussian with mean μ, precision exp(a)).
The objective carries a persistent buffer of samples refreshed by one Langevin
step per update (like PCD), so a test also covers the objective state and its key.
Its loss is the contrastive ``mean E(data) − mean E(buffer)``.
"""

import jax
import jax.numpy as jnp
import optax

from jebm.objectives.base import Objective
from jebm.train import init_train_state, make_train_step


def energy_fn(params, x):
    return 0.5 * jnp.exp(params["log_prec"]) * jnp.sum((x - params["mu"]) ** 2)


def tiny_objective(num_buffer: int = 32, step_size: float = 0.1, nan_at: int | None = None,
                   nan_metric: str = "loss", blowup_steps=None) -> Objective:
    """PCD-like objective; with ``nan_at``, update number ``nan_at`` reports a NaN; at the
    update numbers in ``blowup_steps`` the reported ``energy_model`` is raised by 1e6 (a
    finite blow-up seen by the health checks; the parameters are unaffected)."""
    blowup = jnp.zeros(4096, bool)
    if blowup_steps is not None:
        blowup = blowup.at[jnp.asarray(list(blowup_steps), jnp.int32)].set(True)

    def init(key, batch):
        return {"buffer": jax.random.normal(key, (num_buffer, batch.shape[-1])),
                "count": jnp.zeros((), jnp.int32)}

    def loss(params, key, batch, state):
        grad_x = jax.vmap(jax.grad(energy_fn, argnums=1), in_axes=(None, 0))
        noise = jax.random.normal(key, state["buffer"].shape)
        buffer = state["buffer"]
        buffer = buffer - step_size * grad_x(params, buffer) + jnp.sqrt(2 * step_size) * noise
        buffer = jax.lax.stop_gradient(buffer)
        e_data = jax.vmap(energy_fn, in_axes=(None, 0))(params, batch).mean()
        e_model = jax.vmap(energy_fn, in_axes=(None, 0))(params, buffer).mean()
        count = state["count"] + 1
        poison = jnp.where(count == nan_at, jnp.nan, 0.0) if nan_at is not None else 0.0
        value = e_data - e_model
        metrics = {"energy_data": e_data,
                   "energy_model": e_model + jnp.where(blowup[count], 1e6, 0.0)}
        if nan_metric == "loss":
            value = value + poison
        else:
            metrics[nan_metric] = metrics[nan_metric] + poison
        return value, (metrics, {"buffer": buffer, "count": count})

    return Objective(init, loss)


def data_sampler(key, n):
    return jnp.array([[1.0, -2.0]]) + 0.5 * jax.random.normal(key, (n, 2))


def setup(seed: int = 0, hidden_shape: tuple[int, ...] = (2,), **objective_kwargs):
    """(state, train_step) for the tiny problem."""
    objective = tiny_objective(**objective_kwargs)
    optimizer = optax.chain(optax.clip_by_global_norm(10.0), optax.adam(0.05))
    params = {"mu": jnp.zeros(hidden_shape), "log_prec": jnp.zeros(())}
    key = jax.random.key(seed)
    state = init_train_state(key, params, optimizer, objective, data_sampler(key, 8))
    return state, make_train_step(objective, optimizer)
