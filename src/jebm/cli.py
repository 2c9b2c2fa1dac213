"""The ``jebm`` command line: ``jebm train | sample | evaluate``, a thin shell over
:mod:`jebm.experiment` (building, and ``jebm train``'s whole recipe,
:func:`jebm.experiment.train_workdir`), :mod:`jebm.evaluation` (numbers) and
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
import sys
import time
from pathlib import Path
from typing import Literal

import tyro

# Everything else is imported inside the subcommands, so that `jebm --help` loads no JAX.

__all__ = ["main", "train", "sample", "evaluate"]


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
    a checkpoint of another run (with a new learning rate, sampler or step count). The
    recipe is :func:`jebm.experiment.train_workdir`.

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
    from jebm import experiment
    from jebm.config import load_config

    return experiment.train_workdir(load_config(config, overrides), workdir,
                                    from_checkpoint=from_checkpoint, step=step,
                                    progress=progress)


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
    experiment.write_json(out_dir / "summary.json", summary)
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
        experiment.check_same_config(wd, load_config(config),
                                     "Use another --workdir, or the same config.")
    run = experiment.build_run(stored)
    state = experiment.restore_state(run, wd, step)
    path = wd / f"evaluation-step{int(state.step)}.json"
    if path.exists():  # results are written once
        print(f"jebm: {path} exists; not recomputed.", file=sys.stderr)
        return json.loads(path.read_text())
    summary = {"step": int(state.step), "params": params_kind(state),
               **evaluation.summary(run, model_params(state), feature_cache=wd,
                                    objective_state=state.objective_state)}
    experiment.write_json(path, summary)
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
    from jebm.experiment import dumps_json

    print(dumps_json(summary))


if __name__ == "__main__":  # pragma: no cover
    main()
