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
TARGET_GAP = 0.15  # "time to reach H + 0.15": test NLL within 0.15 nats of the data entropy
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
    try:
        import ebm as ebmkit

        out["ebmkit_version"] = getattr(ebmkit, "__version__", "?")
    except ImportError as err:
        ebmkit = None
        out["ebmkit_error"] = f"{type(err).__name__}: {err}"

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
        if ebmkit is not None:
            kits = {
                "ebmkit ULA": ebmkit.LangevinDynamics(step_size=h, steps=num_steps),
                "ebmkit MALA": ebmkit.MALA(step_size=t["mala_step_size"], steps=num_steps),
                "ebmkit HMC": ebmkit.HMC(step_size=t["hmc_step_size"],
                                         leapfrog_steps=spec["hmc_steps"], steps=num_steps),
            }  # fmt: skip
            for name, kit in kits.items():
                runs[name] = partial(kit.sample, model, x0)
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
    if spec.get("training"):
        out["training"] = {}
        libs = {"ebmkit": ebmkit is not None, "TorchEBM": LangevinDynamics is not None}
        for lib, present in libs.items():
            if present:
                out["training"][lib] = _torch_train(spec["training"], lib, BaseModel, ebmkit)
    Path(spec["out_path"]).write_text(json.dumps(out))
    print("RESULT " + json.dumps({"written": spec["out_path"]}))


def _torch_train(tr: dict, lib: str, BaseModel, ebmkit) -> dict:
    """Train the default PCD recipe with ``lib`` (eager PyTorch); weights at snapshots.

    Same initial weights, data distribution, buffer, chains, sampler, optimizer and
    schedule as jebm's run. Snapshot time (copying the weights out) is not training time.
    """
    import math

    import torch

    torch.manual_seed(tr["seed"])

    class Net(BaseModel):
        def __init__(self, init):
            super().__init__()
            names = sorted(k[1:] for k in init if k.startswith("w") and k != "wh")
            sizes = [(len(init[f"w{i}"]), len(init[f"w{i}"][0])) for i in names]
            self.hidden = torch.nn.ModuleList(torch.nn.Linear(a, b) for a, b in sizes)
            self.head = torch.nn.Linear(len(init["wh"]), 1)
            with torch.no_grad():
                for layer, i in zip(self.hidden, names, strict=True):
                    layer.weight.copy_(torch.tensor(init[f"w{i}"]).T)
                    layer.bias.copy_(torch.tensor(init[f"b{i}"]))
                self.head.weight.copy_(torch.tensor(init["wh"]).T)
                self.head.bias.copy_(torch.tensor(init["bh"]))

        def forward(self, x):
            h = x
            for layer in self.hidden:
                h = torch.nn.functional.silu(layer(h))
            return self.head(h)[:, 0]

        def export(self):
            out = {}
            for i, layer in enumerate(self.hidden):
                out[f"w{i}"] = layer.weight.detach().T.tolist()
                out[f"b{i}"] = layer.bias.detach().tolist()
            out["wh"] = self.head.weight.detach().T.tolist()
            out["bh"] = self.head.bias.detach().tolist()
            return out

    net = Net(tr["init"])
    steps, h, lo, hi = tr["num_steps"], tr["step_size"], tr["init_low"], tr["init_high"]
    opt = torch.optim.Adam(net.parameters(), lr=tr["learning_rate"], betas=tuple(tr["betas"]),
                           eps=1e-8)  # fmt: skip
    # optax.warmup_cosine_decay_schedule(lr, lr, 0, T, 0): lr · ½(1 + cos(π t / T))
    horizon = tr["horizon"]
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, lambda t: 0.5 * (1.0 + math.cos(math.pi * min(t, horizon) / horizon)))

    def uniform(shape):
        return lo + (hi - lo) * torch.rand(shape)

    def data(n):
        k = torch.randint(0, 8, (n,)).float() * (math.pi / 4)
        centres = 2.0 * math.sqrt(2.0) * torch.stack([torch.cos(k), torch.sin(k)], dim=1)
        return centres + (0.5 / math.sqrt(2.0)) * torch.randn(n, 2)

    if lib == "ebmkit":
        buffer = ebmkit.ReplayBuffer(tr["buffer_size"], (2,), reinit_prob=tr["reinit_prob"],
                                     init_fn=uniform)  # fmt: skip
        sampler = ebmkit.LangevinDynamics(step_size=h, steps=tr["sampler_steps"])
        cd = ebmkit.ContrastiveDivergence(sampler, buffer=buffer)

        def loss_of(x):
            return cd(net, x).loss

    else:
        from torchebm.losses import ContrastiveDivergence
        from torchebm.samplers import LangevinDynamics

        sampler = LangevinDynamics(net, step_size=h, noise_scale=1.0)
        cd = ContrastiveDivergence(net, sampler, k_steps=tr["sampler_steps"], persistent=True,
                                   buffer_size=tr["buffer_size"],
                                   new_sample_ratio=tr["reinit_prob"], init_steps=0,
                                   energy_reg_weight=0.0)  # fmt: skip
        cd.initialize_buffer((2,))
        with torch.no_grad():
            cd.replay_buffer.copy_(uniform((tr["buffer_size"], 2)))

        def loss_of(x):
            return cd(x)[0]

    snapshots, train_s = [], 0.0
    for t in range(steps):
        t0 = time.perf_counter()
        opt.zero_grad(set_to_none=True)
        loss = loss_of(data(tr["batch_size"]))
        loss.backward()
        opt.step()
        sched.step()
        train_s += time.perf_counter() - t0
        if (t + 1) % tr["every"] == 0 or t + 1 == steps:
            snapshots.append({"step": t + 1, "train_s": train_s, "weights": net.export()})
    return {"snapshots": snapshots, "train_s": train_s, "num_steps": steps,
            "last_loss": float(loss.detach())}  # fmt: skip


def _langevin(sampler, x0, num_steps):
    return sampler.sample(x=x0.clone(), n_steps=num_steps)


# -------------------------------------------------------------------- the jax side


def _torch_spec(targets, num_chains, num_steps, repeats, threads, training=None):
    import numpy as np

    import samplers as bench_samplers

    spec = {"num_steps": num_steps, "repeats": repeats, "threads": threads, "targets": {},
            "hmc_steps": bench_samplers.HMC_INTEGRATION_STEPS, "training": training}  # fmt: skip
    for name in targets:
        _, _, steps = bench_samplers.TARGETS[name]()
        entry = {"step_size": steps["ula"], "mala_step_size": steps["mala"],
                 "hmc_step_size": steps["hmc"], "x0": _x0(num_chains).tolist()}  # fmt: skip
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
        out_path = Path(tmp) / "out.json"
        spec_path.write_text(json.dumps({**spec, "out_path": str(out_path)}))
        env = {k: v for k, v in os.environ.items() if not k.startswith(("XLA_", "JAX_"))}
        proc = subprocess.run(
            [str(torch_python), str(Path(__file__).resolve()), "--torch-worker", str(spec_path)],
            capture_output=True, text=True, env=env, cwd=REPO,
        )  # fmt: skip
        lines = [line for line in proc.stdout.splitlines() if line.startswith("RESULT ")]
        if proc.returncode != 0 or not lines or not out_path.exists():
            tail = (proc.stderr or proc.stdout).strip().splitlines()[-5:]
            return {"skipped": f"torch worker failed (rc {proc.returncode}): " + " | ".join(tail)}
        return json.loads(out_path.read_text())


def _jax_cases(target, num_chains, num_steps):
    import jax
    import jax.numpy as jnp

    import samplers as bench_samplers
    from jebm.samplers import hmc, mala, ula

    logdensity, dim, steps = bench_samplers.TARGETS[target]()
    import blackjax

    hmc_alg = hmc(logdensity, steps["hmc"], jnp.ones(dim), bench_samplers.HMC_INTEGRATION_STEPS)
    cases = {
        "jebm ULA": bench_samplers.runner_case(ula(logdensity, steps["ula"]), num_steps),
        "jebm MALA": bench_samplers.runner_case(mala(logdensity, steps["mala"]), num_steps),
        "jebm HMC": bench_samplers.runner_case(hmc_alg, num_steps),
        "BlackJAX MALA": bench_samplers.blackjax_loop_case(
            blackjax.mala(logdensity, steps["mala"]), num_steps, num_chains
        ),
    }
    args = (jax.random.key(0), _x0(num_chains))
    return {name: (fn, args) for name, fn in cases.items()}, steps


# ------------------------------------------------------------ training (the default job)


def _training_setup(num_steps: int, every: int):
    """The default job's run (``configs/pcd.yaml``) and the torch side's training spec."""
    import numpy as np

    import train_step as bench_train_step

    run = bench_train_step.build_run("pcd")
    cfg = run.config
    if cfg.optimizer.name != "adam" or cfg.optimizer.schedule != "cosine" or \
            cfg.optimizer.warmup_steps or cfg.sampler.name != "ula":  # fmt: skip
        raise ValueError("peers.py mirrors the default recipe: adam, cosine, no warm-up, ula")
    init = bench_train_step._plain_weights(run.initial_state.params)
    spec = {
        "seed": cfg.train.seed, "num_steps": num_steps, "every": every,
        "horizon": cfg.train.num_steps,  # the schedule's length (fewer steps: a prefix)
        "batch_size": cfg.data.batch_size, "buffer_size": cfg.objective.buffer_size,
        "reinit_prob": cfg.objective.reinit_prob, "init_low": cfg.objective.init_low,
        "init_high": cfg.objective.init_high, "sampler_steps": cfg.sampler.num_steps,
        "step_size": cfg.sampler.step_size, "learning_rate": cfg.optimizer.learning_rate,
        "betas": [cfg.optimizer.b1, cfg.optimizer.b2],
        "init": {k: np.asarray(v).tolist() for k, v in init.items()},
    }  # fmt: skip
    if (cfg.objective.num_chains or cfg.data.batch_size) != cfg.data.batch_size:
        raise ValueError("the peers' CD losses draw one chain per data point")
    return run, spec


def _jebm_training(run, num_steps: int, every: int) -> dict:
    """jebm's train step scanned in jitted chunks of ``every`` updates (as ``train_loop``
    runs them); compile time apart, the parameters copied out after every chunk."""
    import jax

    import train_step as bench_train_step
    from jebm.train import make_train_step

    step = make_train_step(run.objective, run.optimizer)
    data_key, step_key = jax.random.split(run.train_key)
    batch_size = run.config.data.batch_size

    def chunk(state):
        def body(state, _):
            batch = run.data.sample(jax.random.fold_in(data_key, state.step), batch_size)
            return step(state, batch, step_key)

        return jax.lax.scan(body, state, None, length=every)

    t0 = time.perf_counter()
    compiled = jax.jit(chunk).lower(run.initial_state).compile()
    compile_s = time.perf_counter() - t0
    state, snapshots, train_s, chunk_s = run.initial_state, [], 0.0, []
    for _ in range(num_steps // every):
        t0 = time.perf_counter()
        state, metrics = jax.block_until_ready(compiled(state))
        chunk_s.append(time.perf_counter() - t0)
        train_s += chunk_s[-1]
        weights = bench_train_step._plain_weights(jax.device_get(state.params))
        snapshots.append({"step": int(state.step), "train_s": train_s, "weights": weights})
    return {"snapshots": snapshots, "train_s": train_s, "compile_s": compile_s,
            "chunk_s": chunk_s, "num_steps": int(state.step),
            "last_loss": float(metrics["loss"][-1])}  # fmt: skip


def _shared_nll(run):
    """``weights -> test NLL``: one quadrature for every library (the default job's grid and
    test set), on the plain MLP of ``train_step.py``; never a library's own evaluation."""
    import jax
    import jax.numpy as jnp

    import train_step as bench_train_step
    from jebm.partition import log_z_grid

    ev = run.config.eval

    @jax.jit
    def nll(w):
        log_z = log_z_grid(bench_train_step._one_energy, w, low=(ev.grid_low, ev.grid_low),
                           high=(ev.grid_high, ev.grid_high), num_points=ev.grid_points)
        return jnp.mean(bench_train_step._plain_energy(w, run.test)) + log_z

    def score(weights):
        return float(nll({k: jnp.asarray(v, jnp.float32) for k, v in weights.items()}))

    return score


def training_results(run, runs: dict, target_gap: float) -> dict:
    """Test NLL − H along each library's run, seconds per update, time to H + gap."""
    score = _shared_nll(run)
    entropy = float(run.data.toy.entropy)
    out = {}
    for lib, rec in runs.items():
        curve = []
        for snap in rec["snapshots"]:
            curve.append({"step": snap["step"], "train_s": snap["train_s"],
                          "nll_minus_entropy": score(snap["weights"]) - entropy})  # fmt: skip
        compile_s = rec.get("compile_s", 0.0)
        reached = next((c for c in curve if c["nll_minus_entropy"] <= target_gap), None)
        chunks = rec.get("chunk_s")
        every = curve[0]["step"] if curve else 1
        per_update = (statistics.median(chunks) / every if chunks
                      else rec["train_s"] / rec["num_steps"])  # fmt: skip
        out[lib] = {
            "s_per_update": per_update,
            "train_s": rec["train_s"],
            "compile_s": compile_s,
            "final_nll_minus_entropy": curve[-1]["nll_minus_entropy"] if curve else None,
            "steps_to_target": reached["step"] if reached else None,
            "wall_s_to_target": (reached["train_s"] + compile_s) if reached else None,
            "curve": curve,
        }
    base = out.get("jebm")
    for rec in out.values():
        rec["per_update_x_jebm"] = rec["s_per_update"] / base["s_per_update"] if base else None
    return out


def training_table(rows: dict, target_gap: float):
    headers = ["library", "ms/update", "× jebm per update", "train s", "compile s",
               "final NLL − H", f"steps to H+{target_gap}", f"wall s to H+{target_gap}"]
    out = []
    nan = float("nan")
    for lib, r in rows.items():
        out.append([lib, 1e3 * r["s_per_update"], r["per_update_x_jebm"] or nan, r["train_s"],
                    r["compile_s"], r["final_nll_minus_entropy"],
                    r["steps_to_target"] or "not reached",
                    r["wall_s_to_target"] if r["wall_s_to_target"] is not None else nan])
    return headers, out


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
        "training": None if args.no_training else {
            "recipe": "configs/pcd.yaml (the default job)", "num_steps": args.train_steps,
            "snapshot_every": args.snapshot_every, "target_gap": TARGET_GAP},
    }  # fmt: skip
    info = _common.device_info()
    _common.print_header("jebm vs BlackJAX vs ebmkit vs TorchEBM", info, settings)

    compiled, compile_times, step_sizes = {}, {}, {}
    for target in args.targets:
        cases, step_sizes[target] = _jax_cases(target, num_chains, num_steps)
        c, ct = _common.compile_cases(cases)
        compiled.update({f"{target}|{k}": v for k, v in c.items()})
        compile_times.update({f"{target}|{k}": v for k, v in ct.items()})
    first = repeats // 2 + 1
    times = _common.time_interleaved(compiled, first)
    training_spec, jebm_runs = None, []
    if not args.no_training:
        run, training_spec = _training_setup(args.train_steps, args.snapshot_every)
        jebm_runs.append(_jebm_training(run, args.train_steps, args.snapshot_every))
    spec = _torch_spec(args.targets, num_chains, num_steps, repeats, threads, training_spec)
    torch_out = run_torch(torch_python, spec)
    if "skipped" in torch_out:
        print(f"torch rows skipped: {torch_out['skipped']}", flush=True)
    more = _common.time_interleaved(compiled, repeats - first, warmup=0, seed=2)
    times = {k: v + more[k] for k, v in times.items()}
    if not args.no_training:  # jebm trains before and after the torch side; the faster run
        jebm_runs.append(_jebm_training(run, args.train_steps, args.snapshot_every))
    finals = {k: c.fn(*c.args)[0] for k, c in compiled.items()}

    results = {"torch": {k: v for k, v in torch_out.items() if k not in ("results", "training")},
               "targets": {}}  # fmt: skip
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
        order = ["jebm ULA", "jebm MALA", "jebm HMC", "BlackJAX MALA", "ebmkit ULA",
                 "ebmkit MALA", "ebmkit HMC", "TorchEBM Langevin",
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
        for name, r in record.items():
            kind = "ULA" if ("Langevin" in name or "loop" in name) else name.split()[-1]
            same = record.get(f"jebm {kind}")
            r["ratio_to_jebm_same_sampler"] = (
                r["us_per_chain_step"] / same["us_per_chain_step"]
                if same is not None and same["device"] == r["device"] else None)
        results["targets"][target] = {"step_sizes": step_sizes[target], "rows": record}
        print(f"\n## {target}: {num_chains} chains x {num_steps} steps\n")
        print(_common.markdown_table(*table(results["targets"][target]["rows"])))
    if not args.no_training:
        runs = {"jebm": min(jebm_runs, key=lambda r: r["train_s"])}
        runs["jebm"]["runs_train_s"] = [r["train_s"] for r in jebm_runs]
        runs.update(torch_out.get("training", {}))
        results["training"] = training_results(run, runs, TARGET_GAP)
        results["training_jebm_runs_train_s"] = runs["jebm"]["runs_train_s"]
        print(f"\n## training: the default PCD recipe, {args.train_steps} updates, test NLL by "
              "one shared quadrature\n")
        print(_common.markdown_table(*training_table(results["training"], TARGET_GAP)))
    path = _common.write_json("peers", info, settings, results, args.out)
    print(f"\nwrote {path}")


def table(rows: dict):
    """(headers, rows) for one target's record."""
    headers = ["sampler", "device", "µs/chain-step", "× jebm ULA", "× jebm ULA (min)",
               "× jebm same sampler", "compile s", "mean |x|"]  # fmt: skip
    out = []
    for name, r in rows.items():
        nan = float("nan")
        same = r.get("ratio_to_jebm_same_sampler")
        out.append([
            name, r["device"], r["us_per_chain_step"],
            nan if r["ratio_to_jebm_ula"] is None else r["ratio_to_jebm_ula"],
            nan if r["min_ratio_to_jebm_ula"] is None else r["min_ratio_to_jebm_ula"],
            nan if same is None else same,
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
    if res.get("training"):
        tr = s.get("training") or {}
        gap = tr.get("target_gap", TARGET_GAP)
        parts.append(f"#### training: the default PCD recipe, {tr.get('num_steps', '?')} "
                     "updates; test NLL − H by one shared quadrature")  # fmt: skip
        parts.append(_common.markdown_table(*training_table(res["training"], gap)))
    return "\n\n".join(parts)


def _add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--num-chains", type=int, default=1024)
    parser.add_argument("--num-steps", type=int, default=None, help="100 quick, 1000 full")
    parser.add_argument("--targets", nargs="+", default=["8gaussians", "mlp"],
                        choices=["8gaussians", "mlp"])  # fmt: skip
    parser.add_argument("--torch-python", type=Path, default=None,
                        help="torch env python (.venv-torch/bin/python)")  # fmt: skip
    parser.add_argument("--threads", type=int, default=None, help="torch threads (cpu count)")
    parser.add_argument("--no-training", action="store_true",
                        help="skip the PCD training comparison")  # fmt: skip
    parser.add_argument("--train-steps", type=int, default=1500,
                        help="updates per training run (the default job's train.num_steps)")
    parser.add_argument("--snapshot-every", type=int, default=100,
                        help="updates between test-NLL snapshots")  # fmt: skip


if __name__ == "__main__":
    main()
