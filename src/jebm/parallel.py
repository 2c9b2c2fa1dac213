"""Scale-out with ``jax.sharding``: chains over devices, data-parallel training, several hosts.

One mesh with two named axes serves both workloads:

* ``"chains"`` — independent Markov chains. Chains never talk to each other, so a
  chain batch sharded along axis 0 stays sharded through
  :func:`jebm.run_chains` when the caller jits it: every device steps its own
  chains and the compiled scan body holds no collective. Nothing in the runner
  changes; sharding the input is enough (GSPMD propagates it).
* ``"data"`` — data parallelism for training. The batch and the objective's
  carried state (e.g. the replay buffer of persistent CD) are split along their
  leading axis, parameters and optimizer state are replicated, and XLA inserts the
  one all-reduce of the gradient.

Meshes are built with ``AxisType.Auto`` axes (sharding propagated by the
compiler), so code written for one device runs unchanged on many. With partitionable
Threefry (the default), random draws do not depend on the sharding, so a sharded sampler
run of an elementwise energy equals the single-device run bit for bit. An energy with
matrix products (an MLP, a conv net) may round differently, since XLA picks its matmul
kernel by the per-device batch; its chains then agree to float32 round-off compounded
over the steps (docs/distributed.md gives the tested bound). Data-parallel training
agrees up to float reduction order (the gradient mean).

Several hosts: call :func:`initialize` first on every host, build the mesh from
all (global) devices, feed each host's part of the batch with
:func:`global_batch`, and checkpoint with :func:`save_sharded` /
:func:`restore_sharded` (orbax writes each shard from the host that owns it).
See ``docs/distributed.md`` for launch commands.

References:
  Xu, Y. et al. (2021). GSPMD: General and scalable parallelization for ML
  computation graphs. arXiv:2105.04663.
"""

import os
from collections.abc import Callable
from typing import Any

import jax
import numpy as np
import orbax.checkpoint as ocp
from jax.sharding import AxisType, Mesh, NamedSharding
from jax.sharding import PartitionSpec as P

from jebm._validate import check_int
from jebm.samplers.runner import constrain_chains
from jebm.types import ArrayTree, PRNGKey, PyTree

__all__ = [
    "CHAIN_AXIS",
    "DATA_AXIS",
    "make_mesh",
    "chain_sharding",
    "batch_sharding",
    "replicated_sharding",
    "shard_chains",
    "shard_batch",
    "replicate",
    "constrain_chains",
    "train_state_shardings",
    "shard_train_state",
    "data_parallel_train_step",
    "initialize",
    "use_cpu_cores",
    "host_key",
    "host_slice",
    "global_batch",
    "save_sharded",
    "restore_sharded",
]

CHAIN_AXIS = "chains"
DATA_AXIS = "data"


def _check_count(name: str, value: Any) -> None:
    check_int(name, value, optional=True)


def make_mesh(
    num_chain_devices: int | None = None,
    num_data_devices: int | None = None,
    devices: list | None = None,
) -> Mesh:
    """A ``(chains, data)`` device mesh.

    With neither size given every device goes to ``"chains"`` (``data`` has size
    1). With one size given the other is the device count divided by it. With both
    given their product may be smaller than the device count; the first devices are
    used.

    Args:
      num_chain_devices: size of the ``"chains"`` axis.
      num_data_devices: size of the ``"data"`` axis.
      devices: the devices to use; default ``jax.devices()`` (all hosts' devices).

    Returns:
      A ``jax.sharding.Mesh`` with axes ``("chains", "data")`` of type ``Auto``.

    Raises:
      ValueError: if a size is not a positive int, does not divide the device
        count, or the sizes need more devices than there are.

    Examples:
      >>> from jebm.parallel import make_mesh
      >>> mesh = make_mesh()
      >>> mesh.axis_names
      ('chains', 'data')
      >>> mesh.shape["chains"] * mesh.shape["data"] == len(mesh.devices.flat)
      True
    """
    _check_count("num_chain_devices", num_chain_devices)
    _check_count("num_data_devices", num_data_devices)
    devices = list(jax.devices() if devices is None else devices)
    n = len(devices)
    if n == 0:
        raise ValueError("devices is empty.")
    chains, data = num_chain_devices, num_data_devices
    if chains is None and data is None:
        chains, data = n, 1
    elif chains is None or data is None:
        given, name = (chains, "num_chain_devices") if data is None else (data, "num_data_devices")
        if n % given:
            raise ValueError(f"{name}={given} does not divide the number of devices ({n}).")
        chains, data = (given, n // given) if data is None else (n // given, given)
    if chains * data > n:
        raise ValueError(
            f"num_chain_devices * num_data_devices = {chains} * {data} = {chains * data} "
            f"exceeds the number of devices ({n})."
        )
    return jax.make_mesh(
        (chains, data),
        (CHAIN_AXIS, DATA_AXIS),
        axis_types=(AxisType.Auto, AxisType.Auto),
        devices=devices[: chains * data],
    )


def chain_sharding(mesh: Mesh) -> NamedSharding:
    """Axis 0 split over ``"chains"``, the rest replicated (for ``jit`` in/out shardings).

    Args:
      mesh: from :func:`make_mesh`.

    Returns:
      ``NamedSharding(mesh, P("chains"))``; replicated over ``"data"``.

    Examples:
      >>> from jebm.parallel import chain_sharding, make_mesh
      >>> chain_sharding(make_mesh()).spec
      P('chains',)
    """
    return NamedSharding(mesh, P(CHAIN_AXIS))


def batch_sharding(mesh: Mesh) -> NamedSharding:
    """Axis 0 split over ``"data"``, the rest replicated.

    Args:
      mesh: from :func:`make_mesh`.

    Returns:
      ``NamedSharding(mesh, P("data"))``; replicated over ``"chains"``.
    """
    return NamedSharding(mesh, P(DATA_AXIS))


def replicated_sharding(mesh: Mesh) -> NamedSharding:
    """A full copy on every device of ``mesh``.

    Args:
      mesh: from :func:`make_mesh`.

    Returns:
      ``NamedSharding(mesh, P())``.
    """
    return NamedSharding(mesh, P())


def _leaf_name(path: tuple) -> str:
    return jax.tree_util.keystr(path) or "the tree"


def _is_key(leaf: Any) -> bool:
    return jax.dtypes.issubdtype(getattr(leaf, "dtype", None), jax.dtypes.prng_key)


def _place(leaf: Any, sharding: NamedSharding) -> Any:
    # Inside jit, device_put does not constrain an Auto-axis sharding; a constraint does.
    if isinstance(leaf, jax.core.Tracer):
        return jax.lax.with_sharding_constraint(leaf, sharding)
    if jax.process_count() == 1 or not getattr(leaf, "is_fully_addressable", True):
        return jax.device_put(leaf, sharding)
    # Several hosts, a host-local value (the same on every host): each host builds its shards.
    if _is_key(leaf):
        data = _place(jax.random.key_data(leaf), sharding)
        return jax.random.wrap_key_data(data, impl=jax.random.key_impl(leaf))
    value = np.asarray(leaf)
    return jax.make_array_from_callback(value.shape, sharding, lambda index: value[index])


def _split_leading(tree: ArrayTree, mesh: Mesh, axis: str, what: str) -> ArrayTree:
    size = mesh.shape[axis]
    sharding = NamedSharding(mesh, P(axis))

    def place(path, leaf):
        shape = np.shape(leaf)
        if not shape or shape[0] % size:
            raise ValueError(
                f"{what} leaf {_leaf_name(path)} has shape {shape}; its leading axis must be "
                f"divisible by the {axis!r} mesh axis size ({size})."
            )
        return _place(leaf, sharding)

    return jax.tree_util.tree_map_with_path(place, tree)


def shard_chains(positions: ArrayTree, mesh: Mesh) -> ArrayTree:
    """Split a chain batch ``(num_chains, *event)`` over the ``"chains"`` axis.

    Works on concrete arrays (places them) and inside ``jit`` (constrains them).
    Pass the result to a jitted :func:`jebm.run_chains`: states, trace, infos and
    moments come out sharded over chains, and no step gathers them.

    Args:
      positions: pytree of arrays with a shared leading chain axis, or chain states.
      mesh: from :func:`make_mesh`.

    Returns:
      The same pytree, sharded.

    Raises:
      ValueError: if a leaf's leading axis is not divisible by the ``"chains"`` size.

    Examples:
      >>> import jax, jax.numpy as jnp
      >>> from jebm.parallel import make_mesh, shard_chains
      >>> mesh = make_mesh()
      >>> x = shard_chains(jnp.zeros((4 * len(jax.devices()), 2)), mesh)
      >>> x.sharding.spec
      P('chains',)
    """
    return _split_leading(positions, mesh, CHAIN_AXIS, "positions")


def shard_batch(batch: ArrayTree, mesh: Mesh) -> ArrayTree:
    """Split a batch ``(batch_size, ...)`` over the ``"data"`` axis (single host).

    On several hosts, where each host holds only its part, use :func:`global_batch`.
    Works on concrete arrays (places them) and inside ``jit`` (constrains them).

    Args:
      batch: pytree of arrays with a shared leading batch axis.
      mesh: from :func:`make_mesh`.

    Returns:
      The same pytree, each leaf split along axis 0 over ``"data"``.

    Raises:
      ValueError: if a leaf's leading axis is not divisible by the ``"data"`` size.
    """
    return _split_leading(batch, mesh, DATA_AXIS, "batch")


def replicate(tree: PyTree, mesh: Mesh) -> PyTree:
    """Copy every leaf of ``tree`` to every device of ``mesh`` (placed, or constrained in jit).

    Args:
      tree: pytree of arrays (typed PRNG keys included), e.g. parameters.
      mesh: from :func:`make_mesh`.

    Returns:
      The same pytree, every leaf with :func:`replicated_sharding`.
    """
    sharding = replicated_sharding(mesh)
    return jax.tree.map(lambda leaf: _place(leaf, sharding), tree)


def train_state_shardings(state: PyTree, mesh: Mesh) -> PyTree:
    """Shardings for a :class:`~jebm.train.TrainState`, for ``jit`` or ``device_put``.

    ``params``, ``opt_state``, ``step`` and ``ema_params`` are replicated. Each leaf of
    ``objective_state`` (the replay buffer) is split over ``"data"`` along its
    leading axis when that axis exists and is divisible by the ``"data"`` size, and
    replicated otherwise (scalars, counters). Shardings do not change values, so this
    rule only decides where work happens.

    Args:
      state: a ``TrainState`` (concrete arrays or ``jax.ShapeDtypeStruct``).
      mesh: from :func:`make_mesh`.

    Returns:
      A ``TrainState``-shaped pytree of ``NamedSharding``.
    """
    replicated = replicated_sharding(mesh)
    size = mesh.shape[DATA_AXIS]

    def buffer_leaf(leaf):
        shape = np.shape(leaf)
        if shape and shape[0] % size == 0:
            return batch_sharding(mesh)
        return replicated

    return state._replace(
        params=jax.tree.map(lambda _: replicated, state.params),
        opt_state=jax.tree.map(lambda _: replicated, state.opt_state),
        step=jax.tree.map(lambda _: replicated, state.step),
        objective_state=jax.tree.map(buffer_leaf, state.objective_state),
        ema_params=jax.tree.map(lambda _: replicated, state.ema_params),
    )


def shard_train_state(state: PyTree, mesh: Mesh) -> PyTree:
    """Place a ``TrainState`` with :func:`train_state_shardings` (or constrain it in jit).

    Args:
      state: a :class:`~jebm.train.TrainState` of arrays.
      mesh: from :func:`make_mesh`.

    Returns:
      The same state: parameters, optimizer state and step replicated, the objective
      state split over ``"data"`` where its leading axis allows.
    """
    return jax.tree.map(_place, state, train_state_shardings(state, mesh))


def data_parallel_train_step(train_step: Callable, mesh: Mesh) -> Callable:
    """Make ``train_step(state, batch, key)`` data-parallel over the ``"data"`` axis.

    The returned step pins the shardings of its inputs and outputs: the batch split
    over ``"data"`` along axis 0, the state as :func:`train_state_shardings`, the
    metrics replicated. Inside, the compiler partitions the loss and inserts the
    gradient all-reduce. It does not jit itself: jit it, or hand it to
    :func:`jebm.train.train_loop` (batches drawn inside the jitted chunk are split
    too). Place the initial state with :func:`shard_train_state` (or leave it
    uncommitted) so ``jit`` sees no conflicting device placement.

    Args:
      train_step: from :func:`jebm.train.make_train_step`.
      mesh: from :func:`make_mesh`; its ``"data"`` size must divide the batch size.

    Returns:
      A step with the same signature and results, up to float reduction order.

    Examples:
      >>> import jax, jax.numpy as jnp, optax
      >>> from jebm.objectives.base import stateless
      >>> from jebm.train import init_train_state, make_train_step
      >>> from jebm.parallel import data_parallel_train_step, make_mesh, shard_train_state
      >>> mesh = make_mesh(num_data_devices=len(jax.devices()))
      >>> objective = stateless(lambda p, k, b: (jnp.mean((b - p) ** 2), {}))
      >>> opt = optax.sgd(0.1)
      >>> batch = jnp.ones((8 * len(jax.devices()), 2))
      >>> state = init_train_state(jax.random.key(0), jnp.zeros(2), opt, objective, batch)
      >>> step = jax.jit(data_parallel_train_step(make_train_step(objective, opt), mesh))
      >>> state, metrics = step(shard_train_state(state, mesh), batch, jax.random.key(1))
      >>> int(state.step)
      1
    """
    batch_spec = batch_sharding(mesh)
    replicated = replicated_sharding(mesh)
    constrain = jax.lax.with_sharding_constraint

    def step(state, batch, key):
        state = constrain(state, train_state_shardings(state, mesh))
        batch = constrain(batch, jax.tree.map(lambda _: batch_spec, batch))
        with jax.sharding.use_abstract_mesh(mesh.abstract_mesh):  # for constrain_chains hints
            state, metrics = train_step(state, batch, key)
        state = constrain(state, train_state_shardings(state, mesh))
        metrics = constrain(metrics, jax.tree.map(lambda _: replicated, metrics))
        return state, metrics

    return step


def use_cpu_cores(num_devices: int | None = None) -> int | None:
    """Expose the host's CPU cores as that many JAX CPU devices, for data parallelism.

    XLA runs one CPU program on about one core when its matrices are small (a batch of
    256 through a 128-wide MLP: its multi-threaded Eigen kernels gain nothing there), so
    a 2-core machine leaves a core idle. Split over one CPU device per core, the same
    update runs on every core (:func:`data_parallel_train_step`); ``jebm train`` does
    this by default (``train.devices``). Call it before anything initialises JAX's
    backends (the first computation does); it changes nothing when the device count
    is already configured (``JAX_NUM_CPU_DEVICES``, ``jax_num_cpu_devices``, or
    ``--xla_force_host_platform_device_count`` in ``XLA_FLAGS``), when the backends
    are up, or on machines whose default backend is an accelerator (whose devices
    the mesh then uses; the CPU devices sit idle).

    Args:
      num_devices: CPU devices to create; default the cores this process may run on
        (``os.sched_getaffinity``, else ``os.cpu_count()``).

    Returns:
      The CPU device count set, or ``None`` if it was left as it was.
    """
    if (jax.config.jax_num_cpu_devices >= 0
            or "xla_force_host_platform_device_count" in os.environ.get("XLA_FLAGS", "")):
        return None
    if num_devices is None:
        affinity = getattr(os, "sched_getaffinity", None)
        num_devices = len(affinity(0)) if affinity is not None else (os.cpu_count() or 1)
    check_int("num_devices", num_devices)
    try:
        jax.config.update("jax_num_cpu_devices", num_devices)
    except RuntimeError:  # the backends are already up: their device count stays
        return None
    return num_devices


def initialize(distributed: bool = False, **kwargs: Any) -> tuple[int, int]:
    """Join the hosts of a multi-host job; call once, first, on every host.

    With ``distributed=True`` this calls ``jax.distributed.initialize(**kwargs)``
    (unless already done). On SLURM, Open MPI, Kubernetes and Cloud TPU the
    coordinator, process count and index are detected; elsewhere pass
    ``coordinator_address``, ``num_processes`` and ``process_id`` (see
    ``docs/distributed.md``). With ``distributed=False`` nothing is started.

    Args:
      distributed: whether this is a multi-host run.
      **kwargs: passed to ``jax.distributed.initialize``.

    Returns:
      ``(jax.process_index(), jax.process_count())``.
    """
    if distributed and not jax.distributed.is_initialized():
        jax.distributed.initialize(**kwargs)
    elif kwargs and not distributed:
        raise ValueError(
            f"Options {sorted(kwargs)} are for jax.distributed.initialize; pass distributed=True."
        )
    return jax.process_index(), jax.process_count()


def host_key(key: PRNGKey) -> PRNGKey:
    """``fold_in(key, process_index)``: a different stream on each host.

    For host-local randomness only (shuffling this host's data files, augmentation
    on the host). Keys passed to jitted global computations must be the same on
    every host; partitioned random draws are already distinct per shard.

    Args:
      key: a PRNG key, the same on every host.

    Returns:
      ``jax.random.fold_in(key, jax.process_index())``.
    """
    return jax.random.fold_in(key, jax.process_index())


def host_slice(global_size: int) -> slice:
    """This host's contiguous part of ``range(global_size)`` (e.g. of a global batch).

    Args:
      global_size: the size over all hosts, a positive int.

    Returns:
      ``slice(i * m, (i + 1) * m)`` with ``i`` the process index and
      ``m = global_size / process_count``.

    Raises:
      ValueError: if ``global_size`` is not divisible by the number of hosts.

    Examples:
      >>> from jebm.parallel import host_slice
      >>> host_slice(8)  # one host
      slice(0, 8, None)
    """
    check_int("global_size", global_size)
    count, index = jax.process_count(), jax.process_index()
    if global_size % count:
        raise ValueError(
            f"global_size ({global_size}) must be divisible by the number of hosts ({count})."
        )
    per_host = global_size // count
    return slice(index * per_host, (index + 1) * per_host)


def global_batch(local_batch: ArrayTree, mesh: Mesh) -> ArrayTree:
    """Assemble each host's part of a batch into one global array split over ``"data"``.

    Every host passes its own rows (e.g. ``data[host_slice(batch_size)]``); the
    result has leading size ``process_count * local_size``. On one host this equals
    :func:`shard_batch`. Call it outside ``jit``, on concrete host-local arrays.

    Args:
      local_batch: pytree of this host's rows, leading axis ``local_size`` (the same on
        every host).
      mesh: from :func:`make_mesh`, over all hosts' devices.

    Returns:
      The pytree of global ``jax.Array`` split along axis 0 over ``"data"``.

    Raises:
      ValueError: if the global leading size is not divisible by the ``"data"`` size.
    """
    sharding = batch_sharding(mesh)
    size, hosts = mesh.shape[DATA_AXIS], jax.process_count()

    def place(path, leaf):
        shape = np.shape(leaf)
        if not shape or (shape[0] * hosts) % size:
            raise ValueError(
                f"local batch leaf {_leaf_name(path)} has shape {shape}; {hosts} host(s) x its "
                f"leading axis must be divisible by the 'data' mesh axis size ({size})."
            )
        return jax.make_array_from_process_local_data(sharding, leaf)

    return jax.tree_util.tree_map_with_path(place, local_batch)


def save_sharded(directory: str | os.PathLike, tree: PyTree) -> None:
    """Save a pytree of (possibly sharded, multi-host) arrays with orbax; wait until written.

    Every host must call it with the same global arrays; each shard is written once,
    by a host that owns it. Typed PRNG keys are stored as their key data.

    Args:
      directory: a new folder (made absolute here); it must not exist yet.
      tree: a pytree of ``jax.Array``.
    """
    tree = jax.tree.map(lambda x: jax.random.key_data(x) if _is_key(x) else x, tree)
    with ocp.StandardCheckpointer() as checkpointer:
        checkpointer.save(os.path.abspath(os.fspath(directory)), tree)
        checkpointer.wait_until_finished()


def restore_sharded(
    directory: str | os.PathLike, template: PyTree, shardings: PyTree | None = None
) -> PyTree:
    """Restore :func:`save_sharded` output onto any mesh, whatever mesh wrote it.

    Args:
      directory: the folder given to :func:`save_sharded`.
      template: a pytree with the structure, shapes and dtypes to restore
        (arrays or ``jax.ShapeDtypeStruct``; typed keys are re-wrapped).
      shardings: a pytree of ``Sharding`` like ``template`` (e.g.
        :func:`train_state_shardings` on the new mesh); default: the template
        arrays' own shardings.

    Returns:
      The restored pytree, each leaf with its target sharding.
    """
    if shardings is None:
        shardings = jax.tree.map(lambda x: x.sharding, template)

    def abstract(x, sharding):
        if _is_key(x):
            x = jax.eval_shape(jax.random.key_data, x)
        return jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=sharding)

    target = jax.tree.map(abstract, template, shardings)
    with ocp.StandardCheckpointer() as checkpointer:
        restored = checkpointer.restore(os.path.abspath(os.fspath(directory)), target)
    return jax.tree.map(
        lambda x, r: jax.random.wrap_key_data(r, impl=jax.random.key_impl(x)) if _is_key(x) else r,
        template,
        restored,
    )

