"""Does sharding chains over devices keep the cost per chain-step flat?

Question: with the same total number of chains, how does ``jebm.run_chains`` (jitted,
``keep_trace=False``) cost per chain-step when the chains are split over 8 devices
(``jebm.parallel.shard_chains`` on a ``(chains=8, data=1)`` mesh) versus all on one
device? Target: ratio (8 devices / 1 device) <= 1.2. And does the compiled HLO of the
sharded run hold any collective (all-gather, all-reduce, ...) -- it should hold none,
in the scan body or anywhere else.

Devices: 8 fake CPU devices (``jax_num_cpu_devices = 8``, set before any computation)
on whatever cores the host has, so the 8-device case measures the sharding overhead
(per-device dispatch, partitioned key generation), not a speed-up from more hardware.
Both cases are compiled and timed in the same process, interleaved. Target: the 2-d
mixture of 8 Gaussians (as in ``samplers.py``); samplers ULA and MALA.

Run::

    python benchmarks/sharding.py            # --quick: 4096 chains x 100 steps
    python benchmarks/sharding.py --full     # 16384 chains x 1000 steps

Writes ``benchmarks/results/sharding-cpu.json`` and prints a markdown table.
"""

import re
import sys
from pathlib import Path

import jax

jax.config.update("jax_num_cpu_devices", 8)  # before anything initialises the backend

import numpy as np  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))

import _common  # noqa: E402
from jebm import parallel  # noqa: E402
from jebm.energies import gaussian_mixture  # noqa: E402
from jebm.samplers import mala, run_chains, ula  # noqa: E402

COLLECTIVE = re.compile(r"\b(all-gather|all-reduce|all-to-all|collective-permute|reduce-scatter)")
TARGET_RATIO = 1.2


def eight_gaussians():
    angles = np.arange(8) * np.pi / 4
    means = 2.0 * np.sqrt(2.0) * np.stack([np.cos(angles), np.sin(angles)], axis=1)
    target = gaussian_mixture(means, 0.5 / np.sqrt(2.0))
    return lambda x: -target.energy_fn(target.params, x)


def add_arguments(parser):
    parser.add_argument("--num-chains", type=int, default=None, help="total chains")
    parser.add_argument("--num-steps", type=int, default=None)


def main():
    args = _common.parse_args(__doc__.splitlines()[0], add_arguments)
    num_chains = args.num_chains or (16384 if args.full else 4096)
    num_steps = args.num_steps or (1000 if args.full else 100)
    repeats = args.repeats or (10 if args.full else 7)
    info = _common.device_info()
    settings = {
        "num_chains": num_chains,
        "num_steps": num_steps,
        "repeats": repeats,
        "mesh": "chains=8, data=1",
        "target": "8gaussians (2-d)",
    }
    _common.print_header("Chains sharded over 8 devices vs 1", info, settings)
    if len(jax.devices()) != 8:
        raise SystemExit(f"expected 8 devices, got {len(jax.devices())}")

    logdensity = eight_gaussians()
    algorithms = {"ula": ula(logdensity, 0.005), "mala": mala(logdensity, 0.02)}
    mesh = parallel.make_mesh()
    x0 = jax.device_put(
        jax.random.normal(jax.random.key(1), (num_chains, 2)), jax.devices()[0]
    )
    x_sharded = parallel.shard_chains(x0, mesh)
    key = jax.random.key(0)

    cases = {}
    for name, alg in algorithms.items():

        def run(key, x, alg=alg):
            out = run_chains(key, alg, x, num_steps, keep_trace=False, transform=lambda s: ())
            return out.state.position

        cases[f"{name}/1dev"] = (run, (key, x0))
        cases[f"{name}/8dev"] = (run, (key, x_sharded))
    compiled, compile_times = _common.compile_cases(cases)
    times = _common.time_interleaved(compiled, repeats)

    results, rows = {}, []
    for name in algorithms:
        single, sharded = compiled[f"{name}/1dev"], compiled[f"{name}/8dev"]
        hlo = sharded.fn.as_text()
        collectives = sorted(set(COLLECTIVE.findall(hlo)))
        out = sharded.fn(*sharded.args)
        spec = str(out.sharding.spec)
        ref = single.fn(*single.args)
        max_diff = float(np.max(np.abs(np.asarray(out) - np.asarray(ref))))
        per = {}
        for case in ("1dev", "8dev"):
            t = _common.median(times[f"{name}/{case}"])
            per[case] = {
                "median_s": t,
                "ns_per_chain_step": 1e9 * t / (num_chains * num_steps),
                "compile_s": compiled[f"{name}/{case}"].total_s,
                "times_s": times[f"{name}/{case}"],
                "compile_times_s": compile_times[f"{name}/{case}"],
            }
        ratio = _common.round_ratio(times, f"{name}/8dev", f"{name}/1dev")
        ratio_min = _common.min_ratio(times, f"{name}/8dev", f"{name}/1dev")
        results[name] = {
            **per,
            "ratio_8dev_over_1dev": ratio,
            "ratio_of_minima": ratio_min,
            "meets_target": ratio <= TARGET_RATIO,
            "hlo_collectives": collectives,
            "output_sharding": spec,
            "max_abs_diff_vs_1dev": max_diff,
        }
        rows.append([
            name,
            per["1dev"]["ns_per_chain_step"],
            per["8dev"]["ns_per_chain_step"],
            ratio,
            ratio_min,
            ", ".join(collectives) or "none",
            spec,
            max_diff,
        ])
    print(
        _common.markdown_table(
            ["sampler", "1 dev ns/chain-step", "8 dev ns/chain-step", "ratio (median)",
             "ratio (min)", "collectives in HLO", "output spec", "max |diff|"],
            rows,
        )
    )
    print(f"target: ratio <= {TARGET_RATIO}")
    path = _common.write_json("sharding", info, settings, results, args.out)
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
