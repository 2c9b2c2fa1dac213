"""The ``jebm`` command line: ``jebm train | sample | evaluate``, a thin shell over
:mod:`jebm.experiment` (building), :mod:`jebm.evaluation` (numbers) and
:mod:`jebm.plotting` (figures). This module parses arguments, reads and writes files and
draws; the functions behind the subcommands return their summary dictionaries.

* ``jebm train [--config configs/X.yaml] [section.field=value ...] [--workdir W]`` writes,
  into ``W``: ``config.yaml``, ``run.json`` (seed, versions), ``metrics.jsonl``,
  ``checkpoints/``, ``summary.json`` and figures (2-D: ``energy.png``, ``samples.png``;
  images: ``samples.png``, ``data.png``, ``buffer.png``, and for a joint model
  ``conditional.png``). Re-running it resumes.
* ``jebm sample [--target 8gaussians] [--sampler mala] ...`` runs chains on an analytic
  target (or, with ``--workdir``, on a trained model) and reports ESS, R̂ and moments.
* ``jebm evaluate --workdir W`` recomputes the test NLL of a checkpoint.

With ``train.ema_decay > 0`` every subcommand evaluates, draws and samples the moving
average of the parameters (:func:`jebm.train.model_params`), not the raw ones; their
summaries say which (``"params": "ema"`` or ``"raw"``).
"""

import json
import math
import platform
import sys
import time
from importlib import metadata
from pathlib import Path
from typing import Literal

import tyro

# Everything else is imported inside the subcommands, so that `jebm --help` loads no JAX.

__all__ = ["main", "train", "sample", "evaluate"]

_PACKAGES = ("jebm", "jax", "jaxlib", "flax", "optax", "orbax-checkpoint", "numpy", "tyro")


def _jsonable(value):
    """JSON has no NaN/inf: write them as null."""
    import jax
    import numpy as np

    if isinstance(value, dict):
        return {k: _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    if isinstance(value, np.ndarray | jax.Array | np.generic):
        return _jsonable(np.asarray(value).tolist())
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def _dumps(values: dict) -> str:
    return json.dumps(_jsonable(values), indent=2, allow_nan=False)


def _write_json(path: Path, values: dict) -> None:
    path.write_text(_dumps(values) + "\n")


def _versions() -> dict[str, str]:
    out = {"python": platform.python_version()}
    for name in _PACKAGES:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = "not installed"
    return out


def _check_same_config(workdir: Path, config) -> None:
    from jebm import experiment
    from jebm.config import config_diff
    from jebm.train import CheckpointError

    diff = config_diff(experiment.stored_config(workdir), config, ignore=experiment.RESUMABLE)
    if diff:
        raise CheckpointError(
            f"{workdir} holds a run of a different config; differing fields (workdir -> "
            "requested):\n  " + "\n  ".join(diff) + "\nUse another --workdir, or the same config.")


def _figures(run, state, out: Path, log_z: float | None = None) -> None:
    """The run's figures; ``log_z``: the 2-D model's quadrature ``log Z``, if known."""
    import numpy as np

    from jebm import evaluation, experiment, plotting
    from jebm.train import model_params

    ev, name = run.config.eval, run.config.sampler.name
    if not run.data.planar:
        count = ev.grid_rows * ev.grid_rows
        draws = experiment.sample_trained(run, state, run.sample_key,
                                          min(ev.num_samples, count), ev.sample_steps)
        plotting.save_image_grid(out / "samples.png", draws, ev.grid_rows,
                                 title=experiment.sampling_label(run, ev.sample_steps))
        if run.joint is not None:  # a joint model: one class per row, in turn
            import jax.numpy as jnp

            labels = jnp.arange(count) // ev.grid_rows % experiment.NUM_CLASSES
            draws = experiment.sample_conditional_trained(run, state, run.sample_key, labels,
                                                          ev.sample_steps)
            plotting.save_image_grid(out / "conditional.png", draws, ev.grid_rows,
                                     title=f"p(x | y), {name} chains ({ev.sample_steps} "
                                     "steps), one class per row")
        plotting.save_image_grid(out / "data.png", run.data.test[:count], ev.grid_rows,
                                 title="test images")
        buffer = experiment.replay_samples(state.objective_state)
        if buffer is not None:
            plotting.save_image_grid(out / "buffer.png", buffer[:count], ev.grid_rows,
                                     title=f"replay buffer, step {int(state.step)}")
        return
    extent, learned, true, energies = evaluation.density_grid(run, model_params(state),
                                                              log_z=log_z)
    plotting.plot_densities(out / "energy.png", [learned, true],
                            [f"learned ({run.config.objective.name})",
                             f"true ({run.data.name})"], extent)
    draws = experiment.sample_trained(run, state, run.sample_key, ev.num_samples,
                                      ev.sample_steps)
    data = run.data.test[:ev.num_samples]  # exact draws of the toy already (data.num_test)
    plotting.plot_samples(out / "samples.png", np.asarray(draws), reference=np.asarray(data),
                          energy_grid=energies, extent=extent,
                          title=f"{name} draws from the model ({ev.sample_steps} steps)")


def _prepare_workdir(out: Path, cfg, source: str | None) -> dict | None:
    """Decide what a ``train`` on ``out`` may do; return the finished summary if there is
    nothing to do. A workdir is resumed or extended, never silently rewritten."""
    from jebm import experiment
    from jebm.config import config_diff
    from jebm.train import CheckpointError

    if not (out / "config.yaml").exists():
        return None
    started = (out / "summary.json").exists() or any((out / "checkpoints").glob("*"))
    if not started:  # a start that failed before its first checkpoint: nothing to keep
        return None
    stored = experiment.stored_config(out)
    diff = config_diff(stored, cfg, ignore=experiment.RESUMABLE)
    if diff:
        raise CheckpointError(
            f"{out} holds a run of a different config; differing fields (workdir -> "
            "requested):\n  " + "\n  ".join(diff) + "\nThese change its results, so they need "
            f"a new workdir: jebm train --from {out}:STEP --workdir NEW section.field=value ...")
    recorded = json.loads((out / "run.json").read_text()).get("from") if (
        out / "run.json").exists() else None
    if source is not None and (recorded is None or recorded["workdir"] != _split_source(
            source)[0]):
        raise CheckpointError(f"--from starts a new run, but {out} already holds another one; "
                              "choose an empty --workdir.")
    done = out / "summary.json"
    if done.exists():
        summary = json.loads(done.read_text())
        if summary.get("num_steps") == cfg.train.num_steps:
            print(f"jebm: {out} is already trained to step {cfg.train.num_steps}; nothing "
                  "was changed (raise train.num_steps to extend it).", file=sys.stderr)
            return summary
        if cfg.train.num_steps < summary.get("num_steps", 0):
            raise CheckpointError(f"{out} is trained to step {summary['num_steps']}; "
                                  f"train.num_steps={cfg.train.num_steps} cannot shorten it.")
        done.rename(out / f"summary-step{summary['num_steps']}.json")  # kept, not lost
    return None


def _split_source(source: str) -> tuple[str, int | None]:
    """``W1:STEP`` (or ``W1``) as ``(W1, STEP or None)``."""
    head, sep, tail = source.rpartition(":")
    if sep and tail.isdigit():
        return head, int(tail)
    return source, None


def train(
    config: str | None = None,
    workdir: str = "runs/default",
    overrides: tyro.conf.Positional[tuple[str, ...]] = (),
    from_checkpoint: str | None = None,
    step: int | None = None,
    progress: bool = True,
) -> dict:
    """Train an energy-based model on a 2-D toy or the digits (default: PCD on 8gaussians).

    Re-running a finished workdir changes nothing; raising ``train.num_steps`` extends it
    in place; any other change needs a new workdir, which ``--from W1:STEP`` can start from
    a checkpoint of another run (with a new learning rate, sampler or step count).

    Args:
      config: YAML config file; omitted fields take the defaults (the default job).
      workdir: output folder; a folder with checkpoints of the same config is resumed.
      overrides: dotted overrides such as train.num_steps=500 optimizer.learning_rate=3e-3.
      from_checkpoint: ``W1:STEP`` (``--from``): start from that checkpoint of the run in
        ``W1`` (``W1`` alone: its latest); recorded in ``run.json``. ``train.num_steps``
        still counts from 0, so a fork at 500 with 1500 steps trains 1000 more.
      step: resume this workdir from checkpoint ``STEP`` instead of the newest (when the
        newest is damaged; damaged later ones are moved to ``damaged_checkpoints/``).
      progress: show a progress bar.

    Returns:
      The summary written to ``summary.json``.
    """
    import jax

    from jebm import evaluation, experiment
    from jebm.config import dump_config, load_config
    from jebm.train import model_params, params_kind

    cfg = load_config(config, overrides)
    out = Path(workdir)
    finished = _prepare_workdir(out, cfg, from_checkpoint)
    if finished is not None:
        return finished
    tic = time.perf_counter()
    run = experiment.build_run(cfg)  # before anything is written: a bad config leaves nothing
    origin, provenance = None, None
    if from_checkpoint is not None:
        from jebm.train import init_from_checkpoint

        source, source_step = _split_source(from_checkpoint)
        state, origin = init_from_checkpoint(Path(source) / "checkpoints", run.initial_state,
                                             step=source_step)
        run = run._replace(initial_state=state)
        provenance = {"workdir": source, "step": int(state.step)}
    out.mkdir(parents=True, exist_ok=True)
    (out / "config.yaml").write_text(dump_config(cfg))
    _write_json(out / "run.json", {"seed": cfg.train.seed, "versions": _versions(),
                                   "device": str(jax.devices()[0]),
                                   "devices": experiment.training_devices(cfg),
                                   "argv": sys.argv[1:],
                                   "from": provenance})
    periodic = jax.jit(evaluation.periodic_eval_fn(run))
    result = experiment.train_run(run, out, progress=progress, origin=origin,
                                  resume_step=step,
                                  eval_fn=lambda state: periodic(model_params(state)))
    train_seconds = time.perf_counter() - tic
    # the last periodic evaluation is of the final params: its log Z normalises energy.png
    _figures(run, result.state, out, log_z=result.eval.get("log_z"))
    summary = {"data": cfg.data.name, "objective": cfg.objective.name,
               "num_steps": int(result.state.step),
               "params": params_kind(result.state),
               **evaluation.summary(run, model_params(result.state), feature_cache=out,
                                    objective_state=result.state.objective_state),
               "final_metrics": result.metrics, "train_seconds": train_seconds,
               "steps_per_second": result.steps_per_second,
               "total_seconds": time.perf_counter() - tic}
    _write_json(out / "summary.json", summary)
    _explain(out, summary)
    return summary


def _explain(out: Path, summary: dict) -> None:
    """Tell the user where the files are and what the headline numbers mean."""
    lines = [f"jebm: results in {out}/: summary.json, metrics.jsonl, config.yaml, checkpoints/, "
             "and figures (*.png)."]
    if summary.get("nll_minus_entropy") is not None:
        lines.append(f"  test NLL {summary['test_nll']:.4f} nats; the data's entropy H = "
                     f"{summary['entropy']:.4f}; nll_minus_entropy = "
                     f"{summary['nll_minus_entropy']:.4f} (KL(data || model) + Monte Carlo "
                     "error: 0 is a perfect model, ~0.1 or less is good).")
    elif summary.get("error"):
        lines.append(f"  no test NLL: {summary['error']}")
    elif summary.get("test_nll") is not None:
        lines.append(f"  test NLL {summary['test_nll']:.2f} ± {summary['test_nll_stderr']:.2f} "
                     f"nats per image on [0, 1]^d (AIS; lower is better), against the "
                     f"logit-Gaussian's {summary['logit_gaussian_nll']:.2f} and the Gaussian's "
                     f"{summary['gaussian_nll']:.2f}.")
        if summary.get("test_nll_model"):
            lines.append(f"  that NLL is of {summary['test_nll_model']}.")
        if summary.get("ais_warning"):
            lines.append(f"  warning: {summary['ais_warning']}")
    if summary.get("accuracy") is not None:
        lines.append(f"  test accuracy of the classifier p(y | x): {summary['accuracy']:.3f}.")
    print("\n".join(lines), file=sys.stderr)


def sample(
    target: Literal["8gaussians", "gaussian", "rings"] = "8gaussians",
    sampler: Literal["mala", "rwmh", "hmc", "ula"] | None = None,
    num_chains: int = 64,
    num_steps: int = 2000,
    burn_in: int | None = None,
    step_size: float | None = None,
    num_integration_steps: int = 5,
    init_scale: float = 3.0,
    seed: int = 0,
    workdir: str | None = None,
    out: str | None = None,
    chunk_size: int = 500,
    progress: bool = True,
) -> dict:
    """Run MCMC chains on an analytic target, or on the model trained in --workdir.

    Args:
      target: analytic target (ignored with --workdir).
      sampler: MCMC kernel (default: mala on a target; with --workdir, the training
        config's sampler with all its settings).
      num_chains: independent chains.
      num_steps: transitions per chain, burn-in included.
      burn_in: transitions discarded first (default: half of num_steps).
      step_size: step size (default: tuned per target and sampler; with --workdir, the
        training config's sampler.step_size).
      num_integration_steps: HMC leapfrog steps.
      init_scale: chains start from N(0, init_scale² I) (overdispersed, for R-hat); with
        --workdir, at the model's initial positions.
      seed: integer seed.
      workdir: a training workdir: sample its last checkpoint instead of a target.
      out: output folder (default: jebm-sample, or WORKDIR/sample).
      chunk_size: transitions per jitted call (progress-bar granularity).
      progress: show a progress bar.

    Returns:
      The summary written to ``summary.json``.
    """
    import jax
    import numpy as np
    from tqdm.auto import tqdm

    from jebm import evaluation, experiment, plotting
    from jebm._validate import check_float, check_int
    from jebm.energy import batch_energy, logdensity_fn
    from jebm.samplers import run_chains_chunked

    for name, value in (("num_chains", num_chains), ("num_steps", num_steps),
                        ("chunk_size", chunk_size)):
        check_int(name, value)
    check_float("step_size", step_size, optional=True)
    burn_in = num_steps // 2 if burn_in is None else burn_in
    if not 0 <= burn_in < num_steps - 3:
        raise ValueError(f"burn_in must be in [0, num_steps - 4] = [0, {num_steps - 4}], got "
                         f"{burn_in} (num_steps={num_steps}).")
    k_init, k_run = jax.random.split(jax.random.key(seed))
    setup = experiment.chain_setup(k_init, num_chains, target=target, workdir=workdir,
                                   sampler=sampler, step_size=step_size,
                                   num_integration_steps=num_integration_steps,
                                   init_scale=init_scale, reference_key=jax.random.key(seed + 1))
    sampler, energy_fn, params, x0 = setup.sampler.name, setup.energy_fn, setup.params, setup.x0
    out_dir = Path(out or (Path(workdir) / "sample" if workdir is not None else "jebm-sample"))
    alg = experiment.build_sampler(setup.sampler, x0.shape[1:])(logdensity_fn(energy_fn, params))
    tic = time.perf_counter()
    with tqdm(total=num_steps, disable=not progress, desc=sampler, unit="step") as bar:
        trace, rate = run_chains_chunked(k_run, alg, x0, num_steps, chunk_size=chunk_size,
                                         on_chunk=bar.update)
    seconds = time.perf_counter() - tic
    out_dir.mkdir(parents=True, exist_ok=True)
    if setup.image_rows is not None:
        plotting.save_chain_grids(out_dir, np.asarray(x0), trace, setup.image_rows, sampler)
        energies = jax.jit(lambda p, t: jax.lax.map(lambda xs: batch_energy(energy_fn, p, xs), t))
        trace = np.asarray(energies(params, jax.numpy.asarray(trace)))[..., None]
    kept = trace[burn_in:]
    summary = {"target": setup.label,
               **({"params": setup.params_kind} if setup.params_kind else {}),
               "sampler": sampler, "step_size": setup.sampler.step_size,
               "num_chains": num_chains, "num_steps": num_steps, "burn_in": burn_in,
               "seed": seed, "acceptance_rate": rate,
               **evaluation.chain_summary(kept, setup.mean, setup.cov),
               "reference": setup.reference_label, "seconds": seconds}
    summary["warnings"] = evaluation.chain_warnings(summary, num_chains)
    for warning in summary["warnings"]:
        print(f"jebm: warning: {warning}", file=sys.stderr)
    if setup.image_rows is None:
        extent = setup.extent
        shown = kept.reshape(-1, 2)
        shown = shown[np.random.default_rng(seed).permutation(len(shown))[:5000]]
        axis = np.linspace(extent[0], extent[1], 150), np.linspace(extent[2], extent[3], 150)
        grid = np.stack([g.ravel() for g in np.meshgrid(*axis)], -1).astype(np.float32)
        grid_e = np.asarray(jax.jit(batch_energy, static_argnums=0)(energy_fn, params, grid))
        plotting.plot_samples(out_dir / "samples.png", shown, reference=setup.reference,
                              energy_grid=grid_e.reshape(150, 150), extent=extent,
                              title=f"{sampler} on {setup.label}", reference_label="data")
    _write_json(out_dir / "summary.json", summary)
    return summary


def evaluate(workdir: str, config: str | None = None, step: int | None = None) -> dict:
    """Test NLL of a trained checkpoint (grid quadrature for 2-D data, AIS for images).

    Args:
      workdir: a folder written by `jebm train`.
      config: optional YAML config; it must match the workdir's.
      step: the checkpoint step (default: the latest).

    Returns:
      The summary written to ``WORKDIR/evaluation-stepN.json`` (once: an existing file is
      returned, not rewritten).
    """
    from jebm import evaluation, experiment
    from jebm.config import load_config
    from jebm.train import model_params, params_kind

    wd = Path(workdir)
    stored = experiment.stored_config(wd)
    if config is not None:
        _check_same_config(wd, load_config(config))
    run = experiment.build_run(stored)
    state = experiment.restore_state(run, wd, step)
    path = wd / f"evaluation-step{int(state.step)}.json"
    if path.exists():  # results are written once
        print(f"jebm: {path} exists; not recomputed.", file=sys.stderr)
        return json.loads(path.read_text())
    summary = {"step": int(state.step), "params": params_kind(state),
               **evaluation.summary(run, model_params(state), feature_cache=wd,
                                    objective_state=state.objective_state)}
    _write_json(path, summary)
    return summary


def main(argv: list[str] | None = None) -> None:
    """Entry point of the ``jebm`` console script.

    Runs the subcommand ``train``, ``sample`` or ``evaluate`` and prints its summary as
    JSON; ``--version`` (``-V``) prints the version. Expected errors (invalid
    config, missing or damaged checkpoint, diverged training, missing file) are printed
    as ``jebm: error: ...`` and exit with status 1.

    Args:
      argv: the command-line arguments after the program name, e.g.
        ``["train", "--config", "configs/8gaussians_pcd.yaml"]``; ``None`` reads
        ``sys.argv[1:]``. ``--from`` is accepted for ``--from-checkpoint``.
    """
    if argv is None:  # the console script: keep compiled programs, use every CPU core
        from jebm._cache import enable_compilation_cache
        from jebm.parallel import use_cpu_cores

        use_cpu_cores()
        enable_compilation_cache()
    argv = sys.argv[1:] if argv is None else list(argv)
    if argv and argv[0] in ("--version", "-V"):
        from jebm import __version__

        print(f"jebm {__version__}")
        return
    argv = ["--from-checkpoint" if a == "--from" else a for a in argv]
    subcommands = {"train": train, "sample": sample, "evaluate": evaluate}
    try:
        summary = tyro.extras.subcommand_cli_from_dict(subcommands, prog="jebm", args=argv)
    except Exception as err:
        from jebm.train import CheckpointError, TrainingDivergedError

        if not isinstance(err, ValueError | CheckpointError | TrainingDivergedError
                          | FileNotFoundError):
            raise
        hint = ""
        if isinstance(err, TrainingDivergedError) and err.healthy_checkpoint is not None:
            hint = (f"\njebm: to go on, fork the healthy checkpoint with other settings: jebm "
                    f"train --from {Path(err.directory).parent}:{err.healthy_checkpoint} "
                    "--workdir NEW "
                    "optimizer.learning_rate=...")
        print(f"jebm: error: {err}{hint}", file=sys.stderr)
        raise SystemExit(1) from None
    print(_dumps(summary))


if __name__ == "__main__":  # pragma: no cover
    main()
