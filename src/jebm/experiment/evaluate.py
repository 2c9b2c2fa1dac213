"""A trained run's numbers: periodic metrics, the summary, and the quality of its samples.

* :func:`periodic_eval_fn` — jittable metrics during training (2-D: the test NLL by grid
  quadrature; images: the mean test energy).
* :func:`summary` — the headline numbers of a trained run: 2-D, the test NLL against the
  data's entropy; images, the AIS test NLL (:func:`box_ais`) beside the fitted
  baselines, and for labelled images the quality of its samples in jebm's own features
  (:func:`image_sample_quality`, :func:`conditional_sample_quality`).
* :func:`density_grid` — a 2-D model's learned and true densities on a grid, for plots.

The estimators themselves (quadrature, AIS, NLL, accuracy) are :mod:`jebm.evaluation`'s.
"""

import sys
import time
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from jebm import sample_quality as sq
from jebm.datasets.digits import DISCRETE_OFFSET
from jebm.datasets.labels import NUM_CLASSES
from jebm.densities import AIS_BASES, DENSITIES, baseline_nll
from jebm.energy import batch_energy, logit_energy
from jebm.evaluation import AISResult, NLLEstimate, accuracy, ais, grid_coverage, log_z_grid, nll
from jebm.experiment.data import LABELLED_DATASETS
from jebm.experiment.recipes import OBJECTIVES
from jebm.experiment.sampling import sample_conditional, sample_model, trained_sampler
from jebm.types import Array, PRNGKey, PyTree

__all__ = ["MAX_REFERENCE", "grid_log_z", "periodic_eval_fn", "box_ais", "density_grid",
           "image_sample_quality", "conditional_sample_quality", "summary"]  # fmt: skip

# Sample quality: test images kept as the reference set (all 359 of the digits; the first
# 2000 of MNIST's or CIFAR-10's 10 000, which bounds the MMD's kernel matrices).
MAX_REFERENCE = 2000


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
    density of :data:`jebm.densities.AIS_BASES` with adapted MALA steps.

    Args:
      key: PRNG key of the AIS run (and its step-size pilot).
      run: an image :class:`~jebm.experiment.Run` (``data.train`` is the base's fit).
      params: the trained params.

    Returns:
      ``(estimate, result)``: the :class:`NLLEstimate` on ``data.test`` in nats per
      image on ``[0, 1]^d``, and the :class:`AISResult` behind it. Jittable with ``run``
      closed over (the base is fitted to its concrete training images).
    """
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
        :data:`~jebm.experiment.LABELLED_DATASETS`.
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

    net = sq.load_or_train_features(feature_cache, run.data, seed=run.config.train.seed)
    num_draws = run.config.eval.quality_draws
    draws = sample_model(run, params, jax.random.fold_in(run.eval_key, 1),
                         num_samples * num_draws, run.config.eval.sample_steps,
                         sampler=trained_sampler(run, objective_state))
    reference = _reference(run)
    model = sq.score_draws(net, np.asarray(draws), reference, num_draws)
    baselines = sq.baseline_report(
        jax.random.fold_in(run.eval_key, 2), net, run.data.sample, reference,
        {name: DENSITIES[name](run.data.train).sample for name in ("gaussian", "logit_gaussian")},
        num_samples=num_samples,
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

    quality = (feature_cache is not None and run.config.data.name in LABELLED_DATASETS
               and ev.sample_quality)
    recipe = OBJECTIVES[obj.name]
    extra = recipe.extras(run.config, params)
    if obj.ladder is not None:
        d = int(np.prod(run.data.event_shape))
        extra["test_nll_model"] = (
            f"exp(-E(x, sigma_min={min(obj.ladder):.4g})) on [0, 1]^{d}, the "
            "noise-conditional energy at its smallest level normalised by AIS; "
            f"{recipe.ladder_model(obj)}")
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
      feature_cache: labelled image data (:data:`~jebm.experiment.LABELLED_DATASETS`): the
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

    ev = run.config.eval
    print(f"jebm: estimating the test NLL by AIS ({ev.ais_chains} chains, {ev.ais_bridges} "
          "bridges; eval.ais_chains and eval.ais_bridges set its cost) ...", file=sys.stderr)
    tic = time.perf_counter()
    est, result = jax.block_until_ready(jax.jit(lambda k, p: box_ais(k, run, p))(
        run.eval_key, params))
    ais_seconds = time.perf_counter() - tic
    print(f"jebm: AIS done in {ais_seconds:.0f} s.", file=sys.stderr)
    gauss, gauss_stderr = baseline_nll(DENSITIES["gaussian"](run.data.train), run.data.test)
    logit_gauss, logit_gauss_stderr = baseline_nll(DENSITIES["logit_gaussian"](run.data.train),
                                                   run.data.test)
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
            "logit_gaussian_nll": logit_gauss,
            "logit_gaussian_nll_stderr": logit_gauss_stderr,
            "uniform_nll": 0.0, "discrete_offset": DISCRETE_OFFSET, **extra}
