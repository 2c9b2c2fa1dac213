"""The devices a run is spread over: its sampling chains and its training batches."""

import jax

from jebm import parallel

__all__ = ["most_devices", "chain_spread", "training_devices"]


def most_devices(*sizes: int) -> int:
    """The most of the default backend's devices that divide every one of ``sizes``."""
    return max(d for d in range(1, len(jax.devices()) + 1) if all(n % d == 0 for n in sizes))


def chain_spread(num_chains: int):
    """``x0 -> x0`` split over the most devices that divide ``num_chains`` (identity on
    one device): chains are independent, so each device runs its share and the draws do
    not change (partitionable Threefry)."""
    devices = most_devices(num_chains)
    if devices == 1:
        return lambda x0: x0
    sharding = parallel.chain_sharding(parallel.make_mesh(num_chain_devices=devices,
                                                          num_data_devices=1))
    return lambda x0: jax.lax.with_sharding_constraint(x0, sharding)


def training_devices(config) -> int:
    """How many devices ``config``'s training is split over (``train.devices``).

    ``0`` takes the most of the default backend's devices that divide both
    ``data.batch_size`` and ``objective.num_chains``; a positive count is used as given.

    Args:
      config: the run's config (``train.devices``, ``data.batch_size``, ``objective.num_chains``).

    Returns:
      The device count (1: no data parallelism).

    Raises:
      ValueError: if ``train.devices`` exceeds the devices there are or does not divide
        the batch size and the chain count.
    """
    available = len(jax.devices())
    sizes = {"data.batch_size": config.data.batch_size,
             "objective.num_chains": config.objective.num_chains or config.data.batch_size}
    wanted = config.train.devices
    if wanted == 0:
        return most_devices(*sizes.values())
    if wanted > available:
        raise ValueError(f"train.devices={wanted}, but there are only {available} "
                         f"{jax.default_backend()} devices (0 uses what there is).")
    for name, size in sizes.items():
        if size % wanted:
            raise ValueError(f"train.devices={wanted} does not divide {name}={size}; "
                             "data parallelism splits it evenly over the devices.")
    return wanted
