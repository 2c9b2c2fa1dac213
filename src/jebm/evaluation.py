"""Evaluation in one place: log Z, test likelihood, OOD scoring and MCMC diagnostics.

* **log Z** — :func:`log_z_grid` (quadrature, one to three dimensions), :func:`ais` (a
  stochastic lower bound) and :func:`reverse_ais` (an upper bound from exact draws),
  re-exported from :mod:`jebm.partition`.
* **Test NLL** — :func:`nll`: ``mean E(x_test) + log Z`` from any estimate of
  ``log Z`` and its standard error. For an energy on the unit box, run AIS on
  :func:`jebm.energy.logit_energy` (the same ``Z``, no boundary) and pass its result.
* **Energy differences** (``Z`` cancels) — :func:`auroc` and :func:`ood_auroc` rank
  inputs by energy; :func:`predict` and :func:`accuracy` read a JEM classifier.
* **MCMC diagnostics** — :func:`effective_sample_size` and :func:`split_rhat` (re-exported
  from :mod:`jebm.diagnostics`) and :func:`chain_summary` (moments against exact ones).
* **A run's evaluation** — :func:`periodic_eval_fn` (jittable, during training) and
  :func:`summary` (the headline numbers of a trained :class:`~jebm.experiment.Run`);
  for labelled image data, :func:`image_sample_quality` and
  :func:`conditional_sample_quality` score its samples in jebm's own features
  (:mod:`jebm.sample_quality`).

References:
  Hanley, J. A. and McNeil, B. J. (1982). The meaning and use of the area under a
  receiver operating characteristic (ROC) curve. Radiology 143(1). (AUROC as the
  Mann–Whitney statistic)
  Du, Y. and Mordatch, I. (2019). Implicit generation and generalization in
  energy-based models. NeurIPS. (OOD scoring by energy)
"""

from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Float, Int

from jebm.diagnostics import effective_sample_size, split_rhat
from jebm.energy import batch_energy, logit_energy
from jebm.partition import AISResult, GridCoverage, ais, grid_coverage, log_z_grid, reverse_ais
from jebm.types import Array, EnergyFn, PRNGKey, PyTree

__all__ = [
    "log_z_grid",
    "grid_coverage",
    "GridCoverage",
    "ais",
    "reverse_ais",
    "AISResult",
    "NLLEstimate",
    "nll",
    "auroc",
    "ood_auroc",
    "predict",
    "accuracy",
    "effective_sample_size",
    "split_rhat",
    "chain_summary",
    "chain_warnings",
    "periodic_eval_fn",
    "box_ais",
    "density_grid",
    "image_sample_quality",
    "conditional_sample_quality",
    "MAX_REFERENCE",
    "summary",
]

# Sample quality: test images kept as the reference set (all 359 of the digits; the first
# 2000 of MNIST's or CIFAR-10's 10 000, which bounds the MMD's kernel matrices).
MAX_REFERENCE = 2000

LogitsFn = Callable[[PyTree, Array], Array]


# --------------------------------------------------------------------------- test NLL


class NLLEstimate(NamedTuple):
    """Test negative log-likelihood in nats, ``mean E(x_test) + log Ẑ``.

    Attributes:
      nll: the estimate.
      nll_stderr: ``sqrt(log_z_stderr² + energy_stderr²)``: the error as an estimate of
        the expected NLL under the data distribution.
      log_z_stderr: the error from ``log Ẑ`` alone, the relevant one for a fixed test set.
      mean_energy: ``mean E(x_test)``.
      energy_stderr: ``std E(x_test) / sqrt(n_test)``.
    """

    nll: Array
    nll_stderr: Array
    log_z_stderr: Array
    mean_energy: Array
    energy_stderr: Array


def nll(
    energy_fn: EnergyFn,
    params: PyTree,
    x_test: Float[Array, "n ..."],
    log_z: Array | float,
    log_z_stderr: Array | float = 0.0,
) -> NLLEstimate:
    """Average test negative log-likelihood ``(1/n) Σᵢ E(xᵢ) + log Z``.

    With ``log Z`` from forward AIS (a stochastic lower bound) the NLL is optimistic when
    the annealing is too fast; :func:`reverse_ais` gives the conservative counterpart.

    Args:
      energy_fn: ``energy_fn(params, x) -> scalar``.
      params: the energy's parameters.
      x_test: ``(n, *event)`` test points, ``n >= 2``.
      log_z: an estimate of ``log Z`` (e.g. ``AISResult.log_z``, or :func:`log_z_grid`).
      log_z_stderr: its standard error (``AISResult.log_z_stderr``; 0 for quadrature).

    Returns:
      An :class:`NLLEstimate` in nats per example.

    Examples:
      >>> import jax, jax.numpy as jnp
      >>> from jebm.energies import gaussian
      >>> from jebm.evaluation import nll
      >>> target = gaussian(jnp.zeros(2), jnp.eye(2))
      >>> x = target.sample(jax.random.key(0), 1000)
      >>> est = nll(target.energy_fn, target.params, x, target.log_z)
      >>> abs(float(est.nll) - 2.8379) < 0.1  # the entropy of N(0, I₂), log(2πe)
      True
    """
    x_test = jnp.asarray(x_test)
    if x_test.ndim < 1 or x_test.shape[0] < 2:
        raise ValueError(f"x_test must be a batch (n, *event) with n >= 2, got {x_test.shape}.")
    energies = batch_energy(energy_fn, params, x_test)
    mean_energy = jnp.mean(energies)
    energy_stderr = jnp.std(energies, ddof=1) / jnp.sqrt(energies.shape[0])
    nll = mean_energy + log_z
    nll_stderr = jnp.sqrt(log_z_stderr**2 + energy_stderr**2)
    return NLLEstimate(nll, nll_stderr, jnp.asarray(log_z_stderr), mean_energy, energy_stderr)


# ------------------------------------------------------------------ energy differences


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
      >>> from jebm.evaluation import auroc
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
    """AUROC of the energy as a detector of ``x_out`` among ``x_in`` (``Z`` cancels).

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


def predict(logits_fn: LogitsFn, params: PyTree, x: Float[Array, "n ..."]) -> Array:
    """``argmax_y g(x)[y]`` for a batch, shape ``(n,)`` (JEM's ``p(y|x) = softmax g(x)``).

    Args:
      logits_fn: ``logits_fn(params, x) -> (num_classes,)`` for one ``x``.
      params: its parameters.
      x: ``(n, *event)`` inputs.
    """
    return jnp.argmax(jax.vmap(logits_fn, in_axes=(None, 0))(params, x), axis=-1)


def accuracy(
    logits_fn: LogitsFn, params: PyTree, x: Float[Array, "n ..."], labels: Int[Array, " n"]
) -> Array:
    """Share of ``x`` classified as ``labels``.

    Args:
      logits_fn: ``logits_fn(params, x) -> (num_classes,)`` for one ``x``.
      params: its parameters.
      x: ``(n, *event)`` inputs.
      labels: ``(n,)`` integer classes.
    """
    return jnp.mean((predict(logits_fn, params, x) == jnp.asarray(labels)).astype(jnp.float32))


# ----------------------------------------------------------------------- diagnostics


def chain_summary(trace: np.ndarray, exact_mean=None, exact_cov=None) -> dict:
    """Bulk ESS, split R̂ and moments of a trace ``(num_kept, num_chains, d)``.

    Args:
      trace: kept draws, layout ``(num_kept, num_chains, d)``.
      exact_mean: the target's mean ``(d,)`` if known (adds errors in units of the
        Monte Carlo standard error ``sqrt(var / ESS)``).
      exact_cov: the target's covariance ``(d, d)`` if known.

    Returns:
      A dictionary of plain floats and lists.
    """
    ess = np.asarray(effective_sample_size(jnp.asarray(trace)))
    rhat = np.asarray(split_rhat(jnp.asarray(trace)))
    flat = np.asarray(trace).reshape(-1, trace.shape[-1]).astype(np.float64)
    mean, cov = flat.mean(0), np.atleast_2d(np.cov(flat, rowvar=False))
    mcse = np.sqrt(np.diag(cov) / ess)
    out = {
        "ess_bulk": ess.tolist(),
        "ess_bulk_min": float(np.min(ess)),
        "rhat": rhat.tolist(),
        "rhat_max": float(np.max(rhat)),
        "mean": mean.tolist(),
        "cov": cov.tolist(),
        "mean_mcse": mcse.tolist(),
    }
    if exact_mean is not None:
        out.update(
            mean_exact=np.asarray(exact_mean).tolist(),
            cov_exact=np.asarray(exact_cov).tolist(),
            mean_abs_error=float(np.max(np.abs(mean - exact_mean))),
            mean_error_in_mcse=float(np.max(np.abs(mean - exact_mean) / mcse)),
            cov_abs_error=float(np.max(np.abs(cov - exact_cov))),
        )
    return out


def chain_warnings(summary: dict, num_chains: int) -> list[str]:
    """Why the moments of a :func:`chain_summary` are not to be trusted, if they are not.

    R̂ above 1.05 (Vehtari et al. 2021 ask for 1.01 in final results) means the chains
    disagree; a bulk ESS below 100 means a large Monte Carlo error.

    Args:
      summary: a :func:`chain_summary` dictionary.
      num_chains: how many chains it summarises (for the message).

    Returns:
      One sentence per failed check (empty when both pass).
    """
    out = []
    if summary["rhat_max"] > 1.05:
        out.append(f"R-hat {summary['rhat_max']:.3f} > 1.05: the chains disagree (not mixed); "
                   "run longer, tune the step size, or use another sampler.")
    if summary["ess_bulk_min"] < 100:
        out.append(f"bulk ESS {summary['ess_bulk_min']:.0f} < 100 over {num_chains} chains: "
                   "the moments carry large Monte Carlo error.")
    return out


# ------------------------------------------------------------------- a run's numbers


def _grid_box(run) -> dict:
    """The ``eval.grid_*`` square of a 2-D run, as keywords of :func:`log_z_grid`."""
    ev = run.config.eval
    return dict(low=(ev.grid_low, ev.grid_low), high=(ev.grid_high, ev.grid_high),
                num_points=ev.grid_points)


def grid_log_z(run, params) -> Array:
    """``log Z`` of a 2-D run's model by quadrature on the ``eval.grid_*`` square."""
    return log_z_grid(run.model_energy_fn, params, **_grid_box(run))


def periodic_eval_fn(run) -> Callable[[PyTree], dict[str, Array]]:
    """``params -> metrics`` for evaluation during training (jittable).

    2-D data: the test NLL by grid quadrature and the ``log Z`` behind it. Images: the
    mean test energy (``Z``-free; the AIS NLL is computed at the end, by :func:`summary`).

    Args:
      run: a :class:`~jebm.experiment.Run`; its ``data.test`` and ``eval.grid_*`` are used.

    Returns:
      ``evaluate(params)`` on the trained params, returning ``{"nll", "log_z"}`` (2-D)
      or ``{"energy_test"}`` (images), scalars. It does not jit itself.
    """

    def evaluate(params):
        energies = batch_energy(run.model_energy_fn, params, run.data.test)
        if not run.data.planar:
            return {"energy_test": jnp.mean(energies)}
        log_z = grid_log_z(run, params)
        return {"nll": jnp.mean(energies) + log_z, "log_z": log_z}

    return evaluate


def box_ais(key: PRNGKey, run, params) -> tuple[NLLEstimate, AISResult]:
    """Test NLL of an image run on ``[0, 1]^d``: AIS in logit coordinates (``eval.ais_*``).

    ``Z = ∫_{[0,1]^d} exp(−E)`` equals the partition function of
    :func:`jebm.energy.logit_energy` on ``ℝ^d``, annealed from the ``eval.ais_base``
    density of :data:`jebm.experiment.AIS_BASES` with adapted MALA steps.

    Args:
      key: PRNG key of the AIS run (and its step-size pilot).
      run: an image :class:`~jebm.experiment.Run` (``data.train`` is the base's fit).
      params: the trained params.

    Returns:
      ``(estimate, result)``: the :class:`NLLEstimate` on ``data.test`` in nats per
      image on ``[0, 1]^d``, and the :class:`AISResult` behind it. Jittable with ``run``
      closed over (the base is fitted to its concrete training images).
    """
    from jebm.experiment import AIS_BASES

    ev = run.config.eval
    base = AIS_BASES[ev.ais_base](run.data.train)
    result = ais(key, logit_energy(run.model_energy_fn), params, base, ev.ais_chains,
                 num_bridges=ev.ais_bridges, step_size=ev.ais_step_size, adapt_step_size=True)
    return nll(run.model_energy_fn, params, run.data.test, result.log_z,
                    result.log_z_stderr), result


def density_grid(run, params, num: int = 200, *, log_z: float | Array | None = None):
    """A 2-D run's model on a ``num × num`` grid of the ``eval.grid_*`` square.

    The learned log-density is normalised by grid quadrature (:func:`log_z_grid` on the
    ``eval.grid_*`` grid), or by ``log_z`` when the caller has that number already (the
    last periodic evaluation's, :func:`periodic_eval_fn`). Jits its computations (one
    program); for plots, outside ``jit``.

    Args:
      run: a :class:`~jebm.experiment.Run` on a 2-D toy (``data.toy`` gives the truth).
      params: the trained params.
      num: grid points per axis.
      log_z: the model's ``log Z`` on the ``eval.grid_*`` grid (:func:`grid_log_z` of
        ``params``), if known; ``None`` computes it.

    Returns:
      ``(extent, learned, true, energies)``: ``extent = (x_low, x_high, y_low, y_high)``,
      the learned and true log-densities and the model's energies, each ``(num, num)`` with
      ``[i, j]`` at ``(x_j, y_i)`` (the layout of ``meshgrid``).
    """
    ev = run.config.eval
    extent = (ev.grid_low, ev.grid_high, ev.grid_low, ev.grid_high)

    def grid(p, log_z):
        axis = jnp.linspace(ev.grid_low, ev.grid_high, num)
        gx, gy = jnp.meshgrid(axis, axis)
        points = jnp.stack([gx.ravel(), gy.ravel()], axis=-1)
        energies = batch_energy(run.model_energy_fn, p, points)
        log_z = grid_log_z(run, p) if log_z is None else log_z
        true = jax.vmap(run.data.toy.density.log_prob)(points)
        return -(energies + log_z), true, energies

    given = None if log_z is None else jnp.asarray(log_z, jnp.float32)
    shape = (num, num)
    return extent, *(np.asarray(a).reshape(shape) for a in jax.jit(grid)(params, given))


def _reference(run) -> np.ndarray:
    """The reference images of sample quality: the first :data:`MAX_REFERENCE` test images."""
    return np.asarray(run.data.test[:MAX_REFERENCE])


def image_sample_quality(run, params, feature_cache, *, num_samples: int = 360,
                         objective_state=None) -> dict:
    """Sample quality of a labelled image run in jebm's own features, beside its baselines.

    Chains of the run's own sampler from its initial positions (``eval.sample_steps``
    transitions), scored against the test split (its first :data:`MAX_REFERENCE` images)
    by :func:`jebm.sample_quality.score_samples` (Fréchet distance in jebm's features of
    the run's data set, kernel MMD with its standard error, class coverage, confidence),
    next to the train-vs-test floor, the fitted Gaussian, the logit-Gaussian and uniform
    noise. The feature network is trained on the run's own labelled training split
    (:func:`jebm.sample_quality.load_or_train_features`).

    Args:
      run: a :class:`~jebm.experiment.Run` on a data set of
        :data:`jebm.experiment.LABELLED_DATASETS`.
      params: its trained parameters.
      feature_cache: folder of the feature network's cache (trained once per data set
        and seed).
      num_samples: model samples (and samples per baseline) of each of the
        ``eval.quality_draws`` independent draws (:func:`jebm.sample_quality.score_draws`).
      objective_state: the trained objective state; a PCD run's adapted step size is
        read from it (:func:`jebm.experiment.trained_sampler`).

    Returns:
      ``{"model": scores, "baselines": {name: scores}, "sample_steps": ...}``.
    """
    from jebm import sample_quality as sq
    from jebm.densities import fit_gaussian, logit_gaussian
    from jebm.experiment import sample_model, trained_sampler

    net = sq.load_or_train_features(feature_cache, run.data, seed=run.config.train.seed)
    num_draws = run.config.eval.quality_draws
    draws = sample_model(run, params, jax.random.fold_in(run.eval_key, 1),
                         num_samples * num_draws, run.config.eval.sample_steps,
                         sampler=trained_sampler(run, objective_state))
    reference = _reference(run)
    model = sq.score_draws(net, np.asarray(draws), reference, num_draws)
    baselines = sq.baseline_report(
        jax.random.fold_in(run.eval_key, 2), net, run.data.sample, reference,
        {"gaussian": fit_gaussian(run.data.train).sample,
         "logit_gaussian": logit_gaussian(run.data.train).sample}, num_samples=num_samples,
        num_draws=num_draws)
    return {"model": model, "baselines": baselines,
            "sample_steps": run.config.eval.sample_steps, "num_samples": num_samples,
            "num_draws": num_draws}


def conditional_sample_quality(run, params, feature_cache, *, num_samples: int = 360,
                               objective_state: Any = None) -> dict:
    """Sample quality of a joint (JEM) image run's class-conditional samples.

    ``num_samples`` chains of :func:`jebm.experiment.sample_conditional` (the run's sampler
    on ``p(x | y) ∝ exp(−E(x, y))``, ``eval.sample_steps`` transitions, from the run's
    initial positions, with the step size training adapted, if any), the labels the
    data's classes repeated in turn, scored like :func:`image_sample_quality`'s model
    samples (its baselines apply unchanged). ``label_agreement`` is the share of samples
    the model's own classifier assigns to the class they were drawn for.

    Args:
      run: a labelled image :class:`~jebm.experiment.Run` of a joint model.
      params: its trained parameters.
      feature_cache: folder of the feature network's cache (trained once per data set
        and seed).
      num_samples: conditional samples of each of the ``eval.quality_draws`` draws.
      objective_state: the trained objective state; a run's adapted step size is read
        from it (:func:`jebm.experiment.trained_sampler`).

    Returns:
      ``{"model": scores, "label_agreement": ..., "sample_steps": ..., "num_samples": ...}``.
    """
    from jebm import sample_quality as sq
    from jebm.experiment import NUM_CLASSES, sample_conditional, trained_sampler

    net = sq.load_or_train_features(feature_cache, run.data, seed=run.config.train.seed)
    num_draws = run.config.eval.quality_draws
    classes = jnp.asarray(run.config.data.classes or range(NUM_CLASSES), jnp.int32)
    labels = jnp.tile(jnp.resize(classes, (num_samples,)), num_draws)
    draws = sample_conditional(run, params, jax.random.fold_in(run.eval_key, 3), labels,
                               run.config.eval.sample_steps,
                               sampler=trained_sampler(run, objective_state))
    model = sq.score_draws(net, np.asarray(draws), _reference(run), num_draws)
    agreement = float(jax.jit(lambda p, x: accuracy(run.joint.logits_fn, p, x, labels))(
        params, draws))
    return {"model": model, "label_agreement": agreement,
            "sample_steps": run.config.eval.sample_steps, "num_samples": num_samples,
            "num_draws": num_draws}


def _recipe_extras(run, params, feature_cache, objective_state=None) -> dict:
    """What a run's objective adds to an image summary: NCE's ``log Z``, a joint model's
    test accuracy (and class-conditional sample quality), a ladder's label of the NLL."""
    ev, obj = run.config.eval, run.config.objective
    from jebm.experiment import LABELLED_DATASETS

    quality = (feature_cache is not None and run.config.data.name in LABELLED_DATASETS
               and ev.sample_quality)
    extra = {}
    if obj.name == "nce":
        extra["nce_log_z"] = float(params["log_z"])
    if obj.ladder is not None:
        d = int(np.prod(run.data.event_shape))
        what = {"dsm": "DSM fits E(x, sigma) to the data smoothed by N(0, sigma^2 I), so "
                       "this is a model of the smoothed data",
                "drl": "recovery likelihood fits each level's E(x, sigma) to the clean data "
                       "through p(x | x + sigma eps), at small sigma only near the data"
                       if obj.drl_form == "clean" else
                       "diffusion recovery likelihood fits E(x, sigma_i) to the data smoothed "
                       "by N(0, sigma_i^2 I) through p(x_i | x_{i+1}), so this is a model "
                       "of the smoothed data"}
        extra["test_nll_model"] = (
            f"exp(-E(x, sigma_min={min(obj.ladder):.4g})) on [0, 1]^{d}, the "
            "noise-conditional energy at its smallest level normalised by AIS; "
            f"{what.get(obj.name, 'see the objective')}")
    if run.joint is not None and run.data.test_labels is not None:
        extra["accuracy"] = float(jax.jit(lambda p: accuracy(
            run.joint.logits_fn, p, run.data.test, run.data.test_labels))(params))
    if quality:
        extra["sample_quality"] = image_sample_quality(run, params, feature_cache,
                                                       objective_state=objective_state)
        if run.joint is not None:
            extra["sample_quality_conditional"] = conditional_sample_quality(
                run, params, feature_cache, objective_state=objective_state)
    return extra


def summary(run, params, feature_cache=None, objective_state=None) -> dict[str, float]:
    """The headline numbers of a trained run, in nats per point.

    2-D data: the test NLL by grid quadrature, the data's entropy ``H`` and
    ``NLL − H`` (≥ 0 up to Monte Carlo error; 0 for a perfect model), reported only when
    :func:`grid_coverage` accepts the grid (otherwise ``None`` and an ``error``). Images:
    the AIS test NLL on ``[0, 1]^d`` with its standard error and ESS, next to the
    full-covariance Gaussian, logit-Gaussian and uniform baselines (and, for NCE, the
    learned ``log Z``).

    Jits its computations; call it outside ``jit``. The AIS draws use ``run.eval_key``.

    Args:
      run: the :class:`~jebm.experiment.Run`.
      params: its trained params.
      feature_cache: labelled image data (:data:`jebm.experiment.LABELLED_DATASETS`): the
        folder of jebm's feature network of the data set (trained once per data set and
        seed); given, and with ``eval.sample_quality``, the summary adds
        ``sample_quality`` (:func:`image_sample_quality`), and for a joint model
        ``sample_quality_conditional`` (:func:`conditional_sample_quality`).
      objective_state: the trained objective state (the sampler's adapted step size).

    Returns:
      A JSON-ready dictionary of floats. 2-D: ``test_nll``, ``log_z``, ``entropy``,
      ``nll_minus_entropy`` and ``grid_coverage``. Images: ``test_nll`` and
      ``test_nll_stderr``, ``log_z`` and ``log_z_stderr``, ``mean_energy_test``,
      ``ais_ess``, the AIS settings and ``ais_seconds``, the baselines
      (``gaussian_nll``, ``logit_gaussian_nll``, each with its ``_stderr``, and
      ``uniform_nll``), ``discrete_offset`` (:data:`jebm.datasets.digits.DISCRETE_OFFSET`)
      and, for NCE, ``nce_log_z``; a joint (JEM) model adds the test ``accuracy`` of its
      classifier; a noise-conditional model (NCSN, DRL ladder) is one energy per level,
      so its ``test_nll`` is that of ``exp(−E(x, σ_min))``, the smallest level, on the
      box, and ``test_nll_model`` says so (for NCSN a density of the data smoothed at
      ``σ_min``).
    """
    import time

    if run.data.planar:
        def nll_and_coverage(p):  # one quadrature serves the NLL and the coverage check
            check = grid_coverage(run.model_energy_fn, p, **_grid_box(run))
            energies = batch_energy(run.model_energy_fn, p, run.data.test)
            return jnp.mean(energies) + check.log_z, check

        nll, check = jax.jit(nll_and_coverage)(params)
        values = {"nll": float(nll), "log_z": float(check.log_z)}
        entropy = float(run.data.toy.entropy)
        coverage = {"border_mass": float(check.border_mass),
                    "log_z_finer_grid": float(check.log_z_finer), "ok": bool(check.ok)}
        if not coverage["ok"]:  # refuse the number rather than report a wrong one
            return {"test_nll": None, "log_z": None, "entropy": entropy,
                    "nll_minus_entropy": None, "grid_coverage": coverage,
                    "error": "the quadrature grid does not cover the model's density "
                    f"(border mass {coverage['border_mass']:.2g}, log Z {values['log_z']:.4f} "
                    f"-> {coverage['log_z_finer_grid']:.4f} on a finer grid): widen "
                    "eval.grid_low/eval.grid_high or raise eval.grid_points."}
        return {"test_nll": values["nll"], "log_z": values["log_z"], "entropy": entropy,
                "nll_minus_entropy": values["nll"] - entropy, "grid_coverage": coverage}
    from jebm.datasets.digits import DISCRETE_OFFSET, gaussian_nll
    from jebm.densities import logit_gaussian

    tic = time.perf_counter()
    est, result = jax.block_until_ready(jax.jit(lambda k, p: box_ais(k, run, p))(
        run.eval_key, params))
    ais_seconds = time.perf_counter() - tic
    gauss, gauss_stderr = gaussian_nll(run.data.train, run.data.test)
    logit_gauss = -jax.vmap(logit_gaussian(run.data.train).log_prob)(run.data.test)
    logit_gauss_stderr = float(jnp.std(logit_gauss, ddof=1)) / len(logit_gauss) ** 0.5
    ev = run.config.eval
    extra = _recipe_extras(run, params, feature_cache, objective_state)
    if float(result.ess) < 0.1 * ev.ais_chains:  # say so rather than let the number pass
        extra["ais_warning"] = (
            f"AIS ESS {float(result.ess):.1f} of {ev.ais_chains} chains: log Z and the test "
            "NLL rest on a few chains and are unreliable; raise eval.ais_bridges or change "
            "eval.ais_base.")
    return {"test_nll": float(est.nll), "test_nll_stderr": float(est.nll_stderr),
            "log_z": float(result.log_z), "log_z_stderr": float(est.log_z_stderr),
            "mean_energy_test": float(est.mean_energy), "ais_ess": float(result.ess),
            "ais_base": ev.ais_base, "ais_chains": ev.ais_chains,
            "ais_bridges": ev.ais_bridges, "ais_seconds": ais_seconds,
            "gaussian_nll": gauss, "gaussian_nll_stderr": gauss_stderr,
            "logit_gaussian_nll": float(jnp.mean(logit_gauss)),
            "logit_gaussian_nll_stderr": logit_gauss_stderr,
            "uniform_nll": 0.0, "discrete_offset": DISCRETE_OFFSET, **extra}
