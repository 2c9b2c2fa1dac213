"""The training loop: jitted chunks of ``lax.scan``-ned steps, with logging, evaluation,
checkpoints, resumption and divergence detection.

Data and keys. With ``data_key, step_key = split(key)``, the batch of update ``t``
(``t = state.step`` before the update) is drawn from ``fold_in(data_key, t)`` — by
calling a sampler ``(key, n) -> batch`` or by indexing an array dataset with
``randint`` — and the objective's key is ``fold_in(step_key, t)``. Nothing depends on
where chunks start, so a run restored from checkpoint ``k`` continues with exactly the
batches and keys of an uninterrupted run and ends with bit-identical parameters.

Chunks end at multiples of ``chunk_size``, ``checkpoint_every`` and ``eval_every``,
counted from step 0, so an uninterrupted and a resumed run execute the same chunks.

Divergence. After each chunk the per-step metrics (the loss, the gradient norm and
the objective's metrics, e.g. mean energies) are checked; the first non-finite value
raises :class:`TrainingDivergedError` naming the step and the metrics. Finite blow-ups
(energies running away, a widening energy gap, a gradient-norm explosion, divergent
sampler transitions) are caught by the thresholds of a
:class:`~jebm.train.HealthConfig` (see :mod:`jebm.train.health`). The diverged state
is never checkpointed; every checkpoint records whether the checks passed when it was
written, rotation keeps the newest healthy one, and the error names it, so a new run
can start from it (:func:`~jebm.train.init_from_checkpoint`) with, say, a lower
learning rate.

Resuming. A run resumed from ``workdir`` must be the same run: its
``checkpoint_extra`` (the caller's record of the run's identity, e.g. its config) is
compared with the one stored in the checkpoint, and any difference outside
``resumable`` (e.g. ``"train.num_steps"``, so a finished run can be extended) raises
:class:`~jebm.train.CheckpointError` naming the entries that differ.

Progress. With ``progress=True`` the bar moves at every ``log_every`` window, through
a host callback inside the jitted chunk (measured on the default PCD job: within the
run-to-run noise of the step time; none is compiled in with ``progress=False``), and shows
the energy of the data ``E+``, the energy gap ``gap = E+ − E−`` (it should hover near 0;
the CD loss value itself is no convergence signal), the gradient norm and the last
evaluation. Orbax's absl log lines are held back during saves so they do not break it.
"""

import contextlib
import functools
import json
import math
import os
import time
import warnings
from collections.abc import Callable, Collection, Mapping
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from absl import logging as absl_logging
from tqdm.auto import tqdm

from jebm._validate import check_int
from jebm.train.checkpoint import (
    CheckpointError,
    checkpoint_info,
    checkpoint_manager,
    checkpoint_steps,
    list_checkpoints,
    restore_checkpoint,
    save_checkpoint,
)
from jebm.train.health import (
    DEFAULT_HEALTH,
    HealthConfig,
    check_health,
    init_health,
    is_healthy,
)
from jebm.train.metrics import MetricsLogger, first_nonfinite
from jebm.train.state import TrainState
from jebm.types import Array, ArrayTree, PRNGKey

__all__ = ["TrainingDivergedError", "TrainResult", "batch_fn", "train_loop"]

CHECKPOINT_DIR = "checkpoints"
METRICS_FILE = "metrics.jsonl"


class TrainingInterrupted(KeyboardInterrupt):
    """Training was stopped by Ctrl-C (SIGINT) between two chunks of updates.

    The state of the last finished chunk was checkpointed first (with a workdir), so the
    same call resumes from it. A subclass of ``KeyboardInterrupt``: code that lets Ctrl-C
    through still does.

    Attributes:
      step: the updates done when it stopped.
      last_checkpoint: the step of the newest checkpoint on disk, or ``None``.
      directory: the checkpoint folder, or ``None`` without a workdir.
    """

    def __init__(self, step: int, last_checkpoint: int | None, directory: str | None):
        self.step, self.last_checkpoint, self.directory = step, last_checkpoint, directory
        super().__init__(f"interrupted at step {step}")


class TrainingDivergedError(RuntimeError):
    """Training ran away: a non-finite value, or a health check failing for too long.

    Attributes:
      step: the update count at which it was detected (1-based).
      values: ``{metric name: value}`` of each failing metric at that step.
      last_checkpoint: the step of the last checkpoint written, or ``None``.
      healthy_checkpoint: the step of the newest checkpoint that is marked healthy and
        was verified intact when the error was raised, or ``None``.
      directory: the checkpoint folder, or ``None`` without a workdir.
      reasons: one line per failed check (``[]`` for a non-finite value).
      origin: the ``origin`` of a run started from another run's checkpoint, or ``None``.
    """

    def __init__(self, step: int, values: Mapping[str, float], last_checkpoint: int | None,
                 directory: str | None, *, healthy_checkpoint: int | None = None,
                 reasons: list[str] | None = None, patience: int | None = None,
                 unhealthy: list[int] | None = None, origin: dict | None = None):
        self.step, self.values, self.last_checkpoint = step, dict(values), last_checkpoint
        self.healthy_checkpoint, self.directory = healthy_checkpoint, directory
        self.reasons, self.origin = list(reasons or []), origin
        if self.reasons:
            what = "; ".join(self.reasons)
            if patience is not None:
                what += f" (health checks failing for {patience} consecutive steps)"
        else:
            what = "non-finite " + ", ".join(f"{k}={v}" for k, v in values.items())
        if healthy_checkpoint is not None:
            where = (f"The newest healthy checkpoint, step {healthy_checkpoint} in {directory}, "
                     "is intact; start a new run from it (jebm.train.init_from_checkpoint) "
                     "with a smaller learning rate or step size.")
        elif last_checkpoint is None:
            where = "No checkpoint was written before it."
        else:
            where = f"No healthy, intact checkpoint is left in {directory}."
        if unhealthy:
            where += (f" Checkpoints {unhealthy} were written while the health checks were "
                      "failing (marked unhealthy).")
        if origin is not None and healthy_checkpoint is None:
            where += (f" This run started from checkpoint step {origin.get('step')} in "
                      f"{origin.get('directory')}.")
        super().__init__(f"Training diverged at step {step}: {what}. {where}")


class TrainResult(NamedTuple):
    """The outcome of a training run.

    Attributes:
      state: the final training state.
      metrics: the means of the metrics over the last logging window.
      eval: the last evaluation (empty without ``eval_fn``).
      steps_per_second: the steady-state throughput, excluding the first (compiling) chunk.
    """

    state: TrainState
    metrics: dict[str, float]  # means over the last logging window
    eval: dict[str, float]  # the last evaluation (empty without eval_fn)
    steps_per_second: float  # steady-state throughput, excluding the first (compiling) chunk


def batch_fn(data: Callable | ArrayTree, batch_size: int) -> Callable[[PRNGKey], ArrayTree]:
    """``key -> batch`` from a sampler ``(key, n) -> batch`` or an array dataset.

    Args:
      data: a sampler callable, or a pytree of arrays sharing a leading example axis
        (sampled uniformly with replacement).
      batch_size: examples per batch (static).

    Returns:
      A pure function of a key.
    """
    if not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(f"batch_size must be an int >= 1, got {batch_size!r}.")
    if callable(data):
        return lambda key: data(key, batch_size)
    sizes = {leaf.shape[0] for leaf in jax.tree.leaves(data)}
    if len(sizes) != 1:
        raise ValueError(f"dataset leaves must share a leading axis, got sizes {sorted(sizes)}.")
    (n,) = sizes
    if n == 0:
        raise ValueError("the dataset is empty (its leading axis has size 0).")
    if batch_size > n:
        warnings.warn(f"batch_size={batch_size} exceeds the dataset's {n} examples: each batch "
                      "repeats examples (batches are drawn with replacement). Use a "
                      f"batch_size <= {n}, or more data.", stacklevel=3)

    def draw(key):
        index = jax.random.randint(key, (batch_size,), 0, n)
        return jax.tree.map(lambda leaf: leaf[index], data)

    return draw


def _boundaries(start: int, stop: int, every: list[int]) -> list[int]:
    """Sorted chunk ends in (start, stop]: multiples of each period, and stop."""
    ends = {stop}
    for period in every:
        ends.update(range((start // period + 1) * period, stop, period))
    return sorted(e for e in ends if start < e <= stop)


def train_loop(
    key: PRNGKey,
    state: TrainState,
    train_step: Callable,
    data: Callable | ArrayTree,
    *,
    num_steps: int,
    batch_size: int,
    chunk_size: int = 100,
    workdir: str | os.PathLike | None = None,
    checkpoint_every: int | None = None,
    max_to_keep: int = 3,
    eval_fn: Callable[[TrainState], Mapping[str, Array]] | None = None,
    eval_every: int | None = None,
    log_every: int = 10,
    progress: bool = True,
    checkpoint_extra: dict | None = None,
    health: HealthConfig | None = DEFAULT_HEALTH,
    resumable: Collection[str] = (),
    origin: dict | None = None,
    resume_step: int | None = None,
) -> TrainResult:
    """Train for ``num_steps`` updates, resuming from ``workdir`` if it holds checkpoints.

    Args:
      key: PRNG key of the run (batches and objective keys derive from it).
      state: the initial :class:`TrainState` (also the template for restoring).
      train_step: from :func:`~jebm.train.make_train_step`; jitted here inside a scan.
      data: a sampler ``(key, n) -> batch`` or an array dataset ``(N, *event)``.
      num_steps: total updates of the run, counted from step 0 (static).
      batch_size: examples per update (static).
      chunk_size: updates per jitted ``lax.scan`` call (static).
      workdir: folder for ``metrics.jsonl`` and ``checkpoints/``; ``None`` keeps
        nothing on disk.
      checkpoint_every: save every this many steps (and at the end); needs ``workdir``.
      max_to_keep: checkpoints kept (the most recent), plus the newest healthy one.
      eval_fn: ``state -> {name: scalar}``, called every ``eval_every`` steps and at the
        end; logged with an ``eval/`` prefix. It runs on the host (jit it yourself).
      eval_every: evaluation period in steps.
      log_every: training metrics are averaged over windows of this many steps.
      progress: show a tqdm progress bar.
      checkpoint_extra: JSON metadata stored in every checkpoint: the run's identity
        (e.g. its config). On resume it must equal the stored one outside
        ``resumable``; ``None`` stores ``{}`` and skips the comparison.
      health: thresholds of the finite blow-up checks; ``None`` checks only for
        non-finite values.
      resumable: dotted keys of ``checkpoint_extra`` (e.g. ``"train.num_steps"``) that
        may differ on resume; a key covers everything below it.
      origin: for a run started from another run's checkpoint, the ``origin`` returned
        by :func:`~jebm.train.init_from_checkpoint`; stored in every checkpoint. On
        resume, a stored origin is kept, and a different one is refused.
      resume_step: resume from this checkpoint of ``workdir`` instead of the newest
        (e.g. when the newest is damaged). Later checkpoints must all be damaged: they
        are moved to ``workdir/damaged_checkpoints/`` (with a warning), never deleted;
        if one is intact, a :class:`~jebm.train.CheckpointError` says to fork instead.

    Returns:
      A :class:`TrainResult`.

    Raises:
      TrainingDivergedError: at the first non-finite loss, gradient norm or objective
        metric, or when a health check fails for ``health.patience`` consecutive
        steps; no checkpoint is written for the diverged state.
      jebm.train.CheckpointError: if ``workdir`` holds checkpoints of another model
        (other shapes, or a ``checkpoint_extra`` that differs) or of another origin.
    """
    check_int("num_steps", num_steps)
    check_int("chunk_size", chunk_size)
    check_int("log_every", log_every)
    check_int("checkpoint_every", checkpoint_every, optional=True)
    check_int("eval_every", eval_every, optional=True)
    if checkpoint_every is not None and workdir is None:
        raise ValueError("checkpoint_every needs a workdir to write checkpoints into.")
    if health is not None:
        init_health(health)  # validates the thresholds before any work
    if isinstance(resumable, str):
        raise ValueError(f"resumable must be a collection of keys, got the string {resumable!r}.")
    if origin is not None and workdir is None:
        raise ValueError("origin needs a workdir whose checkpoints record it.")
    check_int("resume_step", resume_step, minimum=0, optional=True)
    if resume_step is not None and workdir is None:
        raise ValueError("resume_step needs a workdir to resume from.")

    draw = batch_fn(data, batch_size)
    bar = _Bar(num_steps, log_every, enabled=progress)

    def run_chunk(state: TrainState, length: int):
        data_key, step_key = jax.random.split(key)  # in the chunk: no eager programs

        def body(carry, _):
            state, shown = carry
            batch = draw(jax.random.fold_in(data_key, state.step))
            state, metrics = train_step(state, batch, step_key)
            if bar.enabled:
                shown = bar.accumulate(shown, state.step, metrics)
            return (state, shown), metrics

        (state, _), metrics = jax.lax.scan(body, (state, bar.zeros()), None, length=length)
        return state, metrics

    run_chunk = jax.jit(run_chunk, static_argnums=1)

    manager = None
    logger = None
    extra = _normalise(checkpoint_extra, "checkpoint_extra")
    origin = _normalise(origin, "origin") if origin is not None else None
    if workdir is not None:
        workdir = os.path.abspath(os.fspath(workdir))
        os.makedirs(workdir, exist_ok=True)
        directory = os.path.join(workdir, CHECKPOINT_DIR)
        if resume_step is not None:
            _set_aside_damaged_after(directory, resume_step, workdir)
        manager = checkpoint_manager(directory, max_to_keep=max_to_keep)
        try:
            if checkpoint_steps(manager):
                with _quiet_absl():
                    state, stored = restore_checkpoint(manager, state, step=resume_step)
                step = int(state.step)
                if checkpoint_extra is not None:
                    _check_same_run(stored, extra, resumable, manager, step)
                origin = _check_origin(checkpoint_info(manager, step)["origin"], origin,
                                       manager, step)
        except BaseException:
            manager.close()
            raise
        # records past the starting step belong to lost updates (or a torn last line)
        logger = MetricsLogger(os.path.join(workdir, METRICS_FILE), resume_step=int(state.step))
    try:
        return _run(state, run_chunk, manager, logger, bar, num_steps=num_steps,
                    chunk_size=chunk_size, checkpoint_every=checkpoint_every, eval_fn=eval_fn,
                    eval_every=eval_every, log_every=log_every, checkpoint_extra=extra,
                    workdir=workdir, health=health, origin=origin)
    finally:
        if manager is not None:
            manager.close()


def _set_aside_damaged_after(directory: str, step: int, workdir: str) -> None:
    """Move the damaged checkpoints after ``step`` out of the way (refuse intact ones)."""
    manager = checkpoint_manager(directory)
    try:
        steps = checkpoint_steps(manager)
        if step not in steps:
            raise CheckpointError(f"No checkpoint for step {step} in {directory}; have {steps}.")
        with _quiet_absl():
            later = [c for c in list_checkpoints(manager) if c.step > step]
    finally:
        manager.close()
    intact = [c.step for c in later if c.intact]
    if intact:
        raise CheckpointError(
            f"Cannot resume {workdir} from step {step}: the later checkpoints {intact} are "
            "intact and resuming would overwrite them. Start a new run from step "
            f"{step} in a new workdir: jebm train --from {workdir}:{step} --workdir NEW "
            "(in Python: jebm.train.init_from_checkpoint).")
    aside = os.path.join(workdir, "damaged_checkpoints")
    for c in later:
        os.makedirs(aside, exist_ok=True)
        target = os.path.join(aside, str(c.step))
        suffix = 1
        while os.path.exists(target):
            target, suffix = os.path.join(aside, f"{c.step}.{suffix}"), suffix + 1
        os.replace(os.path.join(directory, str(c.step)), target)
        warnings.warn(f"Checkpoint step {c.step} in {directory} is damaged ({c.problem}); "
                      f"moved it to {target} to resume from step {step}.", stacklevel=3)


def _normalise(value: dict | None, name: str) -> dict:
    """``value`` as it reads back from JSON (tuples become lists); ``{}`` for ``None``."""
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise ValueError(f"{name} must be a JSON-serialisable dict, got {type(value).__name__}.")
    try:
        return json.loads(json.dumps(value))
    except (TypeError, ValueError) as err:
        raise ValueError(f"{name} must be JSON-serialisable: {err}") from None


def _flat(tree, prefix=""):
    if isinstance(tree, dict) and tree:
        out = {}
        for k, v in tree.items():
            out.update(_flat(v, f"{prefix}{k}."))
        return out
    return {prefix[:-1]: tree}


def _check_same_run(stored: dict, current: dict, resumable, manager, step: int) -> None:
    """``CheckpointError`` naming each entry of ``checkpoint_extra`` that differs."""
    def free(key):
        return any(key == r or key.startswith(r + ".") for r in resumable)

    old, new = _flat(stored), _flat(current)
    lines = []
    for key in sorted(old.keys() | new.keys()):
        if free(key) or old.get(key, _MISSING) == new.get(key, _MISSING):
            continue
        a = "(absent)" if key not in old else repr(old[key])
        b = "(absent)" if key not in new else repr(new[key])
        lines.append(f"{key}: checkpoint has {a}, this run has {b}")
    if lines:
        shown = "\n  ".join(lines[:8]) + (f"\n  ... and {len(lines) - 8} more"
                                          if len(lines) > 8 else "")
        raise CheckpointError(
            f"Checkpoint step {step} in {os.fspath(manager.directory)} belongs to another run: "
            f"{len(lines)} entries of checkpoint_extra differ:\n  {shown}\nUse a new workdir, "
            "or start a new run from this checkpoint (jebm.train.init_from_checkpoint).")


_MISSING = object()


def _check_origin(stored: dict | None, given: dict | None, manager, step: int) -> dict | None:
    """The origin to record on resume: the stored one; a different given one is refused."""
    if given is None or stored == given:
        return stored
    def name(o):
        return "a fresh start" if o is None else f"step {o.get('step')} of {o.get('directory')}"
    raise CheckpointError(
        f"Checkpoint step {step} in {os.fspath(manager.directory)} continues {name(stored)}, "
        f"not {name(given)}; start the new run in a new workdir.")


def _run(state, run_chunk, manager, logger, bar, *, num_steps, chunk_size, checkpoint_every,
         eval_fn, eval_every, log_every, checkpoint_extra, workdir, health, origin) -> TrainResult:
    start = int(state.step)
    directory = os.path.join(workdir, CHECKPOINT_DIR) if workdir else None
    # {step: healthy} of the checkpoints on disk (None: written before health was recorded)
    marks = ({c.step: c.healthy for c in list_checkpoints(manager, verify=False)}
             if manager is not None else {})
    periods = [p for p in (chunk_size, checkpoint_every, eval_every) if p]
    window: dict[str, list] = {}
    window_means: dict[str, float] = {}
    last_eval: dict[str, float] = {}
    steady_steps, steady_time, train_time = 0, 0.0, 0.0
    checks = init_health(health) if health is not None else None

    def flush(step):
        # empties ``window`` in place: ``_log_steps`` holds the same dict
        nonlocal window_means
        if window:
            window_means = {k: float(np.mean(np.concatenate(v))) for k, v in window.items()}
            if logger is not None:
                logger.write(step, window_means)
            bar.show(step, window_means)
        window.clear()

    def evaluate(step, log=True):
        nonlocal last_eval
        # evaluation records carry ``train_seconds``: the wall time of the training
        # chunks so far in this process (compilation included, evaluations excluded)
        last_eval = {k: float(v) for k, v in eval_fn(state).items()}
        bar.show_eval(last_eval)
        if log and logger is not None:
            logger.write(step, {**{f"eval/{k}": v for k, v in last_eval.items()},
                                "train_seconds": train_time})

    def diverged(step, values, reasons=(), patience=None):
        if manager is not None:
            for gone in set(marks) - set(checkpoint_steps(manager)):
                del marks[gone]
        saved = sorted(marks)
        healthy = _newest_intact_healthy(manager, marks) if manager is not None else None
        unhealthy = [s for s in saved if marks[s] is False and (healthy is None or s > healthy)]
        return TrainingDivergedError(step, values, saved[-1] if saved else None, directory,
                                     healthy_checkpoint=healthy, reasons=list(reasons),
                                     patience=patience, unhealthy=unhealthy, origin=origin)

    def checkpoint(step):
        healthy = checks is None or is_healthy(health, checks, step)
        with _quiet_absl():
            save_checkpoint(manager, step, state, extra=checkpoint_extra, healthy=healthy,
                            origin=origin)
        marks[step] = healthy

    bar.open(start)
    try:
        for end in _boundaries(start, num_steps, periods):
            begin = int(state.step)
            tic = time.perf_counter()
            new_state, metrics = run_chunk(state, end - begin)
            metrics = jax.device_get(metrics)
            elapsed = time.perf_counter() - tic
            train_time += elapsed
            if begin != start:
                steady_steps, steady_time = steady_steps + end - begin, steady_time + elapsed
            bad = first_nonfinite(metrics)
            if bad is None and not _all_finite_on_host(new_state.params):
                bad = (end - begin - 1, {"params": math.nan})
            if checks is not None:
                # only the steps before a non-finite one are checked
                upto = {k: v[:bad[0]] for k, v in metrics.items()} if bad else metrics
                checks, report = check_health(health, checks, upto, begin)
                if report.stop_index is not None:
                    index = report.stop_index
                    # the finite blow-up is logged, up to and including the stopping step
                    _log_steps({k: v[:index + 1] for k, v in metrics.items()}, begin, log_every,
                               window, flush)
                    flush(begin + index + 1)
                    raise diverged(begin + index + 1, report.values, report.reasons,
                                   health.patience)
            if bad is not None:
                index, values = bad
                good = {k: v[:index] for k, v in metrics.items()}
                _log_steps(good, begin, log_every, window, flush)
                flush(begin + index)
                raise diverged(begin + index + 1, values)
            state = new_state
            _log_steps(metrics, begin, log_every, window, flush)
            if end == num_steps:
                flush(end)
            bar.reach(end)
            if eval_fn is not None and ((eval_every and end % eval_every == 0) or end == num_steps):
                evaluate(end)
            if manager is not None and (
                (checkpoint_every and end % checkpoint_every == 0) or end == num_steps
            ):
                checkpoint(end)
    except KeyboardInterrupt:
        # Ctrl-C: keep what the finished chunks did, then stop (orbax finishes the save
        # when the manager closes)
        step = int(state.step)
        if manager is not None and step > start and step not in marks:
            checkpoint(step)
        raise TrainingInterrupted(step, max(marks) if marks else None, directory) from None
    finally:
        bar.close()
    if start >= num_steps and eval_fn is not None:
        evaluate(start, log=False)  # already trained: report, do not log twice
    rate = steady_steps / steady_time if steady_time > 0 else float("nan")
    return TrainResult(state, window_means, last_eval, rate)


def _all_finite_on_host(tree) -> bool:
    """Whether every leaf of ``tree`` is finite, checked in NumPy on a host copy: an eager
    ``jnp.isfinite`` per leaf would compile (and run) a tiny XLA program each time."""
    return all(np.isfinite(leaf).all() for leaf in jax.device_get(jax.tree.leaves(tree)))


def _newest_intact_healthy(manager, marks: dict[int, bool | None]) -> int | None:
    """The newest checkpoint marked healthy whose files verify (read whole, digests)."""
    candidates = sorted((s for s, h in marks.items() if h), reverse=True)
    if not candidates:
        return None
    for step in candidates:  # newest first; stop at the first that verifies
        with _quiet_absl():
            status = list_checkpoints(manager, verify=True, steps=[step])
        if status and status[0].intact:
            return step
    return None


@contextlib.contextmanager
def _quiet_absl():
    """Hold back orbax's absl INFO/WARNING lines (e.g. "Waiting for previous save")."""
    verbosity = absl_logging.get_verbosity()
    absl_logging.set_verbosity(absl_logging.ERROR)
    try:
        yield
    finally:
        absl_logging.set_verbosity(verbosity)


class _Bar:
    """The tqdm bar, moved at every log window by a host callback from inside the scan.

    Inside the jitted chunk, ``accumulate`` keeps running sums of the shown metrics in
    the scan carry and, at each multiple of ``log_every``, calls back to the host with
    the means since the last window (or the chunk's start) and resets them. At the end
    of a chunk the host shows the exact window means instead.
    """

    _SHOWN = ("energy_pos", "energy_neg", "grad_norm", "loss")

    def __init__(self, num_steps: int, log_every: int, *, enabled: bool):
        self.num_steps, self.log_every, self.enabled = num_steps, log_every, bool(enabled)
        self.bar, self.eval, self.position, self.shown_step = None, {}, 0, 0

    def zeros(self):
        if not self.enabled:
            return {}
        return {k: jnp.zeros((), jnp.float32) for k in (*self._SHOWN, "count")}

    def accumulate(self, shown, step, metrics):
        shown = {k: shown[k] + (metrics[k] if k in metrics else 0.0) for k in self._SHOWN} | {
            "count": shown["count"] + 1.0}
        present = tuple(k for k in self._SHOWN if k in metrics)

        def report(shown):
            jax.debug.callback(functools.partial(self._callback, present=present), step, shown)
            return jax.tree.map(jnp.zeros_like, shown)

        return jax.lax.cond(step % self.log_every == 0, report, lambda s: s, shown)

    def _callback(self, step, shown, present):
        count = max(float(shown["count"]), 1.0)
        self.show(int(step), {k: float(shown[k]) / count for k in present})
        self.reach(int(step))

    def open(self, start: int):
        self.position = start
        if self.enabled:
            self.bar = tqdm(total=self.num_steps, initial=start, desc="train", unit="step",
                            dynamic_ncols=True)

    def reach(self, step: int):
        if self.bar is not None and step > self.position:
            self.bar.update(step - self.position)
            self.position = step

    def show(self, step: int, means: Mapping[str, float]):
        # a chunk's exact window means arrive after its callbacks: show only the newest
        if self.bar is None or step < self.shown_step:
            return
        self.shown_step = step
        post = {}
        if "energy_pos" in means and "energy_neg" in means:
            post["E+"] = f"{means['energy_pos']:.3g}"
            post["gap"] = f"{means['energy_pos'] - means['energy_neg']:.2g}"
        elif "loss" in means:
            post["loss"] = f"{means['loss']:.4g}"
        if "grad_norm" in means:
            post["|g|"] = f"{means['grad_norm']:.2g}"
        post.update({k: f"{v:.4g}" for k, v in self.eval.items()})
        self.bar.set_postfix(post, refresh=True)

    def show_eval(self, values: Mapping[str, float]):
        self.eval = dict(values)

    def close(self):
        if self.bar is not None:
            self.bar.close()
            self.bar = None


def _log_steps(metrics, begin, log_every, window, flush) -> None:
    """Add per-step metrics of steps begin+1.. to the window, flushing at multiples."""
    n = len(next(iter(metrics.values()))) if metrics else 0
    i = 0
    while i < n:
        step = begin + i + 1
        stop = min(n, i + (log_every - (step - 1) % log_every))
        for k, v in metrics.items():
            window.setdefault(k, []).append(np.asarray(v[i:stop]))
        i = stop
        if (begin + stop) % log_every == 0:
            flush(begin + stop)
