"""Checkpoints of a :class:`~jebm.train.TrainState` with orbax-checkpoint (no pickle).

The state is saved as a flat dictionary ``{"params.layers.0.kernel": array, ...}``
(one entry per leaf, named by its pytree path) next to a JSON manifest recording
each leaf's shape, dtype and SHA-256 digest. Restoring checks the manifest against
the template state first, so a checkpoint written by another configuration fails
with an error that names the leaves that differ, and checks the digests after
reading, so a damaged checkpoint fails instead of silently loading wrong numbers.
Typed PRNG keys are stored as their raw key data and re-wrapped on restore.
"""

import hashlib
import os
from typing import Any

import jax
import numpy as np
import orbax.checkpoint as ocp

from jebm.types import PyTree

__all__ = [
    "CheckpointError",
    "checkpoint_manager",
    "save_checkpoint",
    "restore_checkpoint",
    "checkpoint_steps",
]

_FORMAT = "jebm-train-state/1"
_MAX_LISTED = 8


class CheckpointError(ValueError):
    """A checkpoint is missing, belongs to another configuration, or is damaged."""


def _path_name(path: tuple) -> str:
    parts = []
    for entry in path:
        for attr in ("key", "name", "idx"):
            if hasattr(entry, attr):
                parts.append(str(getattr(entry, attr)))
                break
        else:
            parts.append(str(entry))
    return ".".join(parts) if parts else "root"


def _is_key(leaf: Any) -> bool:
    return isinstance(leaf, jax.Array) and jax.dtypes.issubdtype(leaf.dtype, jax.dtypes.prng_key)


def _flatten(state: PyTree) -> tuple[dict[str, Any], dict[str, dict], Any]:
    """Flat ``{name: array}``, a manifest ``{name: {shape, dtype, ...}}`` and the treedef."""
    paths_leaves, treedef = jax.tree_util.tree_flatten_with_path(state)
    flat, manifest = {}, {}
    for path, leaf in paths_leaves:
        name = _path_name(path)
        if name in flat:
            raise ValueError(f"Two leaves of the state share the checkpoint name {name!r}.")
        entry = {}
        if _is_key(leaf):
            entry["key_impl"] = str(jax.random.key_impl(leaf))
            leaf = jax.random.key_data(leaf)
        leaf = jax.numpy.asarray(leaf)
        entry.update(shape=list(leaf.shape), dtype=str(leaf.dtype))
        flat[name] = leaf
        manifest[name] = entry
    return flat, manifest, treedef


def _digest(array: Any) -> str | None:
    """SHA-256 of a leaf this process can read whole; ``None`` for a leaf spread over hosts
    (orbax's own per-shard checks cover those)."""
    if not getattr(array, "is_fully_addressable", True):
        return None
    return hashlib.sha256(np.ascontiguousarray(np.asarray(array)).tobytes()).hexdigest()


def checkpoint_manager(
    directory: str | os.PathLike, *, max_to_keep: int = 3
) -> ocp.CheckpointManager:
    """An orbax ``CheckpointManager`` keeping the last ``max_to_keep`` checkpoints.

    Args:
      directory: the checkpoint folder (created if missing); must be absolute or is
        made absolute here.
      max_to_keep: how many of the most recent checkpoints to keep.

    Returns:
      An ``orbax.checkpoint.CheckpointManager``; close it when done.
    """
    if not isinstance(max_to_keep, int) or max_to_keep < 1:
        raise ValueError(f"max_to_keep must be an int >= 1, got {max_to_keep!r}.")
    options = ocp.CheckpointManagerOptions(max_to_keep=max_to_keep, create=True)
    return ocp.CheckpointManager(os.path.abspath(os.fspath(directory)), options=options)


def checkpoint_steps(manager: ocp.CheckpointManager) -> list[int]:
    """The steps with a finished checkpoint, ascending."""
    return sorted(manager.all_steps())


def save_checkpoint(
    manager: ocp.CheckpointManager, step: int, state: PyTree, *, extra: dict | None = None
) -> None:
    """Save ``state`` as checkpoint ``step`` and wait until it is on disk.

    Args:
      manager: from :func:`checkpoint_manager`.
      step: the checkpoint's step number (the state's update count).
      state: any pytree of arrays (typically a :class:`~jebm.train.TrainState`).
      extra: JSON-serialisable metadata stored beside the state (e.g. the config).
    """
    flat, manifest, _ = _flatten(state)
    for name, leaf in flat.items():
        manifest[name]["sha256"] = _digest(leaf)
    meta = {"format": _FORMAT, "step": int(step), "leaves": manifest, "extra": extra or {}}
    manager.save(
        int(step),
        args=ocp.args.Composite(state=ocp.args.StandardSave(flat), meta=ocp.args.JsonSave(meta)),
    )
    manager.wait_until_finished()


def _describe_differences(saved: dict[str, dict], expected: dict[str, dict]) -> list[str]:
    lines = []
    for name in expected:
        if name not in saved:
            lines.append(f"{name}: expected {_fmt(expected[name])}, missing from the checkpoint")
    for name in saved:
        if name not in expected:
            lines.append(f"{name}: in the checkpoint ({_fmt(saved[name])}), not in the model")
    for name in expected:
        if name in saved:
            s, e = saved[name], expected[name]
            if s["shape"] != e["shape"] or s["dtype"] != e["dtype"] or (
                s.get("key_impl") != e.get("key_impl")
            ):
                lines.append(f"{name}: checkpoint has {_fmt(s)}, the model expects {_fmt(e)}")
    return lines


def _fmt(entry: dict) -> str:
    return f"shape {tuple(entry['shape'])} {entry['dtype']}"


def restore_checkpoint(
    manager: ocp.CheckpointManager, template: PyTree, *, step: int | None = None
) -> tuple[PyTree, dict]:
    """Restore checkpoint ``step`` (default: the latest) into the structure of ``template``.

    Args:
      manager: from :func:`checkpoint_manager`.
      template: a pytree with the expected structure, shapes and dtypes (for
        example a freshly initialised state of the same configuration).
      step: which checkpoint; ``None`` for the latest.

    Returns:
      ``(state, extra)``: the restored pytree and the ``extra`` metadata saved with it.

    Raises:
      CheckpointError: when there is no checkpoint, when its leaves differ from the
        template (the message lists each differing leaf with both shapes), or when
        it cannot be read or fails its SHA-256 check.
    """
    directory = os.fspath(manager.directory)
    steps = checkpoint_steps(manager)
    if not steps:
        raise CheckpointError(f"No checkpoint found in {directory}.")
    if step is None:
        step = steps[-1]
    if step not in steps:
        raise CheckpointError(f"No checkpoint for step {step} in {directory}; have {steps}.")
    where = f"checkpoint step {step} in {directory}"
    try:
        meta = manager.restore(step, args=ocp.args.Composite(meta=ocp.args.JsonRestore()))["meta"]
    except Exception as err:  # orbax/tensorstore raise many types for unreadable files
        raise CheckpointError(f"The manifest of {where} is unreadable ({type(err).__name__}: "
                              f"{err}); the checkpoint is damaged.") from err
    if not isinstance(meta, dict) or meta.get("format") != _FORMAT:
        raise CheckpointError(
            f"{where} is not a jebm train-state checkpoint (manifest {str(meta)[:200]})."
        )

    flat_template, expected, treedef = _flatten(template)
    differences = _describe_differences(meta["leaves"], expected)
    if differences:
        shown = "\n  ".join(differences[:_MAX_LISTED])
        more = len(differences) - _MAX_LISTED
        tail = f"\n  ... and {more} more" if more > 0 else ""
        raise CheckpointError(
            f"{where} was written by a different model/config; {len(differences)} leaves "
            f"differ:\n  {shown}{tail}"
        )
    try:
        restored = manager.restore(
            step, args=ocp.args.Composite(state=ocp.args.StandardRestore(flat_template))
        )["state"]
    except Exception as err:
        raise CheckpointError(
            f"{where} is damaged and cannot be read ({type(err).__name__}: {err})."
        ) from err
    leaves = []
    for name, entry in expected.items():
        value = restored[name]
        digest, saved = _digest(value), meta["leaves"][name].get("sha256")
        if digest is not None and saved is not None and digest != saved:
            raise CheckpointError(f"{where} is damaged: leaf {name} fails its SHA-256 check.")
        if "key_impl" in entry:
            value = jax.random.wrap_key_data(value, impl=entry["key_impl"])
        leaves.append(value)
    return jax.tree.unflatten(treedef, leaves), meta.get("extra", {})
