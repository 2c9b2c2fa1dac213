"""What a run writes about itself: JSON summaries, and the versions it ran with."""

import json
import math
import platform
from importlib import metadata
from pathlib import Path

import jax
import numpy as np

__all__ = ["jsonable", "dumps_json", "write_json", "versions"]

_PACKAGES = ("jebm", "jax", "jaxlib", "flax", "optax", "orbax-checkpoint", "numpy", "tyro")


def jsonable(value):
    """``value`` as plain JSON data: arrays as lists, paths and dictionary keys as strings,
    NaN and ±inf as ``None`` (JSON has no such numbers).

    Args:
      value: numbers, strings, arrays, paths, and dicts, lists and tuples of them.

    Returns:
      The same structure, ready for ``json.dumps(..., allow_nan=False)``.
    """
    if isinstance(value, dict):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [jsonable(v) for v in value]
    if isinstance(value, np.ndarray | jax.Array | np.generic):
        return jsonable(np.asarray(value).tolist())
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def dumps_json(values: dict) -> str:
    """``values`` as indented JSON (:func:`jsonable`: arrays as lists, NaN/inf as ``null``).

    Args:
      values: a summary dictionary (numbers, strings, arrays, nested dicts and lists).

    Returns:
      The JSON text.
    """
    return json.dumps(jsonable(values), indent=2, allow_nan=False)


def write_json(path: str | Path, values: dict) -> None:
    """Write :func:`dumps_json` of ``values`` to ``path`` (with a final newline).

    Args:
      path: the file.
      values: the summary dictionary.
    """
    Path(path).write_text(dumps_json(values) + "\n")


def versions() -> dict[str, str]:
    """The Python version and those of jebm and the packages its results depend on.

    Returns:
      ``{"python": "3.11.7", "jax": "0.10.2", ...}``; ``"not installed"`` for a missing one.
    """
    out = {"python": platform.python_version()}
    for name in _PACKAGES:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = "not installed"
    return out
