"""Annealed Langevin dynamics over a decreasing noise ladder (NCSN sampling).

For a noise-conditional model ``log p_σ(x)`` (the data density convolved with
``N(0, σ²I)``, up to a constant) and a ladder ``σ₁ > σ₂ > … > σ_L``, run ``T`` unadjusted
Langevin steps at each level,

    x ← x + (α_i / 2) ∇ₓ log p_{σ_i}(x) + √α_i ξ,   ξ ~ N(0, I),   α_i = ε σ_i² / σ_L²,

starting from broad noise. Large σ connects the modes, so the chains spread over them in
the right proportions before the small-σ levels sharpen each mode; single-σ Langevin,
by contrast, keeps each chain in the basin it started in, and mode weights come out
wrong (Song and Ermon, 2019, Sec. 3.2.2).

One ``step`` of the returned :class:`~jebm.samplers.base.SamplingAlgorithm` is *one*
Langevin step; the state carries the global step index, and the level is
``min(step // T, L − 1)``, so ``jebm.run_chains(key, alg, x0, num_steps=L * T)`` runs the
full ladder exactly once (further steps stay at ``σ_L``). Each step costs one gradient.

References:
  Song, Y. and Ermon, S. (2019). Generative modeling by estimating gradients of the data
  distribution. NeurIPS.
"""

from collections.abc import Callable
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Float

from jebm._validate import check_float, check_int
from jebm.samplers.base import (
    SamplingAlgorithm,
    logdensity_and_grad,
    normal_like,
    strong_dtype,
    tree_all_finite,
    tunables_valid,
)
from jebm.types import Array, ArrayTree, PRNGKey

__all__ = [
    "AnnealedLangevinState",
    "AnnealedLangevinInfo",
    "init",
    "build_kernel",
    "annealed_langevin",
]

NoiseConditionalLogDensityFn = Callable[[ArrayTree, Array], Array]


class AnnealedLangevinState(NamedTuple):
    """State of an annealed Langevin chain.

    Attributes:
      position: the current position (a pytree of arrays).
      step: the int32 global step index; the level is ``min(step // T, L − 1)``.
    """

    position: ArrayTree
    step: Array  # int32 global step index; the level is min(step // T, L - 1)


class AnnealedLangevinInfo(NamedTuple):
    """Diagnostics of one annealed Langevin step.

    Attributes:
      level: the noise level index ``i`` used by this step.
      sigma: the noise level ``σ_i`` used by this step.
      step_size: the Langevin step ``α_i = ε σ_i² / σ_L²``.
      is_divergent: whether the new position was not finite or a traced ``eps`` or
        ``sigmas`` was bad; the step was then not taken.
    """

    level: Array  # the noise level index used by this step
    sigma: Array
    step_size: Array  # α_i
    is_divergent: Array  # non-finite new position or bad traced eps/sigma: step not taken


def init(position: ArrayTree) -> AnnealedLangevinState:
    """A state at step 0 (the largest noise level).

    Args:
      position: the starting position (a pytree of arrays).

    Returns:
      An ``AnnealedLangevinState`` at ``position`` with ``step = 0``.
    """
    return AnnealedLangevinState(strong_dtype(position), jnp.zeros((), jnp.int32))


def build_kernel(num_steps_per_level: int):
    """Return ``kernel(key, state, logdensity_fn, sigmas, eps) -> (state, info)``.

    ``logdensity_fn(x, sigma)`` is the noise-conditional log-density; ``sigmas`` (the
    decreasing ladder, shape ``(L,)``) and ``eps`` are traced.

    Args:
      num_steps_per_level: ``T``, the Langevin steps per noise level (a static int).

    Returns:
      The kernel function.

    Raises:
      ValueError: if ``num_steps_per_level`` is not a positive int.
    """
    num_steps_per_level = check_int("num_steps_per_level", num_steps_per_level)

    def kernel(
        key: PRNGKey,
        state: AnnealedLangevinState,
        logdensity_fn: NoiseConditionalLogDensityFn,
        sigmas: Array,
        eps: Array,
    ) -> tuple[AnnealedLangevinState, AnnealedLangevinInfo]:
        level = jnp.minimum(state.step // num_steps_per_level, sigmas.shape[0] - 1)
        sigma = sigmas[level]
        alpha = eps * (sigma / sigmas[-1]) ** 2
        _, grad = logdensity_and_grad(lambda x: logdensity_fn(x, sigma), state.position)
        noise = normal_like(key, state.position)
        position = jax.tree.map(
            lambda x, g, z: x + 0.5 * alpha * g + jnp.sqrt(alpha) * z, state.position, grad, noise
        )
        valid = tree_all_finite(position) & tunables_valid(eps, sigmas)
        position = jax.tree.map(lambda a, b: jnp.where(valid, a, b), position, state.position)
        new_state = AnnealedLangevinState(position, state.step + 1)
        return new_state, AnnealedLangevinInfo(level, sigma, alpha, ~valid)

    return kernel


def annealed_langevin(
    logdensity_fn: NoiseConditionalLogDensityFn,
    sigmas: Float[Array, " L"],
    num_steps_per_level: int,
    eps: float | Array,
) -> SamplingAlgorithm:
    """Annealed Langevin dynamics as a ``SamplingAlgorithm`` of ``L * T`` single steps.

    Args:
      logdensity_fn: ``(x, sigma) ↦ log p_σ(x)`` up to a constant in ``x`` (for an
        energy ``E(params, x, σ)`` use ``jebm.energy.logdensity_fn(energy_fn, params)``,
        which passes ``σ`` through).
      sigmas: the noise ladder ``σ₁ > … > σ_L`` (traced; checked when concrete).
      num_steps_per_level: ``T`` Langevin steps per level (static).
      eps: ``ε``, the step size at the last level; level ``i`` uses ``ε σ_i² / σ_L²``.
        A Python number is checked here (finite, > 0); a traced value that is not, or a
        step to a non-finite position, is not taken and sets ``info.is_divergent``.

    Returns:
      ``SamplingAlgorithm(init, step)``; run it for ``len(sigmas) * num_steps_per_level``
      steps, e.g. with :func:`jebm.samplers.runner.run_chains`.

    Raises:
      ValueError: for a bad ladder, ``num_steps_per_level`` or Python-number ``eps``.

    Examples:
      >>> import jax, jax.numpy as jnp
      >>> from jebm.samplers.annealed import annealed_langevin
      >>> logdensity = lambda x, s: -0.5 * jnp.sum(x**2) / (1.0 + s**2)
      >>> alg = annealed_langevin(logdensity, jnp.array([3.0, 1.0, 0.1]), 10, 1e-3)
      >>> state = alg.init(jnp.zeros(2))
      >>> state, info = alg.step(jax.random.key(0), state)
      >>> int(state.step), int(info.level)
      (1, 0)

    References:
      Song, Y. and Ermon, S. (2019). Generative modeling by estimating gradients of the
      data distribution. NeurIPS. Algorithm 1.
    """
    sigmas = jnp.asarray(sigmas, jnp.float32)
    if sigmas.ndim != 1 or sigmas.shape[0] < 1:
        raise ValueError(f"sigmas must be a non-empty 1-D array, got shape {sigmas.shape}.")
    if not isinstance(sigmas, jax.core.Tracer):
        s = np.asarray(sigmas)
        if np.any(s <= 0) or np.any(np.diff(s) > 0):
            raise ValueError(f"sigmas must be positive and non-increasing, got {s}.")
    eps = check_float("eps", eps)
    kernel = build_kernel(num_steps_per_level)
    eps = jnp.asarray(eps, jnp.float32)
    return SamplingAlgorithm(
        init=init,
        step=lambda rng_key, state: kernel(rng_key, state, logdensity_fn, sigmas, eps),
    )
