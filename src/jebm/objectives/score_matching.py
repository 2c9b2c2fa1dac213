"""Score matching: exact (Hyvärinen), sliced (Song et al.) and denoising (Vincent; NCSN).

With the model score ``s(x) = ∇ₓ log p(x) = −∇ₓ E(params, x)`` (no ``Z`` needed),
Hyvärinen's objective is, up to a constant independent of ``params``,

    J(params) = E_data[ ½‖s(x)‖² + tr ∇ₓ s(x) ].

* :func:`exact_score_matching_loss` computes the trace from the full Hessian
  (``jax.jacfwd(jax.grad(·))``): cost grows with the dimension ``d``.
* :func:`sliced_score_matching_loss` replaces ``tr ∇ₓ s`` by ``vᵀ ∇ₓ(vᵀ s) v``-type
  projections with ``E[v vᵀ] = I`` (Rademacher or Gaussian ``v``), one
  forward-over-reverse Hessian-vector product per projection: cost independent of
  ``d`` (a small multiple of one gradient per projection), no Hessian is formed.
* :func:`denoising_score_matching_loss` matches the score of the Gaussian-smoothed
  data, ``½ E‖s(x̃) + (x̃ − x)/σ²‖²`` with ``x̃ = x + σ ε``; with a ladder of noise
  levels and a noise-conditional energy it is NCSN's objective with weights ``σ²``.

Events of any shape (or pytrees) are flattened per example with
``jax.flatten_util.ravel_pytree``; the batch ``(n, *event)`` is ``vmap``-ped.

References:
  Hyvärinen, A. (2005). Estimation of non-normalized statistical models by score
  matching. JMLR 6, 695–709.

  Song, Y., Garg, S., Shi, J. and Ermon, S. (2019). Sliced score matching: a scalable
  approach to density and score estimation. UAI.

  Vincent, P. (2011). A connection between score matching and denoising
  autoencoders. Neural Computation 23(7), 1661–1674.

  Song, Y. and Ermon, S. (2019). Generative modeling by estimating gradients of the
  data distribution. NeurIPS.
"""

from collections.abc import Callable

import jax
import jax.numpy as jnp
import numpy as np
from jax.flatten_util import ravel_pytree

from jebm._validate import check_int
from jebm.energy import logdensity_fn
from jebm.objectives.base import Objective, num_rows, stateless
from jebm.types import Array, ArrayTree, EnergyFn, PRNGKey, PyTree

__all__ = [
    "exact_score_matching_loss",
    "exact_score_matching",
    "sliced_score_matching_loss",
    "sliced_score_matching",
    "denoising_score_matching_loss",
    "denoising_score_matching",
]

_PROJECTIONS = ("rademacher", "gaussian")


def _flat_logdensity(energy_fn: EnergyFn, params: PyTree, x: ArrayTree):
    """``(log p on the flattened x, flat x)`` for one unbatched example."""
    flat, unravel = ravel_pytree(x)
    logp = logdensity_fn(energy_fn, params)
    return (lambda z: logp(unravel(z))), flat


def exact_score_matching_loss(
    params: PyTree, key: PRNGKey, batch: ArrayTree, *, energy_fn: EnergyFn
) -> tuple[Array, dict[str, Array]]:
    """Hyvärinen's score matching with the exact Hessian trace.

    Per example ``½‖∇ₓ log p(x)‖² + tr ∇²ₓ log p(x)``, the trace of the full Hessian
    ``jax.jacfwd(jax.grad(log p))``; the loss is the batch mean.

    Args:
      params: energy parameters.
      key: unused (the objective is deterministic); kept for a uniform signature.
      batch: data ``(n, *event)``.
      energy_fn: ``energy_fn(params, x) -> scalar`` for one unbatched ``x``.

    Returns:
      ``(loss, metrics)`` with ``loss``, ``score_norm`` (mean ``½‖s‖²``) and
      ``hessian_trace`` (mean ``tr ∇s``).

    Examples:
      >>> import jax, jax.numpy as jnp
      >>> from jebm.objectives import exact_score_matching_loss
      >>> energy_fn = lambda a, x: 0.5 * a * jnp.sum(x**2)
      >>> loss, _ = exact_score_matching_loss(
      ...     2.0, jax.random.key(0), jnp.ones((3, 2)), energy_fn=energy_fn)
      >>> float(loss)  # ½‖2x‖² − tr(2I) = 4 − 4
      0.0

    References:
      Hyvärinen (2005), Theorem 1.
    """
    del key

    def one(x):
        logp, flat = _flat_logdensity(energy_fn, params, x)
        grad = jax.grad(logp)
        hessian, score = jax.jacfwd(lambda z: (grad(z), grad(z)), has_aux=True)(flat)
        return 0.5 * jnp.sum(score**2), jnp.trace(hessian)

    norm, trace = jax.vmap(one)(batch)
    loss = jnp.mean(norm + trace)
    return loss, {"loss": loss, "score_norm": jnp.mean(norm), "hessian_trace": jnp.mean(trace)}


def exact_score_matching(energy_fn: EnergyFn) -> Objective:
    """Exact score matching as an :class:`~jebm.objectives.base.Objective`.

    See :func:`exact_score_matching_loss`.

    Args:
      energy_fn: ``energy_fn(params, x) -> scalar`` for one unbatched ``x``.

    Returns:
      A stateless :class:`~jebm.objectives.base.Objective` over the energy's params.
    """
    return stateless(lambda p, k, b: exact_score_matching_loss(p, k, b, energy_fn=energy_fn))


def _check_sliced(num_projections, projection) -> None:
    check_int("num_projections", num_projections)
    if projection not in _PROJECTIONS:
        raise ValueError(f"projection must be one of {_PROJECTIONS}, got {projection!r}.")


def _projections(key: PRNGKey, shape: tuple[int, ...], dtype, projection: str) -> Array:
    if projection == "rademacher":
        return jax.random.rademacher(key, shape, dtype)
    return jax.random.normal(key, shape, dtype)


def sliced_score_matching_loss(
    params: PyTree,
    key: PRNGKey,
    batch: ArrayTree,
    *,
    energy_fn: EnergyFn,
    num_projections: int = 1,
    projection: str = "rademacher",
    variance_reduced: bool = False,
) -> tuple[Array, dict[str, Array]]:
    """Sliced score matching with random projections ``v``, ``E[v vᵀ] = I``.

    Per example and projection (``s = ∇ₓ log p``, ``∇s`` its Jacobian):

    * SSM: ``vᵀ ∇s v + ½ (vᵀ s)²``;
    * SSM-VR (``variance_reduced=True``): ``vᵀ ∇s v + ½ ‖s‖²``, the expectation
      over ``v`` of the second term taken in closed form.

    Both are unbiased for :func:`exact_score_matching_loss`. ``∇s v`` is one
    forward-over-reverse product ``jax.jvp(jax.grad(log p), (x,), (v,))`` per
    projection; no Hessian is formed.

    Args:
      params: energy parameters.
      key: PRNG key for the projections (fresh for every example).
      batch: data ``(n, *event)``.
      energy_fn: ``energy_fn(params, x) -> scalar``.
      num_projections: projections per example (static).
      projection: ``"rademacher"`` (lower variance) or ``"gaussian"``.
      variance_reduced: use SSM-VR.

    Returns:
      ``(loss, metrics)`` with ``loss``, ``score_norm`` (mean ``½‖s‖²``) and
      ``hessian_trace`` (the mean of the projected trace estimate ``vᵀ∇s v``).

    References:
      Song, Garg, Shi and Ermon (2019) (SSM and SSM-VR).
    """
    _check_sliced(num_projections, projection)
    if not isinstance(variance_reduced, bool):
        raise ValueError(f"variance_reduced must be a bool, got {variance_reduced!r}.")
    n = num_rows(batch)

    def one(x, k):
        logp, flat = _flat_logdensity(energy_fn, params, x)
        vs = _projections(k, (num_projections, flat.size), flat.dtype, projection)
        grad = jax.grad(logp)

        def project(v):
            score, hvp = jax.jvp(grad, (flat,), (v,))
            return jnp.vdot(v, score), jnp.vdot(v, hvp), score

        if num_projections == 1:  # no vmap over a size-1 axis: it would reach every layer
            v_score, trace, score = jax.tree.map(lambda a: a[None], project(vs[0]))
        else:
            v_score, trace, score = jax.vmap(project)(vs)
        norm = 0.5 * jnp.sum(score[0] ** 2)
        fit = norm if variance_reduced else 0.5 * jnp.mean(v_score**2)
        return fit + jnp.mean(trace), norm, jnp.mean(trace)

    per_example, norm, trace = jax.vmap(one)(batch, jax.random.split(key, n))
    loss = jnp.mean(per_example)
    return loss, {"loss": loss, "score_norm": jnp.mean(norm), "hessian_trace": jnp.mean(trace)}


def sliced_score_matching(
    energy_fn: EnergyFn,
    *,
    num_projections: int = 1,
    projection: str = "rademacher",
    variance_reduced: bool = False,
) -> Objective:
    """Sliced score matching as an :class:`~jebm.objectives.base.Objective`.

    See :func:`sliced_score_matching_loss`.

    Args:
      energy_fn: ``energy_fn(params, x) -> scalar`` for one unbatched ``x``.
      num_projections: projections per example (static, positive).
      projection: ``"rademacher"`` or ``"gaussian"``.
      variance_reduced: use SSM-VR.

    Returns:
      A stateless :class:`~jebm.objectives.base.Objective` over the energy's params.

    Raises:
      ValueError: for an invalid ``num_projections``, ``projection`` or
        ``variance_reduced``.

    Examples:
      >>> import jax, jax.numpy as jnp
      >>> from jebm.objectives import sliced_score_matching
      >>> objective = sliced_score_matching(
      ...     lambda a, x: 0.5 * a * jnp.sum(x**2), num_projections=2, variance_reduced=True)
      >>> state = objective.init(jax.random.key(0), jnp.ones((3, 2)))
      >>> loss, (metrics, state) = objective.loss(1.0, jax.random.key(1), jnp.ones((3, 2)), state)
    """
    _check_sliced(num_projections, projection)
    if not isinstance(variance_reduced, bool):
        raise ValueError(f"variance_reduced must be a bool, got {variance_reduced!r}.")
    return stateless(
        lambda p, k, b: sliced_score_matching_loss(
            p,
            k,
            b,
            energy_fn=energy_fn,
            num_projections=num_projections,
            projection=projection,
            variance_reduced=variance_reduced,
        )
    )


def _check_sigmas(sigma, sigmas) -> None:
    if (sigma is None) == (sigmas is None):
        raise ValueError(
            "Give exactly one of sigma (one noise level, energy_fn(params, x)) or sigmas "
            "(a 1-D ladder, noise-conditional energy_fn(params, x, sigma))."
        )
    for name, value in (("sigma", sigma), ("sigmas", sigmas)):
        if value is None or isinstance(value, jax.core.Tracer):
            continue
        value = np.asarray(value)  # concrete: check on the host, never trace the check
        if name == "sigmas" and value.ndim != 1:
            raise ValueError(f"sigmas must be a 1-D array of levels, got shape {value.shape}.")
        if name == "sigma" and value.ndim != 0:
            raise ValueError(f"sigma must be a scalar, got shape {value.shape}; use sigmas=.")
        if not np.all(value > 0):
            raise ValueError(f"{name} must be positive, got {value}.")


def denoising_score_matching_loss(
    params: PyTree,
    key: PRNGKey,
    batch: ArrayTree,
    *,
    energy_fn: EnergyFn | Callable[[PyTree, ArrayTree, Array], Array],
    sigma: float | Array | None = None,
    sigmas: Array | None = None,
) -> tuple[Array, dict[str, Array]]:
    """Denoising score matching at one noise level or over a ladder of levels.

    * One level (``sigma``, plain ``energy_fn(params, x)``): with ``x̃ = x + σ ε``,
      ``loss = ½ mean ‖s(x̃) + (x̃ − x)/σ²‖²``, minimised by the score of the data
      convolved with ``N(0, σ² I)``.
    * A ladder (``sigmas``, shape ``(L,)``, noise-conditional
      ``energy_fn(params, x, sigma)``): each example draws its level uniformly from
      the ladder and the per-example loss above is weighted by ``σ²`` (NCSN's
      ``λ(σ) = σ²``, which makes the terms comparable across levels).

    Args:
      params: energy parameters.
      key: PRNG key for the noise (and the levels).
      batch: data ``(n, *event)``.
      energy_fn: ``energy_fn(params, x)``, or ``energy_fn(params, x, sigma)`` with ``sigmas``.
      sigma: the single noise level; may be a traced scalar.
      sigmas: the noise ladder; may be a traced array.

    Returns:
      ``(loss, metrics)`` with ``loss``.

    References:
      Vincent (2011) (DSM); Song and Ermon (2019) (NCSN, weights σ²).
    """
    _check_sigmas(sigma, sigmas)
    n = num_rows(batch)
    k_level, k_noise = jax.random.split(key)
    leaves, treedef = jax.tree.flatten(batch)
    keys = jax.random.split(k_noise, len(leaves))
    draws = [jax.random.normal(k, x.shape, x.dtype) for k, x in zip(keys, leaves, strict=True)]
    noise = jax.tree.unflatten(treedef, draws)
    if sigmas is None:
        levels = jnp.broadcast_to(jnp.asarray(sigma), (n,))
        weights = jnp.ones((n,), levels.dtype)
        conditioned = lambda s: energy_fn
    else:
        sigmas = jnp.asarray(sigmas)
        levels = sigmas[jax.random.randint(k_level, (n,), 0, sigmas.shape[0])]
        weights = levels**2
        conditioned = lambda s: (lambda p, x: energy_fn(p, x, s))

    # The score of every noisy point as one gradient of the summed log-densities (the
    # examples are independent, so this is each example's own score): cheaper to compile
    # and run than a per-example vmap of grad.
    flatten = jax.vmap(lambda tree: ravel_pytree(tree)[0])
    unravel = ravel_pytree(jax.tree.map(lambda leaf: leaf[0], batch))[1]
    flat_eps = flatten(noise)
    noisy = flatten(batch) + levels[:, None] * flat_eps

    def total_logp(zs):
        one = lambda z, s: logdensity_fn(conditioned(s), params)(unravel(z))
        return jnp.sum(jax.vmap(one)(zs, levels))

    scores = jax.grad(total_logp)(noisy)
    # (x̃ − x)/σ² = ε/σ
    per_example = 0.5 * jnp.sum((scores + flat_eps / levels[:, None]) ** 2, axis=-1)
    loss = jnp.mean(weights * per_example)
    return loss, {"loss": loss}


def denoising_score_matching(
    energy_fn: EnergyFn | Callable[[PyTree, ArrayTree, Array], Array],
    *,
    sigma: float | Array | None = None,
    sigmas: Array | None = None,
) -> Objective:
    """Denoising score matching as an :class:`~jebm.objectives.base.Objective`.

    See :func:`denoising_score_matching_loss`.

    Args:
      energy_fn: ``energy_fn(params, x)``, or ``energy_fn(params, x, sigma)`` with ``sigmas``.
      sigma: the single noise level, a positive scalar; may be a traced scalar.
      sigmas: a 1-D ladder of positive noise levels; may be a traced array.

    Returns:
      A stateless :class:`~jebm.objectives.base.Objective` over the energy's params.

    Raises:
      ValueError: unless exactly one of ``sigma`` and ``sigmas`` is given, or for a
        concrete level that is not positive or of the wrong rank.

    Examples:
      >>> import jax, jax.numpy as jnp
      >>> from jebm.objectives import denoising_score_matching
      >>> objective = denoising_score_matching(lambda a, x: 0.5 * a * jnp.sum(x**2), sigma=0.1)
      >>> loss, _ = objective.loss(1.0, jax.random.key(0), jnp.ones((3, 2)), ())
    """
    _check_sigmas(sigma, sigmas)
    return stateless(
        lambda p, k, b: denoising_score_matching_loss(
            p, k, b, energy_fn=energy_fn, sigma=sigma, sigmas=sigmas
        )
    )
