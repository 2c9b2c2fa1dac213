"""log Z of a trained energy by forward and reverse AIS, checked against quadrature.

The model is ``E(x) = MLP(x) − log q(x)`` (``jebm.energy.with_base``) with ``q`` the
Gaussian fitted to the data (``jebm.densities.fit_gaussian``), so ``exp(−E)`` is
integrable; it is fitted to 8gaussians by denoising score matching (quick: no sampler
in the loop). Forward AIS (``jebm.evaluation.ais``) annealed from the base ``q`` gives
a stochastic lower bound on log Z; reverse AIS
(``jebm.evaluation.reverse_ais``) from model samples gives an upper bound. The bound
holds in expectation only for exact samples; ours come from long MALA chains, so the
upper side is heuristic. In two dimensions ``log_z_grid`` gives the reference.

    python examples/ais_on_trained_model.py           # about a minute on a CPU
    python examples/ais_on_trained_model.py --smoke   # seconds (or JEBM_SMOKE=1)
"""


import jax
import jax.numpy as jnp
import optax
from _args import example_parser

import jebm


def main(argv=None):
    args = example_parser(__doc__, num_bridges=500).parse_args(argv)
    train_steps, num_chains, num_bridges, mcmc_steps, grid = (
        (20, 32, 20, 20, 64) if args.smoke else (2000, 512, args.num_bridges, 1000, 300))

    toy = jebm.energies.toy_data.get("8gaussians")
    sample = jax.jit(toy.density.sample, static_argnums=1)
    keys = jax.random.split(jax.random.key(0), 8)
    k_base, k_model, k_data, k_loss, k_start, k_mcmc, k_ais, k_rev = keys
    base = jebm.densities.fit_gaussian(sample(k_base, 2000))  # q, a Density
    net_fn, params = jebm.energies.mlp_energy(k_model, 2, hidden=(64, 64))
    energy_fn = jebm.energy.with_base(net_fn, base)  # E = MLP − log q
    objective = jebm.objectives.denoising_score_matching(energy_fn, sigma=0.1)
    optimizer = optax.adam(1e-3)
    state = jebm.train.init_train_state(k_loss, params, optimizer, objective,
                                        sample(k_data, 256))
    train_step = jebm.train.make_train_step(objective, optimizer)

    @jax.jit
    def train(state):  # all updates in one lax.scan
        def body(state, _):
            batch = sample(jax.random.fold_in(k_data, state.step), 256)
            return train_step(state, batch, k_loss)[0], None
        return jax.lax.scan(body, state, length=train_steps)[0]

    params = train(state).params

    @jax.jit
    def estimates(params):
        log_z_grid = jebm.evaluation.log_z_grid(energy_fn, params, low=(-6.0, -6.0),
                                                high=(6.0, 6.0), num_points=grid)
        forward = jebm.evaluation.ais(k_ais, energy_fn, params, base, num_chains,
                                      num_bridges=num_bridges, adapt_step_size=True)
        # Approximate model samples for reverse AIS: MALA chains started at data points.
        algorithm = jebm.samplers.mala(jebm.logdensity_fn(energy_fn, params), step_size=0.05)
        chains = jebm.run_chains(k_mcmc, algorithm, sample(k_start, num_chains),
                                 mcmc_steps, keep_trace=False)
        reverse = jebm.evaluation.reverse_ais(k_rev, energy_fn, params, base,
                                              chains.state.position, num_bridges=num_bridges,
                                              adapt_step_size=True)
        return log_z_grid, forward, reverse

    log_z_grid, forward, reverse = estimates(params)
    # The bounds hold in expectation: one run may cross by a few standard errors.
    print(f"log Z  forward AIS (lower) {float(forward.log_z):7.4f} ± "
          f"{float(forward.log_z_stderr):.4f}  ESS {float(forward.ess):.0f} of {num_chains}")
    print(f"log Z  reverse AIS (upper) {float(reverse.log_z):7.4f} ± "
          f"{float(reverse.log_z_stderr):.4f}  ESS {float(reverse.ess):.0f}")
    print(f"log Z  grid quadrature     {float(log_z_grid):7.4f}")
    assert jnp.isfinite(forward.log_z) and jnp.isfinite(reverse.log_z)


if __name__ == "__main__":
    main()
