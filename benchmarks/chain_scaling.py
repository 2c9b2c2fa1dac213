"""How does sampler throughput grow with the number of chains, and where does it saturate?

Question: for jebm's ULA and MALA through ``jebm.run_chains(..., keep_trace=False)``
(jitted), how many chain-steps per second does one device deliver with 1, 10, 100, 10³,
10⁴, 10⁵ and 10⁶ chains? With few chains the device idles (per-step overhead dominates);
at some size every unit is busy and throughput stops growing. The *saturation point* is
the first size ``n`` after which ten times more chains give less than 10% more
throughput. Peak memory is reported per size (see below).

Targets (float32, as in ``samplers.py``): ``8gaussians``, the 2-d mixture of 8 Gaussians
(``jebm.energies.gaussian_mixture``), and ``mlp``, the 2 -> 128 -> 128 -> 1 SiLU MLP
energy (the network of ``jebm.energies.mlp.mlp_energy``, written in plain jax in
``_common.mlp_energy`` with a confining ``0.5|x|^2``).

Steps per size: ``clip(budget // num_chains, min_steps, max_steps)``, so small sizes run
long enough to time and large sizes stay affordable. ``run_chains`` is called with
``thin=num_steps`` so that the per-step info and the running moments are kept once, not
per step: memory is flat in the number of steps and the timing is the stepping itself.

Memory, per size: ``xla temp MiB`` is the compiled program's scratch memory and
``xla total MiB`` adds its arguments and outputs (``compiled.memory_analysis()``, on any
backend); on GPU/TPU ``device peak MiB`` is ``device.memory_stats()["peak_bytes_in_use"]``
after the size ran (a process-wide high-water mark; sizes run in increasing order, so it
is the peak of the largest size so far); on CPU ``maxRSS growth MiB`` is the growth of
the process's peak resident set (``resource.getrusage``) while the size ran (0 when the
size fitted under an earlier peak).

Run::

    python benchmarks/chain_scaling.py          # --quick: up to 1e5 chains, few steps
    python benchmarks/chain_scaling.py --full   # up to 1e6 chains (where memory allows)

Writes ``benchmarks/results/chain_scaling-<backend>.json`` and prints markdown tables.
"""

import os
import resource
import sys
from pathlib import Path

import jax
import jax.numpy as jnp

sys.path.insert(0, str(Path(__file__).resolve().parent))

import _common  # noqa: E402
import samplers as bench_samplers  # noqa: E402
from jebm.samplers import mala, run_chains, ula  # noqa: E402

SATURATION_GAIN = 1.1  # throughput growth per 10x chains below which we call it saturated
MIB = 2.0**20


def _chain_counts(max_chains: int) -> list[int]:
    return [10**k for k in range(7) if 10**k <= max_chains]


def _num_steps(num_chains: int, budget: int, min_steps: int, max_steps: int) -> int:
    return int(min(max_steps, max(min_steps, budget // num_chains)))


def _case(algorithm, num_steps: int):
    def run(key, x0):
        out = run_chains(key, algorithm, x0, num_steps, keep_trace=False, thin=num_steps)
        return out.state.position, jnp.mean(getattr(out.info, "acceptance_rate", jnp.nan))

    return run


def _algorithms():
    """``(target, sampler) -> SamplingAlgorithm`` with the step sizes of ``samplers.py``."""
    algs = {}
    for target, make in bench_samplers.TARGETS.items():
        logdensity, _, steps = make()
        algs[(target, "ULA")] = ula(logdensity, steps["ula"])
        algs[(target, "MALA")] = mala(logdensity, steps["mala"])
    return algs


def _xla_memory(compiled) -> dict[str, float | None]:
    try:
        stats = compiled.fn.memory_analysis()
    except Exception:  # not every backend implements it
        stats = None
    if stats is None:
        return {"xla_temp_mib": None, "xla_total_mib": None}
    temp = getattr(stats, "temp_size_in_bytes", 0)
    total = temp + getattr(stats, "argument_size_in_bytes", 0)
    total += getattr(stats, "output_size_in_bytes", 0)
    return {"xla_temp_mib": temp / MIB, "xla_total_mib": total / MIB}


def _device_peak_mib() -> float | None:
    stats = jax.devices()[0].memory_stats() if jax.default_backend() != "cpu" else None
    if not stats or "peak_bytes_in_use" not in stats:
        return None
    return stats["peak_bytes_in_use"] / MIB


def _max_rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0  # KiB on Linux


def _host_memory_mib() -> float:
    return os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE") / MIB


def _is_oom(err: Exception) -> bool:
    text = f"{type(err).__name__}: {err}"
    return isinstance(err, MemoryError) or "RESOURCE_EXHAUSTED" in text or "Out of memory" in text


def saturation(sizes: list[int], throughput: list[float]) -> int | None:
    """First size after which 10x more chains give < 10% more throughput (None: never)."""
    for n, now, nxt in zip(sizes, throughput, throughput[1:], strict=False):
        if nxt < SATURATION_GAIN * now:
            return n
    return None


def main(argv=None):
    args = _common.parse_args(__doc__.split("\n\n")[0], _add_arguments, argv)
    max_chains = args.max_chains or (10**6 if args.full else 10**5)
    budget = args.budget or (20_000_000 if args.full else 1_000_000)
    min_steps = 20 if args.full else 10
    max_steps = 1000 if args.full else 200
    repeats = args.repeats or (5 if args.full else 3)
    sizes = _chain_counts(max_chains)
    steps = {n: _num_steps(n, budget, min_steps, max_steps) for n in sizes}
    settings = {
        "mode": "full" if args.full else "quick",
        "chain_counts": sizes,
        "num_steps": steps,
        "chain_step_budget": budget,
        "repeats": repeats,
        "dtype": "float32",
        "thin": "num_steps (info and moments kept once)",
        "saturation_gain": SATURATION_GAIN,
    }
    info = _common.device_info()
    _common.print_header("throughput vs number of chains", info, settings)
    algorithms = _algorithms()
    host_mib = _host_memory_mib()
    results: dict = {"sizes": {}, "series": {}, "stopped": None}

    for n in sizes:
        x0 = 0.5 * jax.random.normal(jax.random.key(1), (n, 2), jnp.float32)
        key = jax.random.key(0)
        cases = {
            f"{t}/{s}": (_case(alg, steps[n]), (key, x0)) for (t, s), alg in algorithms.items()
        }
        rss_before = _max_rss_mib()
        try:
            compiled, compile_times = _common.compile_cases(cases)
            memory = {name: _xla_memory(c) for name, c in compiled.items()}
            need = max((m["xla_total_mib"] or 0.0) for m in memory.values())
            if jax.default_backend() == "cpu" and need > 0.5 * host_mib:
                raise MemoryError(f"needs {need:.0f} MiB, host has {host_mib:.0f} MiB")
            outputs = {name: c.fn(*c.args) for name, c in compiled.items()}
            times = _common.time_interleaved(compiled, repeats)
        except Exception as err:
            if not _is_oom(err):
                raise
            results["stopped"] = {"num_chains": n, "reason": f"{type(err).__name__}: {err}"[:500]}
            print(f"{n} chains: out of memory, stopping ({results['stopped']['reason'][:120]})")
            break
        peak = _device_peak_mib()
        rss_growth = _max_rss_mib() - rss_before
        record = {}
        for name in cases:
            t = _common.median(times[name])
            record[name] = {
                "num_steps": steps[n],
                "median_s": t,
                "chain_steps_per_s": n * steps[n] / t,
                "best_chain_steps_per_s": n * steps[n] / min(times[name]),
                "ns_per_chain_step": 1e9 * t / (n * steps[n]),
                "us_per_step": 1e6 * t / steps[n],
                "compile_s": _common.median(compile_times[name]),
                "mean_acceptance": float(outputs[name][1]),
                **memory[name],
                "device_peak_mib": peak,
                "max_rss_growth_mib": rss_growth if jax.default_backend() == "cpu" else None,
                "run_times_s": times[name],
            }
        results["sizes"][n] = record
        print(
            f"{n:>8} chains x {steps[n]:>4} steps: "
            + ", ".join(f"{k} {v['chain_steps_per_s']:.3g}/s" for k, v in record.items()),
            flush=True,
        )

    done = list(results["sizes"])
    for name in (f"{t}/{s}" for t, s in algorithms):
        thr = [results["sizes"][n][name]["chain_steps_per_s"] for n in done]
        sat = saturation(done, thr)
        best = max(range(len(thr)), key=thr.__getitem__) if thr else None
        results["series"][name] = {
            "chain_counts": done,
            "chain_steps_per_s": thr,
            "saturation_chains": sat,
            "peak_chain_steps_per_s": thr[best] if thr else None,
            "peak_at_chains": done[best] if thr else None,
        }

    print(f"\n## chain-steps per second, {info['backend']} ({info['device_kind']})\n")
    print(_common.markdown_table(*table_throughput(results)))
    print("\n## saturation and memory\n")
    print(_common.markdown_table(*table_saturation(results)))
    path = _common.write_json("chain_scaling", info, settings, results, args.out)
    print(f"\nwrote {path}")


def table_throughput(results: dict):
    """(headers, rows): one row per chain count, one column per target/sampler."""
    sizes = list(results["sizes"])
    names = list(results["series"]) or (list(results["sizes"][sizes[0]]) if sizes else [])
    headers = ["chains", "steps", *(f"{n} chain-steps/s" for n in names)]
    rows = []
    for n in sizes:
        rec = results["sizes"][n]
        first = next(iter(rec.values()))
        rows.append([int(n), first["num_steps"], *(rec[m]["chain_steps_per_s"] for m in names)])
    return headers, rows


def table_saturation(results: dict):
    """(headers, rows): saturation point, peak throughput and memory at the largest size."""
    sizes = list(results["sizes"])
    headers = ["target/sampler", "saturates at (chains)", "peak chain-steps/s", "at chains",
               "xla temp MiB (largest)", "xla total MiB (largest)", "device peak MiB",
               "maxRSS growth MiB (largest)"]  # fmt: skip
    rows = []
    for name, s in results["series"].items():
        last = results["sizes"][sizes[-1]][name] if sizes else {}
        sat = s["saturation_chains"]

        def num(v):
            return float("nan") if v is None else float(v)

        rows.append([
            name, f"{sat:,}" if sat is not None else f"not by {int(sizes[-1]):,}",
            num(s["peak_chain_steps_per_s"]), f"{int(s['peak_at_chains']):,}",
            num(last.get("xla_temp_mib")), num(last.get("xla_total_mib")),
            num(last.get("device_peak_mib")), num(last.get("max_rss_growth_mib")),
        ])  # fmt: skip
    return headers, rows


def render_markdown(payload: dict) -> str:
    """The tables of a ``chain_scaling`` JSON payload, for ``run_all.py``'s RESULTS.md."""
    res = payload["results"]
    parts = [
        "#### chain-steps per second",
        _common.markdown_table(*table_throughput(res)),
        "#### saturation and memory",
        _common.markdown_table(*table_saturation(res)),
    ]
    if res.get("stopped"):
        parts.append(f"Stopped at {int(res['stopped']['num_chains']):,} chains: "
                     f"{res['stopped']['reason'][:200]}")  # fmt: skip
    return "\n\n".join(parts)


def _add_arguments(parser):
    parser.add_argument("--max-chains", type=int, default=None, help="1e5 quick, 1e6 full")
    parser.add_argument(
        "--budget", type=int, default=None, help="chain-steps per call (1e6 quick, 2e7 full)"
    )


if __name__ == "__main__":
    main()
