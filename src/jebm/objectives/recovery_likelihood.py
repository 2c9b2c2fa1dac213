"""Diffusion recovery likelihood: conditional EBMs on noised data (Gao et al. 2021).

Noise a data point, ``x̃ = x + σ ε`` with ``ε ~ N(0, I)``. Given ``x̃``, the model of the
clean point is the *conditional* EBM

    p(x | x̃) ∝ exp(−E(x) − ‖x̃ − x‖² / (2σ²)),

whose normalising constant depends on ``x̃`` but whose log-likelihood gradient has the
usual contrastive form

    ∇θ [−log p(x | x̃)] = ∇θ E(x) − E_{x⁻ ~ p(·|x̃)}[∇θ E(x⁻)].

The quadratic term makes the conditional far easier to sample than the marginal ``exp(−E)``:
for small ``σ`` it is nearly Gaussian around ``x̃``, so a short Langevin run started *at*
``x̃`` suffices. Maximising the recovery likelihood over ``(x, x̃)`` pairs estimates the
marginal EBM consistently (Gao et al., Section 3). The loss here is the surrogate
``mean E(x) − mean E(stop_gradient(x⁻))``, with ``x⁻`` from ``num_steps`` transitions of a
jebm sampler on the conditional log-density ``−E(x) − ‖x̃ − x‖²/(2σ²)``, one chain per data
point, on ``stop_gradient(params)``. Its value is no convergence signal (as for CD); watch
``energy_gap``.

* One noise level (``sigma``, plain ``energy_fn(params, x)``).
* A ladder (``sigmas``, noise-conditional ``energy_fn(params, x, sigma)``): each example
  draws its level uniformly, as in :func:`jebm.objectives.denoising_score_matching_loss`;
  Gao et al. train one conditional EBM per level with a shared network.

The Langevin step of each chain scales with its level, ``h = step_scale · σ²`` (Gao et al.
use ``b²σ²/2``), so one setting serves every level.

:func:`recovery_sample` draws from a trained ladder: starting from any ``initial`` points
(e.g. Gaussian noise of scale ``σ_max``), at each level from the largest down it noises the
current points at that level and replaces them by a conditional sample. If the model were
exact, each such "noise then recover" step would leave the data distribution invariant.

This is the variance-exploding form (``x̃ = x + σε``, one clean ``x`` per pair). Gao et al.
use the variance-preserving chain ``x_{t+1} = √(1 − σ²_{t+1}) x_t + σ_{t+1} ε`` and condition
on the previous level's noisy point rather than on the clean data; the objective per level is
the same conditional EBM on rescaled coordinates.

References:
  Gao, R., Song, Y., Poole, B., Wu, Y. N. and Kingma, D. P. (2021). Learning energy-based
  models by diffusion recovery likelihood. ICLR.
"""

from collections.abc import Callable

import jax
import jax.numpy as jnp
import numpy as np

from jebm._validate import check_float, check_int
from jebm.objectives.base import Objective, num_rows, stateless
from jebm.samplers.base import SamplingAlgorithm
from jebm.samplers.ula import ula
from jebm.types import Array, ArrayTree, EnergyFn, PRNGKey, PyTree

__all__ = [
    "conditional_samples",
    "recovery_likelihood_loss",
    "recovery_likelihood",
    "recovery_sample",
]

# sampler(logdensity_fn, step_size) -> SamplingAlgorithm, e.g. jebm.samplers.ula or mala
ConditionalSampler = Callable[[Callable, Array], SamplingAlgorithm]


def _check_sigmas(sigma, sigmas) -> None:
    if (sigma is None) == (sigmas is None):
        raise ValueError(
            "Give exactly one of sigma (one noise level, energy_fn(params, x)) or sigmas "
            "(a 1-D ladder, noise-conditional energy_fn(params, x, sigma))."
        )
    if sigma is not None:
        check_float("sigma", sigma)
    elif not isinstance(sigmas, jax.core.Tracer):
        value = np.asarray(sigmas)
        if value.ndim != 1 or value.size == 0 or not np.all(value > 0):
            raise ValueError(f"sigmas must be a non-empty 1-D array of levels > 0, got {value}.")


def _check_chain(num_steps, step_scale) -> None:
    check_int("num_steps", num_steps)
    check_float("step_scale", step_scale)


def _tree_sq_dist(a: ArrayTree, b: ArrayTree) -> Array:
    return sum(jnp.sum((u - v) ** 2) for u, v in zip(jax.tree.leaves(a), jax.tree.leaves(b),
                                                     strict=True))  # fmt: skip


def _noise_like(key: PRNGKey, tree: ArrayTree) -> ArrayTree:
    leaves, treedef = jax.tree.flatten(tree)
    keys = jax.random.split(key, len(leaves))
    return jax.tree.unflatten(
        treedef, [jax.random.normal(k, x.shape, x.dtype) for k, x in zip(keys, leaves,
                                                                        strict=True)]
    )  # fmt: skip


def conditional_samples(
    key: PRNGKey,
    params: PyTree,
    noisy: ArrayTree,
    sigma: Array,
    *,
    energy_fn: Callable,
    num_steps: int,
    step_scale: float | Array,
    sampler: ConditionalSampler = ula,
    conditional: bool = False,
) -> tuple[ArrayTree, dict[str, Array]]:
    """Short-run samples of ``p(x | x̃) ∝ exp(−E(x) − ‖x̃ − x‖²/(2σ²))``, one chain per row.

    Args:
      key: PRNG key; chain ``i`` step ``t`` uses ``fold_in(split(key, n)[i], t)``.
      params: energy parameters (not differentiated: wrap in ``stop_gradient`` if needed).
      noisy: ``x̃``, ``(n, *event)``; the chains start there.
      sigma: ``(n,)`` noise level of each row (or a scalar for all).
      energy_fn: ``energy_fn(params, x)``, or ``energy_fn(params, x, sigma)`` when
        ``conditional``.
      num_steps: transitions per chain (static).
      step_scale: the step size of a chain is ``step_scale · σ²``; may be traced.
      sampler: ``sampler(logdensity_fn, step_size) -> SamplingAlgorithm``; default
        :func:`jebm.samplers.ula` (coupled Langevin); :func:`jebm.samplers.mala` adds a
        Metropolis correction; ``functools.partial`` binds other options (clipping, bounds).
      conditional: whether ``energy_fn`` takes the noise level.

    Returns:
      ``(samples (n, *event), metrics)``: ``metrics`` averages every numeric field of the
      sampler's info over chains and steps (e.g. ``acceptance_rate`` for MALA).
    """
    _check_chain(num_steps, step_scale)
    n = num_rows(noisy)
    sigma = jnp.broadcast_to(jnp.asarray(sigma, jax.tree.leaves(noisy)[0].dtype), (n,))

    def chain(x_tilde, s, k):
        energy = (lambda x: energy_fn(params, x, s)) if conditional else (
            lambda x: energy_fn(params, x))  # fmt: skip

        def logdensity(x):
            return -energy(x) - _tree_sq_dist(x_tilde, x) / (2.0 * s**2)

        alg = sampler(logdensity, step_scale * s**2)

        def step(state, t):
            return alg.step(jax.random.fold_in(k, t), state)

        state, info = jax.lax.scan(step, alg.init(x_tilde), jnp.arange(num_steps))
        return state.position, info

    samples, info = jax.vmap(chain)(noisy, sigma, jax.random.split(key, n))
    metrics = {}
    for name, value in getattr(info, "_asdict", lambda: {})().items():
        if isinstance(value, jax.Array):
            metrics[name] = jnp.mean(value.astype(jnp.float32))
    return samples, metrics


def recovery_likelihood_loss(
    params: PyTree,
    key: PRNGKey,
    batch: ArrayTree,
    *,
    energy_fn: EnergyFn | Callable[[PyTree, ArrayTree, Array], Array],
    num_steps: int,
    step_scale: float | Array,
    sigma: float | Array | None = None,
    sigmas: Array | None = None,
    sampler: ConditionalSampler = ula,
) -> tuple[Array, dict[str, Array]]:
    """The recovery-likelihood surrogate ``mean E(x) − mean E(stop_gradient(x⁻))``.

    Args:
      params: energy parameters.
      key: PRNG key for the noise, the levels and the chains.
      batch: clean data ``(n, *event)``.
      energy_fn: ``energy_fn(params, x)``, or ``energy_fn(params, x, sigma)`` with ``sigmas``.
      num_steps: Langevin transitions per conditional chain (static).
      step_scale: step size relative to ``σ²``; may be traced.
      sigma: the single noise level; may be traced.
      sigmas: the ladder of levels; may be traced.
      sampler: see :func:`conditional_samples`.

    Returns:
      ``(loss, metrics)`` with ``loss``, ``data_energy``, ``negative_energy``,
      ``energy_gap`` (``data − negative``), ``recovery_distance`` (mean ``‖x⁻ − x‖²`` per
      coordinate) and the sampler's averaged info.

    References:
      Gao et al. (2021), Algorithm 1 (one level per example, Langevin from ``x̃``).
    """
    _check_sigmas(sigma, sigmas)
    _check_chain(num_steps, step_scale)
    n = num_rows(batch)
    k_level, k_noise, k_chain = jax.random.split(key, 3)
    dtype = jax.tree.leaves(batch)[0].dtype
    if sigmas is None:
        levels = jnp.broadcast_to(jnp.asarray(sigma, dtype), (n,))
        energy = lambda p, x, s: energy_fn(p, x)
    else:
        sigmas = jnp.asarray(sigmas, dtype)
        levels = sigmas[jax.random.randint(k_level, (n,), 0, sigmas.shape[0])]
        energy = energy_fn
    eps = _noise_like(k_noise, batch)
    noisy = jax.tree.map(
        lambda x, e: x + levels.reshape((n,) + (1,) * (x.ndim - 1)) * e, batch, eps
    )
    negatives, sampler_metrics = conditional_samples(
        k_chain, jax.lax.stop_gradient(params), noisy, levels, energy_fn=energy,
        num_steps=num_steps, step_scale=step_scale, sampler=sampler, conditional=True,
    )  # fmt: skip
    negatives = jax.lax.stop_gradient(negatives)
    e_pos = jax.vmap(lambda x, s: energy(params, x, s))(batch, levels)
    e_neg = jax.vmap(lambda x, s: energy(params, x, s))(negatives, levels)
    loss = jnp.mean(e_pos) - jnp.mean(e_neg)
    size = sum(x[0].size for x in jax.tree.leaves(batch))
    distance = jnp.mean(jax.vmap(_tree_sq_dist)(negatives, batch)) / size
    metrics = {
        "loss": loss,
        "data_energy": jnp.mean(e_pos),
        "negative_energy": jnp.mean(e_neg),
        "energy_gap": jnp.mean(e_pos) - jnp.mean(e_neg),
        "recovery_distance": distance,
        **{f"sampler_{k}": v for k, v in sampler_metrics.items()},
    }
    return loss, metrics


def recovery_likelihood(
    energy_fn: EnergyFn | Callable[[PyTree, ArrayTree, Array], Array],
    *,
    num_steps: int,
    step_scale: float | Array,
    sigma: float | Array | None = None,
    sigmas: Array | None = None,
    sampler: ConditionalSampler = ula,
) -> Objective:
    """Diffusion recovery likelihood as an :class:`~jebm.objectives.base.Objective`.

    See :func:`recovery_likelihood_loss`.

    Args:
      energy_fn: ``energy_fn(params, x)``, or ``energy_fn(params, x, sigma)`` with ``sigmas``.
      num_steps: Langevin transitions per conditional chain (static).
      step_scale: step size relative to ``σ²``; may be traced.
      sigma: the single noise level; may be traced.
      sigmas: the ladder of levels; may be traced.
      sampler: see :func:`conditional_samples`.

    Returns:
      A stateless ``Objective`` whose loss is :func:`recovery_likelihood_loss`.

    Examples:
      >>> import jax, jax.numpy as jnp
      >>> from jebm.objectives import recovery_likelihood
      >>> objective = recovery_likelihood(lambda p, x: 0.5 * jnp.sum((x - p) ** 2),
      ...                                 num_steps=5, step_scale=0.1, sigma=0.3)
      >>> loss, (metrics, state) = objective.loss(0.0, jax.random.key(0), jnp.ones((3, 2)), ())
    """
    _check_sigmas(sigma, sigmas)
    _check_chain(num_steps, step_scale)
    return stateless(
        lambda p, k, b: recovery_likelihood_loss(
            p, k, b, energy_fn=energy_fn, num_steps=num_steps, step_scale=step_scale,
            sigma=sigma, sigmas=sigmas, sampler=sampler,
        )
    )


def recovery_sample(
    key: PRNGKey,
    params: PyTree,
    initial: ArrayTree,
    *,
    energy_fn: Callable[[PyTree, ArrayTree, Array], Array],
    sigmas: Array,
    num_steps: int,
    step_scale: float | Array,
    sampler: ConditionalSampler = ula,
) -> ArrayTree:
    """Samples of a trained ladder: noise at each level (largest first), then recover.

    Args:
      key: PRNG key; level ``l`` uses ``fold_in(key, l)``.
      params: parameters of the noise-conditional ``energy_fn(params, x, sigma)``.
      initial: ``(n, *event)`` starting points (e.g. ``σ_max ·`` standard normal noise).
      sigmas: the levels, visited in *descending* order whatever their order here (static
        length).
      num_steps: Langevin transitions per level.
      step_scale: step size relative to ``σ²``.
      sampler: see :func:`conditional_samples`.

    Returns:
      ``(n, *event)`` samples after the smallest level.
    """
    _check_chain(num_steps, step_scale)
    levels = jnp.sort(jnp.asarray(sigmas))[::-1]
    n = num_rows(initial)

    def level(x, inputs):
        s, l_index = inputs
        k_noise, k_chain = jax.random.split(jax.random.fold_in(key, l_index))
        noisy = jax.tree.map(lambda u, e: u + s * e, x, _noise_like(k_noise, x))
        x, _ = conditional_samples(
            k_chain, params, noisy, jnp.full((n,), s), energy_fn=energy_fn,
            num_steps=num_steps, step_scale=step_scale, sampler=sampler, conditional=True,
        )  # fmt: skip
        return x, None

    out, _ = jax.lax.scan(level, initial, (levels, jnp.arange(levels.shape[0])))
    return out
