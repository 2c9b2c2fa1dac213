"""A user-written Flax NNX energy trained by persistent CD with Langevin negatives.

Shows the whole data flow without the CLI: ``jebm.energy.from_nnx`` splits the module
once into a pure ``(energy_fn, params)``; ``jebm.objectives.pcd`` draws negatives with a
``jebm.samplers.ula`` factory from a replay buffer; ``jebm.train.make_train_step`` gives
a pure step that we jit ourselves; the test NLL comes from grid quadrature of log Z.
NLL − H (H the data's entropy) is ≥ 0 for any normalised model and 0 for a perfect one.

    python examples/custom_nnx_energy_pcd.py           # about a minute on a CPU
    python examples/custom_nnx_energy_pcd.py --smoke   # seconds (or JEBM_SMOKE=1)
"""

import functools

import jax
import jax.numpy as jnp
import optax
from _args import example_parser
from flax import nnx

import jebm


class Energy(nnx.Module):
    """``E(x) = 0.05‖x‖² + MLP(x)``: the quadratic keeps ``exp(−E)`` integrable."""

    def __init__(self, hidden: int, rngs: nnx.Rngs):
        self.l1 = nnx.Linear(2, hidden, rngs=rngs)
        self.l2 = nnx.Linear(hidden, hidden, rngs=rngs)
        self.out = nnx.Linear(hidden, 1, rngs=rngs)

    def __call__(self, x):  # a batch (n, 2) -> (n, 1)
        h = nnx.silu(self.l2(nnx.silu(self.l1(x))))
        return 0.05 * jnp.sum(x**2, axis=-1, keepdims=True) + self.out(h)


def main(argv=None):
    args = example_parser(__doc__, num_steps=1500, seed=0).parse_args(argv)
    num_steps, batch_size, hidden, grid = (
        (20, 64, 16, 64) if args.smoke else (args.num_steps, 256, 128, 300))

    toy = jebm.energies.toy_data.get("8gaussians")  # .density.sample(key, n), .entropy
    sample = jax.jit(toy.density.sample, static_argnums=1)  # one fused call, not op by op
    energy_fn, params = jebm.energy.from_nnx(Energy(hidden, nnx.Rngs(args.seed)))
    sampler = functools.partial(jebm.samplers.ula, step_size=0.02)  # logdensity_fn -> algorithm
    objective = jebm.objectives.pcd(
        energy_fn, sampler, num_steps=10, buffer_size=4 * batch_size if args.smoke else 10_000,
        reinit_prob=0.05, init_density=jebm.densities.uniform_box(-4.5, 4.5, (2,)))
    optimizer = optax.adam(optax.cosine_decay_schedule(2e-3, num_steps))

    k_state, k_data, k_train, k_test = jax.random.split(jax.random.key(args.seed), 4)
    state = jebm.train.init_train_state(k_state, params, optimizer, objective,
                                        sample(k_data, batch_size))
    train_step = jebm.train.make_train_step(objective, optimizer)

    @jax.jit  # the caller jits: draw the batch of update t and take the step
    def update(state):
        return train_step(state, sample(jax.random.fold_in(k_data, state.step), batch_size),
                          k_train)

    for t in range(num_steps):
        state, metrics = update(state)
        if (t + 1) % max(num_steps // 5, 1) == 0:
            print(f"step {t + 1:5d}  cd {float(metrics['cd']):+.3f}  "
                  f"E+ {float(metrics['energy_pos']):+.3f}  E- {float(metrics['energy_neg']):+.3f}")

    @jax.jit
    def evaluate(params, x_test):
        log_z = jebm.evaluation.log_z_grid(energy_fn, params, low=(-6.0, -6.0),
                                           high=(6.0, 6.0), num_points=grid)
        return jebm.evaluation.nll(energy_fn, params, x_test, log_z)

    est = evaluate(state.params, sample(k_test, 2000 if args.smoke else 20_000))
    print(f"test NLL {float(est.nll):.3f} ± {float(est.nll_stderr):.3f} nats, "
          f"H {toy.entropy:.3f}, NLL − H {float(est.nll) - toy.entropy:.3f}")
    assert jnp.isfinite(est.nll), "the test NLL is not finite"


if __name__ == "__main__":
    main()
