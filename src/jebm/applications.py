"""What an unnormalised energy is good for: log-ratios, conditioning and likelihoods.

Most uses of an EBM need only *differences* of energies, in which the partition
function cancels:

* **Out-of-distribution scoring.** ``log p(x) − log p(x′) = E(x′) − E(x)``, so ranking
  inputs by energy ranks them by likelihood. :func:`ood_auroc` scores held-out
  in-distribution inputs against others and reports the AUROC (:func:`auroc`, written
  with ranks, equal to scikit-learn's ``roc_auc_score``).
* **Inpainting and denoising.** ``p(x_m | x_o) ∝ exp(−E(x_m, x_o))`` with ``x_o`` held
  fixed: Langevin dynamics on the missing pixels only (:func:`inpaint`,
  :func:`denoise`), started from noise or from the corrupted image.
* **Classification and class-conditional sampling.** With class logits ``g(x)``, the
  Joint Energy Model reads ``E(x, y) = −g(x)[y]`` and ``E(x) = −logsumexp_y g(x)[y]``,
  so ``p(y | x) = softmax g(x)`` (:func:`predict`, :func:`accuracy`) and
  ``p(x | y) ∝ exp(g(x)[y])`` is sampled by Langevin on ``E(·, y)``
  (:func:`conditional_samples`). :func:`jem` adds the classifier's cross-entropy to a
  generative objective (JEM's ``log p(y|x) + log p(x)``).

The one use that needs ``Z`` is the likelihood itself. :func:`logit_ais_nll` estimates
the test NLL of an energy on the unit box ``[0, 1]^d`` with annealed importance
sampling run in logit coordinates ``z = log x − log(1 − x)``, where the box becomes
``ℝ^d``. The change of variables gives the energy

    E_z(z) = E(σ(z)) − Σ_j log σ′(z_j),   σ′(z) = σ(z)(1 − σ(z)),

whose partition function equals that of ``exp(−E)`` *restricted to the box*,
``Z = ∫_{[0,1]^d} exp(−E(x)) dx``, so ``NLL = mean E(x_test) + log Z`` is the NLL in the
original ``[0, 1]^d`` space. No step leaves the box, no proposal is rejected for
crossing it, and a Gaussian fitted to the logits of the training data
(:func:`logit_gaussian_base`) is a close AIS base; the uniform density on the box is the
logistic base (:func:`logistic_base`).

:func:`save_image_grid` writes image grids with matplotlib (imported lazily).

References:
  Du, Y. and Mordatch, I. (2019). Implicit generation and generalization in
  energy-based models. NeurIPS. (inpainting, OOD scoring)
  Grathwohl, W., Wang, K.-C., Jacobsen, J.-H., Duvenaud, D., Norouzi, M. and
  Swersky, K. (2020). Your classifier is secretly an energy based model and you
  should treat it like one. ICLR. (JEM)
  Neal, R. M. (2001). Annealed importance sampling. Statistics and Computing 11(2).
  Hanley, J. A. and McNeil, B. J. (1982). The meaning and use of the area under a
  receiver operating characteristic (ROC) curve. Radiology 143(1). (AUROC as the
  Mann–Whitney statistic)
"""

import os
from collections.abc import Callable

import jax
import jax.numpy as jnp
import numpy as np
import optax
from jaxtyping import Bool, Float, Int

from jebm.energy import batch_energy
from jebm.objectives.base import Objective
from jebm.partition.ais import Base, NLLEstimate, ais_nll, gaussian_base
from jebm.samplers.runner import run_chains
from jebm.samplers.ula import ula
from jebm.types import Array, EnergyFn, PRNGKey, PyTree

__all__ = [
    "auroc",
    "ood_auroc",
    "inpaint",
    "denoise",
    "langevin_samples",
    "conditional_samples",
    "predict",
    "accuracy",
    "jem",
    "logit_energy",
    "logit_gaussian_base",
    "logit_gaussian_density",
    "logistic_base",
    "logit_ais_nll",
    "save_image_grid",
]

LogitsFn = Callable[[PyTree, Array], Array]

# ------------------------------------------------------------------------------- AUROC


def auroc(labels: Int[Array, " n"], scores: Float[Array, " n"]) -> Array:
    """Area under the ROC curve of ``scores`` for the binary ``labels`` (1 = positive).

    Computed as the Mann–Whitney statistic: the probability that a random positive
    scores above a random negative, ties counting one half. Ranks are averaged over
    ties, ``AUROC = (Σ_{positives} rank − n₊(n₊ + 1)/2) / (n₊ n₋)``. Pure ``jnp``; jits.

    Args:
      labels: ``(n,)`` zeros and ones (booleans allowed); both classes must occur.
      scores: ``(n,)`` real scores, higher meaning "more positive".

    Returns:
      A float32 scalar in ``[0, 1]``; 0.5 is chance.

    Examples:
      >>> import jax.numpy as jnp
      >>> from jebm.applications import auroc
      >>> float(auroc(jnp.array([0, 0, 1, 1]), jnp.array([0.1, 0.4, 0.35, 0.8])))
      0.75
    """
    labels = jnp.asarray(labels).astype(jnp.float32)
    scores = jnp.asarray(scores, jnp.float32)
    if labels.ndim != 1 or labels.shape != scores.shape:
        raise ValueError(
            f"labels and scores must be 1-D of equal length, got {labels.shape}, {scores.shape}."
        )
    ordered = jnp.sort(scores)
    below = jnp.searchsorted(ordered, scores, side="left")
    at_or_below = jnp.searchsorted(ordered, scores, side="right")
    ranks = 0.5 * (below + 1 + at_or_below).astype(jnp.float32)  # 1-based, tie-averaged
    num_pos = jnp.sum(labels)
    num_neg = labels.shape[0] - num_pos
    return (jnp.sum(labels * ranks) - num_pos * (num_pos + 1) / 2) / (num_pos * num_neg)


def ood_auroc(
    energy_fn: EnergyFn,
    params: PyTree,
    x_in: Float[Array, "n ..."],
    x_out: Float[Array, "m ..."],
) -> Array:
    """AUROC of the energy as a detector of ``x_out`` among ``x_in`` (Z cancels).

    A higher energy means a lower likelihood, so the energy is the out-of-distribution
    score; 1.0 means every ``x_out`` has a higher energy than every ``x_in``.

    Args:
      energy_fn: ``energy_fn(params, x) -> scalar``.
      params: its parameters.
      x_in: ``(n, *event)`` held-out in-distribution inputs (negatives).
      x_out: ``(m, *event)`` out-of-distribution inputs (positives).

    Returns:
      The AUROC, a scalar.
    """
    scores = jnp.concatenate(
        [batch_energy(energy_fn, params, x_in), batch_energy(energy_fn, params, x_out)]
    )
    labels = jnp.concatenate([jnp.zeros(x_in.shape[0]), jnp.ones(x_out.shape[0])])
    return auroc(labels, scores)


# ------------------------------------------------------------------ Langevin helpers


def _langevin(
    key: PRNGKey,
    logdensity_fn: Callable[[Array], Array],
    start: Array,
    num_steps: int,
    step_size,
    noise_scale,
    clip_grad,
    bounds,
) -> Array:
    """``num_steps`` decoupled ULA steps of one chain from ``start``; the final position."""
    algorithm = ula(logdensity_fn, step_size, noise_scale, clip_grad=clip_grad, bounds=bounds)
    state = algorithm.init(start)
    state, _ = jax.lax.scan(
        lambda s, k: (algorithm.step(k, s)[0], None), state, jax.random.split(key, num_steps)
    )
    return state.position


def _check_steps(num_steps) -> None:
    if isinstance(num_steps, bool) or not isinstance(num_steps, int) or num_steps < 1:
        raise ValueError(f"num_steps must be an int >= 1, got {num_steps!r}.")


def inpaint(
    key: PRNGKey,
    energy_fn: EnergyFn,
    params: PyTree,
    image: Float[Array, "..."],
    mask: Bool[Array, "..."],
    *,
    num_steps: int = 60,
    step_size: float | Array = 10.0,
    noise_scale: float | Array = 0.005,
    clip_grad: float | Array | None = 0.01,
    bounds: tuple[float, float] | None = (0.0, 1.0),
    init: Float[Array, "..."] | None = None,
) -> Array:
    """Fill the pixels ``mask`` of one image by Langevin dynamics on ``E``, the rest fixed.

    Samples (at the temperature ``T = σ²/(2a)`` of decoupled ULA) from
    ``p(x_m | x_o) ∝ exp(−E(x))`` with ``x_o = image[~mask]`` held fixed. The chain
    moves the whole array, but its log-density is ``−E(where(mask, z, image))``, so
    the unmasked coordinates never influence it, and the result is
    ``where(mask, z, image)``: observed pixels are returned exactly unchanged.

    Args:
      key: PRNG key.
      energy_fn: ``energy_fn(params, x) -> scalar`` for one image.
      params: its parameters.
      image: one image (the event shape of ``energy_fn``); its masked pixels are ignored
        unless ``init`` is ``None`` and ``bounds`` is ``None``.
      mask: boolean, the shape of ``image``; ``True`` marks the pixels to fill in.
      num_steps: Langevin steps (static).
      step_size: gradient step ``a`` (traced).
      noise_scale: noise standard deviation ``σ`` (traced).
      clip_grad: per-element gradient clip, or ``None``.
      bounds: ``(low, high)`` box for every pixel, or ``None``.
      init: the start of the masked pixels; default uniform on ``bounds`` (or the
        image itself without bounds).

    Returns:
      The completed image, ``image`` wherever ``mask`` is ``False``.

    Examples:
      >>> import jax, jax.numpy as jnp
      >>> from jebm.applications import inpaint
      >>> energy_fn = lambda p, x: 0.5 * jnp.sum((x - p) ** 2)
      >>> image, mask = jnp.full(4, 0.9), jnp.array([True, True, False, False])
      >>> out = inpaint(jax.random.key(0), energy_fn, 0.5, image, mask, num_steps=100,
      ...               step_size=0.1, noise_scale=0.0, clip_grad=None)
      >>> [round(float(v), 3) for v in out]
      [0.5, 0.5, 0.9, 0.9]

    References:
      Du and Mordatch (2019), Sec. 4.
    """
    _check_steps(num_steps)
    image = jnp.asarray(image)
    mask = jnp.asarray(mask, bool)
    if mask.shape != image.shape:
        raise ValueError(f"mask shape {mask.shape} differs from image shape {image.shape}.")
    k_init, k_run = jax.random.split(key)
    if init is None:
        if bounds is None:
            init = image
        else:
            init = jax.random.uniform(k_init, image.shape, image.dtype, bounds[0], bounds[1])
    start = jnp.where(mask, jnp.asarray(init, image.dtype), image)

    def logdensity_fn(z):
        return -energy_fn(params, jnp.where(mask, z, image))

    z = _langevin(k_run, logdensity_fn, start, num_steps, step_size, noise_scale, clip_grad,
                  bounds)
    return jnp.where(mask, z, image)


def denoise(
    key: PRNGKey,
    energy_fn: EnergyFn,
    params: PyTree,
    noisy: Float[Array, "..."],
    *,
    num_steps: int = 20,
    step_size: float | Array = 10.0,
    noise_scale: float | Array = 0.005,
    clip_grad: float | Array | None = 0.01,
    bounds: tuple[float, float] | None = (0.0, 1.0),
) -> Array:
    """Langevin on every pixel of one corrupted image, started from the image itself.

    A short, low-temperature run moves ``noisy`` towards a nearby low-energy image
    (with ``noise_scale = 0`` it is projected gradient descent on ``E``).

    Args:
      key: PRNG key.
      energy_fn, params: the energy.
      noisy: one corrupted image.
      num_steps, step_size, noise_scale, clip_grad, bounds: as in :func:`inpaint`.

    Returns:
      The denoised image.
    """
    noisy = jnp.asarray(noisy)
    start = noisy if bounds is None else jnp.clip(noisy, bounds[0], bounds[1])
    return inpaint(key, energy_fn, params, start, jnp.ones(noisy.shape, bool),
                   num_steps=num_steps, step_size=step_size, noise_scale=noise_scale,
                   clip_grad=clip_grad, bounds=bounds, init=start)


def langevin_samples(
    key: PRNGKey,
    energy_fn: EnergyFn,
    params: PyTree,
    start: Float[Array, "n ..."],
    *,
    num_steps: int = 60,
    num_frames: int = 1,
    step_size: float | Array = 10.0,
    noise_scale: float | Array = 0.005,
    clip_grad: float | Array | None = 0.01,
    bounds: tuple[float, float] | None = (0.0, 1.0),
) -> Array:
    """Decoupled-Langevin chains from ``start``, with ``num_frames`` evenly spaced snapshots.

    Args:
      key: PRNG key.
      energy_fn, params: the energy.
      start: ``(n, *event)`` initial positions (e.g. uniform noise).
      num_steps: steps per chain (static); must be a multiple of ``num_frames``.
      num_frames: snapshots kept, after steps ``num_steps/num_frames, …, num_steps``.
      step_size, noise_scale, clip_grad, bounds: as in :func:`inpaint`.

    Returns:
      ``(num_frames, n, *event)``; the last frame is the final positions.
    """
    _check_steps(num_steps)
    if not isinstance(num_frames, int) or num_frames < 1 or num_steps % num_frames:
        raise ValueError(
            f"num_frames must be a positive divisor of num_steps={num_steps}, got {num_frames!r}."
        )
    algorithm = ula(lambda x: -energy_fn(params, x), step_size, noise_scale,
                    clip_grad=clip_grad, bounds=bounds)
    return run_chains(key, algorithm, start, num_steps, thin=num_steps // num_frames).trace


def conditional_samples(
    key: PRNGKey,
    conditional_energy_fn: Callable[[PyTree, Array, Array], Array],
    params: PyTree,
    labels: Int[Array, " n"],
    start: Float[Array, "n ..."],
    *,
    num_steps: int = 60,
    step_size: float | Array = 10.0,
    noise_scale: float | Array = 0.005,
    clip_grad: float | Array | None = 0.01,
    bounds: tuple[float, float] | None = (0.0, 1.0),
) -> Array:
    """Chain ``i`` samples ``p(x | labels[i]) ∝ exp(−E(x, labels[i]))`` from ``start[i]``.

    Args:
      key: PRNG key.
      conditional_energy_fn: ``E(params, x, y) -> scalar`` (e.g. JEM's ``−g(x)[y]``).
      params: its parameters.
      labels: ``(n,)`` the class of each chain.
      start: ``(n, *event)`` initial positions.
      num_steps, step_size, noise_scale, clip_grad, bounds: as in :func:`inpaint`.

    Returns:
      ``(n, *event)`` final positions.
    """
    _check_steps(num_steps)
    labels = jnp.asarray(labels)
    if labels.shape[:1] != start.shape[:1]:
        raise ValueError(f"{labels.shape[0]} labels for {start.shape[0]} chains.")

    def one(k, y, x0):
        logdensity_fn = lambda x: -conditional_energy_fn(params, x, y)
        return _langevin(k, logdensity_fn, x0, num_steps, step_size, noise_scale, clip_grad,
                         bounds)

    return jax.vmap(one)(jax.random.split(key, labels.shape[0]), labels, start)


# ------------------------------------------------------------------- classification


def predict(logits_fn: LogitsFn, params: PyTree, x: Float[Array, "n ..."]) -> Array:
    """``argmax_y g(x)[y]`` for a batch, shape ``(n,)`` (JEM's ``p(y|x) = softmax g(x)``)."""
    return jnp.argmax(jax.vmap(logits_fn, in_axes=(None, 0))(params, x), axis=-1)


def accuracy(
    logits_fn: LogitsFn, params: PyTree, x: Float[Array, "n ..."], labels: Int[Array, " n"]
) -> Array:
    """Share of ``x`` classified as ``labels``."""
    return jnp.mean((predict(logits_fn, params, x) == jnp.asarray(labels)).astype(jnp.float32))


def jem(
    generative: Objective, logits_fn: LogitsFn, *, generative_weight: float | Array = 1.0
) -> Objective:
    """Joint Energy Model training: cross-entropy of ``p(y|x)`` plus a generative objective.

    ``loss = mean CE(g(x), y) + generative_weight · generative.loss(params, key, x)``, the
    JEM factorisation ``log p(x, y) = log p(y | x) + log p(x)``; ``generative`` is an
    objective on the marginal energy ``E(x) = −logsumexp_y g(x)[y]`` (e.g. :func:`pcd`
    built on :func:`jebm.energies.conv.joint_energy_fns`' ``energy_fn``). Batches are
    pairs ``(x (n, *event), y (n,))``.

    Args:
      generative: the :class:`~jebm.objectives.base.Objective` for ``p(x)``.
      logits_fn: ``logits_fn(params, x) -> (num_classes,)``.
      generative_weight: weight of the generative term (traced).

    Returns:
      An :class:`~jebm.objectives.base.Objective`; metrics are the generative
      objective's plus ``cross_entropy`` and ``train_accuracy``.

    References:
      Grathwohl et al. (2020), Eq. (8).
    """

    def init(key: PRNGKey, batch):
        return generative.init(key, batch[0])

    def loss(params, key, batch, state):
        x, y = batch
        logits = jax.vmap(logits_fn, in_axes=(None, 0))(params, x)
        ce = jnp.mean(optax.losses.softmax_cross_entropy_with_integer_labels(logits, y))
        gen_loss, (metrics, state) = generative.loss(params, key, x, state)
        train_acc = jnp.mean((jnp.argmax(logits, -1) == y).astype(jnp.float32))
        total = ce + generative_weight * gen_loss
        metrics = {**metrics, "cross_entropy": ce, "train_accuracy": train_acc,
                   "generative_loss": gen_loss, "loss": total}
        return total, (metrics, state)

    return Objective(init=init, loss=loss)


# ------------------------------------------------------------------ likelihood (AIS)


def _log_abs_dsigmoid(z: Array) -> Array:
    """``log σ′(z) = −softplus(z) − softplus(−z)``, elementwise and overflow-free."""
    return -jax.nn.softplus(z) - jax.nn.softplus(-z)


def logit_energy(energy_fn: EnergyFn) -> EnergyFn:
    """The energy in logit coordinates: ``E_z(z) = E(σ(z)) − Σ log σ′(z)``.

    ``∫_{ℝ^d} exp(−E_z) dz = ∫_{[0,1]^d} exp(−E) dx``: both define the same normalised
    model, one on the box and one on ``ℝ^d``.
    """

    def energy_z(params: PyTree, z: Array) -> Array:
        return energy_fn(params, jax.nn.sigmoid(z)) - jnp.sum(_log_abs_dsigmoid(z))

    return energy_z


def logit_gaussian_base(
    x_train: Float[Array, "n ..."], *, eps: float = 1e-6, shrinkage: float = 0.0
) -> Base:
    """A full-covariance Gaussian fitted to the logits of ``x_train``, an AIS base in z-space.

    Args:
      x_train: ``(n, *event)`` data in ``(0, 1)``.
      eps: values are clipped to ``[eps, 1 − eps]`` before the logit.
      shrinkage: ``λ`` in ``(1 − λ) Σ̂ + λ diag(Σ̂)``, if the covariance is ill-conditioned.

    Returns:
      A :class:`~jebm.partition.ais.Base` on the event shape of ``x_train`` (a full
      covariance over the flattened event, reshaped on the way in and out).
    """
    event_shape = x_train.shape[1:]
    x = np.clip(np.asarray(x_train, np.float64), eps, 1.0 - eps)
    z = (np.log(x) - np.log1p(-x)).reshape(x.shape[0], -1)
    mean = z.mean(0)
    cov = (z - mean).T @ (z - mean) / z.shape[0]
    cov = (1.0 - shrinkage) * cov + shrinkage * np.diag(np.diag(cov))
    flat = gaussian_base(jnp.asarray(mean, jnp.float32), jnp.asarray(cov, jnp.float32))
    return Base(
        log_prob=lambda z: flat.log_prob(z.reshape(-1)),
        sample=lambda key, n: flat.sample(key, n).reshape(n, *event_shape),
    )


def logit_gaussian_density(
    x_train: Float[Array, "n ..."], *, eps: float = 1e-6, shrinkage: float = 0.0
) -> Base:
    """The fitted logit-Gaussian seen on the box: a normalised density of ``x`` in ``(0, 1)^d``.

    ``x = σ(z)`` with ``z`` from :func:`logit_gaussian_base`, so by the change of variables

        log q(x) = log N(logit x; μ, Σ) − Σ_j log(x_j (1 − x_j)).

    It is a tractable density *on the data's own coordinates*: a base energy
    ``−log q`` to add to a network (the network then learns a correction of ``q``,
    as in flow-contrastive and residual EBMs) and an NCE noise distribution
    (``sample`` and ``log_prob``) that matches the data far better than a Gaussian
    on ``ℝ^d``, which wastes mass outside the box.

    Args:
      x_train: ``(n, *event)`` data in ``[0, 1]``.
      eps: inputs are clipped to ``[eps, 1 − eps]`` (in the fit and in ``log_prob``),
        so pixels at exactly 0 or 1 have a finite log-density.
      shrinkage: as in :func:`logit_gaussian_base`.

    Returns:
      A :class:`~jebm.partition.ais.Base` on ``[0, 1]^event``: ``log_prob(x)`` of one
      unbatched ``x`` and ``sample(key, n)`` (exact draws ``σ(z)``).

    References:
      Gao, R., Nijkamp, E., Kingma, D. P., Xu, Z., Dai, A. M. and Wu, Y. N. (2020).
      Flow contrastive estimation of energy-based models. CVPR. (an EBM against, and on
      top of, a tractable density)
    """
    logits = logit_gaussian_base(x_train, eps=eps, shrinkage=shrinkage)

    def log_prob(x):
        x = jnp.clip(x, eps, 1.0 - eps)
        log_x, log_1mx = jnp.log(x), jnp.log1p(-x)
        return logits.log_prob(log_x - log_1mx) - jnp.sum(log_x + log_1mx)

    def sample(key, n):
        return jax.nn.sigmoid(logits.sample(key, n))

    return Base(log_prob, sample)


def logistic_base(event_shape: tuple[int, ...]) -> Base:
    """The uniform density on ``[0, 1]^event`` seen in logit coordinates (i.i.d. logistic)."""
    event_shape = tuple(event_shape)

    def log_prob(z):
        return jnp.sum(_log_abs_dsigmoid(z))

    def sample(key, n):
        u = jax.random.uniform(key, (n, *event_shape), jnp.float32, 1e-7, 1.0 - 1e-7)
        return jnp.log(u) - jnp.log1p(-u)

    return Base(log_prob, sample)


def logit_ais_nll(
    key: PRNGKey,
    energy_fn: EnergyFn,
    params: PyTree,
    x_test: Float[Array, "n ..."],
    base: Base,
    num_chains: int,
    **ais_kwargs,
) -> NLLEstimate:
    """Test NLL (nats per example) of ``exp(−E)`` restricted to ``[0, 1]^d``, via logit-space AIS.

    ``NLL = mean E(x_test) + log Z`` with ``Z = ∫_{[0,1]^d} exp(−E(x)) dx`` estimated by
    forward AIS (:func:`jebm.partition.ais.ais`) on :func:`logit_energy` from ``base``
    (a normalised density in logit coordinates, e.g. :func:`logit_gaussian_base` or
    :func:`logistic_base`). Forward AIS under-estimates ``log Z`` in expectation, so the
    NLL is optimistic when the annealing is too short; compare runs with more bridges.

    Args:
      key: PRNG key.
      energy_fn: ``energy_fn(params, x) -> scalar`` for one ``x`` in ``[0, 1]^event``.
      params: its parameters.
      x_test: ``(n, *event)`` test data in ``[0, 1]``, ``n >= 2``.
      base: AIS base in logit coordinates.
      num_chains: AIS chains.
      **ais_kwargs: forwarded to :func:`jebm.partition.ais.ais`.

    Returns:
      An :class:`~jebm.partition.ais.NLLEstimate` in the ``[0, 1]^d`` space (its ``ais``
      field holds the logit-space run; ``ais.final_positions`` are logits).
    """
    return ais_nll(key, energy_fn, params, x_test, base, num_chains,
                   ais_energy_fn=logit_energy(energy_fn), **ais_kwargs)


# ---------------------------------------------------------------------------- figures


def save_image_grid(
    path: str | os.PathLike,
    images: Float[Array, "n h w"],
    nrow: int,
    *,
    title: str | None = None,
    vmin: float = 0.0,
    vmax: float = 1.0,
    cell_inches: float = 0.6,
) -> None:
    """Save ``images`` as a grid PNG, ``nrow`` images per row (grey, ``vmin`` black).

    matplotlib is imported here, drawn on an Agg ``Figure`` (no global backend).

    Args:
      path: output file.
      images: ``(n, H, W)`` or ``(n, H, W, 1)``; the last row is padded with blanks.
      nrow: images per row.
      title: optional figure title.
      vmin, vmax: the grey range.
      cell_inches: size of one image in the figure.
    """
    from matplotlib.figure import Figure

    images = np.asarray(images, np.float32)
    if images.ndim == 4 and images.shape[-1] == 1:
        images = images[..., 0]
    if images.ndim != 3 or images.shape[0] < 1:
        raise ValueError(f"images must be (n, H, W), got shape {images.shape}.")
    if not isinstance(nrow, int) or nrow < 1:
        raise ValueError(f"nrow must be a positive int, got {nrow!r}.")
    n, h, w = images.shape
    ncol_cells = min(nrow, n)
    nrow_cells = -(-n // nrow)
    pad = 1
    frame = vmin + 0.25 * (vmax - vmin)  # light grey separators
    canvas = np.full((nrow_cells * (h + pad) + pad, ncol_cells * (w + pad) + pad), frame,
                     np.float32)
    for i in range(n):
        r, c = divmod(i, nrow)
        top, left = pad + r * (h + pad), pad + c * (w + pad)
        canvas[top:top + h, left:left + w] = images[i]
    extra = 0.3 if title else 0.0
    fig = Figure(figsize=(cell_inches * ncol_cells, cell_inches * nrow_cells + extra))
    ax = fig.add_axes((0.0, 0.0, 1.0, 1.0 - extra / (cell_inches * nrow_cells + extra)))
    ax.imshow(canvas, cmap="gray_r", vmin=vmin, vmax=vmax, interpolation="nearest")
    ax.set_axis_off()
    if title:
        fig.suptitle(title, fontsize=8)
    fig.savefig(os.fspath(path), dpi=100)
