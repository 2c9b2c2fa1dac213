"""The default run of the config system, with the network swapped for your own energy.

``jebm.config.load_config(None, overrides)`` gives the default config (persistent CD
on 8gaussians) with dotted overrides; ``jebm.experiment.build_run(config,
energy=(energy_fn, params))`` builds data, sampler, objective, optimizer and the
initial train state around a user-written Flax NNX energy; ``train_run`` trains it
and
``jebm.experiment.summary`` reports the test NLL, the data's entropy H and NLL − H.
This is what ``jebm train`` does, minus file I/O and plots.

    python examples/experiment_with_own_energy.py           # a few minutes on a CPU
    python examples/experiment_with_own_energy.py --smoke   # seconds (or JEBM_SMOKE=1)
"""


import jax.numpy as jnp
from _args import example_parser
from flax import nnx

import jebm


class QuadraticPlusMLP(nnx.Module):
    """``E(x) = 0.25‖x‖² + MLP(x)`` on a batch ``(n, 2) -> (n, 1)``."""

    def __init__(self, hidden: int, rngs: nnx.Rngs):
        self.hidden = nnx.Linear(2, hidden, rngs=rngs)
        self.out = nnx.Linear(hidden, 1, rngs=rngs)

    def __call__(self, x):
        return 0.25 * jnp.sum(x**2, axis=-1, keepdims=True) + self.out(jnp.tanh(self.hidden(x)))


def main(argv=None):
    parser = example_parser(__doc__)
    parser.add_argument("overrides", nargs="*",
                        help="dotted config overrides, e.g. sampler.step_size=0.01")
    args = parser.parse_args(argv)
    smoke = ["train.num_steps=10", "train.chunk_size=10", "train.log_every=10",
             "train.eval_every=0", "data.batch_size=64", "data.num_test=500",
             "objective.buffer_size=256", "objective.num_chains=64", "eval.grid_points=64"]
    config = jebm.config.load_config(None, (smoke if args.smoke else []) + args.overrides)

    energy = jebm.energy.from_nnx(QuadraticPlusMLP(16 if args.smoke else 128, nnx.Rngs(0)))
    run = jebm.experiment.build_run(config, energy=energy)
    before = jebm.experiment.summary(run, run.initial_state.params)
    # In memory: no workdir, so no checkpoints (pass a workdir for them and metrics.jsonl).
    result = jebm.experiment.train_run(run)  # no workdir: in memory, no checkpoints
    after = jebm.experiment.summary(run, result.state.params)
    print(f"{config.objective.name} on {config.data.name}, {int(result.state.step)} updates")
    for name in ("test_nll", "entropy", "nll_minus_entropy"):
        values = [f"{s[name]:7.3f}" if s[name] is not None else "refused" for s in (before, after)]
        print(f"{name:18s} before {values[0]}   after {values[1]}")
    if after.get("error"):
        print(after["error"])


if __name__ == "__main__":
    main()
