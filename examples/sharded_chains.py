"""Many MCMC chains split over devices with ``jax.sharding``: no change to the sampler.

``jebm.parallel.make_mesh()`` puts every device on the ``"chains"`` axis;
``jebm.parallel.shard_chains`` splits the initial positions ``(num_chains, 2)`` along
axis 0; a jitted ``jebm.run_chains`` keeps the states, trace and moments sharded, each
device stepping only its own chains (chains never communicate, so the compiled scan
holds no collective). Sharding never changes a value: the result equals the
single-device run. On one CPU this runs on one device; to see four, fake them:

    XLA_FLAGS=--xla_force_host_platform_device_count=4 python examples/sharded_chains.py
    python examples/sharded_chains.py --smoke   # seconds (or JEBM_SMOKE=1)
"""


import jax
import jax.numpy as jnp
import numpy as np
from _args import example_parser

import jebm


def main(argv=None):
    args = example_parser(__doc__, chains_per_device=1024, num_steps=2000).parse_args(argv)
    per_device, num_steps = (8, 50) if args.smoke else (args.chains_per_device, args.num_steps)

    mesh = jebm.parallel.make_mesh()
    num_chains = per_device * mesh.shape["chains"]
    # A target with exact moments: two well-separated Gaussians with weights 0.3, 0.7.
    target = jebm.energies.gaussian_mixture(jnp.array([[-2.0, 0.0], [2.0, 0.0]]), 0.7,
                                            jnp.array([0.3, 0.7]))
    algorithm = jebm.samplers.mala(jebm.logdensity_fn(target.energy_fn, target.params),
                                   step_size=0.5)
    k_init, k_run = jax.random.split(jax.random.key(0))
    x0 = jebm.parallel.shard_chains(target.sample(k_init, num_chains), mesh)

    @jax.jit
    def run(key, x0):  # only per-chain running moments are kept: memory flat in num_steps
        return jebm.run_chains(key, algorithm, x0, num_steps, burn_in=num_steps // 5,
                               keep_trace=False)

    result = run(k_run, x0)
    positions = result.state.position
    mean = np.mean(result.moments.mean, axis=0)  # the average of the per-chain means
    print(f"{len(jax.devices())} device(s), mesh {dict(mesh.shape)}, {num_chains} chains")
    print(f"final positions: sharding {positions.sharding.spec}, "
          f"per-device shape {positions.addressable_shards[0].data.shape}")
    print(f"E[x₀] = {mean[0]:+.3f} (exact {0.7 * 2.0 - 0.3 * 2.0:+.3f}), "
          f"acceptance {np.mean(result.info.acceptance_rate):.2f}")

    single = run(k_run, jax.device_put(x0, jax.devices()[0]))  # the same run on one device
    same = np.array_equal(np.asarray(single.state.position), np.asarray(positions))
    print(f"identical to the single-device run: {same}")


if __name__ == "__main__":
    main()
