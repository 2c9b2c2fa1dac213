"""How does the cost of a score-matching training step grow with the dimension?

Question: exact score matching needs the trace of the Hessian of ``log p`` (``jacfwd`` of
``grad``: ``d`` forward-over-reverse products), sliced score matching needs one
Hessian-vector product per projection. Per training step (the loss *and* its gradient
with respect to the parameters, plus an SGD update) on a ``d -> 128 -> 128 -> 1`` SiLU MLP
energy, how do the two scale for ``d = 2, 4, ..., 256``? Expected: exact ∝ d (at large
d), sliced ≈ flat. Denoising score matching (one gradient of the energy) is timed as the
reference (``dsm``); every ratio is against it, in the same run and dimension.

Uses ``jebm.objectives.score_matching`` (``exact_score_matching_loss``,
``sliced_score_matching_loss`` with one Rademacher projection,
``denoising_score_matching_loss`` with ``sigma=0.1``).

Run::

    python benchmarks/score_matching.py          # --quick: batch 64, 3 rounds
    python benchmarks/score_matching.py --full   # batch 256, 7 rounds

Writes ``benchmarks/results/score_matching-<backend>.json`` and prints a markdown table.
"""

import sys
from functools import partial
from pathlib import Path

import jax
import jax.numpy as jnp

sys.path.insert(0, str(Path(__file__).resolve().parent))

import _common  # noqa: E402
from jebm.objectives.score_matching import (  # noqa: E402
    denoising_score_matching_loss,
    exact_score_matching_loss,
    sliced_score_matching_loss,
)

# Each loss gets ``sigma`` as a traced argument, as a noise schedule would pass it (only DSM
# uses it).
LOSSES = {
    "dsm": lambda p, k, b, sigma, energy_fn: denoising_score_matching_loss(
        p, k, b, energy_fn=energy_fn, sigma=sigma
    ),
    "sliced": lambda p, k, b, sigma, energy_fn: sliced_score_matching_loss(
        p, k, b, energy_fn=energy_fn, num_projections=1
    ),
    "exact": lambda p, k, b, sigma, energy_fn: exact_score_matching_loss(
        p, k, b, energy_fn=energy_fn
    ),
}


def train_steps_case(loss_fn, energy_fn, num_inner: int):
    """``num_inner`` SGD steps on ``loss_fn`` in a ``lax.scan`` (amortises dispatch)."""
    grad_fn = jax.value_and_grad(partial(loss_fn, energy_fn=energy_fn), has_aux=True)

    def run(key, params, batch, sigma):
        def body(params, t):
            (loss, _), grads = grad_fn(params, jax.random.fold_in(key, t), batch, sigma)
            params = jax.tree.map(lambda p, g: p - 1e-4 * g, params, grads)
            return params, loss

        return jax.lax.scan(body, params, jnp.arange(num_inner))

    return run


def main(argv=None):
    args = _common.parse_args(__doc__.split("\n\n")[0], _add_arguments, argv)
    batch_size = args.batch_size or (256 if args.full else 64)
    repeats = args.repeats or (7 if args.full else 3)
    dims = args.dims
    settings = {
        "mode": "full" if args.full else "quick",
        "batch_size": batch_size,
        "hidden": [128, 128],
        "num_inner_steps": args.num_inner,
        "repeats": repeats,
        "dims": dims,
        "dtype": "float32",
    }
    info = _common.device_info()
    _common.print_header("exact vs sliced score matching, per training step", info, settings)
    results, rows = {}, []
    for d in dims:
        energy_fn, params = _common.mlp_energy(jax.random.key(d), d, (128, 128), confine=0.0)
        batch = jax.random.normal(jax.random.key(1000 + d), (batch_size, d), jnp.float32)
        case_args = (jax.random.key(0), params, batch, jnp.float32(0.1))
        cases = {
            name: (train_steps_case(loss, energy_fn, args.num_inner), case_args)
            for name, loss in LOSSES.items()
        }
        compiled, compile_times = _common.compile_cases(cases)
        times = _common.time_interleaved(compiled, repeats)
        ms = {name: 1e3 * _common.median(t) / args.num_inner for name, t in times.items()}
        results[d] = {
            name: {
                "ms_per_step": ms[name],
                "ratio_to_dsm": _common.round_ratio(times, name, "dsm"),
                "compile_s": _common.median(compile_times[name]),
                "run_times_s": times[name],
            }
            for name in cases
        }
        ratio = partial(_common.round_ratio, times)
        rows.append([
            d, ms["dsm"], ms["sliced"], ms["exact"], ratio("sliced", "dsm"),
            ratio("exact", "dsm"), ratio("exact", "sliced"), _common.median(compile_times["exact"]),
        ])  # fmt: skip
        print(f"d={d}: dsm {ms['dsm']:.3g} ms, sliced {ms['sliced']:.3g} ms, "
              f"exact {ms['exact']:.3g} ms", flush=True)  # fmt: skip
    print(f"\n## score matching training step, batch {batch_size}, MLP d-128-128-1\n")
    print(_common.markdown_table(
        ["d", "DSM ms/step", "sliced ms/step", "exact ms/step", "sliced × DSM", "exact × DSM",
         "exact × sliced", "exact compile s"], rows))  # fmt: skip
    path = _common.write_json("score_matching", info, settings, results, args.out)
    print(f"\nwrote {path}")


def _add_arguments(parser):
    parser.add_argument("--batch-size", type=int, default=None, help="64 quick, 256 full")
    parser.add_argument("--num-inner", type=int, default=5, help="SGD steps per timed call")
    parser.add_argument(
        "--dims", type=int, nargs="+", default=[2, 4, 8, 16, 32, 64, 128, 256]
    )


if __name__ == "__main__":
    main()
