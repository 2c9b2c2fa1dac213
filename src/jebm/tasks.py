"""Conditional sampling with a trained energy: inpainting, denoising, class-conditional draws.

Each task is MCMC on a derived energy, run by :func:`jebm.run_chains` with the sampler
the caller chooses — a factory ``sampler(logdensity_fn) -> SamplingAlgorithm`` such as
``jebm.samplers.by_name("ula", (8, 8), step_size=10.0, noise_scale=0.005,
clip_grad=0.01, bounds=(0.0, 1.0))`` (short-run Langevin on pixels) or a run's own
``run.sampler``:

* **inpainting** — ``p(x_m | x_o) ∝ exp(−E(x_m, x_o))`` with the observed pixels held
  fixed, the energy of :func:`jebm.energy.masked`;
* **denoising** — a chain over every pixel started at the corrupted image;
* **class-conditional draws** — ``p(x | y) ∝ exp(−E(x, y))`` with ``y`` fixed
  (:func:`jebm.energy.conditioned`; JEM's ``E(x, y) = −g(x)[y]``).

References:
  Du, Y. and Mordatch, I. (2019). Implicit generation and generalization in
  energy-based models. NeurIPS. (inpainting, Sec. 4)
  Grathwohl, W. et al. (2020). Your classifier is secretly an energy based model and
  you should treat it like one. ICLR. (class-conditional sampling)
"""

from collections.abc import Callable

import jax
import jax.numpy as jnp
from jaxtyping import Bool, Float, Int

from jebm._validate import check_int
from jebm.energy import conditioned, logdensity_fn, masked
from jebm.samplers.runner import run_chains
from jebm.types import Array, EnergyFn, PRNGKey, PyTree

__all__ = ["inpaint", "denoise", "sample_chains", "conditional_samples"]

SamplerFactory = Callable


def _final(key: PRNGKey, sampler: SamplerFactory, logdensity, start: Array,
           num_steps: int) -> Array:
    """The final position of one chain of ``num_steps`` transitions from ``start``."""
    out = run_chains(key, sampler(logdensity), start[None], num_steps, keep_trace=False)
    return out.state.position[0]


def inpaint(
    key: PRNGKey,
    energy_fn: EnergyFn,
    params: PyTree,
    image: Float[Array, "..."],
    mask: Bool[Array, "..."],
    *,
    sampler: SamplerFactory,
    num_steps: int = 60,
    init: Float[Array, "..."] | None = None,
) -> Array:
    """Fill the pixels ``mask`` of one image by MCMC on ``E``, the other pixels fixed.

    The chain samples the energy ``E(where(mask, z, image))``: unmasked coordinates
    never influence it, and the result is ``where(mask, z, image)``, so observed pixels
    are returned exactly unchanged.

    Args:
      key: PRNG key.
      energy_fn: ``energy_fn(params, x) -> scalar`` for one image.
      params: its parameters.
      image: one image; its masked pixels are where the chain starts unless ``init``.
      mask: boolean, the shape of ``image``; ``True`` marks the pixels to fill in.
      sampler: ``sampler(logdensity_fn) -> SamplingAlgorithm``.
      num_steps: transitions (static).
      init: the start of the masked pixels (e.g. uniform noise); default ``image``.

    Returns:
      The completed image, ``image`` wherever ``mask`` is ``False``.

    Examples:
      >>> import jax, jax.numpy as jnp
      >>> from jebm.samplers import by_name
      >>> from jebm.tasks import inpaint
      >>> energy_fn = lambda m, x: 0.5 * jnp.sum((x - m) ** 2)
      >>> image, mask = jnp.full(4, 0.9), jnp.array([True, True, False, False])
      >>> gradient_descent = by_name("ula", (4,), step_size=0.1, noise_scale=0.0)
      >>> out = inpaint(jax.random.key(0), energy_fn, 0.5, image, mask,
      ...               sampler=gradient_descent, num_steps=100)
      >>> [round(float(v), 3) for v in out]
      [0.5, 0.5, 0.9, 0.9]

    References:
      Du and Mordatch (2019), Sec. 4.
    """
    check_int("num_steps", num_steps)
    image = jnp.asarray(image)
    mask = jnp.asarray(mask, bool)
    if mask.shape != image.shape:
        raise ValueError(f"mask shape {mask.shape} differs from image shape {image.shape}.")
    start = image if init is None else jnp.where(mask, jnp.asarray(init, image.dtype), image)
    logdensity = logdensity_fn(masked(energy_fn, mask, image), params)
    return jnp.where(mask, _final(key, sampler, logdensity, start, num_steps), image)


def denoise(
    key: PRNGKey,
    energy_fn: EnergyFn,
    params: PyTree,
    noisy: Float[Array, "..."],
    *,
    sampler: SamplerFactory,
    num_steps: int = 20,
) -> Array:
    """MCMC on every pixel of one corrupted image, started from the image itself.

    A short, low-temperature run moves ``noisy`` towards a nearby low-energy image (a
    noise-free ULA sampler makes it gradient descent on ``E``; a clamped one keeps it in
    the pixel box).

    Args:
      key: PRNG key.
      energy_fn: ``energy_fn(params, x) -> scalar``.
      params: its parameters.
      noisy: one corrupted image.
      sampler: ``sampler(logdensity_fn) -> SamplingAlgorithm``.
      num_steps: transitions (static).

    Returns:
      The denoised image.
    """
    check_int("num_steps", num_steps)
    noisy = jnp.asarray(noisy)
    return _final(key, sampler, logdensity_fn(energy_fn, params), noisy, num_steps)


def sample_chains(
    key: PRNGKey,
    energy_fn: EnergyFn,
    params: PyTree,
    start: Float[Array, "n ..."],
    *,
    sampler: SamplerFactory,
    num_steps: int = 60,
    num_frames: int = 1,
) -> Array:
    """Chains from ``start`` with ``num_frames`` evenly spaced snapshots.

    Args:
      key: PRNG key.
      energy_fn: ``energy_fn(params, x) -> scalar``.
      params: its parameters.
      start: ``(n, *event)`` initial positions (e.g. uniform noise).
      sampler: ``sampler(logdensity_fn) -> SamplingAlgorithm``.
      num_steps: steps per chain (static); a multiple of ``num_frames``.
      num_frames: snapshots kept, after steps ``num_steps/num_frames, …, num_steps``.

    Returns:
      ``(num_frames, n, *event)``; the last frame is the final positions.
    """
    check_int("num_steps", num_steps)
    check_int("num_frames", num_frames)
    if num_steps % num_frames:
        raise ValueError(
            f"num_frames must divide num_steps={num_steps}, got {num_frames!r}.")
    algorithm = sampler(logdensity_fn(energy_fn, params))
    return run_chains(key, algorithm, start, num_steps, thin=num_steps // num_frames).trace


def conditional_samples(
    key: PRNGKey,
    conditional_energy_fn: Callable[[PyTree, Array, Array], Array],
    params: PyTree,
    labels: Int[Array, " n"],
    start: Float[Array, "n ..."],
    *,
    sampler: SamplerFactory,
    num_steps: int = 60,
) -> Array:
    """Chain ``i`` samples ``p(x | labels[i]) ∝ exp(−E(x, labels[i]))`` from ``start[i]``.

    Args:
      key: PRNG key.
      conditional_energy_fn: ``E(params, x, y) -> scalar`` (e.g. JEM's ``−g(x)[y]``).
      params: its parameters.
      labels: ``(n,)`` the class of each chain.
      start: ``(n, *event)`` initial positions.
      sampler: ``sampler(logdensity_fn) -> SamplingAlgorithm``.
      num_steps: transitions (static).

    Returns:
      ``(n, *event)`` final positions.
    """
    check_int("num_steps", num_steps)
    labels = jnp.asarray(labels)
    if labels.shape[:1] != start.shape[:1]:
        raise ValueError(f"{labels.shape[0]} labels for {start.shape[0]} chains.")

    def one(k, y, x0):
        energy = conditioned(conditional_energy_fn, y)
        return _final(k, sampler, logdensity_fn(energy, params), x0, num_steps)

    return jax.vmap(one)(jax.random.split(key, labels.shape[0]), labels, start)
