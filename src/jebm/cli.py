"""The ``jebm`` command line: ``jebm train | sample | evaluate``, a thin shell over
:mod:`jebm.experiment` (building), :mod:`jebm.evaluation` (numbers) and
:mod:`jebm.plotting` (figures). This module parses arguments, reads and writes files and
draws; the functions behind the subcommands return their summary dictionaries.

* ``jebm train [--config configs/X.yaml] [section.field=value ...] [--workdir W]`` writes,
  into ``W``: ``config.yaml``, ``run.json`` (seed, versions), ``metrics.jsonl``,
  ``checkpoints/``, ``summary.json`` and figures (2-D: ``energy.png``, ``samples.png``;
  images: ``samples.png``, ``data.png``, ``buffer.png``). Re-running it resumes.
* ``jebm sample [--target 8gaussians] [--sampler mala] ...`` runs chains on an analytic
  target (or, with ``--workdir``, on a trained model) and reports ESS, R̂ and moments.
* ``jebm evaluate --workdir W`` recomputes the test NLL of a checkpoint.
"""

import json
import math
import platform
import sys
import time
from importlib import metadata
from pathlib import Path
from typing import Literal

import jax
import numpy as np
import tyro

from jebm import evaluation, experiment, plotting
from jebm.config import SamplerConfig, config_diff, dump_config, load_config
from jebm.energy import batch_energy, logdensity_fn
from jebm.train import CheckpointError, TrainingDivergedError

__all__ = ["main", "train", "sample", "evaluate"]

_PACKAGES = ("jebm", "jax", "jaxlib", "flax", "optax", "orbax-checkpoint", "numpy", "tyro")
# Fields that may change between a run and its resumption without changing the parameters.
_RESUMABLE = ("train.chunk_size", "train.log_every", "train.eval_every",
              "train.checkpoint_every", "train.keep_checkpoints", "eval.grid_points",
              "eval.num_samples", "eval.sample_steps", "eval.grid_low", "eval.grid_high",
              "data.num_test", "eval.grid_rows", "eval.ais_base", "eval.ais_chains",
              "eval.ais_bridges", "eval.ais_step_size")


def _jsonable(value):
    """JSON has no NaN/inf: write them as null."""
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


def _check_same_config(workdir: Path, config, ignore=_RESUMABLE) -> None:
    diff = config_diff(experiment.stored_config(workdir), config, ignore=ignore)
    if diff:
        raise CheckpointError(
            f"{workdir} holds a run of a different config; differing fields (workdir -> "
            "requested):\n  " + "\n  ".join(diff) + "\nUse another --workdir, or the same config.")


def _figures(run, state, out: Path) -> None:
    ev, name = run.config.eval, run.config.sampler.name
    if not run.data.planar:
        count = ev.grid_rows * ev.grid_rows
        draws = experiment.sample_model(run, state.params, run.sample_key,
                                        min(ev.num_samples, count), ev.sample_steps)
        start = "the base" if run.base is not None else "noise"
        plotting.save_image_grid(out / "samples.png", draws, ev.grid_rows,
                                 title=f"{name} chains from {start} ({ev.sample_steps} steps)")
        plotting.save_image_grid(out / "data.png", run.data.test[:count], ev.grid_rows,
                                 title="test images")
        buffer = getattr(state.objective_state, "samples", None)
        if buffer is not None:
            plotting.save_image_grid(out / "buffer.png", buffer[:count], ev.grid_rows,
                                     title=f"replay buffer, step {int(state.step)}")
        return
    extent, learned, true, energies = evaluation.density_grid(run, state.params)
    plotting.plot_densities(out / "energy.png", [learned, true],
                            [f"learned ({run.config.objective.name})",
                             f"true ({run.data.name})"], extent)
    draws = experiment.sample_model(run, state.params, run.sample_key, ev.num_samples,
                                    ev.sample_steps)
    data = run.data.sample(run.sample_key, ev.num_samples)
    plotting.plot_samples(out / "samples.png", np.asarray(draws), reference=np.asarray(data),
                          energy_grid=energies, extent=extent,
                          title=f"{name} draws from the model ({ev.sample_steps} steps)")


def train(
    config: str | None = None,
    workdir: str = "runs/default",
    overrides: tyro.conf.Positional[tuple[str, ...]] = (),
    progress: bool = True,
) -> dict:
    """Train an energy-based model on a 2-D toy or the digits (default: PCD on 8gaussians).

    Args:
      config: YAML config file; omitted fields take the defaults (the default job).
      workdir: output folder; a folder with checkpoints of the same config is resumed.
      overrides: dotted overrides such as train.num_steps=500 optimizer.learning_rate=3e-3.
      progress: show a progress bar.

    Returns:
      The summary written to ``summary.json``.
    """
    cfg = load_config(config, overrides)
    out = Path(workdir)
    if (out / "config.yaml").exists():
        _check_same_config(out, cfg)
    out.mkdir(parents=True, exist_ok=True)
    (out / "config.yaml").write_text(dump_config(cfg))
    _write_json(out / "run.json", {"seed": cfg.train.seed, "versions": _versions(),
                                   "device": str(jax.devices()[0]), "argv": sys.argv[1:]})
    tic = time.perf_counter()
    run = experiment.build_run(cfg)
    periodic = jax.jit(evaluation.periodic_eval_fn(run))
    result = experiment.train_run(run, out, progress=progress,
                                  eval_fn=lambda state: periodic(state.params))
    train_seconds = time.perf_counter() - tic
    _figures(run, result.state, out)
    summary = {"data": cfg.data.name, "objective": cfg.objective.name,
               "num_steps": int(result.state.step),
               **evaluation.summary(run, result.state.params),
               "final_metrics": result.metrics, "train_seconds": train_seconds,
               "steps_per_second": result.steps_per_second,
               "total_seconds": time.perf_counter() - tic}
    _write_json(out / "summary.json", summary)
    return summary


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
    from tqdm.auto import tqdm

    from jebm.samplers import run_chains_chunked

    burn_in = num_steps // 2 if burn_in is None else burn_in
    if not 0 <= burn_in < num_steps - 3:
        raise ValueError(f"burn_in must be in [0, num_steps - 4], got {burn_in}.")
    for name, value in (("num_chains", num_chains), ("num_steps", num_steps),
                        ("chunk_size", chunk_size)):
        if value < 1:
            raise ValueError(f"{name} must be >= 1, got {value}.")
    k_init, k_run = jax.random.split(jax.random.key(seed))
    images, reference = None, None
    if workdir is not None:
        cfg = experiment.stored_config(workdir)
        run = experiment.build_run(cfg)
        params = experiment.restore_state(run, workdir).params
        energy_fn, sampler = run.model_energy_fn, sampler or cfg.sampler.name
        ula = sampler == "ula"
        scfg = SamplerConfig(name=sampler, step_size=step_size or cfg.sampler.step_size,
                             noise_scale=cfg.sampler.noise_scale if ula else None,
                             clip_grad=cfg.sampler.clip_grad if ula else None,
                             bounds=cfg.sampler.bounds if ula else None,
                             num_integration_steps=num_integration_steps)
        x0 = experiment.initial_positions(run, k_init, num_chains)
        exact_mean = exact_cov = None
        if run.data.planar:
            data = np.asarray(run.data.sample(jax.random.key(seed + 1), 100_000), np.float64)
            exact_mean, exact_cov = data.mean(0), np.cov(data, rowvar=False)
            reference_label, reference = f"{cfg.data.name} data (moments of 1e5 draws)", data[:2000]
        else:  # images: diagnostics of each chain's energy trace
            images, reference_label = cfg.eval.grid_rows, "none (energy of each chain)"
        extent = (cfg.eval.grid_low, cfg.eval.grid_high) * 2
        label, out_dir = f"model in {workdir}", Path(out or Path(workdir) / "sample")
    else:
        sampler = sampler or "mala"
        tgt = experiment.sampling_target(target)
        energy_fn, params = tgt.energy.energy_fn, tgt.energy.params
        exact_mean, exact_cov, extent, reference_label = tgt.mean, tgt.cov, tgt.extent, tgt.label
        scfg = SamplerConfig(name=sampler, step_size=step_size or tgt.step_sizes[sampler],
                             num_integration_steps=num_integration_steps)
        x0 = init_scale * jax.random.normal(k_init, (num_chains, 2))
        label, out_dir = target, Path(out or "jebm-sample")
    alg = experiment.build_sampler(scfg, x0.shape[1:])(logdensity_fn(energy_fn, params))
    tic = time.perf_counter()
    with tqdm(total=num_steps, disable=not progress, desc=sampler, unit="step") as bar:
        trace, rate = run_chains_chunked(k_run, alg, x0, num_steps, chunk_size=chunk_size,
                                         on_chunk=bar.update)
    seconds = time.perf_counter() - tic
    out_dir.mkdir(parents=True, exist_ok=True)
    if images is not None:
        plotting.save_chain_grids(out_dir, np.asarray(x0), trace, images, sampler)
        energies = jax.jit(lambda p, t: jax.lax.map(lambda xs: batch_energy(energy_fn, p, xs), t))
        trace = np.asarray(energies(params, jax.numpy.asarray(trace)))[..., None]
    kept = trace[burn_in:]
    summary = {"target": label, "sampler": sampler, "step_size": scfg.step_size,
               "num_chains": num_chains, "num_steps": num_steps, "burn_in": burn_in,
               "seed": seed, "acceptance_rate": rate,
               **evaluation.chain_summary(kept, exact_mean, exact_cov),
               "reference": reference_label, "seconds": seconds}
    if images is None:
        shown = kept.reshape(-1, 2)
        shown = shown[np.random.default_rng(seed).permutation(len(shown))[:5000]]
        axis = np.linspace(extent[0], extent[1], 150), np.linspace(extent[2], extent[3], 150)
        grid = np.stack([g.ravel() for g in np.meshgrid(*axis)], -1).astype(np.float32)
        grid_e = np.asarray(jax.jit(batch_energy, static_argnums=0)(energy_fn, params, grid))
        plotting.plot_samples(out_dir / "samples.png", shown, reference=reference,
                              energy_grid=grid_e.reshape(150, 150), extent=extent,
                              title=f"{sampler} on {label}", reference_label="data")
    _write_json(out_dir / "summary.json", summary)
    return summary


def evaluate(workdir: str, config: str | None = None, step: int | None = None) -> dict:
    """Test NLL of a trained checkpoint (grid quadrature for 2-D data, AIS for images).

    Args:
      workdir: a folder written by `jebm train`.
      config: optional YAML config; it must match the workdir's.
      step: the checkpoint step (default: the latest).

    Returns:
      The summary written to ``WORKDIR/evaluation.json``.
    """
    wd = Path(workdir)
    stored = experiment.stored_config(wd)
    if config is not None:
        _check_same_config(wd, load_config(config))
    run = experiment.build_run(stored)
    state = experiment.restore_state(run, wd, step)
    summary = {"step": int(state.step), **evaluation.summary(run, state.params)}
    _write_json(wd / "evaluation.json", summary)
    return summary


def main(argv: list[str] | None = None) -> None:
    """Entry point of the ``jebm`` console script."""
    subcommands = {"train": train, "sample": sample, "evaluate": evaluate}
    try:
        summary = tyro.extras.subcommand_cli_from_dict(subcommands, prog="jebm", args=argv)
    except (ValueError, CheckpointError, TrainingDivergedError, FileNotFoundError) as err:
        print(f"jebm: error: {err}", file=sys.stderr)
        raise SystemExit(1) from None
    print(_dumps(summary))


if __name__ == "__main__":  # pragma: no cover
    main()
