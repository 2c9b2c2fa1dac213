"""A BlackJAX kernel as the negative sampler of contrastive divergence.

jebm's samplers follow BlackJAX's ``SamplingAlgorithm(init, step)`` contract, so any
BlackJAX kernel drops into ``jebm.objectives.cd``/``pcd`` as the factory
``sampler(logdensity_fn) -> SamplingAlgorithm``; the objective hands it
``logdensity_fn = −E`` (built by ``jebm.energy.logdensity_fn``). Here CD-k on
8gaussians draws its negatives with ``blackjax.mala``; its per-chain info fields
show up in the metrics as ``sampler/<field>`` (e.g. the acceptance rate).

    python examples/blackjax_negative_sampler.py           # about a minute on a CPU
    python examples/blackjax_negative_sampler.py --smoke   # seconds (or JEBM_SMOKE=1)
"""


import jax
import jax.numpy as jnp
import optax
from _args import example_parser

import jebm


def main(argv=None):
    args = example_parser(__doc__, num_steps=1000, step_size=0.05).parse_args(argv)
    try:
        import blackjax
    except ImportError:
        print("blackjax is not installed (pip install blackjax); skipping this example.")
        return
    num_steps, batch_size, hidden = (
        (10, 64, (16,)) if args.smoke else (args.num_steps, 256, (64, 64)))

    toy = jebm.energies.toy_data.get("8gaussians")
    sample = jax.jit(toy.density.sample, static_argnums=1)
    k_model, k_data, k_train = jax.random.split(jax.random.key(0), 3)
    energy_fn, params = jebm.energies.mlp_energy(k_model, 2, hidden=hidden)

    def sampler(logdensity_fn):  # the whole adapter: BlackJAX already speaks the contract
        return blackjax.mala(logdensity_fn, args.step_size)

    objective = jebm.objectives.cd(energy_fn, sampler, num_steps=10, energy_l2=0.1)
    optimizer = optax.adam(1e-3)
    state = jebm.train.init_train_state(k_train, params, optimizer, objective,
                                        sample(k_data, batch_size))
    train_step = jebm.train.make_train_step(objective, optimizer)

    @jax.jit
    def update(state):
        return train_step(state, sample(jax.random.fold_in(k_data, state.step), batch_size),
                          k_train)

    for t in range(num_steps):
        state, metrics = update(state)
        if (t + 1) % max(num_steps // 5, 1) == 0:
            # The CD loss is no convergence signal: watch the energy gap E− − E+ instead.
            gap = float(metrics["energy_neg"] - metrics["energy_pos"])
            print(f"step {t + 1:5d}  energy gap {gap:+.3f}  "
                  f"MALA acceptance {float(metrics['sampler/acceptance_rate']):.2f}")

    # The same BlackJAX kernel also samples the trained model through jebm.run_chains.
    algorithm = sampler(jebm.logdensity_fn(energy_fn, state.params))

    @jax.jit
    def mean_radius(key):
        k_start, k_run = jax.random.split(key)
        result = jebm.run_chains(k_run, algorithm, sample(k_start, 64), 50, keep_trace=False)
        return jnp.linalg.norm(result.state.position, axis=-1).mean()

    radius = mean_radius(jax.random.key(1))
    print(f"mean radius of 64 model draws {float(radius):.2f} (the data's modes sit at 2.83)")


if __name__ == "__main__":
    main()
