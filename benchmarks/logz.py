"""How accurate is AIS's log Z, against the number of bridges and chains?

Question: on targets whose partition function is known in closed form, what error does
forward AIS (``jebm.partition.ais.ais``: Gaussian base, sigmoid schedule, one MALA step
per bridge with per-bridge step sizes tuned on an independent pilot run) make on log Z,
as the number of bridges ``K`` and of chains ``N`` grow? Plain importance sampling from
the same base (``log Ẑ = logmeanexp(−E(x) − log p₀(x))``, ``x ~ p₀``) is the reference
row, with ``N`` draws and with ``N·K_max`` draws (about the energy evaluations of the
largest AIS run).

Targets (float32), both ``jebm.energies.gaussian_mixture`` with exact ``log Z``:

* ``8gaussians`` (d = 2): 8 components on a circle of radius 2√2, sd 0.5/√2; base
  ``N(0, 3² I)``;
* ``gmm20`` (d = 20): 4 components with means drawn once from ``N(0, I)`` (seed 0),
  sd 0.5; base ``N(0, 2² I)``. Here the base is ``(2/0.5)^20`` times wider than a
  component, so plain importance sampling is hopeless and annealing is needed.

Each cell repeats the estimate with ``R`` independent keys and reports, over the
repeats: ``bias`` = mean(log Ẑ − log Z), ``RMSE``, ``sd`` (spread of log Ẑ), the mean
delta-method standard error AIS reports (``stderr``, compare with ``sd``), the mean
effective sample size of the weights (``ESS``) and the wall time of one estimate
(``s/run``, after compilation; the R repeats run in one ``lax.map``). Forward AIS is a
stochastic lower bound: ``bias`` should be ≤ 0 and shrink towards 0 as ``K`` grows.

Run::

    python benchmarks/logz.py          # --quick: K in {10, 100, 1000}, N in {64, 1024}, R=8
    python benchmarks/logz.py --full   # K in {10, ..., 3000}, N in {64, ..., 4096}, R=32
    # one cell with 32 repeats (is the bias of the 20-D K=1000 cell zero within its SE?):
    python benchmarks/logz.py --bridges 1000 --chains 1024 --repeats 32 \
        --out benchmarks/results/logz-recheck-cpu.json

Writes ``benchmarks/results/logz-<backend>.json`` and prints markdown tables.
"""

import sys
import time
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

import _common  # noqa: E402
from jebm.densities import gaussian as gaussian_base  # noqa: E402
from jebm.energies import gaussian_mixture  # noqa: E402
from jebm.partition import ais  # noqa: E402

INITIAL_STEP_SIZE = 0.1  # the pilot adapts per bridge from here (MALA, target 0.574)


def targets():
    """``name -> (AnalyticEnergy, Base)``."""
    angles = np.arange(8) * np.pi / 4
    ring = 2.0 * np.sqrt(2.0) * np.stack([np.cos(angles), np.sin(angles)], axis=1)
    means20 = np.random.default_rng(0).standard_normal((4, 20))
    mixture2 = gaussian_mixture(ring, 0.5 / np.sqrt(2.0))
    return {
        "8gaussians": (mixture2, gaussian_base(jnp.zeros(2), 3.0)),
        "gmm20": (gaussian_mixture(means20, 0.5), gaussian_base(jnp.zeros(20), 2.0)),
    }


def _logmeanexp(v):
    return jax.nn.logsumexp(v) - jnp.log(v.shape[0])


def ais_case(target, base, num_chains: int, num_bridges: int):
    def one(key):
        out = ais(
            key, target.energy_fn, target.params, base, num_chains, num_bridges=num_bridges,
            step_size=INITIAL_STEP_SIZE, adapt_step_size=True,
        )  # fmt: skip
        return out.log_z, out.log_z_stderr, out.ess

    return lambda keys: jax.lax.map(one, keys)


def is_case(target, base, num_draws: int, chunk: int = 65536):
    """Importance sampling from the base; draws in chunks so memory stays bounded."""
    chunk = min(chunk, num_draws)
    num_chunks = -(-num_draws // chunk)

    def log_weights(key):
        x = base.sample(key, chunk)
        return -jax.vmap(target.energy_fn, in_axes=(None, 0))(target.params, x) - jax.vmap(
            base.log_prob
        )(x)

    def one(key):
        lw = jax.lax.map(log_weights, jax.random.split(key, num_chunks)).reshape(-1)[:num_draws]
        w = jax.nn.softmax(lw)
        ess = 1.0 / jnp.sum(w**2)
        stderr = jnp.sqrt(jnp.maximum(num_draws / ess - 1.0, 0.0) / (num_draws - 1))
        return _logmeanexp(lw), stderr, ess

    return lambda keys: jax.lax.map(one, keys)


def main(argv=None):
    args = _common.parse_args(__doc__.split("\n\n")[0], _add_arguments, argv)
    bridges = args.bridges or ([10, 30, 100, 300, 1000, 3000] if args.full else [10, 100, 1000])
    chains = args.chains or ([64, 256, 1024, 4096] if args.full else [64, 1024])
    num_repeats = args.repeats or (32 if args.full else 8)
    settings = {
        "mode": "full" if args.full else "quick",
        "bridges": bridges,
        "chains": chains,
        "repeats_per_cell": num_repeats,
        "kernel": "mala, 1 step per bridge",
        "schedule": "sigmoid (delta=4)",
        "step_size": f"adapted on a pilot run from {INITIAL_STEP_SIZE}",
        "dtype": "float32",
    }
    info = _common.device_info()
    _common.print_header("AIS log Z error vs bridges and chains", info, settings)
    keys = jax.random.split(jax.random.key(0), num_repeats)
    results = {}
    for name, (target, base) in targets().items():
        log_z = float(target.log_z)
        cases = {}
        for n in chains:
            cases[f"IS|{n}|{n}"] = (is_case(target, base, n), (keys,))
            big = n * max(bridges)
            cases[f"IS|{n}|{big}"] = (is_case(target, base, big), (keys,))
            for k in bridges:
                cases[f"AIS|{n}|{k}"] = (ais_case(target, base, n, k), (keys,))
        compiled, compile_times = _common.compile_cases(cases)
        record = []
        for case, c in compiled.items():
            method, n, size = case.split("|")
            t0 = time.perf_counter()
            est, stderr, ess = jax.block_until_ready(c.fn(*c.args))
            wall = time.perf_counter() - t0
            err = np.asarray(est, np.float64) - log_z
            record.append({
                "method": method,
                "chains": int(n),
                "bridges": int(size) if method == "AIS" else None,
                "draws": int(size) if method == "IS" else None,
                "bias": float(np.mean(err)),
                "rmse": float(np.sqrt(np.mean(err**2))),
                "sd": float(np.std(np.asarray(est, np.float64), ddof=1)),
                "max_error": float(np.max(err)),
                "mean_stderr": float(np.mean(stderr)),
                "mean_ess": float(np.mean(ess)),
                "s_per_run": wall / num_repeats,
                "compile_s": _common.median(compile_times[case]),
                "log_z_estimates": est,
            })  # fmt: skip
            print(f"{name} {case}: bias {record[-1]['bias']:+.3g}, rmse {record[-1]['rmse']:.3g}",
                  flush=True)  # fmt: skip
        record.sort(key=lambda r: (r["chains"], r["method"] != "IS", r["bridges"] or 0,
                                   r["draws"] or 0))  # fmt: skip
        results[name] = {"exact_log_z": log_z, "dim": int(target.event_shape[0]), "rows": record}
        print(f"\n## {name} (d={results[name]['dim']}), exact log Z = {log_z:.4f}\n")
        print(_common.markdown_table(*table(results[name], num_repeats)))
    path = _common.write_json("logz", info, settings, results, args.out)
    print(f"\nwrote {path}")


def table(result: dict, num_repeats: int):
    """Rows of one target; ``bias / SE`` is the bias over its standard error ``sd/√R``
    (forward AIS should give ≤ 0 up to noise: |bias / SE| ≲ 2)."""
    headers = ["method", "chains N", "bias", "bias / SE", "RMSE", "sd", "stderr (reported)",
               "ESS", "max error", "s/run", "compile s"]  # fmt: skip
    rows = []
    for r in result["rows"]:
        label = f"AIS, K={r['bridges']}" if r["method"] == "AIS" else f"IS, {r['draws']:,} draws"
        z = r["bias"] / (r["sd"] / num_repeats**0.5) if r["sd"] > 0 else float("nan")
        rows.append([label, r["chains"], r["bias"], z, r["rmse"], r["sd"], r["mean_stderr"],
                     r["mean_ess"], r["max_error"], r["s_per_run"], r["compile_s"]])  # fmt: skip
    return headers, rows


def render_markdown(payload: dict) -> str:
    """The tables of a ``logz`` JSON payload, for ``run_all.py``'s RESULTS.md."""
    s = payload["settings"]
    parts = [f"Forward AIS ({s['kernel']}, {s['schedule']} schedule, step size "
             f"{s['step_size']}) vs importance sampling from the same base; "
             f"{s['repeats_per_cell']} independent estimates per row."]  # fmt: skip
    for name, res in payload["results"].items():
        parts.append(f"#### {name} (d={res['dim']}), exact log Z = {res['exact_log_z']:.4f}")
        parts.append(_common.markdown_table(*table(res, s["repeats_per_cell"])))
    return "\n\n".join(parts)


def _add_arguments(parser):
    parser.add_argument("--bridges", type=int, nargs="+", default=None)
    parser.add_argument("--chains", type=int, nargs="+", default=None)


if __name__ == "__main__":
    main()
