"""The ``jebm`` command line: ``jebm train | sample | evaluate | config``, a shell over
:mod:`jebm.experiment`.

Each subcommand parses its flags and calls one function of the experiment layer, which
does the work and writes the files: :func:`jebm.experiment.train_workdir`,
:func:`jebm.experiment.sample_job` and :func:`jebm.experiment.evaluate_workdir`. This
module prints their summaries as JSON and turns expected errors into one-line messages.

The docstrings of the subcommands are their ``--help`` text, so they are plain text, not
reStructuredText.
"""

import os
import signal
import sys
from pathlib import Path
from typing import Annotated, Literal

import tyro

# Everything else is imported inside the subcommands, so that `jebm --help` loads no JAX.

__all__ = ["main", "train", "sample", "evaluate", "config"]


def _optional(metavar: str, default: str = ""):
    """A flag whose default is ``None``: its metavar, and its default said in words (or
    nothing, when its help says it)."""
    return tyro.conf.arg(metavar=metavar,
                         help_behavior_hint=f"(default: {default})" if default else "")


def train(
    config: Annotated[str | None, _optional("FILE", "the default job")] = None,
    workdir: Annotated[str, tyro.conf.arg(metavar="DIR")] = "runs/default",
    overrides: Annotated[tyro.conf.Positional[tuple[str, ...]],
                         _optional("SECTION.FIELD=VALUE")] = (),
    from_checkpoint: Annotated[str | None, _optional("W1:STEP", "a fresh start")] = None,
    step: Annotated[int | None, _optional("STEP", "the newest")] = None,
    progress: bool = True,
) -> dict:
    """Train an energy-based model (default: PCD on the 2-D 8-Gaussian mixture).

    The workdir receives config.yaml, run.json, metrics.jsonl, checkpoints/, summary.json
    and figures. Re-running a finished workdir changes nothing; raising train.num_steps
    extends it in place; any other change needs a new workdir, which --from W1:STEP can
    start from a checkpoint of another run.

    Args:
      config: YAML config file; omitted fields take their defaults.
      workdir: output folder; a folder with checkpoints of the same config is resumed.
      overrides: dotted overrides such as train.num_steps=500 optimizer.learning_rate=3e-3.
      from_checkpoint: start from checkpoint STEP of the run in W1 (--from for short).
        A bare W1 means its latest checkpoint. train.num_steps still counts from 0, so a
        fork at step 500 with train.num_steps=1500 trains 1000 more.
      step: resume this workdir from checkpoint STEP, not the newest.
        For a damaged newest checkpoint; damaged later ones move to damaged_checkpoints/.
      progress: show a progress bar.

    Returns:
      The summary written to summary.json.
    """
    from jebm import experiment
    from jebm.experiment.config import load_config

    return experiment.train_workdir(load_config(config, overrides), workdir,
                                    from_checkpoint=from_checkpoint, step=step,
                                    progress=progress)


def sample(
    target: Literal["8gaussians", "gaussian", "rings"] = "8gaussians",
    sampler: Annotated[Literal["mala", "rwmh", "hmc", "ula", "nuts", "underdamped"] | None,
                       _optional("{mala,rwmh,hmc,ula,nuts,underdamped}")] = None,
    num_chains: int = 64,
    num_steps: int = 2000,
    burn_in: Annotated[int | None, _optional("N")] = None,
    step_size: Annotated[float | None, _optional("X")] = None,
    num_integration_steps: int = 5,
    init_scale: float = 3.0,
    seed: int = 0,
    workdir: Annotated[str | None, _optional("DIR", "an analytic target")] = None,
    out: Annotated[str | None, _optional("DIR")] = None,
    chunk_size: int = 500,
    progress: bool = True,
) -> dict:
    """Run MCMC chains on an analytic target, or on the model trained in --workdir.

    The output folder receives summary.json (ESS, R-hat, moments against the exact ones),
    samples.npy (the chains' final positions) and figures; 2-D chains also keep trace.npy.

    Args:
      target: analytic target (ignored with --workdir).
      sampler: MCMC kernel.
        Default: mala on a target; with --workdir, the training config's sampler.
      num_chains: independent chains.
      num_steps: transitions per chain, burn-in included.
      burn_in: transitions discarded first (default: half of --num-steps).
      step_size: step size.
        Default: tuned per target and sampler; with --workdir, the training config's.
      num_integration_steps: HMC leapfrog steps.
      init_scale: chains start from N(0, init_scale^2 I), overdispersed for R-hat (> 0).
        With --workdir they start at the model's initial positions instead.
      seed: integer seed.
      workdir: a training workdir: sample its last checkpoint instead of a target.
      out: output folder (default: jebm-sample, or WORKDIR/sample).
      chunk_size: transitions per jitted call (progress-bar granularity).
      progress: show a progress bar.

    Returns:
      The summary written to summary.json.
    """
    import jax

    from jebm import experiment

    return experiment.sample_job(
        jax.random.key(seed), out, target=target, workdir=workdir, sampler=sampler,
        num_chains=num_chains, num_steps=num_steps, burn_in=burn_in, step_size=step_size,
        num_integration_steps=num_integration_steps, init_scale=init_scale,
        chunk_size=chunk_size, progress=progress, reference_key=jax.random.key(seed + 1),
        seed=seed)


def evaluate(
    workdir: Annotated[str, tyro.conf.arg(metavar="DIR")],
    config: Annotated[str | None, _optional("FILE", "the workdir's")] = None,
    step: Annotated[int | None, _optional("STEP", "the latest")] = None,
) -> dict:
    """Test NLL of a trained checkpoint (grid quadrature for 2-D data, AIS for images).

    The result is written once, to WORKDIR/evaluation-stepN.json; when that file exists it
    is printed, not recomputed.

    Args:
      workdir: a folder written by jebm train.
      config: a YAML config; it must match the workdir's.
      step: the checkpoint step.

    Returns:
      The summary written to WORKDIR/evaluation-stepN.json.
    """
    from jebm import experiment
    from jebm.experiment.config import load_config

    return experiment.evaluate_workdir(
        workdir, None if config is None else load_config(config), step)


def config(
    config: Annotated[str | None, _optional("FILE", "the default job")] = None,
    overrides: Annotated[tyro.conf.Positional[tuple[str, ...]],
                         _optional("SECTION.FIELD=VALUE")] = (),
) -> None:
    """Show every config field: its value (after --config and overrides) and its meaning.

    The output is YAML that jebm train --config reads back (the meanings are comments).

    Args:
      config: YAML config file; omitted fields take their defaults.
      overrides: dotted overrides such as train.num_steps=500.
    """
    from jebm.experiment.config import describe_config, load_config

    print(describe_config(load_config(config, overrides)), end="")


_DESCRIPTION = """Energy-based models in JAX: train, sample and evaluate.

train, sample and evaluate print their summary as JSON; config lists every config field
with its value and meaning. jebm --version (-V) prints the version."""


def _interrupted(err: KeyboardInterrupt) -> str:
    """The one line that answers Ctrl-C: where training stopped and how to go on."""
    from jebm.train import TrainingInterrupted

    if not isinstance(err, TrainingInterrupted):
        return "interrupted (Ctrl-C); nothing was lost: run the same command again."
    if err.directory is None or err.last_checkpoint is None:
        return (f"interrupted (Ctrl-C) at step {err.step}, before any checkpoint: run the same "
                "command to start again.")
    return (f"interrupted (Ctrl-C) at step {err.step}; checkpoint {err.last_checkpoint} is in "
            f"{err.directory}: run the same command to resume from it.")


def main(argv: list[str] | None = None) -> None:
    """Entry point of the ``jebm`` console script.

    Runs the subcommand ``train``, ``sample`` or ``evaluate`` and prints its summary as
    JSON; ``--version`` (``-V``) prints the version. Expected errors (invalid config,
    missing or damaged checkpoint, diverged training, missing file) are printed as
    ``jebm: error: ...`` and exit with status 1.

    Args:
      argv: the command-line arguments after the program name, e.g.
        ``["train", "--config", "configs/pcd.yaml"]``; ``None`` reads ``sys.argv[1:]``.
        ``--from`` is accepted for ``--from-checkpoint``.
    """
    if argv is None:  # the console script: keep compiled programs, use every CPU core
        from jebm._cache import enable_compilation_cache
        from jebm.parallel import use_cpu_cores

        use_cpu_cores()
        enable_compilation_cache()
        # Ctrl-C stops jebm even when it was started where SIGINT is ignored (a background
        # job of a script inherits SIG_IGN); it is answered below in one line
        signal.signal(signal.SIGINT, signal.default_int_handler)
    argv_given = argv is not None
    argv = sys.argv[1:] if argv is None else list(argv)
    if argv and argv[0] in ("--version", "-V"):
        from jebm import __version__

        print(f"jebm {__version__}")
        return
    argv = ["--from-checkpoint" if a == "--from" else a for a in argv]
    subcommands = {"train": train, "sample": sample, "evaluate": evaluate, "config": config}
    try:
        summary = tyro.extras.subcommand_cli_from_dict(subcommands, prog="jebm", args=argv,
                                                       description=_DESCRIPTION)
    except KeyboardInterrupt as err:
        print(f"jebm: {_interrupted(err)}", file=sys.stderr)
        if argv_given:
            raise SystemExit(130) from None
        # the console script leaves at once: XLA's threads may still be compiling, and a
        # normal interpreter teardown beside them can crash (every file is closed by now)
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(130)
    except Exception as err:
        from jebm.train import CheckpointError, TrainingDivergedError

        if isinstance(err, OSError) and not isinstance(err, FileNotFoundError):
            # a workdir or output folder jebm cannot write: say which, not a traceback
            where = err.filename or "a file"
            print(f"jebm: error: cannot use {where}: {err.strerror or err}. Check that it is "
                  "a folder you can write to, or choose another --workdir (or --out).",
                  file=sys.stderr)
            raise SystemExit(1) from None
        if not isinstance(err, ValueError | CheckpointError | TrainingDivergedError
                          | FileNotFoundError):
            raise
        hint = ""
        if isinstance(err, TrainingDivergedError) and err.healthy_checkpoint is not None:
            hint = (f"\njebm: to go on, fork the healthy checkpoint with other settings: jebm "
                    f"train --from {Path(err.directory).parent}:{err.healthy_checkpoint} "
                    "--workdir NEW optimizer.learning_rate=...")
        print(f"jebm: error: {err}{hint}", file=sys.stderr)
        raise SystemExit(1) from None
    if summary is not None:  # jebm config prints its own YAML
        from jebm.experiment import dumps_json

        print(dumps_json(summary))


if __name__ == "__main__":  # pragma: no cover
    main()
