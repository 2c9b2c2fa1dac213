"""``jebm sample``'s recipe: chains on an analytic target or a trained model, and their report.

:data:`TARGETS` are the analytic targets with exact moments; :func:`chain_setup` says what
the chains run on (a target, or the last checkpoint of a workdir), and :func:`sample_job`
runs them and writes their diagnostics, figures and draws.
"""

import os
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, NamedTuple

import jax
import numpy as np

from jebm import plotting
from jebm._validate import check_float, check_int
from jebm.energies import eight_gaussians, gaussian, rings
from jebm.energy import batch_energy, logdensity_fn
from jebm.evaluation import chain_summary, chain_warnings
from jebm.experiment.components import build_sampler
from jebm.experiment.config import SamplerConfig
from jebm.experiment.recipes import initial_positions
from jebm.experiment.records import write_json
from jebm.experiment.run import build_run
from jebm.experiment.sampling import adapted_step_size
from jebm.experiment.training import restore_state
from jebm.experiment.workdir import stored_config
from jebm.samplers import run_chains_chunked
from jebm.train import model_params, params_kind
from jebm.types import Array, EnergyFn, PRNGKey, PyTree

__all__ = ["SamplingTarget", "TARGETS", "sampling_target", "retuned_sampler", "ChainSetup",
           "chain_setup", "sample_job"]  # fmt: skip


class SamplingTarget(NamedTuple):
    """An analytic target for ``jebm sample``: its energy, exact moments and tuned steps.

    Attributes:
      energy: the :class:`~jebm.energies.AnalyticEnergy`.
      mean: the exact mean ``(2,)``.
      cov: the exact covariance ``(2, 2)``.
      extent: ``(x_low, x_high, y_low, y_high)`` for plots.
      label: where the moments come from.
      step_sizes: default step size per sampler name (MALA/ULA ``h``, RWMH proposal
        scale, HMC leapfrog step), tuned per target; NUTS and underdamped Langevin take
        HMC's (:data:`_SAME_STEP`).
    """

    energy: Any
    mean: np.ndarray
    cov: np.ndarray
    extent: tuple[float, float, float, float]
    label: str
    step_sizes: dict[str, float]


def _gaussian_target() -> SamplingTarget:
    mean, cov = np.array([1.0, -1.0]), np.array([[1.0, 0.8], [0.8, 1.0]])
    return SamplingTarget(gaussian(mean, cov), mean, cov, (-3.0, 5.0, -5.0, 3.0), "exact",
                          {"mala": 0.4, "ula": 0.05, "rwmh": 1.2, "hmc": 0.4})


def _eight_gaussians_target() -> SamplingTarget:
    target = eight_gaussians()
    p = target.params
    w = np.exp(np.asarray(p["log_weights"], np.float64))
    mu = np.asarray(p["means"], np.float64)
    s2 = np.asarray(p["scales"], np.float64) ** 2
    mean = w @ mu
    second = np.einsum("k,ki,kj->ij", w, mu, mu) + np.sum(w * s2) * np.eye(2)
    return SamplingTarget(target, mean, second - np.outer(mean, mean), (-4.5, 4.5, -4.5, 4.5),
                          "exact", {"mala": 0.05, "ula": 0.01, "rwmh": 0.5, "hmc": 0.15})


def _rings_target() -> SamplingTarget:
    target = rings()
    # no closed form: moments of 10⁶ exact draws (standard error ≈ 2e-3, far below MCMC's)
    draws = np.asarray(target.sample(jax.random.key(12345), 1_000_000), np.float64)
    return SamplingTarget(target, draws.mean(0), np.cov(draws, rowvar=False), (-4, 4, -4, 4),
                          "exact, 1e6 draws",
                          {"mala": 0.003, "ula": 0.0005, "rwmh": 0.15, "hmc": 0.04})


# Samplers whose step is an integrator step like HMC's: they take its tuned step size (on
# all three targets it is stable for them too).
_SAME_STEP = {"nuts": "hmc", "underdamped": "hmc"}


TARGETS: dict[str, Callable[[], SamplingTarget]] = {
    "8gaussians": _eight_gaussians_target,
    "gaussian": _gaussian_target,
    "rings": _rings_target,
}


def sampling_target(name: str) -> SamplingTarget:
    """The analytic target ``name`` of :data:`TARGETS`.

    Args:
      name: ``8gaussians``, ``gaussian`` or ``rings`` (whose moments come from 10⁶ exact
        draws, computed on each call).

    Returns:
      The :class:`SamplingTarget`.

    Raises:
      ValueError: for an unknown name.
    """
    if name not in TARGETS:
        raise ValueError(f"unknown target {name!r}; choose one of {tuple(TARGETS)}.")
    return TARGETS[name]()


def retuned_sampler(config: SamplerConfig, name: str, *, step_size: float | None = None,
                    num_integration_steps: int = 5) -> SamplerConfig:
    """A run's sampler section switched to sampler ``name`` (e.g. for ``jebm sample``).

    Args:
      config: the run's ``sampler`` section.
      name: the sampler to use.
      step_size: its step size (default the run's ``sampler.step_size``).
      num_integration_steps: HMC leapfrog steps.

    Returns:
      A :class:`~jebm.config.SamplerConfig`; ULA's noise, clipping and bounds are kept
      only when ``name`` is ``ula``.
    """
    ula = name == "ula"
    return SamplerConfig(name=name, step_size=config.step_size if step_size is None else step_size,
                         noise_scale=config.noise_scale if ula else None,
                         clip_grad=config.clip_grad if ula else None,
                         bounds=config.bounds if ula else None,
                         num_integration_steps=num_integration_steps, space=config.space)


# -------------------------------------------------------------------------- objective


class ChainSetup(NamedTuple):
    """What ``jebm sample`` runs chains on: an analytic target or a trained model.

    Attributes:
      label: what is sampled (the target's name, or ``"model in W"``).
      energy_fn: ``energy_fn(params, x)`` of one ``x``.
      params: its parameters (:func:`jebm.train.model_params` of a trained state).
      sampler: the sampler section, name and tunables resolved (build it with
        :func:`build_sampler`).
      x0: ``(num_chains, *event_shape)`` starting positions.
      mean: exact mean to compare the chains with, or ``None`` (images).
      cov: exact covariance, or ``None``.
      extent: ``(x_low, x_high, y_low, y_high)`` for 2-D plots.
      reference: ``(m, 2)`` reference points for 2-D plots, or ``None``.
      reference_label: where ``mean``/``cov`` come from.
      image_rows: image models: rows of the chain grids; ``None`` for 2-D.
      params_kind: a trained model's :func:`jebm.train.params_kind`; ``None`` for a target.
    """

    label: str
    energy_fn: EnergyFn
    params: PyTree
    sampler: SamplerConfig
    x0: Array
    mean: np.ndarray | None
    cov: np.ndarray | None
    extent: tuple[float, float, float, float]
    reference: np.ndarray | None
    reference_label: str
    image_rows: int | None
    params_kind: str | None


def chain_setup(key: PRNGKey, num_chains: int, *, target: str = "8gaussians",
                workdir: str | Path | None = None, sampler: str | None = None,
                step_size: float | None = None, num_integration_steps: int = 5,
                init_scale: float = 3.0, reference_key: PRNGKey | None = None) -> ChainSetup:
    """The chains ``jebm sample`` runs: on the model trained in ``workdir`` (its last
    checkpoint), or on the analytic ``target``.

    A trained model is sampled with its config's sampler and tunables unless ``sampler`` or
    ``step_size`` say otherwise; with its own sampler and no ``step_size``, the step size
    training adapted (:func:`adapted_step_size`) if any. Its chains start at
    :func:`initial_positions`; a 2-D model's reference moments are those of 10⁵ data
    draws (``reference_key``). A target is sampled with MALA by default, its tuned step
    size (:attr:`SamplingTarget.step_sizes`), from ``N(0, init_scale² I)``.

    Args:
      key: PRNG key of the starting positions.
      num_chains: independent chains.
      target: an analytic target of :data:`TARGETS` (ignored with ``workdir``).
      workdir: a training workdir.
      sampler: a sampler name; ``None`` for the default (see above).
      step_size: the step size; ``None`` for the default (see above).
      num_integration_steps: HMC leapfrog steps.
      init_scale: scale of a target's starting positions.
      reference_key: PRNG key of a trained 2-D model's data draws; ``None`` for
        ``fold_in(key, 1)``.

    Returns:
      The :class:`ChainSetup`.

    Raises:
      CheckpointError: if ``workdir`` holds no config or checkpoint.
      ValueError: for an unknown target.
    """
    if workdir is None:
        name = sampler or "mala"
        tgt = sampling_target(target)
        step = tgt.step_sizes[_SAME_STEP.get(name, name)] if step_size is None else step_size
        scfg = SamplerConfig(name=name, step_size=step, num_integration_steps=num_integration_steps)
        x0 = init_scale * jax.random.normal(key, (num_chains, 2))
        return ChainSetup(target, tgt.energy.energy_fn, tgt.energy.params, scfg, x0, tgt.mean,
                          tgt.cov, tgt.extent, None, tgt.label, None, None)

    cfg = stored_config(workdir)
    run = build_run(cfg)
    state = restore_state(run, workdir)
    name = sampler or cfg.sampler.name
    adapted = adapted_step_size(state.objective_state)
    if step_size is None and adapted is not None and name == cfg.sampler.name:
        step_size = adapted  # the step size training adapted to
    scfg = retuned_sampler(cfg.sampler, name, step_size=step_size,
                           num_integration_steps=num_integration_steps)
    x0 = initial_positions(run, key, num_chains)
    mean = cov = reference = image_rows = None
    if run.data.planar:
        if reference_key is None:
            reference_key = jax.random.fold_in(key, 1)
        data = np.asarray(run.data.sample(reference_key, 100_000), np.float64)
        mean, cov, reference = data.mean(0), np.cov(data, rowvar=False), data[:2000]
        reference_label = f"{cfg.data.name} data (moments of 1e5 draws)"
    else:  # images: diagnostics of each chain's energy trace
        image_rows, reference_label = cfg.eval.grid_rows, "none (energy of each chain)"
    extent = (cfg.eval.grid_low, cfg.eval.grid_high) * 2
    return ChainSetup(f"model in {workdir}", run.model_energy_fn, model_params(state), scfg,
                      x0, mean, cov, extent, reference, reference_label, image_rows,
                      params_kind(state))


def _host_memory() -> int:
    """Bytes of physical memory on this machine."""
    return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")


def _too_big(num_chains: int, num_steps: int, x0) -> str:
    """The error for chains that do not fit in memory, naming the flags that shrink them."""
    size = "" if x0 is None else f" of {x0[0].size} numbers each"
    return (f"--num-chains {num_chains} × --num-steps {num_steps} positions{size} do not fit "
            f"in memory (the trace is kept on the host, {_host_memory() / 2**30:.0f} GiB here): "
            "lower --num-chains or --num-steps.")


def sample_job(key: PRNGKey, out: str | Path | None = None, *, target: str = "8gaussians",
               workdir: str | Path | None = None, sampler: str | None = None,
               num_chains: int = 64, num_steps: int = 2000, burn_in: int | None = None,
               step_size: float | None = None, num_integration_steps: int = 5,
               init_scale: float = 3.0, chunk_size: int = 500, progress: bool = False,
               reference_key: PRNGKey | None = None, seed: int | None = None) -> dict:
    """``jebm sample``'s recipe: run the chains of :func:`chain_setup` and report on them.

    Writes into ``out`` (default ``jebm-sample``, or ``WORKDIR/sample`` with a workdir):
    ``summary.json`` (ESS, R̂, moments against the exact ones, warnings), ``samples.npy``
    (the chains' final positions, ``(num_chains, *event)``), and the figures (2-D:
    ``samples.png``; images: the chain grids). 2-D chains also keep ``trace.npy``, the
    draws after burn-in ``(num_steps − burn_in, num_chains, 2)``. Warnings go to stderr.

    Args:
      key: PRNG key; split into the starting positions' and the transitions'.
      out: the output folder.
      target: an analytic target of :data:`TARGETS` (ignored with ``workdir``).
      workdir: a training workdir: sample its last checkpoint instead of a target.
      sampler: a sampler name; ``None`` for the default (see :func:`chain_setup`).
      num_chains: independent chains.
      num_steps: transitions per chain, burn-in included.
      burn_in: transitions discarded first (default: half of ``num_steps``).
      step_size: the step size; ``None`` for the default (see :func:`chain_setup`).
      num_integration_steps: HMC leapfrog steps.
      init_scale: scale of a target's starting positions ``N(0, init_scale² I)``.
      chunk_size: transitions per jitted call (the progress bar's granularity).
      progress: show a progress bar.
      reference_key: PRNG key of a trained 2-D model's reference data draws.
      seed: the integer seed ``key`` came from, recorded in the summary.

    Returns:
      The summary written to ``summary.json``.

    Raises:
      ValueError: for a ``burn_in`` that leaves fewer than 4 kept transitions.
      CheckpointError: if ``workdir`` holds no config or checkpoint.
    """
    from tqdm.auto import tqdm

    for flag, value in (("--num-chains", num_chains), ("--num-steps", num_steps),
                        ("--chunk-size", chunk_size), ("--num-integration-steps",
                                                       num_integration_steps)):
        check_int(flag, value)
    check_float("--step-size", step_size, optional=True)
    check_float("--init-scale", init_scale)
    burn_in = num_steps // 2 if burn_in is None else burn_in
    if not 0 <= burn_in < num_steps - 3:
        raise ValueError(f"--burn-in must be in [0, num_steps - 4] = [0, {num_steps - 4}], got "
                         f"{burn_in} (--num-steps {num_steps}).")
    if num_chains * num_steps * 8 > _host_memory():  # the trace of a 2-D target, at least
        raise ValueError(_too_big(num_chains, num_steps, None))
    k_init, k_run = jax.random.split(key)
    setup = chain_setup(k_init, num_chains, target=target, workdir=workdir, sampler=sampler,
                        step_size=step_size, num_integration_steps=num_integration_steps,
                        init_scale=init_scale, reference_key=reference_key)
    name, energy_fn, params, x0 = setup.sampler.name, setup.energy_fn, setup.params, setup.x0
    if out is None:
        out = Path(workdir) / "sample" if workdir is not None else Path("jebm-sample")
    out = Path(out)
    alg = build_sampler(setup.sampler, x0.shape[1:])(logdensity_fn(energy_fn, params))
    tic = time.perf_counter()
    with tqdm(total=num_steps, disable=not progress, desc=name, unit="step") as bar:
        try:
            trace, rate = run_chains_chunked(k_run, alg, x0, num_steps, chunk_size=chunk_size,
                                             on_chunk=bar.update)
        except (jax.errors.JaxRuntimeError, MemoryError) as err:
            if isinstance(err, MemoryError) or "RESOURCE_EXHAUSTED" in str(err):
                raise ValueError(_too_big(num_chains, num_steps, x0)) from None
            raise
    seconds = time.perf_counter() - tic
    out.mkdir(parents=True, exist_ok=True)
    np.save(out / "samples.npy", np.asarray(trace[-1]))
    if setup.image_rows is not None:
        plotting.save_chain_grids(out, np.asarray(x0), trace, setup.image_rows, name)
        energies = jax.jit(lambda p, t: jax.lax.map(lambda xs: batch_energy(energy_fn, p, xs), t))
        trace = np.asarray(energies(params, jax.numpy.asarray(trace)))[..., None]
    kept = trace[burn_in:]
    values = {"target": setup.label,
              **({"params": setup.params_kind} if setup.params_kind else {}),
              "sampler": name, "step_size": setup.sampler.step_size,
              "num_chains": num_chains, "num_steps": num_steps, "burn_in": burn_in,
              "seed": seed, "acceptance_rate": rate,
              **chain_summary(kept, setup.mean, setup.cov),
              "reference": setup.reference_label, "seconds": seconds}
    values["warnings"] = chain_warnings(values, num_chains)
    for warning in values["warnings"]:
        print(f"jebm: warning: {warning}", file=sys.stderr)
    if setup.image_rows is None:
        np.save(out / "trace.npy", np.asarray(kept))
        extent = setup.extent
        shown = kept.reshape(-1, 2)
        shown = shown[np.random.default_rng(seed or 0).permutation(len(shown))[:5000]]
        axis = np.linspace(extent[0], extent[1], 150), np.linspace(extent[2], extent[3], 150)
        grid = np.stack([g.ravel() for g in np.meshgrid(*axis)], -1).astype(np.float32)
        grid_e = np.asarray(jax.jit(batch_energy, static_argnums=0)(energy_fn, params, grid))
        plotting.plot_samples(out / "samples.png", shown, reference=setup.reference,
                              energy_grid=grid_e.reshape(150, 150), extent=extent,
                              title=f"{name} on {setup.label}", reference_label="data")
    write_json(out / "summary.json", values)
    print(f"jebm: results in {out}/: summary.json, samples.npy and figures (*.png).",
          file=sys.stderr)
    return values
