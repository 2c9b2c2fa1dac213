"""Shared helpers for the jebm benchmark scripts (not part of the library).

What every script here does, and where it is done:

* :func:`parse_args` -- ``--quick`` (the default) or ``--full``, ``--repeats``, ``--out``;
* :func:`device_info` -- the backend, device kind, jax/jaxlib versions and command line,
  printed by :func:`print_header` and stored in every JSON file;
* :func:`compile_cases` -- trace + lower + XLA-compile time of each case, measured apart
  from running it, with the JAX caches cleared before each compilation so that no case
  profits from a sub-computation another case already lowered;
* :func:`time_interleaved` -- steady-state wall time: every case is warmed up, then the
  cases are run round-robin (a fresh random order each round) and each call is ended with
  ``jax.block_until_ready``; the median over rounds is reported. Interleaving matters on a
  shared machine: a slow spell then hits every case of a round, not one case;
* :func:`write_json` and :func:`markdown_table` -- the outputs.

Ratios (a case over its baseline) are always taken between cases measured in the same run.
"""

import argparse
import datetime
import json
import os
import platform
import random
import statistics
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from jebm.experiment.records import jsonable

__all__ = [
    "Compiled",
    "parse_args",
    "device_info",
    "print_header",
    "compile_cases",
    "time_interleaved",
    "median",
    "round_ratio",
    "min_ratio",
    "write_json",
    "markdown_table",
    "mlp_energy",
]

RESULTS_DIR = Path(__file__).resolve().parent / "results"


def parse_args(
    description: str,
    add_arguments: Callable[[argparse.ArgumentParser], None] | None = None,
    argv: Sequence[str] | None = None,
) -> argparse.Namespace:
    """Common command line: ``--quick`` (default) / ``--full``, ``--repeats``, ``--out``.

    ``args.full`` is True for ``--full``. ``--repeats`` overrides the number of timed
    rounds a script picks for its mode; ``--out`` the JSON path (default
    ``benchmarks/results/<script>-<platform>.json``).
    """
    parser = argparse.ArgumentParser(description=description)
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument("--quick", dest="full", action="store_false", help="short run (default)")
    mode.add_argument("--full", dest="full", action="store_true", help="the sizes the issue sets")
    parser.set_defaults(full=False)
    parser.add_argument("--repeats", type=int, default=None, help="timed rounds per case")
    parser.add_argument("--out", type=Path, default=None, help="JSON output path")
    if add_arguments is not None:
        add_arguments(parser)
    return parser.parse_args(argv)


def device_info() -> dict[str, Any]:
    """What the numbers were measured on, recorded in every JSON file."""
    devices = jax.devices()
    import jaxlib

    return {
        "backend": jax.default_backend(),
        "device_kind": devices[0].device_kind,
        "num_devices": len(devices),
        "jax_version": jax.__version__,
        "jaxlib_version": jaxlib.__version__,
        "python": platform.python_version(),
        "host_cpus": os.cpu_count(),
        "machine": platform.machine(),
        "x64": bool(jax.config.jax_enable_x64),
        "prng_impl": str(jax.config.jax_default_prng_impl),
        "threefry_partitionable": bool(jax.config.jax_threefry_partitionable),
        "command": " ".join(["python", *sys.argv]),
        "date_utc": datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
    }


def print_header(title: str, info: dict[str, Any], settings: dict[str, Any]) -> None:
    print(f"# {title}")
    print(
        f"device: {info['backend']} / {info['device_kind']} x{info['num_devices']} | "
        f"jax {info['jax_version']} (jaxlib {info['jaxlib_version']}) | "
        f"python {info['python']} | host cpus {info['host_cpus']}"
    )
    print("settings: " + ", ".join(f"{k}={v}" for k, v in settings.items()))
    print(f"command: {info['command']}", flush=True)


class Compiled(NamedTuple):
    """A compiled case, its arguments, and how long it took to get there."""

    fn: Callable  # the compiled executable
    args: tuple
    lower_s: float  # tracing + lowering to StableHLO
    compile_s: float  # XLA compilation

    @property
    def total_s(self) -> float:
        return self.lower_s + self.compile_s


def _warm_up_backend() -> None:
    # The first compilation of a process also initialises the backend; keep that out of
    # every case's compile time.
    jax.block_until_ready(jax.jit(lambda x: jnp.sin(x) @ x.T)(jnp.ones((8, 8))))


def _compile_once(fn: Callable, args: tuple) -> Compiled:
    jax.clear_caches()
    jitted = jax.jit(fn)
    t0 = time.perf_counter()
    lowered = jitted.lower(*args)
    t1 = time.perf_counter()
    compiled = lowered.compile()
    t2 = time.perf_counter()
    return Compiled(compiled, args, t1 - t0, t2 - t1)


def compile_cases(
    cases: dict[str, tuple[Callable, tuple]], repeats: int = 1, seed: int = 0
) -> tuple[dict[str, Compiled], dict[str, list[float]]]:
    """Compile every case ``repeats`` times, round-robin; return executables and times.

    Args:
      cases: ``name -> (fn, args)``; ``fn(*args)`` is jitted, lowered and compiled.
      repeats: compilations per case (each after ``jax.clear_caches()``).
      seed: seeds the order of cases within each round.

    Returns:
      ``(compiled, totals)``: the last :class:`Compiled` of each case, and the list of
      its lower + compile times in seconds.
    """
    _warm_up_backend()
    rng = random.Random(seed)
    compiled: dict[str, Compiled] = {}
    totals: dict[str, list[float]] = {name: [] for name in cases}
    lowers: dict[str, list[float]] = {name: [] for name in cases}
    xla: dict[str, list[float]] = {name: [] for name in cases}
    for _ in range(repeats):
        order = list(cases)
        rng.shuffle(order)
        for name in order:
            fn, args = cases[name]
            c = _compile_once(fn, args)
            compiled[name] = c
            totals[name].append(c.total_s)
            lowers[name].append(c.lower_s)
            xla[name].append(c.compile_s)
    for name, c in compiled.items():
        # Report medians over the repeats in the returned Compiled.
        compiled[name] = c._replace(
            lower_s=median(lowers[name]), compile_s=median(xla[name])
        )
    return compiled, totals


def time_interleaved(
    compiled: dict[str, Compiled], repeats: int, warmup: int = 1, seed: int = 1
) -> dict[str, list[float]]:
    """Steady-state wall times (seconds) of each compiled case, interleaved round-robin.

    Every case is first called ``warmup`` times; then ``repeats`` rounds each call every
    case once, in a fresh random order, blocking on its output.
    """
    for c in compiled.values():
        for _ in range(warmup):
            jax.block_until_ready(c.fn(*c.args))
    rng = random.Random(seed)
    times: dict[str, list[float]] = {name: [] for name in compiled}
    for _ in range(repeats):
        order = list(compiled)
        rng.shuffle(order)
        for name in order:
            c = compiled[name]
            t0 = time.perf_counter()
            jax.block_until_ready(c.fn(*c.args))
            times[name].append(time.perf_counter() - t0)
    return times


def median(values: Sequence[float]) -> float:
    return float(statistics.median(values))


def min_ratio(times: dict[str, list[float]], name: str, base: str) -> float:
    """``min(times[name]) / min(times[base])``: on a crowded machine noise only adds time,
    so the fastest round is the best estimate of the intrinsic cost."""
    return min(times[name]) / min(times[base])


def round_ratio(times: dict[str, list[float]], name: str, base: str) -> float:
    """Median over rounds of ``times[name][r] / times[base][r]``.

    Both were measured in the same round of :func:`time_interleaved`, moments apart, so
    a slow spell of a shared machine cancels in each round's ratio.
    """
    return median([a / b for a, b in zip(times[name], times[base], strict=True)])


def write_json(
    script: str, info: dict[str, Any], settings: dict[str, Any], results: Any, out: Path | None,
    stem: str | None = None,
) -> Path:
    """Write ``{"device": info, "settings": ..., "results": ...}``; return the path.

    The file is ``out``, else ``results/<stem>-<backend>.json`` with ``stem`` defaulting to
    the script's name (a script that keeps two modes side by side gives each its own stem).
    """
    path = out or RESULTS_DIR / f"{stem or script}-{info['backend']}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    payload = {"benchmark": script, "device": info, "settings": settings, "results": results}
    path.write_text(json.dumps(jsonable(payload), indent=2) + "\n")
    return path


def markdown_table(headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    def fmt(v: Any) -> str:
        if isinstance(v, float):
            if not np.isfinite(v):
                return "—"
            return f"{v:.3g}" if abs(v) < 1000 else f"{v:,.0f}"
        return str(v)

    lines = ["| " + " | ".join(headers) + " |", "|" + "|".join("---" for _ in headers) + "|"]
    lines += ["| " + " | ".join(fmt(v) for v in row) + " |" for row in rows]
    return "\n".join(lines)


def mlp_energy(
    key: jax.Array, in_dim: int, hidden: Sequence[int] = (128, 128), confine: float = 0.5
):
    """A ``in_dim -> hidden... -> 1`` SiLU MLP energy in plain jax, plus ``confine * |x|^2``.

    The quadratic term (a few flops) keeps ``exp(-E)`` normalisable, so chains on it stay
    in a bounded region and acceptance rates mean something; it does not change the cost.
    Weights use LeCun-normal initialisation, biases zero.

    Returns:
      ``(energy_fn, params)`` with ``energy_fn(params, x)`` a scalar for one ``x`` of
      shape ``(in_dim,)``.
    """
    sizes = [in_dim, *hidden, 1]
    keys = jax.random.split(key, len(sizes) - 1)
    params = [
        {
            "w": jax.random.normal(k, (m, n), jnp.float32) / np.sqrt(m),
            "b": jnp.zeros((n,), jnp.float32),
        }
        for k, m, n in zip(keys, sizes[:-1], sizes[1:], strict=True)
    ]

    def energy_fn(params, x):
        h = x
        for layer in params[:-1]:
            h = jax.nn.silu(h @ layer["w"] + layer["b"])
        out = h @ params[-1]["w"] + params[-1]["b"]
        return out[0] + confine * jnp.sum(x * x)

    return energy_fn, params
