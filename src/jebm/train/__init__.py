"""Training: state, pure train step, chunked loop, orbax checkpoints and metrics."""

from jebm.train.checkpoint import (
    CheckpointError,
    CheckpointStatus,
    checkpoint_info,
    checkpoint_manager,
    checkpoint_steps,
    init_from_checkpoint,
    list_checkpoints,
    restore_checkpoint,
    save_checkpoint,
)
from jebm.train.health import DEFAULT_HEALTH, HealthConfig
from jebm.train.loop import (
    TrainingDivergedError,
    TrainingInterrupted,
    TrainResult,
    batch_fn,
    train_loop,
)
from jebm.train.metrics import MetricsLogger, TornMetricsWarning, first_nonfinite, read_metrics
from jebm.train.state import TrainState, init_train_state, model_params, params_kind
from jebm.train.step import make_train_step

__all__ = [
    "TrainState",
    "init_train_state",
    "model_params",
    "params_kind",
    "make_train_step",
    "train_loop",
    "TrainResult",
    "TrainingDivergedError",
    "TrainingInterrupted",
    "batch_fn",
    "CheckpointError",
    "checkpoint_manager",
    "checkpoint_steps",
    "save_checkpoint",
    "restore_checkpoint",
    "CheckpointStatus",
    "checkpoint_info",
    "list_checkpoints",
    "init_from_checkpoint",
    "HealthConfig",
    "DEFAULT_HEALTH",
    "MetricsLogger",
    "TornMetricsWarning",
    "read_metrics",
    "first_nonfinite",
]
