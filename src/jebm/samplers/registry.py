"""Samplers by name: the one registry the CLI, AIS, the objectives and the configs share.

:func:`by_name` turns a name and its tunables into a factory ``factory(logdensity_fn,
**overrides) -> SamplingAlgorithm``; overrides replace a bound tunable (AIS passes a
different ``step_size`` at each bridge). ``event_shape`` fills what a kernel needs to
know about the space (HMC's identity inverse mass matrix over the flattened event).

Examples:
  >>> import jax.numpy as jnp
  >>> from jebm.samplers import by_name
  >>> factory = by_name("hmc", (8, 8), step_size=0.1, num_integration_steps=3)
  >>> algorithm = factory(lambda x: -0.5 * jnp.sum(x**2))
  >>> algorithm.init(jnp.zeros((8, 8))).position.shape
  (8, 8)
"""

import math
from collections.abc import Callable, Sequence

import jax.numpy as jnp

from jebm.samplers.base import SamplingAlgorithm
from jebm.samplers.hmc import hmc
from jebm.samplers.mala import mala
from jebm.samplers.nuts import nuts
from jebm.samplers.rwmh import rwmh
from jebm.samplers.ula import ula
from jebm.samplers.underdamped import underdamped_langevin
from jebm.types import LogDensityFn

__all__ = ["SAMPLERS", "TARGET_ACCEPTANCE", "by_name"]

SamplerFactory = Callable[..., SamplingAlgorithm]


def _hmc(logdensity_fn, step_size, num_integration_steps=5, *, event_shape):
    inverse_mass_matrix = jnp.ones(math.prod(event_shape), jnp.float32)
    return hmc(logdensity_fn, step_size, inverse_mass_matrix, num_integration_steps)


def _nuts(logdensity_fn, step_size, *, event_shape):
    return nuts(logdensity_fn, step_size, jnp.ones(math.prod(event_shape), jnp.float32))


# name -> (constructor(logdensity_fn, **tunables), tunables it takes, needs event_shape)
SAMPLERS: dict[str, tuple[Callable, tuple[str, ...], bool]] = {
    "ula": (ula, ("step_size", "noise_scale", "clip_grad", "bounds"), False),
    "mala": (mala, ("step_size",), False),
    "rwmh": (rwmh, ("step_size",), False),
    "hmc": (_hmc, ("step_size", "num_integration_steps"), True),
    "underdamped": (underdamped_langevin, ("step_size", "friction"), False),
    "nuts": (_nuts, ("step_size",), True),  # BlackJAX's NUTS behind jebm's contract
}

# Acceptance targets for step-size adaptation: MALA's optimal-scaling 0.574 (Roberts and
# Rosenthal, 1998), HMC's 0.65 (Beskos et al., 2013), RWMH's 0.234 (Roberts et al., 1997).
TARGET_ACCEPTANCE = {"mala": 0.574, "hmc": 0.65, "rwmh": 0.234, "nuts": 0.8}


def by_name(name: str, event_shape: Sequence[int], **tunables) -> SamplerFactory:
    """``factory(logdensity_fn, **overrides) -> SamplingAlgorithm`` for the sampler ``name``.

    Args:
      name: one of :data:`SAMPLERS` (``ula``, ``mala``, ``rwmh``, ``hmc``,
        ``underdamped``, ``nuts``; NUTS needs BlackJAX). Parallel tempering wraps one of
        these and is built directly (:func:`jebm.samplers.parallel_tempering`).
      event_shape: the shape of one position.
      **tunables: the sampler's keyword tunables (``step_size``, ``noise_scale``,
        ``clip_grad``, ``bounds``, ``num_integration_steps``, ``friction``). A tunable
        the sampler does not take must be ``None`` (so one config section serves every
        sampler).

    Returns:
      The factory; keyword overrides replace bound tunables.

    Raises:
      ValueError: for an unknown name, or a non-``None`` tunable the sampler does not take.
    """
    if name not in SAMPLERS:
        raise ValueError(f"unknown sampler {name!r}; choose one of {tuple(SAMPLERS)}.")
    constructor, accepted, needs_shape = SAMPLERS[name]
    unknown = sorted(k for k, v in tunables.items() if k not in accepted and v is not None)
    if unknown:
        raise ValueError(f"sampler {name!r} takes {accepted}, not {', '.join(unknown)}.")
    bound = {k: v for k, v in tunables.items() if k in accepted}
    if needs_shape:
        bound["event_shape"] = tuple(int(s) for s in event_shape)
    if name == "ula" and bound.get("bounds") is not None:
        bound["bounds"] = tuple(bound["bounds"])

    def factory(logdensity_fn: LogDensityFn, **overrides) -> SamplingAlgorithm:
        return constructor(logdensity_fn, **{**bound, **overrides})

    return factory
