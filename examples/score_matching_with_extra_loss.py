"""Sliced score matching plus a loss term of your own, composed into one Objective.

Score matching sees only the score ``−∇ₓE``, so it leaves the additive constant of
the energy free to drift. A user-written penalty ``α · mean E(x)²`` on the data pins
it near zero without changing the learned density. The composition is a plain
``jebm.objectives.Objective(init, loss)`` whose loss calls the library's and adds the
term; it is optimised here with a hand-written optax loop (no jebm train step), and
the test NLL is read off by grid quadrature of log Z.

    python examples/score_matching_with_extra_loss.py           # about a minute on a CPU
    python examples/score_matching_with_extra_loss.py --smoke   # seconds (or JEBM_SMOKE=1)
"""


import jax
import jax.numpy as jnp
import optax
from _args import example_parser

import jebm


def with_energy_penalty(objective, energy_fn, alpha):
    """``objective`` plus ``alpha · mean E(x)²`` over the data batch, as an Objective."""

    def loss(params, key, batch, state):
        value, (metrics, state) = objective.loss(params, key, batch, state)
        penalty = jnp.mean(jebm.energy.batch_energy(energy_fn, params, batch) ** 2)
        total = value + alpha * penalty
        return total, ({**metrics, "score_matching": value, "energy_sq": penalty,
                        "loss": total}, state)

    return jebm.objectives.Objective(init=objective.init, loss=loss)


def main(argv=None):
    args = example_parser(__doc__, num_steps=3000, alpha=0.01).parse_args(argv)
    num_steps, batch_size, hidden, grid = (
        (20, 64, (16,), 64) if args.smoke else (args.num_steps, 256, (128, 128), 300))

    toy = jebm.energies.toy_data.get("8gaussians")
    sample = jax.jit(toy.density.sample, static_argnums=1)
    k_model, k_data, k_loss, k_test = jax.random.split(jax.random.key(0), 4)
    energy_fn, params = jebm.energies.mlp_energy(k_model, 2, hidden=hidden)
    ssm = jebm.objectives.sliced_score_matching(energy_fn, variance_reduced=True)
    objective = with_energy_penalty(ssm, energy_fn, args.alpha)

    optimizer = optax.adam(1e-3)
    opt_state = optimizer.init(params)
    obj_state = objective.init(k_loss, sample(k_data, batch_size))  # () for score matching

    @jax.jit
    def update(params, opt_state, obj_state, t):
        batch = sample(jax.random.fold_in(k_data, t), batch_size)
        grad_fn = jax.grad(objective.loss, has_aux=True)
        grads, (metrics, obj_state) = grad_fn(params, jax.random.fold_in(k_loss, t), batch,
                                              obj_state)
        updates, opt_state = optimizer.update(grads, opt_state, params)
        return optax.apply_updates(params, updates), opt_state, obj_state, metrics

    for t in range(num_steps):
        params, opt_state, obj_state, metrics = update(params, opt_state, obj_state, t)
        if (t + 1) % max(num_steps // 5, 1) == 0:
            print(f"step {t + 1:5d}  ssm {float(metrics['score_matching']):+.3f}  "
                  f"mean E² {float(metrics['energy_sq']):.4f}")

    @jax.jit
    def evaluate(params, x_test):
        log_z = jebm.evaluation.log_z_grid(energy_fn, params, low=(-6.0, -6.0),
                                           high=(6.0, 6.0), num_points=grid)
        return jebm.evaluation.nll(energy_fn, params, x_test, log_z)

    est = evaluate(params, sample(k_test, 2000 if args.smoke else 20_000))
    print(f"mean test energy {float(est.mean_energy):+.3f} (pinned near 0 by the penalty); "
          f"NLL − H {float(est.nll) - toy.entropy:.3f} nats")


if __name__ == "__main__":
    main()
