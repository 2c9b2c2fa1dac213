"""What ``jebm train`` leaves in a workdir, and how it is read back, resumed and evaluated.

:func:`train_workdir` is ``jebm train``'s whole recipe and :func:`evaluate_workdir`
``jebm evaluate``'s; :func:`stored_config` and :func:`load_model` read a finished run.
A workdir is resumed or extended, never silently rewritten: results are written once.
"""

import errno
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from jebm import plotting
from jebm.datasets.labels import NUM_CLASSES
from jebm.experiment.config import Config, config_diff, dump_config, load_config
from jebm.experiment.devices import training_devices
from jebm.experiment.evaluate import density_grid, periodic_eval_fn
from jebm.experiment.evaluate import summary as run_summary
from jebm.experiment.records import versions, write_json
from jebm.experiment.run import Run, build_run
from jebm.experiment.sampling import (
    replay_samples,
    sample_conditional_trained,
    sample_trained,
    sampling_label,
)
from jebm.experiment.training import RESUMABLE, restore_state, train_run
from jebm.train import CheckpointError, init_from_checkpoint, model_params, params_kind

__all__ = ["stored_config", "load_model", "check_same_config", "save_figures",
           "train_workdir", "evaluate_workdir"]  # fmt: skip


def stored_config(workdir: str | Path) -> Config:
    """The config a ``jebm train`` workdir was trained with (its ``config.yaml``).

    Args:
      workdir: a folder written by ``jebm train``.

    Returns:
      The :class:`~jebm.config.Config` read by :func:`~jebm.config.load_config`.

    Raises:
      CheckpointError: if ``workdir`` has no ``config.yaml``.
      ValueError: if the stored config is invalid.
    """

    path = Path(workdir) / "config.yaml"
    if not path.exists():
        raise CheckpointError(
            f"{workdir} is not a jebm training workdir: {path.name} is missing "
            "(run `jebm train --workdir` first).")
    return load_config(str(path))


def load_model(workdir: str | Path, step: int | None = None):
    """The trained energy of a ``jebm train`` workdir, for use in Python.

    Args:
      workdir: a folder written by ``jebm train``.
      step: the checkpoint step (default: the latest).

    Returns:
      ``(energy_fn, params, config)``: ``energy_fn(params, x)`` is the model's energy of
      one ``x`` (the network plus ``model.base``; for NCE, without the learned ``c``,
      which is ``params["log_z"]``), and ``config`` the run's :class:`~jebm.config.Config`.
      ``params`` are :func:`jebm.train.model_params` of the checkpoint: the moving
      average when the run kept one (``train.ema_decay > 0``), else the raw parameters.

    Raises:
      CheckpointError: if ``workdir`` holds no config or no checkpoint.
    """

    run = build_run(stored_config(workdir))
    return run.model_energy_fn, model_params(restore_state(run, workdir, step)), run.config


def check_same_config(workdir: str | Path, config: Config, advice: str) -> None:
    """Refuse a ``config`` that differs from the one ``workdir`` was trained with in a
    field that changes its results (any but :data:`RESUMABLE`).

    Args:
      workdir: a ``jebm train`` workdir.
      config: the requested config.
      advice: the error's last line, what the user can do instead.

    Raises:
      CheckpointError: naming every differing field, ``workdir -> requested``.
    """

    diff = config_diff(stored_config(workdir), config, ignore=RESUMABLE)
    if diff:
        raise CheckpointError(
            f"{workdir} holds a run of a different config; differing fields (workdir -> "
            "requested):\n  " + "\n  ".join(diff) + "\n" + advice)


def save_figures(run: Run, state: Any, out: str | Path, log_z: float | None = None) -> None:
    """The figures of a trained run, written into ``out``.

    2-D data: ``energy.png`` (learned and true densities) and ``samples.png`` (draws of
    the model over its energy, beside test points). Images: ``samples.png``, ``data.png``
    (test images), ``buffer.png`` (a replay buffer, if any) and, for a joint model,
    ``conditional.png`` (one class per row).

    Args:
      run: the :class:`Run`.
      state: its trained state.
      out: the folder.
      log_z: the 2-D model's quadrature ``log Z``, if known (it normalises energy.png).
    """

    out = Path(out)
    ev, name = run.config.eval, run.config.sampler.name
    if not run.data.planar:
        count = ev.grid_rows * ev.grid_rows
        draws = sample_trained(run, state, run.sample_key, min(ev.num_samples, count),
                               ev.sample_steps)
        plotting.save_image_grid(out / "samples.png", draws, ev.grid_rows,
                                 title=sampling_label(run, ev.sample_steps))
        if run.joint is not None:  # a joint model: one class per row, in turn
            labels = jnp.arange(count) // ev.grid_rows % NUM_CLASSES
            draws = sample_conditional_trained(run, state, run.sample_key, labels,
                                               ev.sample_steps)
            plotting.save_image_grid(out / "conditional.png", draws, ev.grid_rows,
                                     title=f"p(x | y), {name} chains ({ev.sample_steps} "
                                     "steps), one class per row")
        plotting.save_image_grid(out / "data.png", run.data.test[:count], ev.grid_rows,
                                 title="test images")
        buffer = replay_samples(state.objective_state)
        if buffer is not None:
            plotting.save_image_grid(out / "buffer.png", buffer[:count], ev.grid_rows,
                                     title=f"replay buffer, step {int(state.step)}")
        return
    extent, learned, true, energies = density_grid(run, model_params(state),
                                                              log_z=log_z)
    plotting.plot_densities(out / "energy.png", [learned, true],
                            [f"learned ({run.config.objective.name})",
                             f"true ({run.data.name})"], extent)
    draws = sample_trained(run, state, run.sample_key, ev.num_samples, ev.sample_steps)
    data = run.data.test[:ev.num_samples]  # exact draws of the toy already (data.num_test)
    plotting.plot_samples(out / "samples.png", np.asarray(draws), reference=np.asarray(data),
                          energy_grid=energies, extent=extent,
                          title=f"{name} draws from the model ({ev.sample_steps} steps)")


def _split_source(source: str) -> tuple[str, int | None]:
    """``W1:STEP`` (or ``W1``) as ``(W1, STEP or None)``."""
    head, sep, tail = source.rpartition(":")
    if sep and tail.isdigit():
        return head, int(tail)
    return source, None


def _prepare_workdir(out: Path, cfg: Config, source: str | None) -> dict | None:
    """Decide what a training on ``out`` may do; return the finished summary if there is
    nothing to do. A workdir is resumed or extended, never silently rewritten."""

    if not (out / "config.yaml").exists():
        return None
    started = (out / "summary.json").exists() or any((out / "checkpoints").glob("*"))
    if not started:  # a start that failed before its first checkpoint: nothing to keep
        return None
    check_same_config(out, cfg, f"These change its results, so they need a new workdir: jebm "
                      f"train --from {out}:STEP --workdir NEW section.field=value ...")
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
    return None


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


def train_workdir(config: Config, workdir: str | Path, *, from_checkpoint: str | None = None,
                  step: int | None = None, progress: bool = False) -> dict:
    """``jebm train``'s recipe: train ``config`` in ``workdir`` and write everything there.

    Writes ``config.yaml``, ``run.json`` (seed, versions, devices, argv, provenance),
    ``metrics.jsonl``, ``checkpoints/``, the figures (:func:`save_figures`) and
    ``summary.json`` (the run's :func:`jebm.experiment.summary` with its step count,
    timings and final metrics), and tells stderr where they are. A workdir of the same
    config is resumed; a finished one is returned as it is (nothing is rewritten); a
    larger ``train.num_steps`` extends it in place, keeping the earlier summary as
    ``summary-stepN.json``; any other change is refused (:func:`check_same_config`).

    Args:
      config: the run's config.
      workdir: the output folder.
      from_checkpoint: ``W1:STEP`` (or ``W1``, its latest): start from that checkpoint of
        the run in ``W1``; recorded in ``run.json``.
      step: resume ``workdir`` from this checkpoint instead of the newest.
      progress: show a progress bar.

    Returns:
      The summary written to ``summary.json``.

    Raises:
      CheckpointError: for a workdir of another config or run, a shorter
        ``train.num_steps``, or an unreadable checkpoint.
      TrainingDivergedError: when the health checks stop the run.
    """

    cfg, out = config, Path(workdir)
    if out.exists() and not out.is_dir():
        raise ValueError(f"--workdir {out} is a file, not a folder: choose a folder (new or "
                         "one jebm train wrote).")
    finished = _prepare_workdir(out, cfg, from_checkpoint)
    if finished is not None:
        return finished
    tic = time.perf_counter()
    run = build_run(cfg)  # before anything is written: a bad config leaves nothing
    origin, provenance = None, None
    if from_checkpoint is not None:
        source, source_step = _split_source(from_checkpoint)
        state, origin = init_from_checkpoint(Path(source) / "checkpoints", run.initial_state,
                                             step=source_step)
        run = run._replace(initial_state=state)
        provenance = {"workdir": source, "step": int(state.step)}
    out.mkdir(parents=True, exist_ok=True)
    (out / "config.yaml").write_text(dump_config(cfg))
    write_json(out / "run.json", {"seed": cfg.train.seed, "versions": versions(),
                                  "device": str(jax.devices()[0]),
                                  "devices": training_devices(cfg),
                                  "argv": sys.argv[1:],
                                  "from": provenance})
    periodic = jax.jit(periodic_eval_fn(run))
    result = train_run(run, out, progress=progress, origin=origin, resume_step=step,
                       eval_fn=lambda state: periodic(model_params(state)))
    train_seconds = time.perf_counter() - tic
    # the last periodic evaluation is of the final params: its log Z normalises energy.png
    save_figures(run, result.state, out, log_z=result.eval.get("log_z"))
    summary = {"data": cfg.data.name, "objective": cfg.objective.name,
               "num_steps": int(result.state.step),
               "params": params_kind(result.state),
               **run_summary(run, model_params(result.state), feature_cache=out,
                                    objective_state=result.state.objective_state),
               "final_metrics": result.metrics, "train_seconds": train_seconds,
               "steps_per_second": result.steps_per_second,
               "total_seconds": time.perf_counter() - tic}
    done = out / "summary.json"
    if done.exists():  # the summary of the shorter run this one extends: kept, not lost
        done.rename(out / f"summary-step{json.loads(done.read_text())['num_steps']}.json")
    write_json(done, summary)
    _explain(out, summary)
    return summary


def evaluate_workdir(workdir: str | Path, config: Config | None = None,
                     step: int | None = None) -> dict:
    """``jebm evaluate``'s recipe: the summary of a checkpoint of ``workdir``, written once.

    The numbers are :func:`jebm.experiment.summary`'s (grid quadrature for 2-D data, AIS
    for images), of the checkpoint's :func:`jebm.train.model_params`. They go to
    ``workdir/evaluation-stepN.json``; when that file exists it is returned as it is.

    Args:
      workdir: a folder written by ``jebm train``.
      config: optional config; it must match the workdir's (:func:`check_same_config`).
      step: the checkpoint step (default: the latest).

    Returns:
      The summary written to ``evaluation-stepN.json``.

    Raises:
      CheckpointError: for a workdir of another config, or no readable checkpoint.
    """
    wd = Path(workdir)
    stored = stored_config(wd)
    if config is not None:
        check_same_config(wd, config, "Use another --workdir, or the same config.")
    run = build_run(stored)
    state = restore_state(run, wd, step)
    path = wd / f"evaluation-step{int(state.step)}.json"
    if path.exists():  # results are written once
        print(f"jebm: {path} exists; not recomputed.", file=sys.stderr)
        return json.loads(path.read_text())
    if not os.access(wd, os.W_OK):  # say so before the (long) evaluation, not after
        raise PermissionError(errno.EACCES, f"cannot write {path.name} there", str(wd))
    values = {"step": int(state.step), "params": params_kind(state),
              **run_summary(run, model_params(state), feature_cache=wd,
                            objective_state=state.objective_state)}
    write_json(path, values)
    print(f"jebm: wrote {path}", file=sys.stderr)
    return values
