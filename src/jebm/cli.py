"""The ``jebm`` command line: ``jebm train | sample | evaluate``.

* ``jebm train [--config configs/X.yaml] [section.field=value ...] [--workdir W]`` trains
  an energy and writes, into ``W``: ``config.yaml`` (the resolved config), ``run.json``
  (seed and package versions), ``metrics.jsonl``, ``checkpoints/`` and ``summary.json``.
  On a 2-D toy it adds ``energy.png`` (learned density beside the true one) and
  ``samples.png`` (sampler draws over the data); the summary holds the test NLL by grid
  quadrature of ``log Z``, the data entropy ``H`` and ``NLL − H``. On ``digits`` it
  adds image grids ``samples.png`` (chains from noise, or from ``model.base``),
  ``buffer.png`` (the replay buffer, pcd) and ``data.png``; the summary holds the test
  NLL in nats per image on [0, 1]⁶⁴ by AIS in logit coordinates, with its standard
  error, and the full-covariance Gaussian and logit-Gaussian baselines. Re-running it on
  the same ``W`` resumes from the last checkpoint.
* ``jebm sample [--target 8gaussians] [--sampler mala] ...`` runs MCMC chains on an
  analytic target and writes ``samples.png`` and ``summary.json`` (acceptance rate,
  ESS, R̂, mean and covariance against their exact values); with ``--workdir W`` it
  samples the model trained in ``W`` instead (by default with its training sampler;
  for images: ``chains.png``, rows of chains from their start, and ``samples.png``).
* ``jebm evaluate --workdir W`` recomputes the test NLL of the checkpoint in ``W``.

The functions behind the subcommands are plain Python (``train``, ``sample``,
``evaluate``) and return their summary dictionaries.
"""

import functools
import json
import math
import platform
import sys
import time
from importlib import metadata
from pathlib import Path
from typing import Literal

import jax
import jax.numpy as jnp
import numpy as np
import optax
import tyro
from tqdm.auto import tqdm

from jebm.config import Config, SamplerConfig, config_diff, dump_config, load_config
from jebm.energy import batch_energy
from jebm.train import (
    CheckpointError,
    TrainingDivergedError,
    checkpoint_manager,
    init_train_state,
    make_train_step,
    restore_checkpoint,
    train_loop,
)

__all__ = ["main", "train", "sample", "evaluate", "load_model", "build_optimizer", "build_sampler"]

_PACKAGES = ("jebm", "jax", "jaxlib", "flax", "optax", "orbax-checkpoint", "numpy", "tyro")
# config fields that may change between a run and its resumption: they do not affect
# the parameters (chunk ends stay on the same absolute steps).
_RESUMABLE = ("train.chunk_size", "train.log_every", "train.eval_every",
              "train.checkpoint_every", "train.keep_checkpoints", "eval.grid_points",
              "eval.num_samples", "eval.sample_steps", "eval.grid_low", "eval.grid_high",
              "data.num_test", "eval.grid_rows", "eval.ais_base", "eval.ais_chains",
              "eval.ais_bridges", "eval.ais_step_size")


# ----------------------------------------------------------------------------- builders


def build_optimizer(config: Config) -> optax.GradientTransformation:
    """The optax optimizer of ``config.optimizer`` (schedule over ``train.num_steps``)."""
    opt = config.optimizer
    if opt.schedule == "cosine":
        lr = optax.warmup_cosine_decay_schedule(
            0.0 if opt.warmup_steps else opt.learning_rate, opt.learning_rate,
            opt.warmup_steps, max(config.train.num_steps, opt.warmup_steps + 1), 0.0)
    elif opt.warmup_steps:
        lr = optax.linear_schedule(0.0, opt.learning_rate, opt.warmup_steps)
    else:
        lr = opt.learning_rate
    if opt.name == "adam":
        tx = optax.adam(lr, b1=opt.b1, b2=opt.b2)
    elif opt.name == "adamw":
        tx = optax.adamw(lr, b1=opt.b1, b2=opt.b2, weight_decay=opt.weight_decay)
    else:
        tx = optax.sgd(lr, momentum=opt.b1 or None)
    if opt.clip_norm is not None:
        tx = optax.chain(optax.clip_by_global_norm(opt.clip_norm), tx)
    return tx


def build_sampler(config: SamplerConfig, dim: int | tuple[int, ...]):
    """``factory(logdensity_fn) -> SamplingAlgorithm`` for ``config`` on points of
    ``dim`` coordinates (or of event shape ``dim``)."""
    from jebm import samplers

    if config.name == "ula":
        bounds = None if config.bounds is None else tuple(config.bounds)
        return functools.partial(samplers.ula, step_size=config.step_size,
                                 noise_scale=config.noise_scale, clip_grad=config.clip_grad,
                                 bounds=bounds)
    if config.name == "mala":
        return functools.partial(samplers.mala, step_size=config.step_size)
    if config.name == "rwmh":
        return functools.partial(samplers.rwmh, step_size=config.step_size)
    return lambda logdensity_fn: samplers.hmc(logdensity_fn, config.step_size, jnp.ones(dim),
                                              config.num_integration_steps)


class _Data:
    """The data set of a config: a 2-D toy, or the 8×8 digits on [0, 1]⁶⁴.

    Attributes: ``sample(key, n)`` (training batches), ``test`` (held-out points),
    ``event_shape``, ``planar`` (2-D points: grid quadrature and density plots;
    otherwise images: AIS and image grids), ``toy`` (the :class:`Toy2D`, or None) and
    ``train`` (digits: dequantised training images, for the baselines).
    """

    def __init__(self, config: Config, key):
        data = config.data
        if data.name == "digits":
            from jebm.datasets import digits

            split = digits.load_digits(test_fraction=data.test_fraction, seed=data.split_seed,
                                       classes=data.classes)
            k_test, k_train = jax.random.split(key)
            self.toy = None
            self.sample = digits.sampler(split.train_counts)
            self.test = digits.dequantize(k_test, split.test_counts)
            self.train = digits.dequantize(k_train, split.train_counts)
            self.event_shape = digits.IMAGE_SHAPE
        else:
            from jebm.datasets import toy2d

            self.toy = toy2d.get(data.name)
            self.sample = self.toy.sample
            self.test = self.toy.sample(key, data.num_test)
            self.train = None
            self.event_shape = (2,)
        self.planar = self.event_shape == (2,)

    def fit_density(self, kind: str, key, field: str):
        """A tractable density fitted to the training data (the digits training images,
        or 10⁴ draws of a toy): ``gaussian`` or ``logit_gaussian`` (data in [0, 1])."""
        from jebm.applications import logit_gaussian_density
        from jebm.objectives import fit_gaussian_noise

        points = self.train if self.train is not None else self.sample(key, 10_000)
        if kind == "gaussian":
            return fit_gaussian_noise(points)
        if self.toy is not None:
            raise ValueError(f"{field}=logit_gaussian is a density on [0, 1]^d, for image "
                             f"data; {self.toy.name} lives on R^2: use gaussian.")
        return logit_gaussian_density(points)


def _build_energy(key, model, event_shape: tuple[int, ...]):
    """``(energy_fn, params)`` of ``config.model`` for single inputs of ``event_shape``."""
    if model.kind == "conv":
        from jebm.energies.conv import conv_energy

        if len(event_shape) not in (2, 3):
            raise ValueError(f"model.kind=conv needs image data, got points of shape "
                             f"{event_shape}; use model.kind=mlp.")
        return conv_energy(key, event_shape, features=model.features, hidden=model.hidden[0],
                           activation=model.activation, spectral_norm=model.spectral_norm)
    from jebm.energies.mlp import mlp_energy

    energy_fn, params = mlp_energy(key, math.prod(event_shape), model.hidden,
                                   activation=model.activation,
                                   fourier_features=model.fourier_features,
                                   fourier_scale=model.fourier_scale)
    if len(event_shape) == 1:
        return energy_fn, params
    return (lambda p, x: energy_fn(p, x.reshape(-1))), params


class _Run:
    """Everything a config determines: data, energy, objective, optimizer, initial state."""

    def __init__(self, config: Config):
        from jebm.objectives import (
            cd,
            denoising_score_matching,
            exact_score_matching,
            nce,
            nce_params,
            pcd,
            sliced_score_matching,
            uniform_box,
        )

        self.config = config
        key = jax.random.key(config.train.seed)
        k_model, k_state, self.train_key, k_test, k_noise, self.sample_key = jax.random.split(
            key, 6)
        self.eval_key = jax.random.fold_in(key, 6)
        self.data = _Data(config, k_test)
        shape = self.event_shape = self.data.event_shape
        energy_fn, params = _build_energy(k_model, config.model, shape)
        self.base = None
        if config.model.base != "none":
            base = self.base = self.data.fit_density(config.model.base, k_noise, "model.base")
            network_fn = energy_fn

            def energy_fn(p, x):
                return network_fn(p, x) - base.log_prob(x)

        obj = config.objective
        sampler = build_sampler(config.sampler, shape)
        if obj.name == "cd":
            objective = cd(energy_fn, sampler, config.sampler.num_steps, energy_l2=obj.energy_l2)
        elif obj.name == "pcd":
            objective = pcd(energy_fn, sampler, config.sampler.num_steps,
                            buffer_size=obj.buffer_size, reinit_prob=obj.reinit_prob,
                            base_sampler=uniform_box(shape, obj.init_low, obj.init_high),
                            num_chains=obj.num_chains or None, energy_l2=obj.energy_l2)
        elif obj.name == "esm":
            objective = exact_score_matching(energy_fn)
        elif obj.name == "ssm":
            objective = sliced_score_matching(energy_fn, num_projections=obj.num_projections,
                                              variance_reduced=obj.variance_reduced)
        elif obj.name == "dsm":
            objective = denoising_score_matching(energy_fn, sigma=obj.sigma)
        else:  # nce: the normaliser is a parameter; the noise is fitted to the data
            noise = self.data.fit_density(obj.noise, k_noise, "objective.noise")
            objective = nce(energy_fn, noise, noise_ratio=obj.noise_ratio)
            params = nce_params(params)
        self.model_energy_fn = (lambda p, x: energy_fn(p["energy"], x)) if obj.name == "nce" \
            else energy_fn
        self.objective = objective
        self.optimizer = build_optimizer(config)
        batch = self.data.sample(k_state, config.data.batch_size)
        self.initial_state = init_train_state(k_state, params, self.optimizer, objective, batch)
        self.test = self.data.test
        ev = config.eval
        self.extent = (ev.grid_low, ev.grid_high, ev.grid_low, ev.grid_high)
        self.jit_test_nll = jax.jit(self.test_nll)

    def initial_positions(self, key, n: int) -> jax.Array:
        """Where sampling chains start: draws of ``model.base`` if the model has one, else
        uniform in the box ``[objective.init_low, objective.init_high]``."""
        if self.base is not None:
            return self.base.sample(key, n)
        obj = self.config.objective
        return jax.random.uniform(key, (n, *self.event_shape), minval=obj.init_low,
                                  maxval=obj.init_high)

    def log_z(self, params) -> jax.Array:
        from jebm.partition import log_z_grid

        ev = self.config.eval
        return log_z_grid(self.model_energy_fn, params, low=(ev.grid_low, ev.grid_low),
                          high=(ev.grid_high, ev.grid_high), num_points=ev.grid_points)

    def test_nll(self, params) -> dict[str, jax.Array]:
        """Periodic evaluation: the test NLL by grid quadrature (2-D data), or, for
        images, the mean test energy (Z-free; the AIS NLL is computed at the end)."""
        energies = jax.vmap(self.model_energy_fn, in_axes=(None, 0))(params, self.test)
        if not self.data.planar:
            return {"energy_test": jnp.mean(energies)}
        log_z = self.log_z(params)
        return {"nll": jnp.mean(energies) + log_z, "log_z": log_z}

    def ais_nll(self, params):
        """Test NLL on the box [0, 1]^d by logit-space AIS (images)."""
        from jebm.applications import logistic_base, logit_ais_nll, logit_gaussian_base

        ev = self.config.eval
        if ev.ais_base == "logit_gaussian":
            base = logit_gaussian_base(self.data.train)
        else:
            base = logistic_base(self.event_shape)
        fn = jax.jit(lambda k, p: logit_ais_nll(
            k, self.model_energy_fn, p, self.test, base, ev.ais_chains,
            num_bridges=ev.ais_bridges, step_size=ev.ais_step_size, adapt_step_size=True))
        return fn(self.eval_key, params)

    def restore(self, workdir: Path, step: int | None = None):
        manager = checkpoint_manager(workdir / "checkpoints")
        try:
            state, _ = restore_checkpoint(manager, self.initial_state, step=step)
        finally:
            manager.close()
        return state


# ----------------------------------------------------------------------------- helpers


def _versions() -> dict[str, str]:
    out = {"python": platform.python_version()}
    for name in _PACKAGES:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = "not installed"
    return out


def _finite_or_none(value):
    """JSON has no NaN/inf: write them as null."""
    if isinstance(value, dict):
        return {k: _finite_or_none(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_finite_or_none(v) for v in value]
    if isinstance(value, np.ndarray | jax.Array | np.generic):
        return _finite_or_none(np.asarray(value).tolist())
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def _dumps(values: dict) -> str:
    return json.dumps(_finite_or_none(values), indent=2, allow_nan=False)


def _write_json(path: Path, values: dict) -> None:
    path.write_text(_dumps(values) + "\n")


def _grid(extent, num: int) -> tuple[jax.Array, tuple[int, int]]:
    xs = jnp.linspace(extent[0], extent[1], num)
    ys = jnp.linspace(extent[2], extent[3], num)
    gx, gy = jnp.meshgrid(xs, ys)
    return jnp.stack([gx.ravel(), gy.ravel()], axis=-1), (num, num)


def _stored_config(workdir: Path) -> Config:
    path = workdir / "config.yaml"
    if not path.exists():
        raise CheckpointError(
            f"{workdir} is not a jebm training workdir: {path.name} is missing "
            "(run `jebm train --workdir` first).")
    return load_config(str(path))


def _check_same_config(workdir: Path, stored: Config, config: Config, ignore=()) -> None:
    diff = config_diff(stored, config, ignore=ignore)
    if diff:
        raise CheckpointError(
            f"{workdir} holds a run of a different config; differing fields (workdir -> "
            "requested):\n  " + "\n  ".join(diff) + "\nUse another --workdir, or the same config.")


def _draw_model_samples(run: _Run, params, sampler_config: SamplerConfig, num_chains: int,
                        num_steps: int, key) -> jax.Array:
    """Final positions of chains started at :meth:`_Run.initial_positions`."""
    from jebm.energy import logdensity_fn
    from jebm.samplers import run_chains

    alg = build_sampler(sampler_config, run.event_shape)(
        logdensity_fn(run.model_energy_fn, params))
    k_init, k_run = jax.random.split(key)
    x0 = run.initial_positions(k_init, num_chains)
    result = jax.jit(lambda k, x: run_chains(k, alg, x, num_steps, keep_trace=False))(k_run, x0)
    return result.state.position


def _image_plots(run: _Run, state, workdir: Path) -> None:
    from jebm.applications import save_image_grid as plot_images

    ev = run.config.eval
    count = ev.grid_rows * ev.grid_rows
    draws = _draw_model_samples(run, state.params, run.config.sampler,
                                min(ev.num_samples, count), ev.sample_steps, run.sample_key)
    plot_images(workdir / "samples.png", draws, ev.grid_rows,
                title=f"{run.config.sampler.name} chains from "
                f"{'the base' if run.base is not None else 'noise'} ({ev.sample_steps} steps)")
    plot_images(workdir / "data.png", run.test[:count], ev.grid_rows, title="test images")
    buffer = getattr(state.objective_state, "samples", None)
    if buffer is not None:
        plot_images(workdir / "buffer.png", buffer[:count], ev.grid_rows,
                    title=f"replay buffer, step {int(state.step)}")


def _plots(run: _Run, state, workdir: Path) -> None:
    from jebm.plotting import plot_densities, plot_samples

    if not run.data.planar:
        return _image_plots(run, state, workdir)
    params = state.params
    points, shape = _grid(run.extent, 200)
    energies = jax.jit(jax.vmap(run.model_energy_fn, in_axes=(None, 0)))(params, points)
    log_z = run.jit_test_nll(params)["log_z"]
    learned = np.asarray(-(energies + log_z)).reshape(shape)
    true = np.asarray(jax.jit(jax.vmap(run.data.toy.log_prob))(points)).reshape(shape)
    plot_densities(workdir / "energy.png", [learned, true],
                   [f"learned ({run.config.objective.name})", f"true ({run.data.toy.name})"],
                   run.extent)
    ev = run.config.eval
    draws = _draw_model_samples(run, params, run.config.sampler, ev.num_samples,
                                ev.sample_steps, run.sample_key)
    data = run.data.sample(run.sample_key, ev.num_samples)
    plot_samples(workdir / "samples.png", np.asarray(draws), reference=np.asarray(data),
                 energy_grid=np.asarray(energies).reshape(shape), extent=run.extent,
                 title=f"{run.config.sampler.name} draws from the model "
                       f"({ev.sample_steps} steps)")


def _nll_summary(run: _Run, params) -> dict[str, float]:
    """Test NLL in nats per point: grid quadrature (2-D) or logit-space AIS (images)."""
    if not run.data.planar:
        from jebm.applications import logit_gaussian_density
        from jebm.datasets.digits import DISCRETE_OFFSET, gaussian_nll

        tic = time.perf_counter()
        est = jax.block_until_ready(run.ais_nll(params))
        gauss, gauss_stderr = gaussian_nll(run.data.train, run.test)
        logit_gauss = -jax.vmap(logit_gaussian_density(run.data.train).log_prob)(run.test)
        logit_gauss_stderr = float(jnp.std(logit_gauss, ddof=1)) / len(logit_gauss) ** 0.5
        ev = run.config.eval
        extra = {"nce_log_z": float(params["log_z"])} if run.config.objective.name == "nce" \
            else {}
        return {"test_nll": float(est.nll), "test_nll_stderr": float(est.nll_stderr),
                "log_z": float(est.ais.log_z), "log_z_stderr": float(est.log_z_stderr),
                "mean_energy_test": float(est.mean_energy), "ais_ess": float(est.ais.ess),
                "ais_base": ev.ais_base, "ais_chains": ev.ais_chains,
                "ais_bridges": ev.ais_bridges, "ais_seconds": time.perf_counter() - tic,
                "gaussian_nll": gauss, "gaussian_nll_stderr": gauss_stderr,
                "logit_gaussian_nll": float(jnp.mean(logit_gauss)),
                "logit_gaussian_nll_stderr": logit_gauss_stderr,
                "uniform_nll": 0.0, "discrete_offset": DISCRETE_OFFSET, **extra}
    values = {k: float(v) for k, v in run.jit_test_nll(params).items()}
    entropy = float(run.data.toy.entropy)
    return {"test_nll": values["nll"], "log_z": values["log_z"], "entropy": entropy,
            "nll_minus_entropy": values["nll"] - entropy}


# ----------------------------------------------------------------------------- train


def train(
    config: str | None = None,
    workdir: str = "runs/default",
    overrides: tyro.conf.Positional[tuple[str, ...]] = (),
    progress: bool = True,
) -> dict:
    """Train an energy-based model on a 2-D toy or the digits (default: PCD on 8gaussians).

    Args:
      config: YAML config file; omitted fields take the defaults (the default job).
      workdir: output folder; a folder with checkpoints of the same config is resumed.
      overrides: dotted overrides such as train.num_steps=500 optimizer.learning_rate=3e-3.
      progress: show a progress bar.

    Returns:
      The summary written to ``summary.json``.
    """
    cfg = load_config(config, overrides)
    out = Path(workdir)
    if (out / "config.yaml").exists():
        _check_same_config(out, _stored_config(out), cfg, ignore=_RESUMABLE)
    out.mkdir(parents=True, exist_ok=True)
    (out / "config.yaml").write_text(dump_config(cfg))
    _write_json(out / "run.json", {"seed": cfg.train.seed, "versions": _versions(),
                                   "device": str(jax.devices()[0]), "argv": sys.argv[1:]})
    tic = time.perf_counter()
    run = _Run(cfg)
    step = make_train_step(run.objective, run.optimizer)
    nll = run.jit_test_nll
    tc = cfg.train
    result = train_loop(
        run.train_key, run.initial_state, step, run.data.sample,
        num_steps=tc.num_steps, batch_size=cfg.data.batch_size, chunk_size=tc.chunk_size,
        workdir=out, checkpoint_every=tc.checkpoint_every, max_to_keep=tc.keep_checkpoints,
        eval_fn=lambda state: nll(state.params), eval_every=tc.eval_every or None,
        log_every=tc.log_every, progress=progress,
        checkpoint_extra={"objective": cfg.objective.name, "data": cfg.data.name})
    train_seconds = time.perf_counter() - tic
    params = result.state.params
    _plots(run, result.state, out)
    summary = {
        "data": cfg.data.name,
        "objective": cfg.objective.name,
        "num_steps": int(result.state.step),
        **_nll_summary(run, params),
        "final_metrics": result.metrics,
        "train_seconds": train_seconds,
        "steps_per_second": result.steps_per_second,
        "total_seconds": time.perf_counter() - tic,
    }
    _write_json(out / "summary.json", summary)
    return summary


# ----------------------------------------------------------------------------- sample

_TARGETS = ("8gaussians", "gaussian", "rings")
# Default step sizes per (target, sampler): MALA/ULA h, RWMH proposal scale, HMC leapfrog step.
_STEP_SIZES = {
    "8gaussians": {"mala": 0.05, "ula": 0.01, "rwmh": 0.5, "hmc": 0.15},
    "gaussian": {"mala": 0.4, "ula": 0.05, "rwmh": 1.2, "hmc": 0.4},
    "rings": {"mala": 0.003, "ula": 0.0005, "rwmh": 0.15, "hmc": 0.04},
}


def _target(name: str):
    """(AnalyticEnergy, exact mean, exact covariance, plot extent, reference label)."""
    from jebm.energies.analytic import gaussian
    from jebm.energies.toy2d import eight_gaussians, rings

    if name == "gaussian":
        mean, cov = np.array([1.0, -1.0]), np.array([[1.0, 0.8], [0.8, 1.0]])
        return gaussian(mean, cov), mean, cov, (-3.0, 5.0, -5.0, 3.0), "exact"
    if name == "8gaussians":
        target = eight_gaussians()
        p = target.params
        w = np.exp(np.asarray(p["log_weights"], np.float64))
        mu = np.asarray(p["means"], np.float64)
        s2 = np.asarray(p["scales"], np.float64) ** 2
        mean = w @ mu
        second = np.einsum("k,ki,kj->ij", w, mu, mu) + np.sum(w * s2) * np.eye(2)
        return target, mean, second - np.outer(mean, mean), (-4.5, 4.5, -4.5, 4.5), "exact"
    target = rings()
    # no closed form: moments of 10⁶ exact draws (standard error ≈ 2e-3, far below MCMC's)
    draws = np.asarray(target.sample(jax.random.key(12345), 1_000_000), np.float64)
    return target, draws.mean(0), np.cov(draws, rowvar=False), (-4, 4, -4, 4), "exact, 1e6 draws"


def _run_sampler(key, alg, x0, num_steps: int, chunk_size: int, progress: bool, desc: str):
    """Chains in jitted chunks; returns (trace (num_steps, chains, *event), acceptance or
    None)."""
    from jebm.samplers import run_chains

    @functools.partial(jax.jit, static_argnums=2)
    def chunk(states, start, length):
        res = run_chains(key, alg, states, length, start_step=start)
        return res.state, res.trace, res.info

    states = jax.vmap(alg.init)(x0)
    traces, accept = [], []
    with tqdm(total=num_steps, disable=not progress, desc=desc, unit="step") as bar:
        start = 0
        while start < num_steps:
            length = min(chunk_size, num_steps - start)
            states, trace, info = chunk(states, jnp.int32(start), length)
            traces.append(np.asarray(trace))
            if hasattr(info, "acceptance_rate"):
                accept.append(np.asarray(info.acceptance_rate))
            start += length
            bar.update(length)
    rate = float(np.mean(np.concatenate(accept))) if accept else None
    return np.concatenate(traces), rate


def _chain_summary(trace: np.ndarray, exact_mean, exact_cov) -> dict:
    from jebm.diagnostics import effective_sample_size, split_rhat

    ess = np.asarray(effective_sample_size(jnp.asarray(trace)))
    rhat = np.asarray(split_rhat(jnp.asarray(trace)))
    flat = trace.reshape(-1, trace.shape[-1]).astype(np.float64)
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


def sample(
    target: Literal["8gaussians", "gaussian", "rings"] = "8gaussians",
    sampler: Literal["mala", "rwmh", "hmc", "ula"] | None = None,
    num_chains: int = 64,
    num_steps: int = 2000,
    burn_in: int | None = None,
    step_size: float | None = None,
    num_integration_steps: int = 5,
    init_scale: float = 3.0,
    seed: int = 0,
    workdir: str | None = None,
    out: str | None = None,
    chunk_size: int = 500,
    progress: bool = True,
) -> dict:
    """Run MCMC chains on an analytic target, or on the model trained in --workdir.

    Args:
      target: analytic target (ignored with --workdir).
      sampler: MCMC kernel (default: mala on a target; with --workdir, the training
        config's sampler with all its settings).
      num_chains: independent chains.
      num_steps: transitions per chain, burn-in included.
      burn_in: transitions discarded first (default: half of num_steps).
      step_size: step size (default: tuned per target and sampler; with --workdir, the
        training config's sampler.step_size).
      num_integration_steps: HMC leapfrog steps.
      init_scale: chains start from N(0, init_scale² I) (overdispersed, for R-hat); with
        --workdir, uniformly in the training buffer's box.
      seed: integer seed.
      workdir: a training workdir: sample its last checkpoint instead of a target.
      out: output folder (default: jebm-sample, or WORKDIR/sample).
      chunk_size: transitions per jitted call (progress-bar granularity).
      progress: show a progress bar.

    Returns:
      The summary written to ``summary.json``.
    """
    from jebm.energy import logdensity_fn
    from jebm.plotting import plot_samples

    images = None
    burn_in = num_steps // 2 if burn_in is None else burn_in
    if not 0 <= burn_in < num_steps - 3:
        raise ValueError(f"burn_in must be in [0, num_steps - 4], got {burn_in}.")
    for name, value in (("num_chains", num_chains), ("num_steps", num_steps),
                        ("chunk_size", chunk_size)):
        if value < 1:
            raise ValueError(f"{name} must be >= 1, got {value}.")
    key = jax.random.key(seed)
    k_init, k_run = jax.random.split(key)
    if workdir is not None:
        wd = Path(workdir)
        cfg = _stored_config(wd)
        run = _Run(cfg)
        params = run.restore(wd).params
        energy_fn = run.model_energy_fn
        sampler = sampler or cfg.sampler.name
        ula = sampler == "ula"
        scfg = SamplerConfig(
            name=sampler, step_size=step_size or cfg.sampler.step_size,
            noise_scale=cfg.sampler.noise_scale if ula else None,
            clip_grad=cfg.sampler.clip_grad if ula else None,
            bounds=cfg.sampler.bounds if ula else None,
            num_integration_steps=num_integration_steps)
        x0 = run.initial_positions(k_init, num_chains)
        if run.data.planar:
            data = np.asarray(run.data.sample(jax.random.key(seed + 1), 100_000), np.float64)
            exact_mean, exact_cov = data.mean(0), np.cov(data, rowvar=False)
            reference_label = f"{cfg.data.name} data (moments of 1e5 draws)"
            reference = data[: min(len(data), 2000)]
        else:  # images: chain diagnostics of the energy trace, no exact moments
            images = cfg.eval.grid_rows
            exact_mean = exact_cov = None
            reference_label = "none (diagnostics of the energy of each chain)"
        extent = run.extent
        label = f"model in {workdir}"
        out_dir = Path(out) if out is not None else wd / "sample"
    else:
        sampler = sampler or "mala"
        analytic, exact_mean, exact_cov, extent, reference_label = _target(target)
        energy_fn, params = analytic.energy_fn, analytic.params
        scfg = SamplerConfig(name=sampler, step_size=step_size or _STEP_SIZES[target][sampler],
                             num_integration_steps=num_integration_steps)
        x0 = init_scale * jax.random.normal(k_init, (num_chains, 2))
        reference = None
        label = target
        out_dir = Path(out) if out is not None else Path("jebm-sample")
    alg = build_sampler(scfg, x0.shape[1:])(logdensity_fn(energy_fn, params))
    tic = time.perf_counter()
    trace, rate = _run_sampler(k_run, alg, x0, num_steps, chunk_size, progress, sampler)
    seconds = time.perf_counter() - tic
    out_dir.mkdir(parents=True, exist_ok=True)
    if images is not None:
        _chain_grids(out_dir, np.asarray(x0), trace, images, sampler)
        energies = jax.jit(lambda p, t: jax.lax.map(lambda xs: batch_energy(energy_fn, p, xs), t))
        trace = np.asarray(energies(params, jnp.asarray(trace)))[..., None]  # (steps, chains, 1)
    kept = trace[burn_in:]
    summary = {
        "target": label,
        "sampler": sampler,
        "step_size": scfg.step_size,
        "num_chains": num_chains,
        "num_steps": num_steps,
        "burn_in": burn_in,
        "seed": seed,
        "acceptance_rate": rate,
        **_chain_summary(kept, exact_mean, exact_cov),
        "reference": reference_label,
        "seconds": seconds,
    }
    if images is not None:
        _write_json(out_dir / "summary.json", summary)
        return summary
    points, shape = _grid(extent, 150)
    energies = jax.jit(functools.partial(batch_energy, energy_fn))(params, points)
    shown = kept.reshape(-1, 2)
    shown = shown[np.random.default_rng(seed).permutation(len(shown))[:5000]]
    plot_samples(out_dir / "samples.png", shown, reference=reference,
                 energy_grid=np.asarray(energies).reshape(shape), extent=extent,
                 title=f"{sampler} on {label}", reference_label="data")
    _write_json(out_dir / "summary.json", summary)
    return summary


def _chain_grids(out_dir: Path, x0: np.ndarray, trace: np.ndarray, rows: int,
                 sampler: str) -> None:
    """``chains.png``: a row per chain, from the state it starts at to its last state in
    ``rows − 1`` even steps; ``samples.png``: the final states of up to ``rows²`` chains."""
    from jebm.applications import save_image_grid

    num_steps, num_chains = trace.shape[:2]
    frames = np.unique(np.linspace(0, num_steps - 1, rows - 1).round().astype(int))
    shown = min(num_chains, rows)
    strip = np.concatenate([x0[None, :shown], trace[frames, :shown]])  # (frames+1, chains)
    save_image_grid(out_dir / "chains.png", strip.swapaxes(0, 1).reshape(-1, *x0.shape[1:]),
                    strip.shape[0], title=f"{sampler} chains, steps 0 to {num_steps}")
    save_image_grid(out_dir / "samples.png", trace[-1, : rows * rows], rows,
                    title=f"{sampler}: final states after {num_steps} steps")


# ----------------------------------------------------------------------------- evaluate


def load_model(workdir: str, step: int | None = None):
    """The trained energy of a `jebm train` workdir, for use in Python.

    Args:
      workdir: a folder written by `jebm train`.
      step: the checkpoint step (default: the latest).

    Returns:
      ``(energy_fn, params, config)``: ``energy_fn(params, x)`` is the model's energy of
      one ``x`` (the network plus ``model.base``; for NCE, without the learned ``c``,
      which is ``params["log_z"]``), and ``config`` the run's :class:`Config`.

    Raises:
      CheckpointError: if ``workdir`` holds no config or no checkpoint.
    """
    wd = Path(workdir)
    run = _Run(_stored_config(wd))
    return run.model_energy_fn, run.restore(wd, step).params, run.config


def evaluate(workdir: str, config: str | None = None, step: int | None = None) -> dict:
    """Test NLL of a trained checkpoint (grid quadrature of log Z for 2-D data, AIS for
    images).

    Args:
      workdir: a folder written by `jebm train`.
      config: optional YAML config; it must match the workdir's (guards against
        evaluating a run of another config).
      step: the checkpoint step (default: the latest).

    Returns:
      The summary written to ``WORKDIR/evaluation.json``.
    """
    wd = Path(workdir)
    stored = _stored_config(wd)
    if config is not None:
        _check_same_config(wd, stored, load_config(config), ignore=_RESUMABLE)
    run = _Run(stored)
    state = run.restore(wd, step)
    summary = {"step": int(state.step), **_nll_summary(run, state.params)}
    _write_json(wd / "evaluation.json", summary)
    return summary


# ----------------------------------------------------------------------------- main


def _print(summary: dict) -> None:
    print(_dumps(summary))


def main(argv: list[str] | None = None) -> None:
    """Entry point of the ``jebm`` console script."""
    subcommands = {"train": train, "sample": sample, "evaluate": evaluate}
    try:
        summary = tyro.extras.subcommand_cli_from_dict(subcommands, prog="jebm", args=argv)
    except (ValueError, CheckpointError, TrainingDivergedError, FileNotFoundError) as err:
        print(f"jebm: error: {err}", file=sys.stderr)
        raise SystemExit(1) from None
    _print(summary)


if __name__ == "__main__":  # pragma: no cover
    main()
