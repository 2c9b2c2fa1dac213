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
raises :class:`TrainingDivergedError` naming the step and the metrics. The diverged
state is never checkpointed, so the last good checkpoint stays intact for a resume
with, say, a lower learning rate.
"""

import math
import os
import time
from collections.abc import Callable, Mapping
from typing import NamedTuple

import jax
import numpy as np
from tqdm.auto import tqdm

from jebm.samplers.base import tree_all_finite
from jebm.train.checkpoint import (
    checkpoint_manager,
    checkpoint_steps,
    restore_checkpoint,
    save_checkpoint,
)
from jebm.train.metrics import MetricsLogger, first_nonfinite
from jebm.train.state import TrainState
from jebm.types import Array, ArrayTree, PRNGKey

__all__ = ["TrainingDivergedError", "TrainResult", "batch_fn", "train_loop"]

CHECKPOINT_DIR = "checkpoints"
METRICS_FILE = "metrics.jsonl"


class TrainingDivergedError(RuntimeError):
    """A loss, gradient or energy became NaN or infinite.

    Attributes:
      step: the update count at which the non-finite value appeared (1-based).
      values: ``{metric name: value}`` for each non-finite metric at that step.
      last_checkpoint: the step of the last good checkpoint, or ``None``.
    """

    def __init__(self, step: int, values: Mapping[str, float], last_checkpoint: int | None,
                 directory: str | None):
        self.step, self.values, self.last_checkpoint = step, dict(values), last_checkpoint
        shown = ", ".join(f"{k}={v}" for k, v in values.items())
        if last_checkpoint is None:
            where = "No checkpoint was written before it."
        else:
            where = (f"The last good checkpoint (step {last_checkpoint}) in {directory} is intact; "
                     "resume from it with a smaller learning rate or step size.")
        super().__init__(f"Training diverged at step {step}: non-finite {shown}. {where}")


class TrainResult(NamedTuple):
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
      max_to_keep: checkpoints kept (the most recent).
      eval_fn: ``state -> {name: scalar}``, called every ``eval_every`` steps and at the
        end; logged with an ``eval/`` prefix. It runs on the host (jit it yourself).
      eval_every: evaluation period in steps.
      log_every: training metrics are averaged over windows of this many steps.
      progress: show a tqdm progress bar.
      checkpoint_extra: JSON metadata stored in every checkpoint (e.g. the config).

    Returns:
      A :class:`TrainResult`.

    Raises:
      TrainingDivergedError: at the first non-finite loss, gradient norm or objective
        metric; no checkpoint is written for the diverged state.
      jebm.train.CheckpointError: if ``workdir`` holds checkpoints of another model.
    """
    for name, value in (("num_steps", num_steps), ("chunk_size", chunk_size),
                        ("log_every", log_every)):
        if not isinstance(value, int) or value < 1:
            raise ValueError(f"{name} must be an int >= 1, got {value!r}.")
    for name, value in (("checkpoint_every", checkpoint_every), ("eval_every", eval_every)):
        if value is not None and (not isinstance(value, int) or value < 1):
            raise ValueError(f"{name} must be None or an int >= 1, got {value!r}.")
    if checkpoint_every is not None and workdir is None:
        raise ValueError("checkpoint_every needs a workdir to write checkpoints into.")

    draw = batch_fn(data, batch_size)
    data_key, step_key = jax.random.split(key)

    def run_chunk(state: TrainState, length: int):
        def body(state, _):
            batch = draw(jax.random.fold_in(data_key, state.step))
            return train_step(state, batch, step_key)

        return jax.lax.scan(body, state, None, length=length)

    run_chunk = jax.jit(run_chunk, static_argnums=1)

    manager = None
    logger = None
    if workdir is not None:
        workdir = os.path.abspath(os.fspath(workdir))
        os.makedirs(workdir, exist_ok=True)
        manager = checkpoint_manager(os.path.join(workdir, CHECKPOINT_DIR), max_to_keep=max_to_keep)
        if checkpoint_steps(manager):
            state, _ = restore_checkpoint(manager, state)
        # records past the starting step belong to lost updates (or a torn last line)
        logger = MetricsLogger(os.path.join(workdir, METRICS_FILE), resume_step=int(state.step))
    try:
        return _run(state, run_chunk, manager, logger, num_steps=num_steps,
                    chunk_size=chunk_size, checkpoint_every=checkpoint_every, eval_fn=eval_fn,
                    eval_every=eval_every, log_every=log_every, progress=progress,
                    checkpoint_extra=checkpoint_extra, workdir=workdir)
    finally:
        if manager is not None:
            manager.close()


def _run(state, run_chunk, manager, logger, *, num_steps, chunk_size, checkpoint_every, eval_fn,
         eval_every, log_every, progress, checkpoint_extra, workdir) -> TrainResult:
    start = int(state.step)
    saved = checkpoint_steps(manager) if manager is not None else []
    last_good = saved[-1] if saved else None
    periods = [p for p in (chunk_size, checkpoint_every, eval_every) if p]
    window: dict[str, list] = {}
    window_means: dict[str, float] = {}
    last_eval: dict[str, float] = {}
    steady_steps, steady_time, train_time = 0, 0.0, 0.0

    def flush(step):
        # empties ``window`` in place: ``_log_steps`` holds the same dict
        nonlocal window_means
        if window:
            window_means = {k: float(np.mean(np.concatenate(v))) for k, v in window.items()}
            if logger is not None:
                logger.write(step, window_means)
        window.clear()

    def evaluate(step, log=True):
        nonlocal last_eval
        # evaluation records carry ``train_seconds``: the wall time of the training
        # chunks so far in this process (compilation included, evaluations excluded)
        last_eval = {k: float(v) for k, v in eval_fn(state).items()}
        if log and logger is not None:
            logger.write(step, {**{f"eval/{k}": v for k, v in last_eval.items()},
                                "train_seconds": train_time})

    bar = tqdm(total=num_steps, initial=start, disable=not progress, desc="train", unit="step",
               dynamic_ncols=True)
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
            if bad is None and not bool(tree_all_finite(new_state.params)):
                bad = (end - begin - 1, {"params": math.nan})
            if bad is not None:
                index, values = bad
                good = {k: v[:index] for k, v in metrics.items()}
                _log_steps(good, begin, log_every, window, flush)
                flush(begin + index)
                raise TrainingDivergedError(begin + index + 1, values, last_good,
                                            os.path.join(workdir, CHECKPOINT_DIR) if workdir
                                            else None)
            state = new_state
            _log_steps(metrics, begin, log_every, window, flush)
            if end == num_steps:
                flush(end)
            bar.update(end - begin)
            bar.set_postfix(loss=f"{float(metrics['loss'][-1]):.4g}")
            if eval_fn is not None and ((eval_every and end % eval_every == 0) or end == num_steps):
                evaluate(end)
            if manager is not None and (
                (checkpoint_every and end % checkpoint_every == 0) or end == num_steps
            ):
                save_checkpoint(manager, end, state, extra=checkpoint_extra)
                last_good = end
    finally:
        bar.close()
    if start >= num_steps and eval_fn is not None:
        evaluate(start, log=False)  # already trained: report, do not log twice
    rate = steady_steps / steady_time if steady_time > 0 else float("nan")
    return TrainResult(state, window_means, last_eval, rate)


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
