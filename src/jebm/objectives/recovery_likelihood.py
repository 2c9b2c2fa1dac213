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
  Gao et al. train one conditional EBM per level with a shared network. Two forms:

  - ``form="clean"``: every level models the *clean* data, ``x̃ = x + σ_i ε`` and
    ``E(x, σ_i) ≈ −log p(x)`` at every ``i``. Sampling must then recover a clean image from
    ``x̃`` at every level, and at a large ``σ`` that is as hard as sampling ``p`` itself.
  - ``form="diffusion"`` (Gao et al.'s chain, in variance-exploding coordinates): level
    ``σ_i`` models the data smoothed at ``σ_i``, ``x_i = x + σ_i ε``, and is trained
    through ``p(x_i | x_{i+1}) ∝ exp(−E(x_i, σ_i) − ‖x_{i+1} − x_i‖²/(2δ_i²))`` with the
    next level up ``x_{i+1} = x_i + δ_i ε′``, ``δ_i² = σ_{i+1}² − σ_i²``. Each conditional
    moves only one rung: for a ladder of modest ratio ``δ_i`` is comparable to ``σ_i``, the
    scale on which ``p_{σ_i}`` varies, so the conditional is close to a Gaussian and a short
    Langevin run from ``x_{i+1}`` samples it well; sampling is the ancestral chain
    ``x_{L−1} → … → x_0`` that training saw. The top level ``σ_{L−1}`` has
    no energy of its own: its marginal is taken as given (the sampler's ``initial``).

The Langevin step of each chain scales with its level, ``h = step_scale · σ²`` (``δ_i²`` in
the diffusion form; Gao et al. use ``b²σ²/2``), so one setting serves every level.

:func:`recovery_sample` draws from a trained ladder, starting from ``initial`` points that
stand for the data noised at ``σ_max`` (e.g. the mean image plus ``σ_max`` noise). Clean
form: the first level recovers them as they are, every later level noises the current
points at its ``σ`` and replaces them by a conditional sample; if the model were exact, each
"noise then recover" step would leave the data distribution invariant. Diffusion form: each
level ``i = L−2 … 0`` replaces ``x_{i+1}`` by a sample of ``p(x_i | x_{i+1})``, no noise
added; if the model were exact and ``initial ~ p_{σ_max}``, ``x_i ~ p_{σ_i}`` at every level.

Both are variance-exploding (``x̃ = x + σε``). Gao et al. use the variance-preserving chain
``x_{t+1} = √(1 − σ²_{t+1}) x_t + σ_{t+1} ε``; the diffusion form is the same conditional
EBM per level on rescaled coordinates.

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

FORMS = ("clean", "diffusion")


def _check_form(form, sigmas) -> None:
    if form not in FORMS:
        raise ValueError(f"form must be one of {FORMS}, got {form!r}.")
    if form == "diffusion":
        if sigmas is None:
            raise ValueError("form='diffusion' needs a ladder sigmas (a noise-conditional "
                             "energy_fn(params, x, sigma)), not one sigma.")
        if not isinstance(sigmas, jax.core.Tracer) and np.asarray(sigmas).size < 2:
            raise ValueError(f"form='diffusion' needs >= 2 levels in sigmas, got {sigmas}.")


def _rungs(sigmas: Array) -> tuple[Array, Array]:
    """Ascending levels ``σ_0 < … < σ_{L−2}`` of the diffusion form and the noise
    ``δ_i = √(σ_{i+1}² − σ_i²)`` from each to the next level up."""
    s = jnp.sort(sigmas)
    return s[:-1], jnp.sqrt(s[1:] ** 2 - s[:-1] ** 2)


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
    energy_sigma: Array | None = None,
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
      energy_sigma: ``(n,)`` (or scalar) level given to a conditional ``energy_fn``;
        default ``sigma`` (the clean form; the diffusion form reads ``E(x, σ_i)`` with
        the quadratic at ``δ_i``).

    Returns:
      ``(samples (n, *event), metrics)``: ``metrics`` averages every numeric field of the
      sampler's info over chains and steps (e.g. ``acceptance_rate`` for MALA).
    """
    _check_chain(num_steps, step_scale)
    n = num_rows(noisy)
    dtype = jax.tree.leaves(noisy)[0].dtype
    sigma = jnp.broadcast_to(jnp.asarray(sigma, dtype), (n,))
    level = sigma if energy_sigma is None else jnp.broadcast_to(
        jnp.asarray(energy_sigma, dtype), (n,))  # fmt: skip

    def chain(x_tilde, s, e_s, k):
        energy = (lambda x: energy_fn(params, x, e_s)) if conditional else (
            lambda x: energy_fn(params, x))  # fmt: skip

        def logdensity(x):
            return -energy(x) - _tree_sq_dist(x_tilde, x) / (2.0 * s**2)

        alg = sampler(logdensity, step_scale * s**2)

        def step(state, t):
            return alg.step(jax.random.fold_in(k, t), state)

        state, info = jax.lax.scan(step, alg.init(x_tilde), jnp.arange(num_steps))
        return state.position, info

    samples, info = jax.vmap(chain)(noisy, sigma, level, jax.random.split(key, n))
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
    form: str = "clean",
) -> tuple[Array, dict[str, Array]]:
    """The recovery-likelihood surrogate ``mean E(x) − mean E(stop_gradient(x⁻))``.

    In the diffusion form ``x`` is the noised point ``x_i`` of the example's level and
    ``x⁻`` a sample of ``p(x_i | x_{i+1})`` (see the module docstring).

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
      form: ``"clean"`` or ``"diffusion"`` (needs ``sigmas``); see the module docstring.

    Returns:
      ``(loss, metrics)`` with ``loss``, ``data_energy``, ``negative_energy``,
      ``energy_gap`` (``data − negative``), ``recovery_distance`` (mean ``‖x⁻ − x‖²`` per
      coordinate) and the sampler's averaged info.

    References:
      Gao et al. (2021), Algorithm 1 (one level per example, Langevin from ``x̃``).
    """
    _check_sigmas(sigma, sigmas)
    _check_chain(num_steps, step_scale)
    _check_form(form, sigmas)
    n = num_rows(batch)
    k_level, k_noise, k_chain = jax.random.split(key, 3)
    dtype = jax.tree.leaves(batch)[0].dtype

    def add_noise(k, tree, scale):
        return jax.tree.map(lambda x, e: x + scale.reshape((n,) + (1,) * (x.ndim - 1)) * e,
                            tree, _noise_like(k, tree))  # fmt: skip

    if sigmas is None:
        levels = jnp.broadcast_to(jnp.asarray(sigma, dtype), (n,))
        energy = lambda p, x, s: energy_fn(p, x)
    else:
        sigmas = jnp.asarray(sigmas, dtype)
        energy = energy_fn
    if form == "diffusion":
        rung_levels, rung_noise = _rungs(sigmas)
        index = jax.random.randint(k_level, (n,), 0, rung_levels.shape[0])
        levels, deltas = rung_levels[index], rung_noise[index]
        k_data, k_up = jax.random.split(k_noise)
        batch = add_noise(k_data, batch, levels)  # x_i, the positives
        noisy = add_noise(k_up, batch, deltas)  # x_{i+1}, where the chains start
    else:
        if sigmas is not None:
            levels = sigmas[jax.random.randint(k_level, (n,), 0, sigmas.shape[0])]
        deltas = levels
        noisy = add_noise(k_noise, batch, levels)
    negatives, sampler_metrics = conditional_samples(
        k_chain, jax.lax.stop_gradient(params), noisy, deltas, energy_fn=energy,
        num_steps=num_steps, step_scale=step_scale, sampler=sampler, conditional=True,
        energy_sigma=levels,
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
    form: str = "clean",
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
      form: ``"clean"`` or ``"diffusion"``; see :func:`recovery_likelihood_loss`.

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
    _check_form(form, sigmas)
    return stateless(
        lambda p, k, b: recovery_likelihood_loss(
            p, k, b, energy_fn=energy_fn, num_steps=num_steps, step_scale=step_scale,
            sigma=sigma, sigmas=sigmas, sampler=sampler, form=form,
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
    form: str = "clean",
) -> ArrayTree:
    """Samples of a trained ladder, largest level first.

    Clean form: recover ``initial`` at ``σ_max``, then at each smaller level noise the
    current points and recover them. Diffusion form: ``x_{i+1} → x_i ~ p(x_i | x_{i+1})``
    for ``i = L−2 … 0``, nothing added between levels (``L − 1`` conditionals).

    Args:
      key: PRNG key; level ``l`` (in the order visited) uses ``fold_in(key, l)``.
      params: parameters of the noise-conditional ``energy_fn(params, x, sigma)``.
      initial: ``(n, *event)`` points standing for the data noised at ``σ_max`` (e.g. the
        mean image plus ``σ_max ·`` standard normal noise).
      sigmas: the levels, visited in *descending* order whatever their order here (static
        length).
      num_steps: Langevin transitions per level (per conditional).
      step_scale: step size relative to ``σ²`` (``δ_i²`` in the diffusion form).
      sampler: see :func:`conditional_samples`.
      form: ``"clean"`` or ``"diffusion"``, as the ladder was trained.

    Returns:
      ``(n, *event)`` samples after the smallest level (in the diffusion form, of the
      data smoothed at ``σ_min``).

    References:
      Gao et al. (2021), Algorithm 2 (progressive sampling down the chain).
    """
    _check_chain(num_steps, step_scale)
    _check_form(form, sigmas)
    n = num_rows(initial)
    if form == "diffusion":
        rung_levels, rung_noise = _rungs(jnp.asarray(sigmas))
        levels, deltas = rung_levels[::-1], rung_noise[::-1]
        renoise = jnp.zeros(levels.shape, bool)
    else:
        levels = jnp.sort(jnp.asarray(sigmas))[::-1]
        deltas = levels
        renoise = jnp.arange(levels.shape[0]) > 0  # initial is already noised at σ_max

    def level(x, inputs):
        s, d, again, l_index = inputs
        k_noise, k_chain = jax.random.split(jax.random.fold_in(key, l_index))
        noisy = jax.tree.map(lambda u, e: u + jnp.where(again, s, 0.0) * e, x,
                             _noise_like(k_noise, x))  # fmt: skip
        x, _ = conditional_samples(
            k_chain, params, noisy, jnp.full((n,), d), energy_fn=energy_fn,
            num_steps=num_steps, step_scale=step_scale, sampler=sampler, conditional=True,
            energy_sigma=jnp.full((n,), s),
        )  # fmt: skip
        return x, None

    inputs = (levels, deltas, renoise, jnp.arange(levels.shape[0]))
    out, _ = jax.lax.scan(level, initial, inputs)
    return out
