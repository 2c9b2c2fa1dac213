"""The jebm train step against a hand-written plain-JAX update with the same arithmetic.

Question: for each objective of ``configs/`` (CD, PCD, ESM, SSM, DSM, NCE on 8gaussians),
what does one jebm update (``jebm.train.make_train_step`` with the objective, optimizer,
energy and data built from ``configs/<obj>.yaml`` exactly as ``jebm train`` builds them)
cost next to the same update written by hand in plain JAX, and where does any difference
go?

Both sides run ``N`` updates inside one jitted ``lax.scan`` (the batch of update ``t``
drawn from ``fold_in(data_key, t)`` with the data set's own sampler, as
``jebm.train.train_loop`` does), with the same optax optimizer and schedule, the same
initial parameters and shapes. The hand-written side:

* a plain ``x @ W + b`` SiLU MLP on a dict of the same weights;
* CD / PCD: ``x ← x + h ∇log p(x) + √(2h) ξ`` with one ``jax.random.normal`` per step
  and one gradient per step (no divergence guard, no per-chain keys, no sampler
  metrics); PCD draws buffer indices *with replacement* (``randint``), restarts
  with a Bernoulli mask and writes back with ``.at[].set``;
* ESM ``jacfwd(grad)`` per example; SSM-VR one Rademacher ``jvp`` per example; DSM one
  score per noisy example; NCE the logistic loss of ``optax.losses`` against the same
  fitted Gaussian noise;
* no metrics beyond the loss.

Where the time goes: for every case the compiled executable's XLA cost analysis
(flops, transcendentals, bytes accessed) and an op census of its optimised HLO (sorts,
while loops, gathers/scatters, fusions) are recorded, so a ratio above 1 can be traced
to extra arithmetic (flops) or to extra passes over memory (bytes, sorts).

Timing follows ``_common``: every case compiled apart (``jax.clear_caches()`` before
each), warmed up, then all cases timed round-robin in a fresh random order each round;
ratios are the median over rounds of jebm / hand-written measured in the same round.
Calls are short and rounds many: on a shared machine a ratio is only as good as the two
calls of a round are close in time.

Run::

    python benchmarks/train_step.py              # --quick: 25 updates per call, 21 rounds
    python benchmarks/train_step.py --full       # 200 updates per call, 15 rounds
    python benchmarks/train_step.py --objectives pcd cd --updates 200

Writes ``benchmarks/results/train_step-<backend>.json``.
"""

import re
import sys
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import optax

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _common  # noqa: E402

REPO = Path(__file__).resolve().parent.parent
OBJECTIVES = ("pcd", "cd", "esm", "ssm", "dsm", "nce")
TARGET_RATIO = 1.15


# ------------------------------------------------------------------ building a run


def build_run(name: str):
    """The :class:`jebm.experiment.Run` of ``configs/<name>.yaml`` (what ``jebm train``
    builds from it)."""
    from jebm.config import load_config
    from jebm.experiment import build_run as build

    return build(load_config(str(REPO / "configs" / f"{name}.yaml")))


def _plain_weights(params) -> dict:
    """The nnx ``Param`` state of ``MLPEnergy`` as ``{"w0", "b0", ..., "wh", "bh"}``."""
    out = {}
    for path, leaf in jax.tree_util.tree_leaves_with_path(params):
        keys = [getattr(k, "key", getattr(k, "idx", None)) for k in path]
        keys = [k for k in keys if k not in (None, "value")]
        kind = "w" if keys[-1] == "kernel" else "b"
        out[kind + ("h" if keys[0] == "head" else str(keys[1]))] = jnp.asarray(leaf)
    return out


def _plain_energy(w: dict, x):
    """Batched ``(n, 2) -> (n,)`` or one example ``(2,) -> ()``: the same MLP, written out."""
    h = x
    for i in range(len(w) // 2 - 1):
        h = jax.nn.silu(h @ w[f"w{i}"] + w[f"b{i}"])
    return (h @ w["wh"] + w["bh"])[..., 0]


def _one_energy(w, x):
    """One unbatched example (``vmap`` of it is the batched product, no size-1 axis)."""
    return _plain_energy(w, x)


# --------------------------------------------------------------- the two updates


def jebm_case(run, num_updates: int):
    """``N`` jebm updates scanned, exactly as ``train_loop`` runs a chunk."""
    from jebm.train import make_train_step

    step = make_train_step(run.objective, run.optimizer)
    data_key, step_key = jax.random.split(run.train_key)
    batch_size = run.config.data.batch_size
    sample = run.data.sample

    def scan(state):
        def body(state, _):
            batch = sample(jax.random.fold_in(data_key, state.step), batch_size)
            return step(state, batch, step_key)

        return jax.lax.scan(body, state, None, length=num_updates)

    return scan, (run.initial_state,)


def _langevin(key, w, x, num_steps: int, h: float):
    """``num_steps`` coupled ULA steps on ``log p = −E`` (one gradient per step)."""
    grad_e = jax.grad(lambda x: jnp.sum(_plain_energy(w, x)))
    noise_sd = np.float32(np.sqrt(2.0 * h))

    def body(x, k):
        return x - h * grad_e(x) + noise_sd * jax.random.normal(k, x.shape, x.dtype), None

    return jax.lax.scan(body, x, jax.random.split(key, num_steps))[0]


def plain_case(run, name: str, num_updates: int):
    """``N`` hand-written updates with the same arithmetic, scanned."""
    cfg = run.config
    tx = run.optimizer
    sample = run.data.sample
    batch_size = cfg.data.batch_size
    data_key, step_key = jax.random.split(run.train_key)
    init = run.initial_state
    if name == "nce":
        params = {"energy": _plain_weights(init.params["energy"]),
                  "log_z": init.params["log_z"]}  # fmt: skip
    else:
        params = _plain_weights(init.params)
    extra = ()
    obj, smp = cfg.objective, cfg.sampler

    if name == "pcd":
        buffer_size, n_chains = obj.buffer_size, obj.num_chains or batch_size
        extra = (init.objective_state.samples,)

        def update(params, batch, key, buf):
            k_idx, k_mask, k_fresh, k_run = jax.random.split(key, 4)
            idx = jax.random.randint(k_idx, (n_chains,), 0, buffer_size)
            reinit = jax.random.bernoulli(k_mask, obj.reinit_prob, (n_chains,))
            fresh = jax.random.uniform(k_fresh, (n_chains, 2), jnp.float32,
                                       obj.init_low, obj.init_high)  # fmt: skip
            x0 = jnp.where(reinit[:, None], fresh, buf[idx])
            neg = _langevin(k_run, params, x0, smp.num_steps, smp.step_size)

            def loss_fn(w):
                return jnp.mean(_plain_energy(w, batch)) - jnp.mean(_plain_energy(w, neg))

            loss, grads = jax.value_and_grad(loss_fn)(params)
            return loss, grads, (buf.at[idx].set(neg),)

    elif name == "cd":

        def update(params, batch, key):
            neg = _langevin(key, params, batch, smp.num_steps, smp.step_size)

            def loss_fn(w):
                return jnp.mean(_plain_energy(w, batch)) - jnp.mean(_plain_energy(w, neg))

            loss, grads = jax.value_and_grad(loss_fn)(params)
            return loss, grads, ()

    elif name == "esm":

        def update(params, batch, key):
            def loss_fn(w):
                def one(x):
                    grad = jax.grad(lambda z: -_one_energy(w, z))
                    hess, score = jax.jacfwd(lambda z: (grad(z), grad(z)), has_aux=True)(x)
                    return 0.5 * jnp.sum(score**2) + jnp.trace(hess)

                return jnp.mean(jax.vmap(one)(batch))

            loss, grads = jax.value_and_grad(loss_fn)(params)
            return loss, grads, ()

    elif name == "ssm":

        def update(params, batch, key):
            vs = jax.random.rademacher(key, batch.shape, batch.dtype)

            def loss_fn(w):
                def one(x, v):
                    grad = jax.grad(lambda z: -_one_energy(w, z))
                    score, hvp = jax.jvp(grad, (x,), (v,))
                    return jnp.vdot(v, hvp) + 0.5 * jnp.sum(score**2)

                return jnp.mean(jax.vmap(one)(batch, vs))

            loss, grads = jax.value_and_grad(loss_fn)(params)
            return loss, grads, ()

    elif name == "dsm":
        sigma = obj.sigma

        def update(params, batch, key):
            eps = jax.random.normal(key, batch.shape, batch.dtype)

            def loss_fn(w):
                score = -jax.grad(lambda z: jnp.sum(_plain_energy(w, z)))(batch + sigma * eps)
                return 0.5 * jnp.mean(jnp.sum((score + eps / sigma) ** 2, axis=-1))

            loss, grads = jax.value_and_grad(loss_fn)(params)
            return loss, grads, ()

    elif name == "nce":
        noise = _nce_noise(run)
        num_noise = round(obj.noise_ratio * batch_size)
        log_nu = float(np.log(num_noise / batch_size))
        bce = optax.losses.sigmoid_binary_cross_entropy

        def update(params, batch, key):
            y = noise.sample(key, num_noise)

            def logits(p, x):
                return (-_plain_energy(p["energy"], x) - p["log_z"]
                        - jax.vmap(noise.log_prob)(x) - log_nu)  # fmt: skip

            def loss_fn(p):
                ld, ln = logits(p, batch), logits(p, y)
                return (jnp.sum(bce(ld, jnp.ones_like(ld)))
                        + jnp.sum(bce(ln, jnp.zeros_like(ln)))) / batch_size  # fmt: skip

            loss, grads = jax.value_and_grad(loss_fn)(params)
            return loss, grads, ()

    else:
        raise ValueError(f"unknown objective {name!r}")

    def scan(carry):
        def body(carry, _):
            params, opt_state, t, extra = carry
            batch = sample(jax.random.fold_in(data_key, t), batch_size)
            key = jax.random.fold_in(step_key, t)
            loss, grads, extra = update(params, batch, key, *extra)
            updates, opt_state = tx.update(grads, opt_state, params)
            return (optax.apply_updates(params, updates), opt_state, t + 1, extra), loss

        return jax.lax.scan(body, carry, None, length=num_updates)

    carry = (params, tx.init(params), jnp.zeros((), jnp.int32), extra)
    return scan, (carry,)


def _nce_noise(run):
    """The fitted noise of the NCE recipe (the objective closes over it; refit it with the
    key ``build_run`` used, so both sides see the same Gaussian)."""
    from jebm.experiment import fit_density

    key = jax.random.key(run.config.train.seed)
    k_noise = jax.random.split(key, 6)[4]
    return fit_density(run.data, run.config.objective.noise, k_noise, "objective.noise")


# ------------------------------------------------------------ where the time goes

_OPS = ("sort", "while", "gather", "scatter", "fusion", "custom-call", "rng-bit-generator",
        "threefry")  # fmt: skip


def cost_report(compiled) -> dict:
    """XLA's cost analysis of a compiled case and an op census of its optimised HLO."""
    out = {}
    try:
        cost = compiled.cost_analysis()
        if isinstance(cost, list | tuple):
            cost = cost[0] if cost else {}
        for key in ("flops", "transcendentals", "bytes accessed"):
            if key in cost:
                out[key.replace(" ", "_")] = float(cost[key])
    except Exception as err:  # not every backend implements it
        out["cost_error"] = f"{type(err).__name__}: {err}"
    try:
        text = compiled.as_text()
        out["hlo_ops"] = {op: len(re.findall(rf"= [^ ]+ {op}[(.]", text)) for op in _OPS}
        out["hlo_ops"]["sort"] = len(re.findall(r" sort\(", text))
        out["hlo_ops"]["while"] = len(re.findall(r" while\(", text))
    except Exception as err:
        out["hlo_error"] = f"{type(err).__name__}: {err}"
    return out


# ---------------------------------------------------------------------------- main


def _add_arguments(parser) -> None:
    parser.add_argument("--objectives", nargs="+", default=list(OBJECTIVES), choices=OBJECTIVES)
    parser.add_argument("--updates", type=int, default=None,
                        help="updates per timed call (25 quick, 200 full)")  # fmt: skip


def main(argv=None) -> dict:
    args = _common.parse_args(__doc__.split("\n\n")[0], _add_arguments, argv)
    num_updates = args.updates or (200 if args.full else 25)
    repeats = args.repeats or (15 if args.full else 21)
    settings = {"mode": "full" if args.full else "quick", "updates_per_call": num_updates,
                "repeats": repeats, "objectives": args.objectives,
                "configs": {n: f"configs/{n}.yaml" for n in args.objectives}}  # fmt: skip
    info = _common.device_info()
    _common.print_header("train step: jebm vs hand-written plain JAX", info, settings)

    cases, runs = {}, {}
    for name in args.objectives:
        run = runs[name] = build_run(name)
        cases[f"{name}/jebm"] = jebm_case(run, num_updates)
        cases[f"{name}/plain"] = plain_case(run, name, num_updates)
    compiled, _ = _common.compile_cases(cases)
    times = _common.time_interleaved(compiled, repeats)

    results, rows = {}, []
    for name in args.objectives:
        j, p = f"{name}/jebm", f"{name}/plain"
        ratio = _common.round_ratio(times, j, p)
        ratio_min = _common.min_ratio(times, j, p)
        out_j = compiled[j].fn(*compiled[j].args)
        out_p = compiled[p].fn(*compiled[p].args)
        loss_j = out_j[1]["loss"]
        loss_p = out_p[1]
        rec = {
            "ratio": ratio,
            "ratio_min": ratio_min,
            "meets_target": bool(ratio <= TARGET_RATIO),
            "first_loss": {"jebm": float(loss_j[0]), "plain": float(loss_p[0])},
            "last_loss": {"jebm": float(loss_j[-1]), "plain": float(loss_p[-1])},
        }
        for side, key in (("jebm", j), ("plain", p)):
            c = compiled[key]
            rec[side] = {
                "ms_per_update": 1e3 * _common.median(times[key]) / num_updates,
                "run_times_s": times[key],
                "compile_s": c.compile_s,
                "lower_s": c.lower_s,
                **cost_report(c.fn),
            }
        results[name] = rec
        fj, fp = rec["jebm"].get("flops"), rec["plain"].get("flops")
        bj, bp = rec["jebm"].get("bytes_accessed"), rec["plain"].get("bytes_accessed")
        rows.append([
            name, rec["jebm"]["ms_per_update"], rec["plain"]["ms_per_update"], ratio, ratio_min,
            fj / fp if fj and fp else float("nan"), bj / bp if bj and bp else float("nan"),
            rec["jebm"]["hlo_ops"]["sort"], rec["jebm"]["compile_s"], rec["plain"]["compile_s"],
        ])  # fmt: skip
    print()
    print(render_rows(rows))
    path = _common.write_json("train_step", info, settings, results, args.out)
    print(f"\nwrote {path}")
    return results


_HEADERS = ["objective", "jebm ms/update", "plain ms/update", "× plain", "× plain (min)",
            "flops × plain", "bytes × plain", "sorts (jebm)", "jebm compile s",
            "plain compile s"]  # fmt: skip


def render_rows(rows) -> str:
    return _common.markdown_table(_HEADERS, rows)


def render_markdown(payload: dict) -> str:
    rows = []
    for name, rec in payload["results"].items():
        j, p = rec["jebm"], rec["plain"]
        fr = j["flops"] / p["flops"] if j.get("flops") and p.get("flops") else float("nan")
        br = (j["bytes_accessed"] / p["bytes_accessed"]
              if j.get("bytes_accessed") and p.get("bytes_accessed") else float("nan"))  # fmt: skip
        rows.append([name, j["ms_per_update"], p["ms_per_update"], rec["ratio"], rec["ratio_min"],
                     fr, br, j.get("hlo_ops", {}).get("sort", "—"), j["compile_s"],
                     p["compile_s"]])  # fmt: skip
    s = payload["settings"]
    head = (f"{s['updates_per_call']} updates per jitted scan, {s['repeats']} interleaved "
            f"rounds; target ≤ {TARGET_RATIO}× the hand-written update.\n\n")
    return head + render_rows(rows)


if __name__ == "__main__":
    main()
