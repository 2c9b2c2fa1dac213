"""Run every benchmark script, then regenerate ``benchmarks/RESULTS.md`` from the JSON files.

Each script runs in its own subprocess (a fresh JAX runtime, its own compilation caches,
its own device memory), in ``--quick`` mode by default or ``--full`` on request, on
whatever backend JAX sees (``JAX_PLATFORMS`` forces one). ``sharding.py`` always runs on
CPU (it measures 8 fake CPU devices). After each script the device, JAX version, wall
time and the compile times found in its JSON are printed.

``RESULTS.md`` is rebuilt from *all* ``benchmarks/results/*.json``: one section per device
kind (CPU and GPU rows never share a table), and each table states the command that
produced it. A script may define ``render_markdown(payload) -> str`` to lay out its own
tables; otherwise a generic listing of its numbers is written.

Run::

    python benchmarks/run_all.py                 # every script, --quick, then RESULTS.md
    python benchmarks/run_all.py --full          # the prepared GPU command
    python benchmarks/run_all.py --only peers    # one script (repeatable), then RESULTS.md
    python benchmarks/run_all.py --render        # RESULTS.md from the JSON only, no runs
    python benchmarks/run_all.py --results-dir DIR --only train_step --args train_step \
        "--objectives pcd --updates 5"           # JSON + RESULTS.md under DIR, extra args
"""

import argparse
import importlib
import json
import os
import shlex
import statistics
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
RESULTS_DIR = HERE / "results"
RESULTS_MD = HERE / "RESULTS.md"
# In this order; later scripts (objectives, digits) run when their files exist.
SCRIPTS = [
    "samplers", "score_matching", "chain_scaling", "train_step", "default_job", "peers", "logz",
    "sharding", "discrete", "energy_discrepancy", "objectives", "digits",
]  # fmt: skip
FORCE_CPU = {"sharding"}  # measures fake CPU devices, whatever accelerator is present
GPU_BACKENDS = {"gpu", "cuda", "rocm"}

_PROBE = (
    "import json, jax, jaxlib; d = jax.devices(); print(json.dumps({'backend': "
    "jax.default_backend(), 'device_kind': d[0].device_kind, 'num_devices': len(d), "
    "'jax': jax.__version__, 'jaxlib': jaxlib.__version__}))"
)


# ------------------------------------------------------------------------- running


def _shown(path: Path) -> str:
    try:
        return str(path.relative_to(REPO))
    except ValueError:
        return str(path)


def available_scripts() -> list[str]:
    return [name for name in SCRIPTS if (HERE / f"{name}.py").exists()]


def _env(name: str) -> dict[str, str]:
    env = dict(os.environ)
    if name in FORCE_CPU:
        env["JAX_PLATFORMS"] = "cpu"
    return env


def probe_device(env: dict[str, str] | None = None) -> dict:
    """Backend, device kind and versions, asked of a fresh process (the parent never
    initialises a backend, so it holds no accelerator memory while scripts run)."""
    out = subprocess.run(
        [sys.executable, "-c", _PROBE], capture_output=True, text=True, env=env, cwd=REPO
    )
    if out.returncode != 0:
        return {"error": out.stderr.strip().splitlines()[-1:] or ["?"]}
    return json.loads(out.stdout.strip().splitlines()[-1])


def _compile_times(obj) -> list[float]:
    """Every ``compile_s`` number in a JSON payload."""
    found = []
    if isinstance(obj, dict):
        for k, v in obj.items():
            if k == "compile_s" and isinstance(v, int | float):
                found.append(float(v))
            else:
                found += _compile_times(v)
    elif isinstance(obj, list):
        for v in obj:
            found += _compile_times(v)
    return found


def run_script(name: str, full: bool, results_dir: Path = RESULTS_DIR,
               extra_args: Sequence[str] = ()) -> dict:
    env = _env(name)
    device = probe_device(env)
    backend = device.get("backend", "?")
    print(f"\n=== {name} ({'full' if full else 'quick'}) on {backend} / "
          f"{device.get('device_kind', '?')} x{device.get('num_devices', '?')}, "
          f"jax {device.get('jax', '?')}", flush=True)  # fmt: skip
    path = results_dir / f"{name}-{backend}.json"
    cmd = [sys.executable, f"benchmarks/{name}.py", "--full" if full else "--quick"]
    if results_dir != RESULTS_DIR:
        cmd += ["--out", str(path)]
    cmd += list(extra_args)
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, cwd=REPO, env=env)
    wall = time.perf_counter() - t0
    summary = {"script": name, "rc": proc.returncode, "wall_s": wall, "device": device}
    if proc.returncode == 0 and path.exists():
        compiles = _compile_times(json.loads(path.read_text()))
        if compiles:
            summary["compile_s"] = {
                "count": len(compiles),
                "median": statistics.median(compiles),
                "max": max(compiles),
                "total": sum(compiles),
            }
    c = summary.get("compile_s")
    compile_text = (
        f"compile: {c['count']} programs, median {c['median']:.2f} s, max {c['max']:.2f} s, "
        f"total {c['total']:.1f} s"
        if c
        else "compile: —"
    )
    print(f"=== {name}: rc {proc.returncode}, wall {wall:.1f} s, {compile_text}", flush=True)
    return summary


# ----------------------------------------------------------------------- rendering


def _table(headers, rows) -> str:
    sys.path.insert(0, str(HERE))
    import _common

    return _common.markdown_table(headers, rows)


def _render_score_matching(payload: dict) -> str:
    sys.path.insert(0, str(HERE))
    import _common

    rows = []
    for d, rec in payload["results"].items():
        times = {name: r["run_times_s"] for name, r in rec.items()}
        rows.append([
            int(d), rec["dsm"]["ms_per_step"], rec["sliced"]["ms_per_step"],
            rec["exact"]["ms_per_step"], _common.round_ratio(times, "sliced", "dsm"),
            _common.round_ratio(times, "exact", "dsm"),
            _common.round_ratio(times, "exact", "sliced"), rec["exact"]["compile_s"],
        ])  # fmt: skip
    s = payload["settings"]
    head = f"Training step, batch {s['batch_size']}, MLP d-128-128-1, float32.\n\n"
    return head + _table(
        ["d", "DSM ms/step", "sliced ms/step", "exact ms/step", "sliced × DSM", "exact × DSM",
         "exact × sliced", "exact compile s"], rows)  # fmt: skip


def _render_sharding(payload: dict) -> str:
    rows = []
    for name, r in payload["results"].items():
        rows.append([
            name, r["1dev"]["ns_per_chain_step"], r["8dev"]["ns_per_chain_step"],
            r["ratio_8dev_over_1dev"], r["ratio_of_minima"],
            ", ".join(r["hlo_collectives"]) or "none", r["output_sharding"],
            r["max_abs_diff_vs_1dev"],
        ])  # fmt: skip
    s = payload["settings"]
    head = (f"{s['num_chains']} chains x {s['num_steps']} steps, mesh {s['mesh']}, "
            f"target {s['target']}; 8 *fake* CPU devices on the host's cores.\n\n")  # fmt: skip
    return head + _table(
        ["sampler", "1 dev ns/chain-step", "8 dev ns/chain-step", "ratio (median)",
         "ratio (min)", "collectives in HLO", "output spec", "max |diff|"], rows)  # fmt: skip


def _render_generic(payload: dict) -> str:
    """Numeric leaves (raw time lists left out), for scripts without a renderer."""
    rows = []

    def walk(obj, path):
        if isinstance(obj, dict):
            for k, v in obj.items():
                if not (k.endswith("_times_s") or k == "times_s"):
                    walk(v, [*path, k])
        elif isinstance(obj, int | float) and not isinstance(obj, bool):
            rows.append([" / ".join(path), float(obj)])

    walk(payload.get("results", {}), [])
    if len(rows) > 80:
        rows = [*rows[:80], [f"… {len(rows) - 80} more in the JSON", float("nan")]]
    return _table(["result", "value"], rows) if rows else "_(no numeric results)_"


BUILTIN_RENDERERS = {"score_matching": _render_score_matching, "sharding": _render_sharding}


def render_payload(payload: dict) -> str:
    name = payload.get("benchmark", "?")
    if name in BUILTIN_RENDERERS:
        return BUILTIN_RENDERERS[name](payload)
    if (HERE / f"{name}.py").exists():
        sys.path.insert(0, str(HERE))
        try:
            module = importlib.import_module(name)
        except Exception as err:  # a script that no longer imports still gets its numbers
            return f"_(renderer unavailable: {type(err).__name__})_\n\n" + _render_generic(payload)
        if hasattr(module, "render_markdown"):
            return module.render_markdown(payload)
    return _render_generic(payload)


def _section_title(backend: str, kind: str) -> str:
    label = {"cpu": "CPU", "gpu": "GPU", "cuda": "GPU", "rocm": "GPU", "tpu": "TPU"}.get(
        backend, backend.upper()
    )
    return f"{label}: {kind}" if kind.lower() != backend.lower() else label


def render(results_dir: Path = RESULTS_DIR, out: Path = RESULTS_MD) -> Path:
    # Rendering imports the scripts (for their renderers) but runs nothing on a device.
    os.environ.setdefault("JAX_PLATFORMS", "cpu")
    payloads = []
    for path in sorted(results_dir.glob("*.json")):
        payload = json.loads(path.read_text())
        payload["_file"] = path.name
        payloads.append(payload)
    groups: dict[tuple[str, str], list[dict]] = {}
    for p in payloads:
        dev = p.get("device", {})
        groups.setdefault((dev.get("backend", "?"), dev.get("device_kind", "?")), []).append(p)
    order = {name: i for i, name in enumerate(SCRIPTS)}

    lines = [
        "# jebm benchmark results",
        "",
        "Generated by `python benchmarks/run_all.py --render` from `benchmarks/results/*.json`;",
        "do not edit by hand. How each number is measured, and what each column means, is in",
        "[`README.md`](README.md). Each table below names the command that produced it. Numbers",
        "from different devices are never mixed: there is one section per device kind.",
        "",
    ]
    backends = {b for b, _ in groups}
    if not backends & GPU_BACKENDS:
        lines += [
            "**No GPU run has been made yet** (no GPU was lent for this work): every number",
            "below was measured on a CPU. The prepared GPU command is",
            "`python benchmarks/run_all.py --full`; its JSON files will add a GPU section here.",
            "",
        ]
    if "cpu" in backends:
        lines += [
            "CPU numbers come from a shared 2-core machine that other jobs were loading at the",
            "same time: absolute times are noisy and only the ratios measured within one run",
            "(same process, interleaved rounds) are meant to be compared.",
            "",
        ]
    for (backend, kind), group in sorted(groups.items()):
        lines += [f"## {_section_title(backend, kind)}", ""]
        group.sort(key=lambda p: order.get(p.get("benchmark"), len(order)))
        for p in group:
            dev, settings = p.get("device", {}), p.get("settings", {})
            mode = settings.get("mode")
            title = p.get("benchmark", p["_file"]) + (f" ({mode})" if mode else "")
            lines += [
                f"### {title}",
                "",
                f"Command: `{dev.get('command', '?')}` · {dev.get('date_utc', '?')} · "
                f"jax {dev.get('jax_version', '?')} · {dev.get('num_devices', '?')} device(s) · "
                f"{dev.get('host_cpus', '?')} host CPUs · file `results/{p['_file']}`",
                "",
                render_payload(p).rstrip(),
                "",
            ]
    out.write_text("\n".join(lines).rstrip() + "\n")
    return out


# ---------------------------------------------------------------------------- main


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument("--quick", dest="full", action="store_false", help="short runs (default)")
    mode.add_argument("--full", dest="full", action="store_true", help="the full sizes")
    parser.set_defaults(full=False)
    parser.add_argument("--only", action="append", default=None, metavar="NAME",
                        help="run only this script (repeatable)")  # fmt: skip
    parser.add_argument("--render", action="store_true",
                        help="only regenerate RESULTS.md from the JSON files")  # fmt: skip
    parser.add_argument("--results-dir", type=Path, default=RESULTS_DIR,
                        help="write each script's JSON and RESULTS.md here (default "
                        "benchmarks/results/ and benchmarks/RESULTS.md)")  # fmt: skip
    parser.add_argument("--args", nargs=2, action="append", default=[], metavar=("NAME", "ARGS"),
                        help="extra command-line arguments for script NAME, one string "
                        "(repeatable), e.g. --args train_step '--updates 5'")  # fmt: skip
    args = parser.parse_args(argv)
    results_dir = args.results_dir.resolve()
    results_dir.mkdir(parents=True, exist_ok=True)
    extra = {}
    for name, text in args.args:
        extra.setdefault(name, []).extend(shlex.split(text))

    failed = []
    if not args.render:
        names = available_scripts()
        if args.only:
            unknown = sorted(set(args.only) - set(names))
            if unknown:
                parser.error(f"unknown script(s) {unknown}; available: {names}")
            names = [n for n in names if n in args.only]
        device = probe_device()
        print(f"device: {device}")
        print(f"scripts: {', '.join(names)} ({'full' if args.full else 'quick'})", flush=True)
        summaries = [run_script(name, args.full, results_dir, extra.get(name, ()))
                     for name in names]  # fmt: skip
        failed = [s["script"] for s in summaries if s["rc"] != 0]
        print("\n| script | rc | wall s | compiles | median compile s | max compile s |")
        print("|---|---|---|---|---|---|")
        for s in summaries:
            c, nan = s.get("compile_s", {}), float("nan")
            print(f"| {s['script']} | {s['rc']} | {s['wall_s']:.1f} | {c.get('count', '—')} | "
                  f"{c.get('median', nan):.2f} | {c.get('max', nan):.2f} |")  # fmt: skip
    if results_dir == RESULTS_DIR:
        path = render()
    else:
        path = render(results_dir, results_dir / "RESULTS.md")
    print(f"\nwrote {_shown(path)}")
    if failed:
        print(f"failed: {', '.join(failed)}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
