"""jebm against its peers: BlackJAX (JAX) and TorchEBM (PyTorch), same targets, chains, steps.

Question: per chain-step, what do jebm's ULA and MALA cost next to BlackJAX's MALA and
TorchEBM's Langevin sampler, on the same targets with the same number of chains, steps
and step sizes? Targets (float32, as in ``samplers.py``): ``8gaussians`` (2-d mixture of 8
Gaussians, ``jebm.energies.gaussian_mixture``) and ``mlp`` (2 -> 128 -> 128 -> 1 SiLU MLP
energy plus ``0.5|x|^2``; the *same weights* are handed to PyTorch).

Rows:

* ``jebm ULA``, ``jebm MALA``: ``jebm.run_chains(..., keep_trace=False)``, jitted;
* ``BlackJAX MALA``: ``blackjax.mala`` in BlackJAX's usual multi-chain loop (``samplers.py``);
* ``TorchEBM Langevin``: ``torchebm.samplers.LangevinDynamics(model, step_size=h,
  noise_scale=1).sample(x=x0, n_steps=...)``, whose update ``x - h∇E + √(2h) ξ`` is jebm's
  coupled ULA step with the same ``h`` (TorchEBM has no MALA);
* ``torch loop (autograd)``: the same ULA update written by hand in eager PyTorch
  (``torch.autograd.grad`` per step): what the step costs in PyTorch without TorchEBM.

PyTorch is never a jebm dependency: it lives in a separate environment and runs in a
subprocess (``--torch-python PATH``; default ``.venv-torch/bin/python`` at the repository
root when it exists), with ``torch.set_num_threads`` set to the CPU count that XLA uses
(``--threads``, default ``os.cpu_count()``). Without it the torch rows are skipped with a
message. Create it with::

    python3 -m venv .venv-torch
    .venv-torch/bin/pip install torch==2.13.0 torchebm==0.8.9

Timing: each JAX case is compiled apart (compile time reported), warmed up, and timed
round-robin (``_common.time_interleaved``); half of the JAX rounds run before the torch
subprocess and half after it, so a slow spell of a shared machine is seen by both sides.
Each torch row is warmed up with one full call and timed over the same number of rounds.
Ratios are ``µs per chain-step`` over jebm ULA's, measured in the same run; they are
shown only between rows on the same device (the torch wheel here is CPU-only).
``mean |x|`` (mean norm of the final positions) is a sanity check: ULA rows with the same
step size and start should agree up to Monte Carlo error.

Run::

    python benchmarks/peers.py            # --quick: 1024 chains x 100 steps, 5 rounds
    python benchmarks/peers.py --full     # 1024 chains x 1000 steps, 7 rounds

Writes ``benchmarks/results/peers-<backend>.json`` and prints markdown tables.
"""

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from functools import partial
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
DEFAULT_TORCH_PYTHON = REPO / ".venv-torch" / "bin" / "python"


# ------------------------------------------------------------------ the torch side
# Runs under the torch environment's interpreter: imports only torch and the stdlib.


def _torch_worker(spec_path: str) -> None:
    import torch

    spec = json.loads(Path(spec_path).read_text())
    torch.set_num_threads(spec["threads"])
    torch.manual_seed(0)
    out = {
        "torch_version": torch.__version__,
        "threads": torch.get_num_threads(),
        "device": "cpu",
        "results": {},
    }
    try:
        import torchebm
        from torchebm.core import BaseModel
        from torchebm.samplers import LangevinDynamics

        out["torchebm_version"] = getattr(torchebm, "__version__", "?")
    except ImportError as err:
        BaseModel = torch.nn.Module
        LangevinDynamics = None
        out["torchebm_error"] = f"{type(err).__name__}: {err}"

    class MixtureEnergy(BaseModel):
        def __init__(self, means, scale, log_weights):
            super().__init__()
            self.means = torch.tensor(means, dtype=torch.float32)
            self.scale = float(scale)
            self.log_weights = torch.tensor(log_weights, dtype=torch.float32)

        def forward(self, x):
            sq = ((x[:, None, :] - self.means[None]) ** 2).sum(-1)
            d = x.shape[-1]
            log_bumps = -0.5 * sq / self.scale**2 - d * torch.log(torch.tensor(self.scale))
            return -torch.logsumexp(self.log_weights[None] + log_bumps, dim=-1)

    class MLPEnergy(BaseModel):
        def __init__(self, layers, confine):
            super().__init__()
            self.ws = [torch.tensor(layer["w"], dtype=torch.float32) for layer in layers]
            self.bs = [torch.tensor(layer["b"], dtype=torch.float32) for layer in layers]
            self.confine = float(confine)

        def forward(self, x):
            h = x
            for w, b in zip(self.ws[:-1], self.bs[:-1], strict=True):
                h = torch.nn.functional.silu(h @ w + b)
            return (h @ self.ws[-1] + self.bs[-1])[:, 0] + self.confine * (x * x).sum(-1)

    def hand_loop(model, x0, h, num_steps):
        x = x0.clone()
        noise_sd = (2.0 * h) ** 0.5
        for _ in range(num_steps):
            x.requires_grad_(True)
            (grad,) = torch.autograd.grad(model(x).sum(), x)
            with torch.no_grad():
                x = x - h * grad + noise_sd * torch.randn_like(x)
        return x.detach()

    for target, t in spec["targets"].items():
        if t["kind"] == "mixture":
            model = MixtureEnergy(t["means"], t["scale"], t["log_weights"])
        else:
            model = MLPEnergy(t["layers"], t["confine"])
        x0 = torch.tensor(t["x0"], dtype=torch.float32)
        h, num_steps = t["step_size"], spec["num_steps"]
        runs = {"torch loop (autograd)": partial(hand_loop, model, x0, h, num_steps)}
        if LangevinDynamics is not None:
            sampler = LangevinDynamics(model, step_size=h, noise_scale=1.0)
            runs["TorchEBM Langevin"] = partial(_langevin, sampler, x0, num_steps)
        record = {}
        for name, fn in runs.items():
            x = fn()  # warm-up (allocator, autograd graph caches)
            times = []
            for _ in range(spec["repeats"]):
                t0 = time.perf_counter()
                x = fn()
                times.append(time.perf_counter() - t0)
            record[name] = {
                "median_s": statistics.median(times),
                "run_times_s": times,
                "mean_norm": float(x.norm(dim=-1).mean()),
                "finite": bool(torch.isfinite(x).all()),
            }
        out["results"][target] = record
    print("RESULT " + json.dumps(out))


def _langevin(sampler, x0, num_steps):
    return sampler.sample(x=x0.clone(), n_steps=num_steps)


# -------------------------------------------------------------------- the jax side


def _torch_spec(targets, num_chains, num_steps, repeats, threads):
    import numpy as np

    import samplers as bench_samplers

    spec = {"num_steps": num_steps, "repeats": repeats, "threads": threads, "targets": {}}
    for name in targets:
        _, _, steps = bench_samplers.TARGETS[name]()
        entry = {"step_size": steps["ula"], "x0": _x0(num_chains).tolist()}
        if name == "8gaussians":
            mix = _mixture()
            entry.update(
                kind="mixture",
                means=np.asarray(mix.params["means"]).tolist(),
                scale=float(np.asarray(mix.params["scales"])[0]),
                log_weights=np.asarray(mix.params["log_weights"]).tolist(),
            )
        else:
            _, params = bench_samplers._make_mlp()
            layers = [{k: np.asarray(v).tolist() for k, v in layer.items()} for layer in params]
            entry.update(kind="mlp", layers=layers, confine=0.5)
        spec["targets"][name] = entry
    return spec


def _mixture():
    import numpy as np

    from jebm.energies import gaussian_mixture

    angles = np.arange(8) * np.pi / 4
    means = 2.0 * np.sqrt(2.0) * np.stack([np.cos(angles), np.sin(angles)], axis=1)
    return gaussian_mixture(means, 0.5 / np.sqrt(2.0))


def _x0(num_chains):
    import jax
    import jax.numpy as jnp

    return 0.5 * jax.random.normal(jax.random.key(1), (num_chains, 2), jnp.float32)


def _shown(path: Path) -> str:
    """``path`` relative to the repository when inside it (no machine paths in outputs)."""
    try:
        return str(Path(path).resolve().relative_to(REPO))
    except ValueError:
        return Path(path).name


def run_torch(torch_python: Path | None, spec: dict) -> dict:
    """Run the torch worker; return its result dict, or ``{"skipped": reason}``."""
    if torch_python is None or not Path(torch_python).exists():
        shown = "--torch-python not given" if torch_python is None else _shown(torch_python)
        return {"skipped": f"no torch environment ({shown}); see the docstring of peers.py"}
    with tempfile.TemporaryDirectory() as tmp:
        spec_path = Path(tmp) / "spec.json"
        spec_path.write_text(json.dumps(spec))
        env = {k: v for k, v in os.environ.items() if not k.startswith(("XLA_", "JAX_"))}
        proc = subprocess.run(
            [str(torch_python), str(Path(__file__).resolve()), "--torch-worker", str(spec_path)],
            capture_output=True, text=True, env=env, cwd=REPO,
        )  # fmt: skip
    lines = [line for line in proc.stdout.splitlines() if line.startswith("RESULT ")]
    if proc.returncode != 0 or not lines:
        tail = (proc.stderr or proc.stdout).strip().splitlines()[-5:]
        return {"skipped": f"torch worker failed (rc {proc.returncode}): " + " | ".join(tail)}
    return json.loads(lines[-1][len("RESULT ") :])


def _jax_cases(target, num_chains, num_steps):
    import jax

    import samplers as bench_samplers
    from jebm.samplers import mala, ula

    logdensity, dim, steps = bench_samplers.TARGETS[target]()
    import blackjax

    cases = {
        "jebm ULA": bench_samplers.runner_case(ula(logdensity, steps["ula"]), num_steps),
        "jebm MALA": bench_samplers.runner_case(mala(logdensity, steps["mala"]), num_steps),
        "BlackJAX MALA": bench_samplers.blackjax_loop_case(
            blackjax.mala(logdensity, steps["mala"]), num_steps, num_chains
        ),
    }
    args = (jax.random.key(0), _x0(num_chains))
    return {name: (fn, args) for name, fn in cases.items()}, steps


def main(argv=None):
    if argv is None:
        argv = sys.argv[1:]
    if argv[:1] == ["--torch-worker"]:
        _torch_worker(argv[1])
        return

    sys.path.insert(0, str(Path(__file__).resolve().parent))
    import numpy as np

    import _common

    args = _common.parse_args(__doc__.split("\n\n")[0], _add_arguments, argv)
    num_chains = args.num_chains
    num_steps = args.num_steps or (1000 if args.full else 100)
    repeats = args.repeats or (7 if args.full else 5)
    threads = args.threads or os.cpu_count()
    torch_python = args.torch_python
    if torch_python is None and DEFAULT_TORCH_PYTHON.exists():
        torch_python = DEFAULT_TORCH_PYTHON
    settings = {
        "mode": "full" if args.full else "quick",
        "num_chains": num_chains,
        "num_steps": num_steps,
        "repeats": repeats,
        "torch_threads": threads,
        "dtype": "float32",
        "targets": args.targets,
    }
    info = _common.device_info()
    _common.print_header("jebm vs BlackJAX vs TorchEBM", info, settings)

    compiled, compile_times, step_sizes = {}, {}, {}
    for target in args.targets:
        cases, step_sizes[target] = _jax_cases(target, num_chains, num_steps)
        c, ct = _common.compile_cases(cases)
        compiled.update({f"{target}|{k}": v for k, v in c.items()})
        compile_times.update({f"{target}|{k}": v for k, v in ct.items()})
    first = repeats // 2 + 1
    times = _common.time_interleaved(compiled, first)
    spec = _torch_spec(args.targets, num_chains, num_steps, repeats, threads)
    torch_out = run_torch(torch_python, spec)
    if "skipped" in torch_out:
        print(f"torch rows skipped: {torch_out['skipped']}", flush=True)
    more = _common.time_interleaved(compiled, repeats - first, warmup=0, seed=2)
    times = {k: v + more[k] for k, v in times.items()}
    finals = {k: c.fn(*c.args)[0] for k, c in compiled.items()}

    results = {"torch": {k: v for k, v in torch_out.items() if k != "results"}, "targets": {}}
    chain_steps = num_chains * num_steps
    for target in args.targets:
        record = {}
        for key in (k for k in compiled if k.startswith(f"{target}|")):
            name = key.split("|", 1)[1]
            t = _common.median(times[key])
            record[name] = {
                "device": info["backend"],
                "median_s": t,
                "us_per_chain_step": 1e6 * t / chain_steps,
                "min_us_per_chain_step": 1e6 * min(times[key]) / chain_steps,
                "compile_s": _common.median(compile_times[key]),
                "mean_norm": float(np.mean(np.linalg.norm(np.asarray(finals[key]), axis=-1))),
                "run_times_s": times[key],
            }
        for name, r in torch_out.get("results", {}).get(target, {}).items():
            record[name] = {
                "device": torch_out["device"],
                "median_s": r["median_s"],
                "us_per_chain_step": 1e6 * r["median_s"] / chain_steps,
                "min_us_per_chain_step": 1e6 * min(r["run_times_s"]) / chain_steps,
                "compile_s": None,
                "mean_norm": r["mean_norm"],
                "run_times_s": r["run_times_s"],
            }
        order = ["jebm ULA", "jebm MALA", "BlackJAX MALA", "TorchEBM Langevin",
                 "torch loop (autograd)"]  # fmt: skip
        record = {k: record[k] for k in sorted(record, key=lambda k: order.index(k))}
        base = record["jebm ULA"]
        for r in record.values():
            same = r["device"] == base["device"]
            ratio = r["us_per_chain_step"] / base["us_per_chain_step"]
            r["ratio_to_jebm_ula"] = ratio if same else None
            r["min_ratio_to_jebm_ula"] = (
                r["min_us_per_chain_step"] / base["min_us_per_chain_step"] if same else None
            )
        results["targets"][target] = {"step_sizes": step_sizes[target], "rows": record}
        print(f"\n## {target}: {num_chains} chains x {num_steps} steps\n")
        print(_common.markdown_table(*table(results["targets"][target]["rows"])))
    path = _common.write_json("peers", info, settings, results, args.out)
    print(f"\nwrote {path}")


def table(rows: dict):
    """(headers, rows) for one target's record."""
    headers = ["sampler", "device", "µs/chain-step", "× jebm ULA", "× jebm ULA (min)",
               "compile s", "mean |x|"]  # fmt: skip
    out = []
    for name, r in rows.items():
        nan = float("nan")
        out.append([
            name, r["device"], r["us_per_chain_step"],
            nan if r["ratio_to_jebm_ula"] is None else r["ratio_to_jebm_ula"],
            nan if r["min_ratio_to_jebm_ula"] is None else r["min_ratio_to_jebm_ula"],
            nan if r["compile_s"] is None else r["compile_s"], r["mean_norm"],
        ])  # fmt: skip
    return headers, out


def render_markdown(payload: dict) -> str:
    """The tables of a ``peers`` JSON payload, for ``run_all.py``'s RESULTS.md."""
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    import _common

    s, res = payload["settings"], payload["results"]
    t = res.get("torch", {})
    if "skipped" in t:
        torch_line = f"PyTorch rows skipped: {t['skipped']}"
    else:
        torch_line = (f"PyTorch {t.get('torch_version', '?')}, TorchEBM "
                      f"{t.get('torchebm_version', '?')}, {t.get('threads', '?')} threads, "
                      f"device {t.get('device', '?')}.")  # fmt: skip
    parts = [torch_line]
    for target, rec in res["targets"].items():
        h = rec["step_sizes"]
        parts.append(f"#### {target}: {s['num_chains']} chains x {s['num_steps']} steps "
                     f"(ULA h={h['ula']}, MALA h={h['mala']})")  # fmt: skip
        parts.append(_common.markdown_table(*table(rec["rows"])))
    return "\n\n".join(parts)


def _add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--num-chains", type=int, default=1024)
    parser.add_argument("--num-steps", type=int, default=None, help="100 quick, 1000 full")
    parser.add_argument("--targets", nargs="+", default=["8gaussians", "mlp"],
                        choices=["8gaussians", "mlp"])  # fmt: skip
    parser.add_argument("--torch-python", type=Path, default=None,
                        help="torch env python (.venv-torch/bin/python)")  # fmt: skip
    parser.add_argument("--threads", type=int, default=None, help="torch threads (cpu count)")


if __name__ == "__main__":
    main()
