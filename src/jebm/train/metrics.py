"""Metrics: a JSON-lines log and the finiteness check behind divergence detection.

``metrics.jsonl`` holds one JSON object per line, each with an integer ``"step"``
(the number of updates applied when it was written) and float values; training
metrics are window means, evaluation metrics are prefixed ``eval/`` and share their
record with ``train_seconds``, the training loop's wall time up to that step (for
curves of a metric against time).

Each record is appended with one ``write`` of a complete line, so a process killed while
writing leaves at most a *torn last line*: one without its closing newline that is not
valid JSON. :func:`read_metrics` drops such a line with a :class:`TornMetricsWarning`
naming the file; any other malformed line is an error naming the file and line number.
"""

import json
import math
import os
import warnings
from collections.abc import Mapping

import numpy as np

__all__ = ["MetricsLogger", "TornMetricsWarning", "read_metrics", "first_nonfinite"]


class TornMetricsWarning(UserWarning):
    """The last line of a metrics file was cut short (a kill while writing) and is dropped."""


class MetricsLogger:
    """Append-only JSON-lines writer; on resume, drops lines past the restored step.

    Args:
      path: the ``metrics.jsonl`` file (created with its folder if missing).
      resume_step: if given, lines whose ``step`` exceeds it are removed first, so a
        run resumed from checkpoint ``k`` does not keep metrics of the lost steps; a
        torn last line is dropped too (with a :class:`TornMetricsWarning`).

    Raises:
      ValueError: if an existing file has a malformed line other than a torn last one.
    """

    def __init__(self, path: str | os.PathLike, *, resume_step: int | None = None):
        self.path = os.fspath(path)
        os.makedirs(os.path.dirname(os.path.abspath(self.path)), exist_ok=True)
        if os.path.exists(self.path):
            records = read_metrics(self.path)
            kept = [r for r in records if resume_step is None or r["step"] <= resume_step]
            with open(self.path, "rb") as f:
                f.seek(0, os.SEEK_END)
                ends_cleanly = f.tell() == 0 or (f.seek(-1, os.SEEK_END), f.read(1))[1] == b"\n"
            if len(kept) != len(records) or not ends_cleanly:
                # rewrite atomically: a kill during the rewrite leaves the old file
                tmp = self.path + ".tmp"
                with open(tmp, "w") as f:
                    f.writelines(json.dumps(r) + "\n" for r in kept)
                os.replace(tmp, self.path)

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
    """All records of a ``metrics.jsonl`` file, in order.

    Args:
      path: the file.

    Returns:
      The records, each a dict with an integer ``"step"``.

    Raises:
      ValueError: naming the file and line, for a line that is not a JSON object with
        an integer ``"step"`` — except a torn last line (no closing newline, not valid
        JSON), which is dropped with a :class:`TornMetricsWarning`.
    """
    path = os.fspath(path)
    with open(path) as f:
        lines = f.read().split("\n")
    # a file ending in a newline splits into [..., ""]; anything else ends in a partial line
    last = len(lines) - 1
    records = []
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError as err:
            if number - 1 == last:
                warnings.warn(
                    f"{path}: dropping its last line {number}, which was cut short "
                    f"(the run was probably killed while writing it): {line[:80]!r}",
                    TornMetricsWarning, stacklevel=2)
                continue
            raise ValueError(f"{path}, line {number}: not valid JSON ({err.msg} at column "
                             f"{err.colno}): {line[:80]!r}") from None
        if not isinstance(record, dict) or not _is_int(record.get("step")):
            raise ValueError(f"{path}, line {number}: a metrics record must be a JSON object "
                             f"with an integer \"step\", got {line[:80]!r}")
        records.append(record)
    return records


def _is_int(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


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
