"""Noise-contrastive estimation: learn an energy *and* its log-normaliser by classification.

**Parameters.** NCE fits a normalised model, so the normaliser is a parameter:

    params = {"energy": energy_params, "log_z": c},   log p_m(x) = −E(energy_params, x) − c.

The model integrates to one when ``c = log Z(energy_params) = log ∫ exp(−E)``; at
the NCE optimum (with enough data and a flexible enough model) the learned ``c``
converges to exactly that, so ``params["log_z"]`` is an estimate of ``log Z``.
:func:`nce_params` builds this dictionary.

**Loss.** With ``n`` data points ``x`` and ``T = ν n`` noise points ``y ~ p_n`` and the
log-ratio ``G(u) = log p_m(u) − log p_n(u)``, a logistic classifier with logit
``G(u) − log ν`` separates data (label 1) from noise (label 0):

    loss = (1/n) [ Σ_data BCE(G(x) − log ν, 1) + Σ_noise BCE(G(y) − log ν, 0) ],

the negative of Gutmann & Hyvärinen's ``J_T`` (``BCE`` is
``optax.losses.sigmoid_binary_cross_entropy``).

**Noise.** A :class:`jebm.densities.Density` (``sample(key, n) -> (n, *event)`` and a
normalised ``log_prob(x)`` for one unbatched ``x``), typically fitted to the training
data: :func:`jebm.densities.fit_gaussian` or, for images on ``[0, 1]``,
:func:`jebm.densities.logit_gaussian`.

References:
  Gutmann, M. and Hyvärinen, A. (2010). Noise-contrastive estimation: a new
  estimation principle for unnormalized statistical models. AISTATS.

  Gutmann, M. U. and Hyvärinen, A. (2012). Noise-contrastive estimation of
  unnormalized statistical models, with applications to natural image statistics.
  JMLR 13, 307–361. (The ratio ν and the asymptotic variance.)
"""

import jax
import jax.numpy as jnp
import optax

from jebm._validate import check_float
from jebm.densities import Density
from jebm.energy import logdensity_fn
from jebm.objectives.base import Objective, stateless
from jebm.types import Array, ArrayTree, EnergyFn, PRNGKey, PyTree

__all__ = [
    "nce_params",
    "nce_loss",
    "nce",
]


def nce_params(energy_params: PyTree, log_z: float | Array = 0.0) -> dict:
    """The NCE parameter dictionary ``{"energy": energy_params, "log_z": c}``.

    Args:
      energy_params: the energy's parameters.
      log_z: the initial ``c``, the learned log-normaliser.

    Returns:
      ``{"energy": energy_params, "log_z": c}`` with ``c`` a float32 scalar.

    Examples:
      >>> from jebm.objectives import nce_params
      >>> nce_params({"w": 1.0})
      {'energy': {'w': 1.0}, 'log_z': Array(0., dtype=float32)}
    """
    return {"energy": energy_params, "log_z": jnp.asarray(log_z, jnp.float32)}


def _num_noise(n: int, noise_ratio: float) -> int:
    num = round(noise_ratio * n)
    if num < 1 or abs(num - noise_ratio * n) > 1e-6 * max(1.0, noise_ratio * n):
        raise ValueError(
            f"noise_ratio * batch size must be a positive integer (the number of noise "
            f"samples), got {noise_ratio} * {n}."
        )
    return num


def nce_loss(
    params: dict,
    key: PRNGKey,
    batch: ArrayTree,
    *,
    energy_fn: EnergyFn,
    noise: Density,
    noise_ratio: float = 1.0,
) -> tuple[Array, dict[str, Array]]:
    """Noise-contrastive estimation loss (data vs ``noise_ratio · n`` noise samples).

    Args:
      params: ``{"energy": energy_params, "log_z": c}`` (see :func:`nce_params`);
        the model is ``log p_m(x) = −E(energy_params, x) − c``.
      key: PRNG key for the noise samples.
      batch: data ``(n, *event)``.
      energy_fn: ``energy_fn(energy_params, x) -> scalar``.
      noise: the noise :class:`~jebm.densities.Density`.
      noise_ratio: ``ν``, noise samples per data point (static; ``ν n`` an integer).

    Returns:
      ``(loss, metrics)`` with ``loss``, ``log_z`` (the current ``c``) and
      ``accuracy`` (of the classifier on data and noise together).

    Examples:
      >>> import jax, jax.numpy as jnp
      >>> from jebm.densities import fit_gaussian
      >>> from jebm.objectives import nce_loss, nce_params
      >>> data = jax.random.normal(jax.random.key(0), (64, 2))
      >>> loss, metrics = nce_loss(
      ...     nce_params(1.0), jax.random.key(1), data,
      ...     energy_fn=lambda a, x: 0.5 * a * jnp.sum(x**2),
      ...     noise=fit_gaussian(data), noise_ratio=2.0)
      >>> loss.shape
      ()

    References:
      Gutmann and Hyvärinen (2010); Gutmann and Hyvärinen (2012) (the ratio ν).
    """
    if not isinstance(params, dict) or set(params) != {"energy", "log_z"}:
        raise ValueError(
            "nce_loss params must be {'energy': energy_params, 'log_z': scalar} "
            f"(see nce_params), got {type(params).__name__} "
            f"{sorted(params) if isinstance(params, dict) else ''}."
        )
    n = jax.tree.leaves(batch)[0].shape[0]
    num_noise = _num_noise(n, noise_ratio)
    log_nu = jnp.log(num_noise / n)
    noise_samples = noise.sample(key, num_noise)

    log_model = logdensity_fn(energy_fn, params["energy"], params["log_z"])

    def logit(x):
        return log_model(x) - noise.log_prob(x) - log_nu

    logits_data = jax.vmap(logit)(batch)
    logits_noise = jax.vmap(logit)(noise_samples)
    bce = optax.losses.sigmoid_binary_cross_entropy
    loss = (
        jnp.sum(bce(logits_data, jnp.ones_like(logits_data)))
        + jnp.sum(bce(logits_noise, jnp.zeros_like(logits_noise)))
    ) / n
    correct = jnp.sum(logits_data > 0) + jnp.sum(logits_noise <= 0)
    metrics = {
        "loss": loss,
        "log_z": jnp.asarray(params["log_z"]),
        "accuracy": correct / (n + num_noise),
    }
    return loss, metrics


def nce(energy_fn: EnergyFn, noise: Density, noise_ratio: float = 1.0) -> Objective:
    """NCE as an :class:`~jebm.objectives.base.Objective`; see :func:`nce_loss`.

    Args:
      energy_fn: ``energy_fn(energy_params, x) -> scalar``.
      noise: the noise :class:`~jebm.densities.Density`, e.g.
        ``jebm.densities.fit_gaussian(data)``.
      noise_ratio: ``ν``, noise samples per data point.

    Returns:
      A stateless :class:`~jebm.objectives.base.Objective` over ``params = {"energy":
      ..., "log_z": ...}``.

    Examples:
      >>> import jax, jax.numpy as jnp
      >>> from jebm.densities import fit_gaussian
      >>> from jebm.objectives import nce, nce_params
      >>> data = jax.random.normal(jax.random.key(0), (64, 2))
      >>> objective = nce(lambda a, x: 0.5 * a * jnp.sum(x**2), fit_gaussian(data))
      >>> state = objective.init(jax.random.key(1), data)
      >>> loss, (metrics, state) = objective.loss(nce_params(1.0), jax.random.key(2), data, state)
    """
    check_float("noise_ratio", noise_ratio)
    if not isinstance(noise, Density):
        raise ValueError(
            f"noise must be a jebm.densities.Density (e.g. fit_gaussian(data)), got {noise!r}.")

    def loss(params, key, batch):
        return nce_loss(params, key, batch, energy_fn=energy_fn, noise=noise,
                        noise_ratio=noise_ratio)

    return stateless(loss)
