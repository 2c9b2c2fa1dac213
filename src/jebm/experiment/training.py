"""Training a run and restoring its checkpoints (the config's loop settings, data-parallel)."""

from collections.abc import Callable
from pathlib import Path

from jebm import parallel
from jebm.experiment.config import config_to_dict
from jebm.experiment.devices import training_devices
from jebm.experiment.run import Run
from jebm.train import (
    HealthConfig,
    checkpoint_manager,
    make_train_step,
    restore_checkpoint,
    train_loop,
)

__all__ = ["RESUMABLE", "health_config", "train_run", "restore_state"]

# Config fields that may differ between a run and its resumption: they change neither the
# parameters nor how results are computed (train.num_steps may only grow: an extension).
RESUMABLE = ("train.chunk_size", "train.log_every", "train.eval_every",
             "train.checkpoint_every", "train.keep_checkpoints", "train.num_steps",
             "train.devices")


def health_config(config) -> HealthConfig | None:
    """The :class:`jebm.train.HealthConfig` of ``config.health`` (``None`` when disabled).

    Args:
      config: the run's config.

    Returns:
      A :class:`jebm.train.HealthConfig` with ``config.health``'s thresholds, or ``None``
      when ``config.health.enabled`` is false.
    """

    h = config.health
    if not h.enabled:
        return None
    return HealthConfig(max_abs_energy=h.max_abs_energy, max_energy_growth=h.max_energy_growth,
                        max_energy_gap=h.max_energy_gap,
                        max_grad_norm_ratio=h.max_grad_norm_ratio,
                        min_grad_norm_ratio=h.min_grad_norm_ratio,
                        max_divergent_fraction=h.max_divergent_fraction, patience=h.patience)


def train_run(run: Run, workdir: str | Path | None = None, *, progress: bool = False,
              eval_fn: Callable | None = None, **loop_options):
    """Train ``run`` with its config's loop settings (:func:`jebm.train.train_loop`),
    data-parallel over :func:`training_devices` devices.

    The whole config is the run's identity in its checkpoints: resuming with a config that
    differs outside :data:`RESUMABLE` raises ``CheckpointError``; ``config.health`` sets the
    blow-up checks.

    Args:
      run: the :class:`Run`.
      workdir: checkpoints and ``metrics.jsonl`` go here (``None``: in memory only).
      progress: show a progress bar.
      eval_fn: ``state -> dict`` periodic evaluation (e.g.
        :func:`jebm.evaluation.periodic_eval_fn`).
      **loop_options: overrides of :func:`~jebm.train.train_loop` arguments.

    Returns:
      The :class:`~jebm.train.TrainResult`.
    """

    cfg, tc = run.config, run.config.train
    options = dict(
        num_steps=tc.num_steps, batch_size=cfg.data.batch_size, chunk_size=tc.chunk_size,
        checkpoint_every=tc.checkpoint_every, max_to_keep=tc.keep_checkpoints,
        eval_fn=eval_fn, eval_every=tc.eval_every or None, log_every=tc.log_every,
        progress=progress, checkpoint_extra=config_to_dict(cfg), resumable=RESUMABLE,
        health=health_config(cfg))
    if workdir is None:  # in memory only: nothing to checkpoint
        options["checkpoint_every"] = None
    options.update(loop_options)
    step = make_train_step(run.objective, run.optimizer, ema_decay=tc.ema_decay)
    state, devices = run.initial_state, training_devices(cfg)
    if devices > 1:
        mesh = parallel.make_mesh(num_chain_devices=1, num_data_devices=devices)
        step = parallel.data_parallel_train_step(step, mesh)
        state = parallel.shard_train_state(state, mesh)
    return train_loop(run.train_key, state, step, run.batches, workdir=workdir, **options)


def restore_state(run: Run, workdir: str | Path, step: int | None = None):
    """The :class:`~jebm.train.TrainState` of a checkpoint of ``run`` in ``workdir``.

    Args:
      run: the :class:`Run` the checkpoint was trained from; its ``initial_state`` is the
        template of structure, shapes and dtypes.
      workdir: a training workdir (checkpoints under ``workdir/checkpoints``).
      step: the checkpoint step; ``None`` for the latest.

    Returns:
      The restored train state.

    Raises:
      CheckpointError: if there is no such checkpoint, or it does not match ``run`` or
        cannot be read.
    """

    manager = checkpoint_manager(Path(workdir) / "checkpoints")
    try:
        state, _ = restore_checkpoint(manager, run.initial_state, step=step)
    finally:
        manager.close()
    return state
