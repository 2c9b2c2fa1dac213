"""Checkpoints of a :class:`~jebm.train.TrainState` with orbax-checkpoint (no pickle).

The state is saved as a flat dictionary ``{"params.layers.0.kernel": array, ...}``
(one entry per leaf, named by its pytree path) next to a JSON manifest recording
each leaf's shape, dtype and SHA-256 digest. Restoring checks the manifest against
the template state first, so a checkpoint written by another configuration fails
with an error that names the leaves that differ, and checks the digests after
reading, so a damaged checkpoint fails instead of silently loading wrong numbers.
Typed PRNG keys are stored as their raw key data and re-wrapped on restore.

Health. Each checkpoint records whether the training-health checks passed when it was
written (``healthy``, see :mod:`jebm.train.health`). Rotation keeps the newest
``max_to_keep`` checkpoints *and* the newest healthy one, so a run that degrades slowly
never rotates away its last good state. :func:`list_checkpoints` reports, per step,
whether a checkpoint is intact (readable, digests match) and healthy; a damaged
checkpoint's error is a few lines that name the newest intact one.

Provenance. A run started from another run's checkpoint (:func:`init_from_checkpoint`)
stores ``origin = {"directory", "step", "healthy"}`` in each of its own checkpoints.
"""

import hashlib
import logging
import os
import sys
from typing import Any, NamedTuple

import jax
import numpy as np
import orbax.checkpoint as ocp
from orbax.checkpoint import checkpoint_managers

from jebm.types import PyTree

__all__ = [
    "CheckpointError",
    "checkpoint_manager",
    "save_checkpoint",
    "restore_checkpoint",
    "checkpoint_steps",
    "CheckpointStatus",
    "checkpoint_info",
    "list_checkpoints",
    "init_from_checkpoint",
]

_FORMAT = "jebm-train-state/1"
_MAX_LISTED = 8


class _TensorstoreLeftovers(logging.Filter):
    """Drops asyncio's "Task exception was never retrieved" records that a failed orbax
    restore leaves behind: tensorstore reads of the damaged checkpoint, each printing its
    multi-kilobyte spec when garbage-collected. jebm has already reported that checkpoint
    (in two lines, naming the newest intact one); other asyncio records pass."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        return not (message.startswith("Task exception was never retrieved")
                    and "tensorstore" in message)


def _drop_tensorstore_unraisables(previous):
    """A ``sys.unraisablehook`` that drops the "Exception ignored in <coroutine ...>" reports
    of the same leftover reads (their exception names TensorStore), and passes on the rest."""

    def hook(unraisable):
        if "TensorStore" in str(unraisable.exc_value) and "coroutine" in repr(unraisable.object):
            return
        previous(unraisable)

    hook.jebm_tensorstore_filter = True
    return hook


def _quiet_orbax_leftovers() -> None:
    """Install :class:`_TensorstoreLeftovers` on the asyncio logger, and the matching
    unraisable-exception filter (each once)."""
    logger = logging.getLogger("asyncio")
    if not any(isinstance(f, _TensorstoreLeftovers) for f in logger.filters):
        logger.addFilter(_TensorstoreLeftovers())
    if not getattr(sys.unraisablehook, "jebm_tensorstore_filter", False):
        sys.unraisablehook = _drop_tensorstore_unraisables(sys.unraisablehook)


class CheckpointError(ValueError):
    """A checkpoint is missing, belongs to another configuration, or is damaged."""


class CheckpointStatus(NamedTuple):
    """One checkpoint as :func:`list_checkpoints` sees it.

    Attributes:
      step: its step.
      intact: its manifest and arrays are readable and match their SHA-256 digests
        (``None`` when not verified).
      healthy: the health checks passed when it was written (``None`` for a checkpoint
        written before jebm recorded health, or whose manifest is unreadable).
      problem: why it is not intact (``""`` when it is, or was not verified).
    """

    step: int
    intact: bool | None
    healthy: bool | None
    problem: str


_MAX_ERROR_CHARS = 160


def _short(err: BaseException) -> str:
    """``Type: first line of the message``, cut short (tensorstore errors embed their
    whole JSON spec)."""
    text = str(err).strip().splitlines()[0] if str(err).strip() else ""
    if len(text) > _MAX_ERROR_CHARS:
        text = text[:_MAX_ERROR_CHARS] + " ..."
    return f"{type(err).__name__}: {text}" if text else type(err).__name__


def _rank(metrics: dict) -> float:
    """Orbax's ranking of a checkpoint: its step if healthy, else -1 (newest healthy wins)."""
    return float(metrics.get("healthy_step", -1.0))


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
    """An orbax ``CheckpointManager`` keeping the last ``max_to_keep`` checkpoints and the
    newest healthy one.

    Args:
      directory: the checkpoint folder (created if missing); must be absolute or is
        made absolute here.
      max_to_keep: how many of the most recent checkpoints to keep; the newest
        checkpoint saved with ``healthy=True`` is kept in addition when older.

    Returns:
      An ``orbax.checkpoint.CheckpointManager``; close it when done.
    """
    if not isinstance(max_to_keep, int) or max_to_keep < 1:
        raise ValueError(f"max_to_keep must be an int >= 1, got {max_to_keep!r}.")
    policy = checkpoint_managers.AnyPreservationPolicy([
        checkpoint_managers.LatestN(n=max_to_keep),
        checkpoint_managers.BestN(get_metric_fn=_rank, n=1,
                                  keep_checkpoints_without_metrics=False),
    ])
    # best_fn makes orbax store and reload the per-checkpoint ranking metric
    options = ocp.CheckpointManagerOptions(preservation_policy=policy, best_fn=_rank,
                                           best_mode="max", create=True)
    return ocp.CheckpointManager(os.path.abspath(os.fspath(directory)), options=options)


def checkpoint_steps(manager: ocp.CheckpointManager) -> list[int]:
    """The steps with a finished checkpoint, ascending.

    Args:
      manager: the Orbax checkpoint manager.

    Returns:
      The sorted list of checkpointed steps.
    """
    return sorted(manager.all_steps())


def save_checkpoint(
    manager: ocp.CheckpointManager,
    step: int,
    state: PyTree,
    *,
    extra: dict | None = None,
    healthy: bool = True,
    origin: dict | None = None,
) -> None:
    """Save ``state`` as checkpoint ``step`` and wait until it is on disk.

    Args:
      manager: from :func:`checkpoint_manager`.
      step: the checkpoint's step number (the state's update count).
      state: any pytree of arrays (typically a :class:`~jebm.train.TrainState`).
      extra: JSON-serialisable metadata stored beside the state (e.g. the config).
      healthy: whether the training-health checks passed when it was written;
        rotation always keeps the newest healthy checkpoint.
      origin: where the run started from, if from another run's checkpoint (see
        :func:`init_from_checkpoint`).
    """
    if not isinstance(healthy, bool):
        raise ValueError(f"healthy must be a bool, got {healthy!r}.")
    flat, manifest, _ = _flatten(state)
    for name, leaf in flat.items():
        manifest[name]["sha256"] = _digest(leaf)
    meta = {"format": _FORMAT, "step": int(step), "leaves": manifest, "extra": extra or {},
            "healthy": healthy}
    if origin is not None:
        meta["origin"] = origin
    manager.save(
        int(step),
        args=ocp.args.Composite(state=ocp.args.StandardSave(flat), meta=ocp.args.JsonSave(meta)),
        metrics={"healthy_step": float(step) if healthy else -1.0},
    )
    manager.wait_until_finished()


def _read_meta(manager: ocp.CheckpointManager, step: int) -> dict:
    """The JSON manifest of checkpoint ``step``; ``CheckpointError`` (short) if unreadable."""
    where = f"checkpoint step {step} in {os.fspath(manager.directory)}"
    try:
        meta = manager.restore(step, args=ocp.args.Composite(meta=ocp.args.JsonRestore()))["meta"]
    except Exception as err:  # orbax/tensorstore raise many types for unreadable files
        raise CheckpointError(f"The manifest of {where} is unreadable ({_short(err)}); "
                              "the checkpoint is damaged.") from None
    if not isinstance(meta, dict) or meta.get("format") != _FORMAT:
        raise CheckpointError(
            f"{where} is not a jebm train-state checkpoint (manifest {str(meta)[:200]})."
        )
    return meta


def checkpoint_info(manager: ocp.CheckpointManager, step: int) -> dict:
    """What checkpoint ``step`` records about itself (reads only its manifest).

    Args:
      manager: from :func:`checkpoint_manager`.
      step: an existing checkpoint step.

    Returns:
      ``{"step", "healthy", "extra", "origin"}``; ``healthy`` is ``None`` for a
      checkpoint written before jebm recorded health, ``origin`` ``None`` unless the run
      started from another run's checkpoint.

    Raises:
      CheckpointError: if there is no such checkpoint or its manifest is unreadable.
    """
    steps = checkpoint_steps(manager)
    if step not in steps:
        raise CheckpointError(f"No checkpoint for step {step} in "
                              f"{os.fspath(manager.directory)}; have {steps}.")
    meta = _read_meta(manager, step)
    return {"step": int(step), "healthy": meta.get("healthy"), "extra": meta.get("extra", {}),
            "origin": meta.get("origin")}


def _verify(manager: ocp.CheckpointManager, step: int) -> tuple[dict | None, str]:
    """``(meta, problem)``: reads checkpoint ``step`` whole and checks its digests."""
    _quiet_orbax_leftovers()  # a damaged one leaves failed reads behind
    try:
        meta = _read_meta(manager, step)
    except CheckpointError as err:
        return None, str(err)
    try:
        restored = manager.restore(
            step, args=ocp.args.Composite(state=ocp.args.StandardRestore())
        )["state"]
    except Exception as err:
        return meta, f"its arrays cannot be read ({_short(err)})"
    for name, entry in meta["leaves"].items():
        if name not in restored:
            return meta, f"leaf {name} is missing"
        digest, saved = _digest(restored[name]), entry.get("sha256")
        if digest is not None and saved is not None and digest != saved:
            return meta, f"leaf {name} fails its SHA-256 check"
    return meta, ""


def list_checkpoints(
    manager: ocp.CheckpointManager, *, verify: bool = True, steps: list[int] | None = None
) -> list[CheckpointStatus]:
    """Every checkpoint with whether it is intact and healthy, ascending by step.

    Args:
      manager: from :func:`checkpoint_manager`.
      verify: read each checkpoint whole and check its digests (costs a full read of
        each); with ``False`` only the manifests are read and ``intact`` is ``None``.
      steps: only these steps (those that exist); default all.

    Returns:
      A list of :class:`CheckpointStatus`.
    """
    out = []
    for step in checkpoint_steps(manager):
        if steps is not None and step not in steps:
            continue
        if verify:
            meta, problem = _verify(manager, step)
            intact = not problem
        else:
            try:
                meta, problem = _read_meta(manager, step), ""
            except CheckpointError as err:
                meta, problem = None, str(err)
            intact = None if meta is not None else False
        healthy = meta.get("healthy") if meta is not None else None
        out.append(CheckpointStatus(step, intact, healthy, problem))
    return out


def _newest_intact_note(manager: ocp.CheckpointManager, bad_step: int) -> str:
    """A sentence naming the newest intact checkpoint other than ``bad_step``."""
    _quiet_orbax_leftovers()  # every damage report comes through here
    for step in sorted((s for s in checkpoint_steps(manager) if s != bad_step), reverse=True):
        meta, problem = _verify(manager, step)
        if not problem:
            health = {True: "healthy", False: "NOT healthy", None: "health not recorded"}[
                meta.get("healthy")]
            return (f"The newest intact checkpoint is step {step} ({health}): resume from it "
                    f"with jebm train --step {step} (in Python: restore_checkpoint(..., "
                    f"step={step}) or train_loop(..., resume_step={step})).")
    return "No other intact checkpoint is left."


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
        it cannot be read or fails its SHA-256 check (a short message that names the
        newest other checkpoint that verifies intact).
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
        meta = _read_meta(manager, step)
    except CheckpointError as err:
        raise CheckpointError(f"{err}\n{_newest_intact_note(manager, step)}") from None

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
        _quiet_orbax_leftovers()
        problem = f"{where} is damaged and cannot be read ({_short(err)})."
        raise CheckpointError(f"{problem}\n{_newest_intact_note(manager, step)}") from None
    leaves = []
    for name, entry in expected.items():
        value = restored[name]
        digest, saved = _digest(value), meta["leaves"][name].get("sha256")
        if digest is not None and saved is not None and digest != saved:
            raise CheckpointError(f"{where} is damaged: leaf {name} fails its SHA-256 check."
                                  f"\n{_newest_intact_note(manager, step)}")
        if "key_impl" in entry:
            value = jax.random.wrap_key_data(value, impl=entry["key_impl"])
        leaves.append(value)
    return jax.tree.unflatten(treedef, leaves), meta.get("extra", {})


def init_from_checkpoint(
    directory: str | os.PathLike,
    template: PyTree,
    *,
    step: int | None = None,
    allow_unhealthy: bool = False,
) -> tuple[PyTree, dict]:
    """Start a new run from a checkpoint of another run (a fork).

    Pass the returned state to :func:`~jebm.train.train_loop` with a *new* workdir and
    ``origin=origin``: the new run continues from ``state.step`` (its batches and keys
    are those the old run would have used), with whatever optimizer, sampler or step
    count the new train step was built with, and its checkpoints record the origin.

    Args:
      directory: the other run's checkpoint folder (``<workdir>/checkpoints``).
      template: a state of the new configuration (same structure, shapes and dtypes).
      step: which checkpoint; default the newest healthy one (the newest one with
        ``allow_unhealthy``).
      allow_unhealthy: accept a checkpoint not marked healthy.

    Returns:
      ``(state, origin)`` with ``origin = {"directory", "step", "healthy", "extra"}``
      (``extra`` is the other run's ``checkpoint_extra``).

    Raises:
      CheckpointError: if the checkpoint is missing, damaged, of another model, or
        not healthy (without ``allow_unhealthy``).
    """
    directory = os.path.abspath(os.fspath(directory))
    if not os.path.isdir(directory):
        raise CheckpointError(f"No checkpoint folder {directory}.")
    manager = checkpoint_manager(directory)
    try:
        statuses = list_checkpoints(manager, verify=False)
        if not statuses:
            raise CheckpointError(f"No checkpoint found in {directory}.")
        if step is None:
            usable = [s for s in statuses if allow_unhealthy or s.healthy is not False]
            if not usable:
                raise CheckpointError(
                    f"No healthy checkpoint in {directory} (steps "
                    f"{[s.step for s in statuses]} are all marked unhealthy); pass a step and "
                    "allow_unhealthy=True to start from one anyway.")
            step = usable[-1].step
        check_step = next((s for s in statuses if s.step == step), None)
        if check_step is None:
            raise CheckpointError(f"No checkpoint for step {step} in {directory}; have "
                                  f"{[s.step for s in statuses]}.")
        if check_step.healthy is False and not allow_unhealthy:
            healthy = [s.step for s in statuses if s.healthy]
            raise CheckpointError(
                f"Checkpoint step {step} in {directory} is marked unhealthy (training was "
                f"diverging when it was written); healthy steps: {healthy}. Pass "
                "allow_unhealthy=True to start from it anyway.")
        state, extra = restore_checkpoint(manager, template, step=step)
    finally:
        manager.close()
    origin = {"directory": directory, "step": int(step), "healthy": check_step.healthy,
              "extra": extra}
    return state, origin
