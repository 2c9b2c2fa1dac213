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

A trained run's numbers (periodic metrics, its summary, the quality of its samples) are
recipes of the experiment layer, built on these: :mod:`jebm.experiment.evaluate`.

References:
  Hanley, J. A. and McNeil, B. J. (1982). The meaning and use of the area under a
  receiver operating characteristic (ROC) curve. Radiology 143(1). (AUROC as the
  Mann–Whitney statistic)
  Du, Y. and Mordatch, I. (2019). Implicit generation and generalization in
  energy-based models. NeurIPS. (OOD scoring by energy)
"""

from collections.abc import Callable
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Float, Int

from jebm.diagnostics import effective_sample_size, split_rhat
from jebm.energy import batch_energy
from jebm.partition import AISResult, GridCoverage, ais, grid_coverage, log_z_grid, reverse_ais
from jebm.types import Array, EnergyFn, PyTree

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
]

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
