"""How well, and how fast, does each training objective learn the 2-D toys?

Question: for every objective trained on ``8gaussians``, ``rings`` and ``checkerboard``,
what test ``NLL − H`` does the run reach, in how much wall time, at how many steady-state
training steps per second? Each run uses the data set's own config
``configs/<data>_<objective>.yaml`` where one is shipped (e.g. ``rings_nce.yaml``: an MLP
on random Fourier features over a fitted Gaussian base, for the thin rings), else the
objective's 8gaussians config ``configs/<objective>.yaml`` with ``data.name`` replaced.
``NLL`` is the test negative log-likelihood of the learned density (``log Z`` by grid
quadrature), ``H`` the data's exact differential entropy (``log 32`` for
``checkerboard``), so ``NLL − H`` is a Monte Carlo estimate of
``KL(p_data ‖ p_model) ≥ 0``; its error is ``sd(log p_model(x)) / √num_test``, about 0.007
at the default 20 000 test points for a density whose log varies like a 2-D Gaussian's
(sd ≈ 1), and smaller on ``checkerboard``, whose data log-density is constant. The issue's
target is ``NLL − H ≤ 0.10`` with at least two objectives on every data set.
``checkerboard``'s true density is discontinuous, so a smooth MLP energy can only
approach it.

Each row is one ``jebm train`` run through the library (``jebm.experiment.train_workdir``
in this process, in a temporary workdir, no progress bar): the equivalent command is stored
in the row, e.g. ``jebm train --config configs/cd.yaml --workdir W data.name=rings
train.num_steps=500 train.eval_every=250``. Numbers per row, from ``summary.json`` and
``metrics.jsonl``:

* ``NLL − H``, test NLL and ``H`` at the end of training, and the curve of ``NLL − H``
  against steps and training seconds (``train_seconds`` of ``metrics.jsonl``) at every
  ``train.eval_every`` steps (set to the chunk size, which adds evaluations but does not
  change which steps are run together), with the first step and second at the target;
* ``wall s``: the whole ``train`` call (building the run, compiling, training,
  evaluations, checkpoints, the two plots and ``summary.json``); ``train s``: the part up
  to the end of the training loop;
* ``steps/s``: steady-state updates per second, measured by the training loop over every
  chunk but the first (which compiles), so at least two chunks are needed.

Run::

    python benchmarks/objectives.py           # --quick: a third of each config's steps
    python benchmarks/objectives.py --full    # each config's own train.num_steps
    python benchmarks/objectives.py --full --datasets 8gaussians --merge

``--quick`` rows are *not* converged: they show where each objective stands after a
third of its budget. ``--merge`` keeps the rows of the existing JSON that this run does
not redo (other modes, data sets or objectives), so quick and full rows can share a file.

Writes ``benchmarks/results/objectives-<backend>.json`` and prints a markdown table.
"""

import json
import math
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import _common  # noqa: E402

REPO = Path(__file__).resolve().parent.parent
CONFIGS = REPO / "configs"
OBJECTIVES = ("cd", "pcd", "esm", "ssm", "dsm", "nce", "ed")
DATASETS = ("8gaussians", "rings", "checkerboard")
TARGET = 0.10  # the NLL − H target (nats)
QUICK_FRACTION = 1.0 / 3.0


# --------------------------------------------------------------------------- one run


def _steps(config_steps: int, fraction: float, chunk_size: int) -> int:
    """``fraction`` of the config's steps, rounded to whole chunks, at least two chunks
    (the first chunk compiles; steps/s is measured on the others)."""
    chunks = max(2, round(config_steps * fraction / chunk_size))
    return min(config_steps, chunks * chunk_size) if fraction < 1.0 else config_steps


def _curve(workdir: Path, entropy: float) -> list[list[float]]:
    from jebm.train.metrics import read_metrics

    path = workdir / "metrics.jsonl"
    if not path.exists():
        return []
    return [
        [r["step"], r["train_seconds"], float(r["eval/nll"]) - entropy]
        for r in read_metrics(path)
        if isinstance(r.get("eval/nll"), int | float)
    ]


def run_one(dataset: str, objective: str, fraction: float, workdir: Path) -> dict:
    """Train ``dataset``'s config for ``objective`` in ``workdir``; one table row."""
    from jebm.config import load_config
    from jebm.experiment import train_workdir
    from jebm.train import TrainingDivergedError

    config_path = CONFIGS / f"{dataset}_{objective}.yaml"
    if not config_path.exists():
        config_path = CONFIGS / f"{objective}.yaml"
    base = load_config(str(config_path), [f"data.name={dataset}"])
    tc = base.train
    num_steps = _steps(tc.num_steps, fraction, tc.chunk_size)
    overrides = (f"data.name={dataset}", f"train.num_steps={num_steps}",
                 f"train.eval_every={tc.chunk_size}")  # fmt: skip
    row = {
        "dataset": dataset,
        "objective": objective,
        "config": f"configs/{config_path.name}",
        "config_num_steps": tc.num_steps,
        "num_steps": num_steps,
        "overrides": list(overrides),
        "command": f"jebm train --config configs/{config_path.name} --workdir W "
        + " ".join(overrides),
    }
    tic = time.perf_counter()
    try:
        summary = train_workdir(load_config(str(config_path), overrides), workdir)
    except (TrainingDivergedError, ValueError, FloatingPointError) as err:
        row.update(error=f"{type(err).__name__}: {err}".splitlines()[0],
                   wall_s=time.perf_counter() - tic)  # fmt: skip
        return row
    wall = time.perf_counter() - tic
    entropy = float(summary["entropy"])
    nll = summary["test_nll"]
    gap = summary["nll_minus_entropy"]
    curve = _curve(workdir, entropy)
    first_hit = next(((s, t) for s, t, g in curve if g <= TARGET), (None, None))
    row.update(
        test_nll=nll if nll is not None else math.nan,
        entropy=entropy,
        log_z=summary["log_z"] if summary["log_z"] is not None else math.nan,
        nll_minus_entropy=gap if gap is not None else math.nan,
        reaches_target=bool(gap is not None and gap <= TARGET),
        first_step_at_target=first_hit[0],
        first_train_s_at_target=first_hit[1],
        curve=curve,
        wall_s=wall,
        train_s=summary["train_seconds"],
        steps_per_second=summary["steps_per_second"] or math.nan,
        final_loss=(summary.get("final_metrics") or {}).get("loss", math.nan),
    )
    return row


# --------------------------------------------------------------------------- tables


def _fmt_gap(r: dict) -> str:
    if "error" in r:
        return "diverged" if "Diverged" in r["error"] else "error"
    g = r.get("nll_minus_entropy")
    if g is None or not math.isfinite(g):
        return "—"
    return f"**{g:.3f}**" if g <= TARGET else f"{g:.3f}"


def _num(r: dict, key: str) -> float:
    """A number of a row, NaN where it is missing (JSON writes NaN as null)."""
    v = r.get(key)
    return math.nan if v is None else float(v)


def table(rows: list[dict]):
    headers = ["data", "objective", "config", "steps (config)", "NLL − H", "test NLL", "H",
               "wall s", "train s", "steps/s", f"first step ≤ {TARGET}",
               f"train s to ≤ {TARGET}"]  # fmt: skip
    out = []
    for r in rows:
        hit = r.get("first_step_at_target")
        hit_s = r.get("first_train_s_at_target")
        out.append([
            r["dataset"], r["objective"], r["config"].removeprefix("configs/"),
            f"{r['num_steps']} ({r['config_num_steps']})",
            _fmt_gap(r), _num(r, "test_nll"), _num(r, "entropy"), _num(r, "wall_s"),
            _num(r, "train_s"), _num(r, "steps_per_second"), "—" if hit is None else hit,
            "—" if hit_s is None else hit_s,
        ])  # fmt: skip
    return headers, out


def target_summary(rows: list[dict]) -> list[str]:
    """Per data set: the objectives with NLL − H ≤ TARGET, and whether two or more do."""
    lines = []
    for dataset in dict.fromkeys(r["dataset"] for r in rows):
        mine = [r for r in rows if r["dataset"] == dataset]
        hits = [r["objective"] for r in mine if r.get("reaches_target")]
        verdict = "met" if len(hits) >= 2 else "not met"
        lines.append(f"- {dataset}: {len(hits)} of {len(mine)} objectives reach NLL − H ≤ "
                     f"{TARGET} ({', '.join(hits) or 'none'}): target {verdict}")  # fmt: skip
    return lines


def render_markdown(payload: dict) -> str:
    """The tables of an ``objectives`` JSON payload, for ``run_all.py``'s RESULTS.md."""
    s = payload["settings"]
    parts = [
        "Each row: one `jebm train` run of the data set's own config where one is shipped "
        "(`configs/<data>_<objective>.yaml`), else the objective's 8gaussians config with "
        "`data.name` replaced; "
        f"**bold** NLL − H meets the issue's target ≤ {TARGET} (at least two objectives per "
        "data set). NLL − H estimates KL(data ‖ model); its Monte Carlo error is about 0.01. "
        "`wall s` is the whole run (compile, train, evaluations, checkpoints, plots); "
        "`steps/s` the steady state after the first (compiling) chunk."
    ]
    for mode in ("quick", "full"):
        rows = [r for r in payload["results"]["rows"] if r.get("mode") == mode]
        if not rows:
            continue
        note = (" — a fraction of each config's steps: **not converged**" if mode == "quick"
                else " — each config's own steps")  # fmt: skip
        commands = dict.fromkeys(r.get("script_command") or s["commands"].get(mode, "?")
                                 for r in rows)  # fmt: skip
        parts.append(f"#### {mode}{note}\n\nCommand{'s' if len(commands) > 1 else ''}: "
                     + ", ".join(f"`{c}`" for c in commands))
        parts.append(_common.markdown_table(*table(rows)))
        parts.append("\n".join(target_summary(rows)))
    return "\n\n".join(parts)


# --------------------------------------------------------------------------- main


def _add_arguments(parser):
    parser.add_argument("--datasets", nargs="+", default=list(DATASETS))
    parser.add_argument("--objectives", nargs="+", default=list(OBJECTIVES),
                        choices=list(OBJECTIVES))  # fmt: skip
    parser.add_argument("--fraction", type=float, default=None,
                        help=f"fraction of each config's steps (quick: {QUICK_FRACTION:.3g}, "
                        "full: 1)")  # fmt: skip
    parser.add_argument("--merge", action="store_true",
                        help="keep rows of the existing JSON that this run does not redo")
    parser.add_argument("--keep-workdirs", type=Path, default=None,
                        help="write each run's workdir (plots, checkpoints) under this folder "
                        "instead of a deleted temporary one")  # fmt: skip


def main(argv=None):
    args = _common.parse_args(__doc__.split("\n\n")[0], _add_arguments, argv)
    from jebm.energies import toy_data

    unknown = [d for d in args.datasets if d not in toy_data.NAMES]
    if unknown:
        raise SystemExit(f"unknown data set(s) {unknown}; valid: {', '.join(toy_data.NAMES)}")
    mode = "full" if args.full else "quick"
    fraction = args.fraction or (1.0 if args.full else QUICK_FRACTION)
    if not 0.0 < fraction <= 1.0:
        raise SystemExit(f"--fraction must be in (0, 1], got {fraction}")
    info = _common.device_info()
    settings = {
        "mode": mode,
        "datasets": args.datasets,
        "objectives": args.objectives,
        "fraction_of_config_steps": {mode: fraction},
        "target_nll_minus_entropy": TARGET,
        "entropies": {d: toy_data.get(d).entropy for d in args.datasets},
        "commands": {mode: info["command"]},
    }
    _common.print_header("Objectives: NLL − H vs wall time on the 2-D toys", info, settings)
    _common._warm_up_backend()  # backend start-up stays out of the first row's wall time

    rows = []
    for dataset in args.datasets:
        for objective in args.objectives:
            if args.keep_workdirs is not None:
                workdir = args.keep_workdirs / mode / f"{dataset}-{objective}"
                if workdir.exists():
                    raise SystemExit(f"{workdir} exists; remove it or pick another folder")
                row = run_one(dataset, objective, fraction, workdir)
            else:
                with tempfile.TemporaryDirectory(prefix="jebm-objectives-") as tmp:
                    row = run_one(dataset, objective, fraction, Path(tmp))
            row["mode"] = mode
            row["script_command"] = info["command"]  # rows of a --merge keep their own
            rows.append(row)
            gap = row.get("nll_minus_entropy", math.nan)
            print(f"{dataset:>12} {objective:>4}: {row['num_steps']:5d} steps, "
                  f"NLL − H {gap:.4f}, wall {row['wall_s']:.1f} s, "
                  f"{row.get('steps_per_second', math.nan):.1f} steps/s"
                  + (f"  [{row['error']}]" if "error" in row else ""), flush=True)  # fmt: skip

    out = args.out or _common.RESULTS_DIR / f"objectives-{info['backend']}.json"
    if args.merge and out.exists():
        old = json.loads(out.read_text())
        redone = {(r["mode"], r["dataset"], r["objective"]) for r in rows}
        kept = [r for r in old["results"]["rows"]
                if (r.get("mode"), r["dataset"], r["objective"]) not in redone]  # fmt: skip
        rows = kept + rows
        for name in ("commands", "fraction_of_config_steps"):
            settings[name] = {**old["settings"].get(name, {}), **settings[name]}
        settings["entropies"] = {**old["settings"].get("entropies", {}), **settings["entropies"]}
        modes = sorted({r["mode"] for r in rows}, key=("quick", "full").index)
        settings["mode"] = " + ".join(modes)
    names = dict.fromkeys((*DATASETS, *toy_data.NAMES))  # the three first, no repeats
    order = {(m, d, o): i for i, (m, d, o) in enumerate(
        (m, d, o) for m in ("quick", "full") for d in names for o in OBJECTIVES)}  # fmt: skip
    rows.sort(key=lambda r: order.get((r["mode"], r["dataset"], r["objective"]), len(order)))
    settings["datasets"] = list(dict.fromkeys(r["dataset"] for r in rows))
    settings["objectives"] = list(dict.fromkeys(r["objective"] for r in rows))
    path = _common.write_json("objectives", info, settings, {"rows": rows}, out)
    payload = json.loads(path.read_text())
    print()
    print(render_markdown(payload))
    print(f"\nwrote {path}")


if __name__ == "__main__":
    main()
