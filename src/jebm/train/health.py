"""Training health: finite blow-ups caught from the per-step metrics, beyond NaN.

A contrastive EBM can run away without ever producing a NaN: with a sampler step size
far too large, or a learning rate far too high, the energies climb to 1e8 and beyond
while every number stays finite. Nijkamp et al. (2020) watch the energies of data and
negatives, their difference (the *energy gap*, which stays near zero in stable
training) and the gradient magnitudes; :func:`check_health` does the same on the
per-step metrics of each training chunk, on the host, after the chunk has run:

* **magnitude**: ``|E|`` of each energy metric (the objectives' ``energy_pos`` and
  ``energy_neg``) above ``max_abs_energy``;
* **growth**: ``|E|`` above ``max_energy_growth`` times its running median over the
  last ``history`` steps (floored at ``energy_floor``, so energies that grow from 0.01
  to 1 do not count as a blow-up);
* **gap**: ``|energy_pos − energy_neg|`` above ``max_energy_gap``;
* **gradient**: ``grad_norm`` above ``max_grad_norm_ratio`` times its running median, or
  below ``min_grad_norm_ratio`` times it (a collapse: e.g. every unit of the network dead,
  a constant energy and a zero gradient, which no NaN check sees);
* **sampler**: the fraction of divergent sampler transitions (``sampler/is_divergent``)
  above ``max_divergent_fraction``.

The running medians cover the ``history`` steps before each step (previous chunks
and the chunk's own earlier steps); they start once ``min_history`` steps have been
seen (and restart on resume). A metric the objective does not report is not checked (NCE and
score matching report no energies; their gradient norm is still watched). Training
stops (:class:`~jebm.train.TrainingDivergedError`) when a check fails for ``patience``
consecutive steps, so an isolated gradient spike does not end a run; a checkpoint is
marked *healthy* when no check failed in the last ``patience`` steps before it.

The defaults leave a wide margin on jebm's default job (PCD on 8gaussians, 1500 steps,
measured per step): ``|E| ≤ 13.9``, ``|E|`` at most 1.34× its floored running median,
``|gap| ≤ 0.98``, ``grad_norm`` at most 2.8× its running median and no divergent
transitions. With ``sampler.step_size=100`` the mean negative energy passes 4e4 within
50 steps (the gap check stops it at step 22); with a learning rate of 10 the energies
pass 1e6 (stopped at step 22, before the NaN at step 198). 400-step runs of every
shipped ``configs/*.yaml`` pass too: ``digits_pcd`` has ``|E| ≤ 0.35``, and the largest
gradient-norm ratio, 6.6, is ``digits_nce``'s (cd, checkerboard_nce and checkerboard_ssm
were checked end to end only).

References:
  Nijkamp, Hill, Han, Zhu and Wu (2020). On the anatomy of MCMC-based maximum
  likelihood learning of energy-based models. AAAI.
"""

from collections.abc import Mapping
from typing import NamedTuple

import numpy as np

from jebm._validate import check_float, check_int

__all__ = ["DEFAULT_HEALTH", "HealthConfig", "HealthState", "HealthReport", "init_health",
           "check_health", "is_healthy"]


class HealthConfig(NamedTuple):
    """Thresholds of the training-health checks; ``None`` turns a check off.

    Attributes:
      max_abs_energy: largest allowed ``|E|`` of an energy metric (per-step batch mean).
      max_energy_growth: largest allowed ratio of ``|E|`` to its running median.
      energy_floor: the running median of ``|E|`` is taken as at least this.
      max_energy_gap: largest allowed ``|energy_pos − energy_neg|``.
      max_grad_norm_ratio: largest allowed ratio of ``grad_norm`` to its running median.
      min_grad_norm_ratio: smallest allowed ratio of ``grad_norm`` to its running median.
      max_divergent_fraction: largest allowed fraction of divergent sampler transitions.
      patience: consecutive failing steps that stop training (a checkpoint is healthy
        when none of the last ``patience`` steps failed).
      history: steps in the running medians.
      min_history: steps seen before the running-median checks start.
      energy_metrics: names of the metrics holding mean energies.
      gap_metrics: ``(data energy, negative energy)`` metric names of the gap.
      divergence_metric: name of the divergent-fraction metric.
    """

    max_abs_energy: float | None = 1e4
    max_energy_growth: float | None = 100.0
    energy_floor: float = 10.0
    max_energy_gap: float | None = 1e3
    max_grad_norm_ratio: float | None = 1e3
    min_grad_norm_ratio: float | None = 1e-6
    max_divergent_fraction: float | None = 0.5
    patience: int = 10
    history: int = 1000
    min_history: int = 100
    energy_metrics: tuple[str, ...] = ("energy_pos", "energy_neg")
    gap_metrics: tuple[str, str] = ("energy_pos", "energy_neg")
    divergence_metric: str = "sampler/is_divergent"


DEFAULT_HEALTH = HealthConfig()


class HealthState(NamedTuple):
    """What the checks carry between chunks (host-side NumPy).

    Attributes:
      history: ``{metric: the last ≤ history values}`` of ``|E|`` and ``grad_norm``.
      failing: consecutive failing steps at the end of the last chunk.
      last_failure: the 1-based step of the last failing step, or ``None``.
    """

    history: dict[str, np.ndarray]
    failing: int
    last_failure: int | None


class HealthReport(NamedTuple):
    """The outcome of :func:`check_health` on one chunk.

    Attributes:
      stop_index: index (in the chunk) of the step at which training must stop, or ``None``.
      reasons: at that step, one line per failed check (empty when not stopping).
      values: ``{metric: value}`` of the failed checks at that step.
    """

    stop_index: int | None
    reasons: list[str]
    values: dict[str, float]


def _validate(config: HealthConfig) -> None:
    if not isinstance(config, HealthConfig):
        raise ValueError(f"health must be a HealthConfig or None, got {type(config).__name__}.")
    for name in ("max_abs_energy", "max_energy_growth", "max_energy_gap",
                 "max_grad_norm_ratio", "min_grad_norm_ratio", "max_divergent_fraction"):
        check_float(f"health.{name}", getattr(config, name), optional=True)
    check_float("health.energy_floor", config.energy_floor)
    check_int("health.patience", config.patience)
    check_int("health.history", config.history)
    check_int("health.min_history", config.min_history)
    if len(config.gap_metrics) != 2:
        raise ValueError(f"health.gap_metrics must name two metrics, got {config.gap_metrics!r}.")


def init_health(config: HealthConfig) -> HealthState:
    """The state before the first step (also after a resume).

    Args:
      config: the thresholds (checked here).

    Returns:
      An empty :class:`HealthState`.

    Raises:
      ValueError: naming the field, for a threshold that is not a finite number > 0.
    """
    _validate(config)
    return HealthState({}, 0, None)


def _running_ratio(values: np.ndarray, past: np.ndarray | None, config: HealthConfig,
                   floor: float) -> np.ndarray:
    """``values[i] / max(floor, median of the ≤ history values before step i)``.

    The window runs over the previous chunks and the chunk's own earlier steps; a step
    with fewer than ``min_history`` values before it gets ratio NaN (not judged: every
    comparison with it is false). The
    median is robust: a blow-up moves it only once it fills half the window.
    """
    past = np.zeros(0) if past is None else past
    full = np.concatenate([past, values])
    ratio = np.full(len(values), np.nan)
    for i in range(len(values)):
        j = len(past) + i
        if j >= config.min_history:
            ratio[i] = values[i] / max(floor, float(np.median(full[max(0, j - config.history):j])))
    return ratio


def check_health(
    config: HealthConfig, state: HealthState, metrics: Mapping[str, np.ndarray], begin: int
) -> tuple[HealthState, HealthReport]:
    """Check the per-step metrics of one chunk against the thresholds.

    Args:
      config: the thresholds.
      state: from :func:`init_health` or the previous chunk.
      metrics: ``{name: array (n,)}``, the stacked per-step metrics of the chunk
        (finite: non-finite values are the divergence check's job).
      begin: the update count before the chunk (its steps are ``begin + 1 ..``).

    Returns:
      ``(state, report)``; ``report.stop_index`` is the first step of the chunk at
      which some check has failed for ``patience`` consecutive steps.

    Examples:
      >>> import numpy as np
      >>> from jebm.train.health import HealthConfig, check_health, init_health
      >>> config = HealthConfig(patience=2)
      >>> metrics = {"energy_pos": np.array([1.0, 2e4, 2e4]), "energy_neg": np.ones(3)}
      >>> _, report = check_health(config, init_health(config), metrics, 0)
      >>> report.stop_index
      2
      >>> report.reasons[0]
      '|energy_pos| > max_abs_energy=10000 (energy_pos=2e+04)'
    """
    metrics = {k: np.asarray(v, np.float64) for k, v in metrics.items()}
    n = len(next(iter(metrics.values()))) if metrics else 0
    fails: list[tuple[np.ndarray, str, str, np.ndarray]] = []  # (mask, metric, why, values)

    energy_names = [m for m in config.energy_metrics if m in metrics]
    for name in energy_names:
        magnitude = np.abs(metrics[name])
        if config.max_abs_energy is not None:
            fails.append((magnitude > config.max_abs_energy, name,
                          f"|{name}| > max_abs_energy={config.max_abs_energy:g}", magnitude))
        if config.max_energy_growth is not None:
            ratio = _running_ratio(magnitude, state.history.get(name), config,
                                   config.energy_floor)
            fails.append((ratio > config.max_energy_growth, name,
                          f"|{name}| grew > max_energy_growth={config.max_energy_growth:g} "
                          f"times its running median", magnitude))
    pos, neg = config.gap_metrics
    if config.max_energy_gap is not None and pos in metrics and neg in metrics:
        gap = np.abs(metrics[pos] - metrics[neg])
        fails.append((gap > config.max_energy_gap, "energy_gap",
                      f"|{pos} - {neg}| > max_energy_gap={config.max_energy_gap:g}", gap))
    if config.max_grad_norm_ratio is not None and "grad_norm" in metrics:
        ratio = _running_ratio(metrics["grad_norm"], state.history.get("grad_norm"), config,
                               float(np.finfo(np.float32).tiny))
        fails.append((ratio > config.max_grad_norm_ratio, "grad_norm",
                          f"grad_norm > max_grad_norm_ratio={config.max_grad_norm_ratio:g} "
                          "times its running median", metrics["grad_norm"]))
    if config.min_grad_norm_ratio is not None and "grad_norm" in metrics:
        ratio = _running_ratio(metrics["grad_norm"], state.history.get("grad_norm"), config,
                               float(np.finfo(np.float32).tiny))
        fails.append((ratio < config.min_grad_norm_ratio, "grad_norm",
                      f"grad_norm < min_grad_norm_ratio={config.min_grad_norm_ratio:g} times "
                      "its running median (the model collapsed)", metrics["grad_norm"]))
    name = config.divergence_metric
    if config.max_divergent_fraction is not None and name in metrics:
        fails.append((metrics[name] > config.max_divergent_fraction, name,
                      f"{name} > max_divergent_fraction={config.max_divergent_fraction:g}",
                      metrics[name]))

    failing = np.zeros(n, bool)
    for mask, *_ in fails:
        failing |= mask
    # consecutive failing steps ending at each step, continuing the previous chunk's run
    run = np.zeros(n, np.int64)
    count = state.failing
    for i in range(n):
        count = count + 1 if failing[i] else 0
        run[i] = count
    stop = np.flatnonzero(run >= config.patience)
    report = HealthReport(None, [], {})
    if stop.size:
        i = int(stop[0])
        reasons, values = [], {}
        for mask, metric, why, vals in fails:
            if mask[i]:
                reasons.append(f"{why} ({metric}={vals[i]:.4g})")
                values[metric] = float(vals[i])
        report = HealthReport(i, reasons, values)
        n = i + 1  # the history and counts stop at the stopping step
    history = dict(state.history)
    for name in [*energy_names, "grad_norm"]:
        if name in metrics:
            values = np.abs(metrics[name][:n])
            old = history.get(name, np.zeros(0))
            history[name] = np.concatenate([old, values])[-config.history:]
    fail_steps = np.flatnonzero(failing[:n])
    last_failure = begin + int(fail_steps[-1]) + 1 if fail_steps.size else state.last_failure
    return HealthState(history, int(run[n - 1]) if n else state.failing, last_failure), report


def is_healthy(config: HealthConfig, state: HealthState, step: int) -> bool:
    """Whether a checkpoint written at ``step`` counts as healthy.

    It is healthy when no check failed in the last ``patience`` steps up to it.

    Args:
      config: the health thresholds; only ``patience`` is used.
      state: the health state; its ``last_failure`` is the 1-based step of the last failure.
      step: the step the checkpoint is written at.

    Returns:
      ``True`` if no check has failed, or the last failure is at least ``patience`` steps
      before ``step``.
    """
    return state.last_failure is None or step - state.last_failure >= config.patience
