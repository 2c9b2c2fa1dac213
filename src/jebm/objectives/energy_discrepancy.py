"""Energy discrepancy: MCMC-free training with a Gaussian perturbation (Schröder et al. 2023).

Perturb each data point, ``y = x + σ ξ`` with ``ξ ~ N(0, I)``. For the energy ``E`` the
contrastive potential of ``y`` is

    U(y) = −log ∫ N(x′; y, σ² I) exp(−E(x′)) dx′

(the Gaussian kernel is symmetric, so the perturbed point's "posterior" is again a
Gaussian around ``y``). The energy discrepancy

    ED(p_data, E) = E_data[E(x)] − E_{x ~ data, y ~ N(x, σ²I)}[U(y)]

equals ``KL(p_data ‖ p_E) − KL(Q p_data ‖ Q p_E)`` up to a constant that does not depend on
``E`` (``Q`` the Gaussian smoothing; write ``U(y) = −log Z − log (Q p_E)(y)``). It is
non-negative up to that constant and minimised exactly by ``E = −log p_data + const``
(Schröder et al. 2023, Theorem 1), and needs no samples from the model. Estimating ``U(y)`` with
``M`` draws ``x⁻ⱼ = y + σ ξ′ⱼ`` gives the loss

    L = mean_i log( w/M + (1/M) Σⱼ exp(E(xᵢ) − E(x⁻ᵢⱼ)) ),

whose ``w = 0`` limit ``M → ∞`` is ``ED``. The stabiliser ``w > 0`` counts the data point
itself among the negatives (with weight ``w``), which bounds the loss below by
``log(w/M)`` and stops the energy of the negatives from being pushed to ``+∞`` when ``M`` is
small (the paper's ``w = 1``). ``log``-sums are ``jax.nn.logsumexp``.

Gradients flow through every energy (no stop-gradient: the negatives depend only on the
data and the noise, not on ``params``). The loss value is a proper objective here, unlike a
CD surrogate: it decreases as the model improves.

References:
  Schröder, T., Ou, Z., Lim, J. N., Li, Y., Vollmer, S. J. and Duncan, A. B. (2023).
  Energy discrepancies: a score-independent loss for energy-based models. NeurIPS.
"""

import math

import jax
import jax.numpy as jnp

from jebm._validate import check_float, check_int
from jebm.energy import batch_energy
from jebm.objectives.base import Objective, num_rows, stateless
from jebm.types import Array, ArrayTree, EnergyFn, PRNGKey, PyTree

__all__ = ["energy_discrepancy_loss", "energy_discrepancy"]


def _check(sigma, num_negatives, stabilizer):
    check_float("sigma", sigma)
    check_int("num_negatives", num_negatives)
    check_float("stabilizer", stabilizer, allow_zero=True)


def energy_discrepancy_loss(
    params: PyTree,
    key: PRNGKey,
    batch: ArrayTree,
    *,
    energy_fn: EnergyFn,
    sigma: float | Array,
    num_negatives: int = 16,
    stabilizer: float | Array = 1.0,
) -> tuple[Array, dict[str, Array]]:
    """The energy-discrepancy loss with Gaussian perturbations of standard deviation ``σ``.

    Args:
      params: energy parameters.
      key: PRNG key for the perturbation and the negatives.
      batch: data ``(n, *event)`` (a pytree of such arrays works too).
      energy_fn: ``energy_fn(params, x) -> scalar`` for one unbatched ``x``.
      sigma: perturbation scale ``σ`` (``t = σ²`` in Schröder et al.); may be traced.
      num_negatives: ``M``, draws per data point (static).
      stabilizer: ``w >= 0``; may be traced.

    Returns:
      ``(loss, metrics)`` with ``loss``, ``data_energy`` (mean ``E(x)``), ``negative_energy``
      (mean ``E(x⁻)``) and ``energy_gap`` (their difference, negative once the data sit
      lower than their perturbations).

    Examples:
      >>> import jax, jax.numpy as jnp
      >>> from jebm.objectives import energy_discrepancy_loss
      >>> energy_fn = lambda p, x: 0.5 * jnp.sum((x - p) ** 2)
      >>> loss, metrics = energy_discrepancy_loss(
      ...     0.0, jax.random.key(0), jnp.zeros((4, 2)), energy_fn=energy_fn, sigma=0.5)
      >>> loss.shape
      ()

    References:
      Schröder et al. (2023), the loss ``L_{t,M,w}`` of Section 4 (Gaussian perturbation).
    """
    _check(sigma, num_negatives, stabilizer)
    n = num_rows(batch)
    leaves, treedef = jax.tree.flatten(batch)
    k_perturb, k_neg = jax.random.split(key)
    perturb_keys = jax.random.split(k_perturb, len(leaves))
    neg_keys = jax.random.split(k_neg, len(leaves))
    negatives = []
    for kp, kn, x in zip(perturb_keys, neg_keys, leaves, strict=True):
        y = x + sigma * jax.random.normal(kp, x.shape, x.dtype)  # (n, *event)
        xi = jax.random.normal(kn, (n, num_negatives, *x.shape[1:]), x.dtype)
        negatives.append(y[:, None] + sigma * xi)  # (n, M, *event)
    negatives = jax.tree.unflatten(treedef, negatives)
    e_data = batch_energy(energy_fn, params, batch)  # (n,)
    e_neg = jax.vmap(lambda xs: batch_energy(energy_fn, params, xs))(negatives)  # (n, M)
    log_terms = e_data[:, None] - e_neg
    stabilizer = jnp.asarray(stabilizer, log_terms.dtype)
    log_w = jnp.where(stabilizer > 0, jnp.log(jnp.maximum(stabilizer, 1e-30)), -jnp.inf)
    with_w = jnp.concatenate([jnp.broadcast_to(log_w, (n, 1)), log_terms], axis=1)
    per_example = jax.nn.logsumexp(with_w, axis=1) - math.log(num_negatives)
    loss = jnp.mean(per_example)
    metrics = {
        "loss": loss,
        "data_energy": jnp.mean(e_data),
        "negative_energy": jnp.mean(e_neg),
        "energy_gap": jnp.mean(e_data) - jnp.mean(e_neg),
    }
    return loss, metrics


def energy_discrepancy(
    energy_fn: EnergyFn,
    *,
    sigma: float | Array,
    num_negatives: int = 16,
    stabilizer: float | Array = 1.0,
) -> Objective:
    """Energy discrepancy as an :class:`~jebm.objectives.base.Objective`.

    See :func:`energy_discrepancy_loss`.

    Args:
      energy_fn: ``energy_fn(params, x) -> scalar`` for one unbatched ``x``.
      sigma: perturbation scale ``σ``; may be traced.
      num_negatives: ``M``, draws per data point (static).
      stabilizer: ``w >= 0``; may be traced.

    Returns:
      A stateless ``Objective`` whose loss is :func:`energy_discrepancy_loss`.

    Examples:
      >>> import jax, jax.numpy as jnp
      >>> from jebm.objectives import energy_discrepancy
      >>> objective = energy_discrepancy(lambda p, x: 0.5 * jnp.sum((x - p) ** 2), sigma=0.5)
      >>> loss, (metrics, state) = objective.loss(0.0, jax.random.key(0), jnp.ones((3, 2)), ())
    """
    _check(sigma, num_negatives, stabilizer)
    return stateless(
        lambda p, k, b: energy_discrepancy_loss(
            p, k, b, energy_fn=energy_fn, sigma=sigma, num_negatives=num_negatives,
            stabilizer=stabilizer,
        )
    )
