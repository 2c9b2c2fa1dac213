"""Metrics: a JSON-lines log and the finiteness check behind divergence detection.

``metrics.jsonl`` holds one JSON object per line, each with an integer ``"step"``
(the number of updates applied when it was written) and float values; training
metrics are window means, evaluation metrics are prefixed ``eval/`` and share their
record with ``train_seconds``, the training loop's wall time up to that step (for
curves of a metric against time).
"""

import json
import math
import os
from collections.abc import Mapping

import numpy as np

__all__ = ["MetricsLogger", "read_metrics", "first_nonfinite"]


class MetricsLogger:
    """Append-only JSON-lines writer; on resume, drops lines past the restored step.

    Args:
      path: the ``metrics.jsonl`` file (created with its folder if missing).
      resume_step: if given, lines whose ``step`` exceeds it are removed first, so a
        run resumed from checkpoint ``k`` does not keep metrics of the lost steps.
    """

    def __init__(self, path: str | os.PathLike, *, resume_step: int | None = None):
        self.path = os.fspath(path)
        os.makedirs(os.path.dirname(os.path.abspath(self.path)), exist_ok=True)
        if resume_step is not None and os.path.exists(self.path):
            kept = [r for r in read_metrics(self.path) if r.get("step", 0) <= resume_step]
            with open(self.path, "w") as f:
                f.writelines(json.dumps(r) + "\n" for r in kept)

    def write(self, step: int, values: Mapping[str, float]) -> None:
        """Append one record ``{"step": step, **values}``."""
        record = {"step": int(step)}
        record.update({k: _to_json(v) for k, v in values.items()})
        with open(self.path, "a") as f:
            f.write(json.dumps(record) + "\n")


def _to_json(value) -> float | int | str | None:
    value = np.asarray(value)
    if value.size != 1:
        raise ValueError(f"metrics must be scalars, got shape {value.shape}.")
    value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)  # JSON has no NaN/inf; keep them visible as strings
    return value


def read_metrics(path: str | os.PathLike) -> list[dict]:
    """All records of a ``metrics.jsonl`` file, in order."""
    with open(path) as f:
        return [json.loads(line) for line in f if line.strip()]


def first_nonfinite(metrics: Mapping[str, np.ndarray]) -> tuple[int, dict[str, float]] | None:
    """The first index along axis 0 where any metric is NaN or infinite.

    Args:
      metrics: ``{name: array of shape (n,)}``, e.g. the stacked metrics of a chunk.

    Returns:
      ``None`` if all are finite, else ``(index, {name: value})`` naming every
      metric that is not finite at that index.
    """
    bad = None
    for values in metrics.values():
        mask = ~np.isfinite(np.asarray(values))
        bad = mask if bad is None else bad | mask
    if bad is None or not bad.any():
        return None
    index = int(np.argmax(bad))
    names = {
        name: float(np.asarray(v)[index])
        for name, v in metrics.items()
        if not np.isfinite(np.asarray(v)[index])
    }
    return index, names
