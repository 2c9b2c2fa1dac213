"""Where the default job's wall time goes: ``jebm train`` (PCD on 8gaussians) end to end.

Question: of the wall time of ``jebm.cli.train()`` with the default config, how much is
imports, building the run, XLA compilation, the steady-state training chunks, periodic
evaluation, checkpoint writes (orbax saves and their waits), the final plots and the
final summary? Each phase is timed by wrapping the CLI's own helpers in this process
(nothing in the library is changed); compilation time is summed from JAX's monitoring
events (``/jax/compilation_cache/...`` and ``backend_compile`` durations), so it is
counted inside whichever phase triggered it and reported on its own as well.

This is one run, not interleaved rounds: the phases are sequential by nature. Run it
twice with ``--cache`` to see what a persistent compilation cache saves on the second
run (the cache goes to a temporary folder, never the user's or the repository's).

Run::

    python benchmarks/default_job.py                # a fresh process, default job
    python benchmarks/default_job.py --cache DIR    # with jax_compilation_cache_dir=DIR
    python benchmarks/default_job.py --cpu-devices 1  # on one CPU device (one core)

Like ``jebm train``, it exposes one CPU device per core (:func:`jebm.parallel.use_cpu_cores`)
and the default ``train.devices: 0`` trains data-parallel over them.

Writes ``benchmarks/results/default_job-<backend>.json``.
"""

import time

T_START = time.perf_counter()

import collections  # noqa: E402
import contextlib  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
from pathlib import Path  # noqa: E402

T_STDLIB = time.perf_counter()
import jax  # noqa: E402

T_JAX = time.perf_counter()
import jebm.cli as cli  # noqa: E402

T_CLI = time.perf_counter()

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _common  # noqa: E402

PHASES: dict[str, float] = collections.defaultdict(float)
COUNTS: dict[str, int] = collections.defaultdict(int)
COMPILE: dict[str, float] = collections.defaultdict(float)
OUTSIDE = "outside the wrapped phases (training chunks, train() body)"
STACK: list[str] = [OUTSIDE]  # the phase now running (innermost last)
# Per phase: the XLA compilations it triggered, as (program name, backend-compile seconds),
# and how many of them the persistent cache answered.
COMPILES: dict[str, list] = collections.defaultdict(list)
CACHE_HITS: dict[str, int] = collections.defaultdict(int)


def _listener(event: str, duration: float, **kwargs) -> None:
    if ("compil" in event or "lower" in event or "trac" in event) and "saved" not in event:
        COMPILE[event] += duration  # compile_time_saved_sec is no time spent: left out
    if event == "/jax/core/compile/backend_compile_duration":
        COMPILES[STACK[-1]].append((kwargs.get("fun_name", "?"), duration))


def _event(event: str, **_) -> None:
    if event == "/jax/compilation_cache/cache_hits":
        CACHE_HITS[STACK[-1]] += 1


def _timed(name: str, fn):
    def wrapper(*args, **kwargs):
        t0 = time.perf_counter()
        STACK.append(name)
        try:
            return fn(*args, **kwargs)
        finally:
            STACK.pop()
            PHASES[name] += time.perf_counter() - t0
            COUNTS[name] += 1

    return wrapper


def _compile_table() -> dict[str, dict]:
    """Per phase: number of XLA compilations, their seconds, the slowest few, cache hits."""
    table = {}
    for phase in sorted(set(COMPILES) | set(CACHE_HITS), key=lambda p: p != OUTSIDE):
        entries = COMPILES.get(phase, [])
        by_name = collections.Counter()
        for name, seconds in entries:
            by_name[name] += seconds
        table[phase] = {"compilations": len(entries),
                        "seconds": sum(s for _, s in entries),
                        "cache_hits": CACHE_HITS.get(phase, 0),
                        "slowest": {k: round(v, 3) for k, v in by_name.most_common(4)}}
    return table


def main(argv=None) -> dict:
    def add_arguments(parser):
        parser.add_argument("--cache", type=Path, default=None,
                            help="use a persistent compilation cache in this folder")
        parser.add_argument("--cpu-devices", type=int, default=None,
                            help="CPU devices (train.devices splits the job over them); "
                            "default: one per core, as the jebm console script sets")
        parser.add_argument("--min-compile-s", type=float, default=None,
                            help="cache only programs that took this long to compile "
                            "(default: the helper's)")  # fmt: skip

    # --quick/--full are accepted (run_all passes one) and change nothing: one default job.
    args = _common.parse_args(__doc__.split("\n\n")[0], add_arguments, argv)
    from jebm.parallel import use_cpu_cores

    use_cpu_cores(args.cpu_devices)  # what the console script does, before any computation
    if args.cache is not None:
        from jebm._cache import enable_compilation_cache

        extra = {} if args.min_compile_s is None else {"min_compile_time_secs": args.min_compile_s}
        enable_compilation_cache(args.cache, **extra)
    jax.monitoring.register_event_duration_secs_listener(_listener)
    jax.monitoring.register_event_listener(_event)

    import jebm.train.loop as loop
    from jebm.experiment import training, workdir

    # each phase is timed where jebm train's recipe (experiment.workdir) looks it up
    workdir.build_run = _timed("build run (data, energy, objective, initial state)",
                               workdir.build_run)
    workdir.save_figures = _timed("plots (energy.png, samples.png)", workdir.save_figures)
    workdir.run_summary = _timed("final test NLL", workdir.run_summary)
    loop.save_checkpoint = _timed("checkpoint saves (incl. waits)", loop.save_checkpoint)
    original_loop = training.train_loop

    def train_loop(*a, eval_fn=None, **kw):
        return original_loop(*a, eval_fn=_timed("periodic evaluation", eval_fn), **kw)

    training.train_loop = _timed("train_loop (all)", train_loop)
    with tempfile.TemporaryDirectory() as tmp, contextlib.redirect_stderr(sys.stderr):
        t0 = time.perf_counter()
        summary = cli.train(workdir=str(Path(tmp) / "run"), progress=False)
        t_train_call = time.perf_counter() - t0
    total = time.perf_counter() - T_START
    steady = (summary["num_steps"] / summary["steps_per_second"]
              if summary.get("steps_per_second") else float("nan"))  # fmt: skip
    loop_all = PHASES.pop("train_loop (all)")
    inner = sum(PHASES[k] for k in ("periodic evaluation", "checkpoint saves (incl. waits)"))
    phases = {
        "python + stdlib start": T_STDLIB - T_START,
        "import jax": T_JAX - T_STDLIB,
        "import jebm.cli (flax, optax, orbax, tyro, ...)": T_CLI - T_JAX,
        **{k: v for k, v in PHASES.items()},
        "training chunks (incl. first-chunk compile)": loop_all - inner,
        "  of which steady state (num_steps / steps_per_second)": steady,
        "rest of train() (config, json, loop setup, restore check)":
            t_train_call - loop_all - sum(PHASES.values()) + inner,
    }  # fmt: skip
    compile_total = sum(COMPILE.values())
    compiles = _compile_table()
    results = {
        "phases_s": phases,
        "compile_events_s": dict(COMPILE),
        "compile_total_s": compile_total,
        "compilations_by_phase": compiles,
        "compilations": sum(c["compilations"] for c in compiles.values()),
        "wall_total_s": total,
        "summary": {k: summary[k] for k in ("nll_minus_entropy", "train_seconds",
                                            "steps_per_second", "total_seconds")},
        "devices": len(jax.devices()),
        "cache": str(args.cache) if args.cache else None,
        "cache_min_compile_s": args.min_compile_s,
        "cache_entries": len(list(args.cache.iterdir())) if args.cache else None,
    }  # fmt: skip
    info = _common.device_info()
    print(f"# default job breakdown ({info['backend']} / {info['device_kind']})")
    print(_common.markdown_table(["phase", "seconds"], [[k, v] for k, v in phases.items()]))
    print(f"\ncompilation (JAX events, inside the phases above): {compile_total:.2f} s")
    print(_common.markdown_table(
        ["phase", "XLA compilations", "backend-compile s", "cache hits", "slowest"],
        [[k, v["compilations"], v["seconds"], v["cache_hits"],
          ", ".join(f"{n} {s:.2f}" for n, s in v["slowest"].items())]
         for k, v in compiles.items()]))
    print(f"wall total: {total:.2f} s on {len(jax.devices())} {info['backend']} device(s); "
          f"NLL - H = {summary['nll_minus_entropy']:.4f}")
    settings = {"config": "default job (configs/pcd.yaml)", "cache": results["cache"],
                "devices": len(jax.devices())}
    path = _common.write_json("default_job", info, settings, results, args.out)
    print(f"wrote {path}")
    return results


def render_markdown(payload: dict) -> str:
    r = payload["results"]
    devices = r.get("devices", 1)
    hits = sum(c.get("cache_hits", 0) for c in r.get("compilations_by_phase", {}).values())
    cache = ("no persistent compilation cache" if not r.get("cache") else
             f"warm compilation cache (all {hits} programs read from it)"
             if hits >= r.get("compilations", 0) else
             f"cold compilation cache (empty at the start; {hits} of "
             f"{r.get('compilations', 0)} programs read back from this run's own entries)")
    split = ("data-parallel over " if devices > 1 else "on ") + f"{devices} CPU device(s)"
    head = f"Trained {split}; {cache}.\n\n"
    if r.get("notes"):
        head += r["notes"] + "\n\n"
    rows = [[k, v] for k, v in r["phases_s"].items()]
    rows.append(["compilation (inside the phases above)", r["compile_total_s"]])
    rows.append(["wall total", r["wall_total_s"]])
    return head + _common.markdown_table(["phase", "seconds"], rows)


if __name__ == "__main__":
    main()
