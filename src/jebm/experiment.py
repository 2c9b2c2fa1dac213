"""Recipes: a :class:`~jebm.config.Config` turned into the objects of a run.

The data flow of a run is dataset → energy → sampler → objective → optimizer → train
state. Each step has a registry of named factories, and the config's choice lists are
read from these registries (there is no second copy):

* :data:`DATASETS` — the 2-D toys of :mod:`jebm.datasets.toy2d`, ``digits``, and
  ``mnist``, ``fashion_mnist`` and ``cifar10`` read from ``data.path``;
* :data:`ENERGIES` — ``mlp`` and ``conv`` (plain energies ``E(params, x)``),
  ``joint_conv`` (a classifier read as a joint energy, :data:`JOINT_MODELS`) and
  ``noise_conditional`` (``E(params, x, σ)``, :data:`NOISE_CONDITIONAL_MODELS`);
* :data:`jebm.samplers.SAMPLERS` — through :func:`jebm.samplers.by_name`;
* :data:`OBJECTIVES` — ``cd``, ``pcd``, ``esm``, ``ssm``, ``dsm``, ``nce``, ``ed``, ``drl``,
  ``jem``: each an :class:`ObjectiveRecipe`, which also says how the trained model is
  sampled (:func:`sample_model`);
* :data:`OPTIMIZERS` — ``adam``, ``adamw``, ``sgd`` (optax), with the config's schedule;
* :data:`DENSITIES` — tractable densities fitted to the training data (a model's
  ``base``, NCE's ``noise``, an AIS base).

:func:`build_run` composes them into a :class:`Run`; any part can be replaced, e.g. a
user-written energy::

    run = build_run(config, energy=(my_energy_fn, my_params))
    step = jebm.train.make_train_step(run.objective, run.optimizer,
                                      ema_decay=config.train.ema_decay)
    result = jebm.train.train_loop(run.train_key, run.initial_state, step,
                                   run.data.sample, num_steps=100, batch_size=256)

:func:`train_run` is that call with the config's loop settings; :func:`load_model`
rebuilds a trained run from its workdir. The parameters a trained state is evaluated,
sampled and loaded with are :func:`jebm.train.model_params` of it: the moving average
``ema_params`` when ``train.ema_decay > 0``, else the raw ``params``. Evaluation lives
in :mod:`jebm.evaluation`, the command line in :mod:`jebm.cli`.
"""

import functools
import json
import math
import platform
import sys
import time
from collections.abc import Callable
from importlib import metadata
from pathlib import Path
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax

from jebm import densities, parallel
from jebm.config import Config, SamplerConfig, config_to_dict, load_config
from jebm.densities import Density
from jebm.energy import with_base
from jebm.samplers.registry import SAMPLERS, by_name
from jebm.types import Array, EnergyFn, PRNGKey, PyTree

__all__ = [
    "Data",
    "Run",
    "ObjectiveRecipe",
    "JOINT_MODELS",
    "NOISE_CONDITIONAL_MODELS",
    "LABELLED_DATASETS",
    "DATASETS",
    "ENERGIES",
    "OBJECTIVES",
    "OPTIMIZERS",
    "DENSITIES",
    "AIS_BASES",
    "build_data",
    "build_energy",
    "build_sampler",
    "retuned_sampler",
    "build_objective",
    "build_optimizer",
    "fit_density",
    "build_run",
    "initial_density",
    "initial_positions",
    "trained_sampler",
    "adapted_step_size",
    "replay_samples",
    "sample_trained",
    "sample_model",
    "sample_conditional",
    "sample_conditional_trained",
    "sampling_label",
    "RESUMABLE",
    "health_config",
    "training_devices",
    "train_run",
    "restore_state",
    "SamplingTarget",
    "TARGETS",
    "sampling_target",
    "ChainSetup",
    "chain_setup",
    "stored_config",
    "load_model",
    "dumps_json",
    "write_json",
    "check_same_config",
    "save_figures",
    "train_workdir",
]


# ------------------------------------------------------------------------------- data


class Data(NamedTuple):
    """The data set of a run.

    Attributes:
      name: the config's ``data.name``.
      sample: ``sample(key, n) -> (n, *event)`` training batches.
      test: held-out points ``(num_test, *event)``.
      train: digits: the dequantised training images (for fitted densities and
        baselines); ``None`` for the toys, whose training data is ``sample``.
      event_shape: the shape of one point.
      toy: the :class:`~jebm.datasets.toy2d.Toy2D` (true density and entropy), or ``None``.
      labelled: labelled image sets: ``labelled(key, n) -> ((n, *event), (n,) int32)``,
        training batches with their class labels (JEM); ``None`` for unlabelled data.
      test_labels: the labels of ``test`` ``(num_test,)``, or ``None``.
    """

    name: str
    sample: Callable[[PRNGKey, int], Array]
    test: Array
    train: Array | None
    event_shape: tuple[int, ...]
    toy: Any
    labelled: Callable[[PRNGKey, int], tuple[Array, Array]] | None = None
    test_labels: Array | None = None

    @property
    def planar(self) -> bool:
        """2-D points: evaluated by grid quadrature and density plots (else images)."""
        return self.event_shape == (2,)


def _toy_data(config, key: PRNGKey) -> Data:
    from jebm.datasets import toy2d

    toy = toy2d.get(config.name)
    # one XLA program for the test draws (eagerly, each of their ops compiles its own)
    test = jax.jit(toy.density.sample, static_argnums=1)(key, config.num_test)
    return Data(config.name, toy.density.sample, test, None, (2,), toy)


def _digits_data(config, key: PRNGKey) -> Data:
    from jebm.datasets import digits

    split = digits.load_digits(test_fraction=config.test_fraction, seed=config.split_seed,
                               classes=config.classes)
    k_test, k_train = jax.random.split(key)
    return Data(config.name, digits.sampler(split.train_counts),
                digits.dequantize(k_test, split.test_counts),
                digits.dequantize(k_train, split.train_counts), digits.IMAGE_SHAPE, None,
                digits.labelled_sampler(split.train_counts, split.train_labels),
                jnp.asarray(split.test_labels, jnp.int32))


def _image_files(loader_name: str):
    """Data from image files at ``data.path`` (uint8 pixels, dequantised to [0, 1])."""

    def load(config, key: PRNGKey) -> Data:
        from jebm import datasets

        if config.path is None:
            raise ValueError(f"data.name={config.name} reads its files from data.path; set "
                             "data.path to the folder that holds them.")
        split = getattr(datasets, loader_name)(config.path)
        train = jnp.asarray(split.train_images, jnp.uint8)
        train_labels = jnp.asarray(split.train_labels, jnp.int32)

        def dequantize(k, pixels):  # uniform noise in each of the 256 bins
            return (pixels.astype(jnp.float32) + jax.random.uniform(k, pixels.shape)) / 256.0

        def labelled(k, n):
            k_index, k_noise = jax.random.split(k)
            index = jax.random.randint(k_index, (n,), 0, len(train))
            return dequantize(k_noise, train[index]), train_labels[index]

        def sample(k, n):
            return labelled(k, n)[0]

        k_test, k_train = jax.random.split(key)
        test = dequantize(k_test, jnp.asarray(split.test_images[: config.num_test], jnp.uint8))
        return Data(config.name, sample, test, dequantize(k_train, train[:10_000]),
                    tuple(split.train_images.shape[1:]), None, labelled,
                    jnp.asarray(split.test_labels[: config.num_test], jnp.int32))

    return load


def _datasets() -> dict[str, Callable]:
    from jebm.datasets.toy2d import NAMES

    return {**{name: _toy_data for name in NAMES}, "digits": _digits_data,
            "mnist": _image_files("load_mnist"),
            "fashion_mnist": _image_files("load_fashion_mnist"),
            "cifar10": _image_files("load_cifar10")}


DATASETS: dict[str, Callable[..., Data]] = _datasets()

# The data sets whose Data carries class labels (``labelled``, ``test_labels``).
LABELLED_DATASETS: tuple[str, ...] = ("digits", "mnist", "fashion_mnist", "cifar10")


def build_data(config: Config, key: PRNGKey) -> Data:
    """The data set of ``config.data``; ``key`` draws the test set (and dequantises digits).

    Args:
      config: the run's config; only ``config.data`` is read.
      key: PRNG key of the test set: a toy's ``data.num_test`` exact draws, or the
        dequantisation noise of the digits test and training images.

    Returns:
      The :class:`Data`; its ``sample`` draws fresh training batches.
    """
    return DATASETS[config.data.name](config.data, key)


def fit_density(data: Data, kind: str, key: PRNGKey, field: str) -> Density:
    """A tractable density of :data:`DENSITIES` fitted to the training data.

    The digits training images, or ``10⁴`` draws of a toy made with ``key``; ``field``
    names the config field in errors (``logit_gaussian`` needs data in ``[0, 1]``).

    Args:
      data: the run's :class:`Data`.
      kind: a name of :data:`DENSITIES` (``gaussian`` or ``logit_gaussian``).
      key: PRNG key of the toy draws (unused for digits).
      field: the dotted config field that chose ``kind``, e.g. ``"model.base"``.

    Returns:
      The fitted :class:`~jebm.densities.Density`.

    Raises:
      ValueError: for ``logit_gaussian`` on a 2-D toy.
    """
    points = data.train if data.train is not None else data.sample(key, 10_000)
    if kind == "logit_gaussian" and data.toy is not None:
        raise ValueError(f"{field}=logit_gaussian is a density on [0, 1]^d, for image data; "
                         f"{data.name} lives on R^2: use gaussian.")
    return DENSITIES[kind](points)


DENSITIES: dict[str, Callable[[Array], Density]] = {
    "gaussian": lambda points: densities.fit_gaussian(points, jitter=1e-5, ddof=1),
    "logit_gaussian": densities.logit_gaussian,
}

# AIS bases in logit coordinates for energies on the unit box, from the training images.
AIS_BASES: dict[str, Callable[[Array], Density]] = {
    "logit_gaussian": lambda train: densities.fit_gaussian(
        densities.logit(np.asarray(train, np.float64))),
    "uniform": lambda train: densities.logistic(train.shape[1:]),
}


# ----------------------------------------------------------------------------- energy


def _mlp(key: PRNGKey, model, event_shape: tuple[int, ...]):
    from jebm.energies.mlp import mlp_energy

    energy_fn, params = mlp_energy(key, math.prod(event_shape), model.hidden,
                                   activation=model.activation,
                                   fourier_features=model.fourier_features,
                                   fourier_scale=model.fourier_scale, dtype=model.dtype)
    if len(event_shape) == 1:
        return energy_fn, params
    return (lambda p, x: energy_fn(p, x.reshape(-1))), params


def _conv(key: PRNGKey, model, event_shape: tuple[int, ...]):
    from jebm.energies.conv import conv_energy

    if len(event_shape) not in (2, 3):
        raise ValueError(f"model.kind=conv needs image data, got points of shape "
                         f"{event_shape}; use model.kind=mlp.")
    return conv_energy(key, event_shape, features=model.features, hidden=model.hidden[0],
                       activation=model.activation, spectral_norm=model.spectral_norm,
                       spectral_norm_steps=model.spectral_norm_steps, dtype=model.dtype)


def _image_shape(model, event_shape: tuple[int, ...]) -> tuple[int, ...]:
    if len(event_shape) not in (2, 3):
        raise ValueError(f"model.kind={model.kind} needs image data, got points of shape "
                         f"{event_shape}; use model.kind=mlp.")
    return event_shape


def _joint_conv(key: PRNGKey, model, event_shape: tuple[int, ...]):
    from jebm.energies.conv import joint_energy_fns

    return joint_energy_fns(key, _image_shape(model, event_shape), NUM_CLASSES,
                            features=model.features, hidden=model.hidden[0],
                            activation=model.activation, spectral_norm=model.spectral_norm)


def _noise_conditional(key: PRNGKey, model, event_shape: tuple[int, ...]):
    from jebm.energies.noise_conditional import noise_conditional_conv_energy

    return noise_conditional_conv_energy(key, _image_shape(model, event_shape),
                                         features=model.features, hidden=model.hidden[0],
                                         activation=model.activation)


# name -> factory(key, model_config, event_shape): ``(energy_fn, params)`` of a plain energy
# E(params, x); a JointEnergy for JOINT_MODELS; ``(energy_fn, params)`` with
# ``energy_fn(params, x, sigma)`` for NOISE_CONDITIONAL_MODELS.
ENERGIES: dict[str, Callable] = {"mlp": _mlp, "conv": _conv, "joint_conv": _joint_conv,
                                 "noise_conditional": _noise_conditional}

# Model kinds that are a classifier read as a joint energy (jebm.energies.conv.JointEnergy:
# class logits g(x), E(x) = −logsumexp g(x), E(x, y) = −g(x)[y]); the labels are 0..9.
JOINT_MODELS: tuple[str, ...] = ("joint_conv",)
NUM_CLASSES = 10
# Model kinds whose energy takes a noise level, E(params, x, sigma): trained over the
# objective's noise ladder (objective.sigmas or sigma_max/sigma_min/num_levels).
NOISE_CONDITIONAL_MODELS: tuple[str, ...] = ("noise_conditional",)


def build_energy(config: Config, key: PRNGKey, event_shape: tuple[int, ...]):
    """``(energy_fn, params)`` of ``config.model`` for single inputs of ``event_shape``.

    Args:
      config: the run's config; only ``config.model`` is read.
      key: PRNG key of the parameter initialisation.
      event_shape: the shape of one input; an MLP flattens it, a conv energy needs an
        image ``(h, w)`` or ``(h, w, c)``.

    Returns:
      ``(energy_fn, params)``, without ``model.base`` (:func:`build_run` adds it); a
      :class:`~jebm.energies.conv.JointEnergy` for :data:`JOINT_MODELS`, and
      ``energy_fn(params, x, sigma)`` for :data:`NOISE_CONDITIONAL_MODELS`.

    Raises:
      ValueError: for a conv model kind on inputs that are not images.
    """
    return ENERGIES[config.model.kind](key, config.model, tuple(event_shape))


# ---------------------------------------------------------------------------- sampler


def build_sampler(config: SamplerConfig, event_shape: tuple[int, ...]):
    """``factory(logdensity_fn) -> SamplingAlgorithm`` of a sampler config section.

    Only the tunables the named sampler takes are read (see :func:`jebm.samplers.by_name`);
    ``space: logit`` runs it in logit coordinates (:func:`jebm.samplers.logit_space`).

    Args:
      config: the ``sampler`` section of a config.
      event_shape: the shape of one position.

    Returns:
      ``factory(logdensity_fn, **overrides) -> SamplingAlgorithm``, the config's
      tunables bound; keyword overrides replace them.
    """
    from jebm.samplers import logit_space

    accepted = SAMPLERS[config.name][1]
    factory = by_name(config.name, event_shape, **{k: getattr(config, k) for k in accepted})
    return logit_space(factory) if config.space == "logit" else factory


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


def _cd(config, energy_fn, sampler, data, noise_key, joint, base):
    from jebm.objectives import cd

    return cd(energy_fn, sampler, config.sampler.num_steps, energy_l2=config.objective.energy_l2)


def _pcd(config, energy_fn, sampler, data, noise_key, joint, base):
    from jebm.objectives import pcd

    obj = config.objective
    return pcd(energy_fn, sampler, config.sampler.num_steps, buffer_size=obj.buffer_size,
               reinit_prob=obj.reinit_prob, init_density=initial_density(config, data, base),
               num_chains=obj.num_chains or None, energy_l2=obj.energy_l2,
               target_acceptance=config.sampler.target_acceptance,
               initial_step_size=config.sampler.step_size)


def _esm(config, energy_fn, sampler, data, noise_key, joint, base):
    from jebm.objectives import exact_score_matching

    return exact_score_matching(energy_fn)


def _ssm(config, energy_fn, sampler, data, noise_key, joint, base):
    from jebm.objectives import sliced_score_matching

    obj = config.objective
    return sliced_score_matching(energy_fn, num_projections=obj.num_projections,
                                 variance_reduced=obj.variance_reduced)


def _levels(config) -> dict:
    """``sigma=`` (one level) or ``sigmas=`` (the ladder) of ``config.objective``."""
    ladder = config.objective.ladder
    if ladder is None:
        return {"sigma": config.objective.sigma}
    return {"sigmas": jnp.asarray(ladder, jnp.float32)}


def _dsm(config, energy_fn, sampler, data, noise_key, joint, base):
    from jebm.objectives import denoising_score_matching

    return denoising_score_matching(energy_fn, **_levels(config))


def _nce(config, energy_fn, sampler, data, noise_key, joint, base):
    from jebm.objectives import nce

    noise = fit_density(data, config.objective.noise, noise_key, "objective.noise")
    return nce(energy_fn, noise, noise_ratio=config.objective.noise_ratio)


def _nce_params(params: PyTree) -> dict:
    from jebm.objectives import nce_params

    return nce_params(params)


def _ed(config, energy_fn, sampler, data, noise_key, joint, base):
    from jebm.objectives import energy_discrepancy

    obj = config.objective
    return energy_discrepancy(energy_fn, sigma=obj.sigma, num_negatives=obj.num_negatives,
                              stabilizer=obj.stabilizer)


def _drl(config, energy_fn, sampler, data, noise_key, joint, base):
    from jebm.objectives import recovery_likelihood

    levels = _levels(config)
    form = {"form": config.objective.drl_form} if "sigmas" in levels else {}
    return recovery_likelihood(energy_fn, num_steps=config.sampler.num_steps,
                               step_scale=config.objective.step_scale, **levels, **form)


def _jem(config, energy_fn, sampler, data, noise_key, joint, base):
    from jebm.objectives import jem

    return jem(_pcd(config, energy_fn, sampler, data, noise_key, joint, base), joint.logits_fn,
               generative_weight=config.objective.generative_weight)


# ------------------------------------------------------------------- sampling a model


def _most_devices(*sizes: int) -> int:
    """The most of the default backend's devices that divide every one of ``sizes``."""
    return max(d for d in range(1, len(jax.devices()) + 1) if all(n % d == 0 for n in sizes))


def _chain_spread(num_chains: int) -> Callable:
    """``x0 -> x0`` split over the most devices that divide ``num_chains`` (identity on
    one device): chains are independent, so each device runs its share and the draws do
    not change (partitionable Threefry)."""
    devices = _most_devices(num_chains)
    if devices == 1:
        return lambda x0: x0
    sharding = parallel.chain_sharding(parallel.make_mesh(num_chain_devices=devices,
                                                          num_data_devices=1))
    return lambda x0: jax.lax.with_sharding_constraint(x0, sharding)


def _sample_chains(run, params, key, num_chains: int, num_steps: int, sampler):
    """The run's sampler (or ``sampler``) on ``run.model_energy_fn`` from the initial
    positions: energy models."""
    from jebm.energy import logdensity_fn
    from jebm.samplers import run_chains

    spread = _chain_spread(num_chains)

    def draw(key, params):  # one program: the starting draws and the chains
        algorithm = (sampler or run.sampler)(logdensity_fn(run.model_energy_fn, params))
        k_init, k_run = jax.random.split(key)
        x0 = spread(initial_positions(run, k_init, num_chains))
        return run_chains(k_run, algorithm, x0, num_steps, keep_trace=False).state.position

    return jax.jit(draw)(key, params)


def _steps_per_level(num_steps: int, num_levels: int) -> int:
    return max(1, num_steps // num_levels)


def _sampled_levels(objective) -> int:
    """How many levels a ladder's sampler runs chains at: all of them, except a
    diffusion-form DRL ladder, whose top level has no conditional (``L − 1``)."""
    diffusion = objective.name == "drl" and objective.drl_form == "diffusion"
    return len(objective.ladder) - 1 if diffusion else len(objective.ladder)


def _sample_annealed(run, params, key, num_chains: int, num_steps: int, sampler):
    """A noise ladder trained by DSM (NCSN): annealed Langevin dynamics down the ladder,
    ``num_steps // L`` steps per level with ``ε = sampler.step_size`` at ``σ_min``."""
    ladder = run.config.objective.ladder
    if ladder is None or sampler is not None:
        return _sample_chains(run, params, key, num_chains, num_steps, sampler)
    from jebm.energy import logdensity_fn
    from jebm.samplers import annealed_langevin, run_chains

    per_level = _steps_per_level(num_steps, len(ladder))
    algorithm = annealed_langevin(logdensity_fn(run.energy_fn, params),
                                  jnp.asarray(ladder, jnp.float32), per_level,
                                  run.config.sampler.step_size)
    k_init, k_run = jax.random.split(key)
    x0 = initial_positions(run, k_init, num_chains)
    result = jax.jit(lambda k, x: run_chains(k, algorithm, x, per_level * len(ladder),
                                             keep_trace=False))(k_run, x0)
    return result.state.position


def _sample_recovery(run, params, key, num_chains: int, num_steps: int, sampler):
    """A noise ladder trained by recovery likelihood: :func:`jebm.objectives.recovery_sample`
    down the ladder in the form it was trained, ``num_steps`` split evenly over the levels
    that run chains (``L``, or ``L − 1`` in the diffusion form)."""
    obj = run.config.objective
    ladder = obj.ladder
    if ladder is None or sampler is not None:
        return _sample_chains(run, params, key, num_chains, num_steps, sampler)
    from jebm.objectives import recovery_sample

    per_level = _steps_per_level(num_steps, _sampled_levels(obj))
    k_init, k_run = jax.random.split(key)
    x0 = initial_positions(run, k_init, num_chains)
    return jax.jit(lambda k, p, x: recovery_sample(
        k, p, x, energy_fn=run.energy_fn, sigmas=jnp.asarray(ladder, jnp.float32),
        num_steps=per_level, step_scale=obj.step_scale, form=obj.drl_form))(k_run, params, x0)


def _at_smallest_level(config, energy_fn):
    """A noise-conditional energy read at ``σ_min``, the model of the data (else as is)."""
    ladder = config.objective.ladder
    if ladder is None:
        return energy_fn
    sigma_min = float(min(ladder))
    return lambda p, x: energy_fn(p, x, sigma_min)


class ObjectiveRecipe(NamedTuple):
    """How a config's objective is built, what it trains, and how its model is sampled.

    Attributes:
      build: ``build(config, energy_fn, sampler, data, noise_key, joint, base) ->
        Objective``; ``sampler`` is ``factory(logdensity_fn)`` of ``config.sampler``,
        ``joint`` the :class:`~jebm.energies.conv.JointEnergy` of a joint model (else
        ``None``) and ``base`` the fitted ``model.base`` density (else ``None``).
      params: ``params(energy_params)``: the params the objective trains.
      model_energy: ``model_energy(config, energy_fn) -> EnergyFn``: the model's energy
        ``E(trained_params, x)`` of one ``x`` (what evaluation and plain samplers use),
        from the energy the objective trains.
      sample: ``sample(run, params, key, num_chains, num_steps, sampler)``: final draws of
        the trained model, ``(num_chains, *event)`` (see :func:`sample_model`).
      ladder: the objective trains a noise-conditional energy ``E(params, x, σ)`` when
        the config gives a noise ladder (``objective.sigmas`` or ``sigma_max``,
        ``sigma_min``, ``num_levels``); without one, a plain energy at ``objective.sigma``.
      joint: the objective trains a joint model (:data:`JOINT_MODELS`) on labelled
        batches ``(x, y)`` (:data:`LABELLED_DATASETS`).
      adapts_step_size: the objective's PCD negatives can adapt the sampler's step size
        (``sampler.target_acceptance``; see :func:`adapted_step_size`).
    """

    build: Callable
    params: Callable[[PyTree], PyTree] = lambda p: p
    model_energy: Callable = lambda config, energy_fn: energy_fn
    sample: Callable = _sample_chains
    ladder: bool = False
    joint: bool = False
    adapts_step_size: bool = False


def _nce_model_energy(config, energy_fn):
    return lambda p, x: energy_fn(p["energy"], x)


OBJECTIVES: dict[str, ObjectiveRecipe] = {
    "cd": ObjectiveRecipe(_cd),
    "pcd": ObjectiveRecipe(_pcd, adapts_step_size=True),
    "esm": ObjectiveRecipe(_esm),
    "ssm": ObjectiveRecipe(_ssm),
    "dsm": ObjectiveRecipe(_dsm, model_energy=_at_smallest_level, sample=_sample_annealed,
                           ladder=True),
    "nce": ObjectiveRecipe(_nce, params=_nce_params, model_energy=_nce_model_energy),
    "ed": ObjectiveRecipe(_ed),
    "drl": ObjectiveRecipe(_drl, model_energy=_at_smallest_level, sample=_sample_recovery,
                           ladder=True),
    "jem": ObjectiveRecipe(_jem, joint=True, adapts_step_size=True),
}


def build_objective(config: Config, energy_fn: EnergyFn, data: Data, noise_key: PRNGKey,
                    *, joint: Any = None, base: Density | None = None):
    """The :class:`~jebm.objectives.Objective` of ``config.objective`` on ``energy_fn``.

    ``noise_key`` draws the toy points an NCE noise is fitted to.

    Args:
      config: the run's config (``objective``, and ``sampler`` for cd/pcd/jem/drl).
      energy_fn: the energy to train (with its base, if any); noise-conditional
        ``energy_fn(params, x, sigma)`` with a noise ladder.
      data: the run's :class:`Data` (event shape; NCE's noise is fitted to it).
      noise_key: PRNG key of the toy draws behind the NCE noise.
      joint: the :class:`~jebm.energies.conv.JointEnergy` of a joint model (``jem``
        reads its ``logits_fn``); ``energy_fn`` is then its marginal energy.
      base: the fitted ``model.base`` density, if any (PCD restarts its chains from it,
        see :func:`initial_density`).

    Returns:
      The objective. Its params are the energy's params, except for NCE, which trains
      :func:`jebm.objectives.nce_params` of them (``{"energy", "log_z"}``).

    Raises:
      ValueError: for ``objective.name=jem`` without a joint model.
    """
    recipe = OBJECTIVES[config.objective.name]
    if recipe.joint and joint is None:
        raise ValueError(f"objective.name={config.objective.name} needs a joint model (class "
                         f"logits): set model.kind to one of {JOINT_MODELS}, or pass a "
                         "JointEnergy as build_run(config, energy=...).")
    sampler = build_sampler(config.sampler, data.event_shape)
    return recipe.build(config, energy_fn, sampler, data, noise_key, joint, base)


# -------------------------------------------------------------------------- optimizer


def _schedule(opt, num_steps: int):
    if opt.schedule == "cosine":
        return optax.warmup_cosine_decay_schedule(
            0.0 if opt.warmup_steps else opt.learning_rate, opt.learning_rate,
            opt.warmup_steps, max(num_steps, opt.warmup_steps + 1), 0.0)
    if opt.warmup_steps:
        return optax.linear_schedule(0.0, opt.learning_rate, opt.warmup_steps)
    return opt.learning_rate


OPTIMIZERS: dict[str, Callable] = {
    "adam": lambda lr, opt: optax.adam(lr, b1=opt.b1, b2=opt.b2),
    "adamw": lambda lr, opt: optax.adamw(lr, b1=opt.b1, b2=opt.b2,
                                         weight_decay=opt.weight_decay),
    "sgd": lambda lr, opt: optax.sgd(lr, momentum=opt.b1 or None),
}


def build_optimizer(config: Config) -> optax.GradientTransformation:
    """The optax optimizer of ``config.optimizer`` (schedule over ``train.num_steps``).

    The learning rate warms up linearly from 0 over ``optimizer.warmup_steps`` (if any),
    then stays constant or decays by a cosine to 0 at ``train.num_steps``; with
    ``optimizer.clip_norm`` the gradient is clipped by global norm first.

    Args:
      config: the run's config (``optimizer`` and ``train.num_steps``).

    Returns:
      An ``optax.GradientTransformation``.
    """
    opt = config.optimizer
    tx = OPTIMIZERS[opt.name](_schedule(opt, config.train.num_steps), opt)
    if opt.clip_norm is not None:
        tx = optax.chain(optax.clip_by_global_norm(opt.clip_norm), tx)
    return tx


# -------------------------------------------------------------------------------- run


class Run(NamedTuple):
    """Everything a config determines.

    Attributes:
      config: the :class:`~jebm.config.Config`.
      data: the :class:`Data`.
      energy_fn: the energy the objective trains, on the objective's params (for NCE,
        ``params["energy"]``): the network plus the base energy ``−log q``, if any; with
        a noise ladder the noise-conditional ``energy_fn(params, x, sigma)``.
      model_energy_fn: the model's energy on the *trained* params (what samplers,
        plots and evaluation use; for NCE it reads ``params["energy"]``; with a noise
        ladder it is the noise-conditional energy at ``σ_min``, the smallest level).
      base: the fitted base :class:`~jebm.densities.Density` ``q``, or ``None``.
      sampler: ``factory(logdensity_fn) -> SamplingAlgorithm`` of ``config.sampler``.
      objective: the :class:`~jebm.objectives.Objective`.
      optimizer: the optax optimizer.
      initial_state: the :class:`~jebm.train.TrainState` at step 0 (with
        ``ema_params`` when ``train.ema_decay > 0``).
      train_key: the key of the training loop.
      sample_key: the key of the draws for figures.
      eval_key: the key of evaluations (AIS).
      batches: ``batches(key, n)``: the training batches the objective consumes
        (``data.sample``; ``data.labelled`` pairs ``(x, y)`` for a joint objective).
      joint: the :class:`~jebm.energies.conv.JointEnergy` of a joint model (class
        logits, class-conditional energies, both energies with the base's ``−log q``
        when there is one), or ``None``.
    """

    config: Config
    data: Data
    energy_fn: EnergyFn
    model_energy_fn: EnergyFn
    base: Density | None
    sampler: Callable
    objective: Any
    optimizer: optax.GradientTransformation
    initial_state: Any
    train_key: PRNGKey
    sample_key: PRNGKey
    eval_key: PRNGKey
    batches: Callable
    joint: Any = None


def build_run(config: Config, *, energy: Any = None) -> Run:
    """Build every object of ``config``; pass ``energy=(energy_fn, params)`` to replace the
    config's network by your own (``config.model.base`` is still added to it).

    A ``model.base`` ``q`` enters every energy of the model through
    :func:`jebm.energy.with_base`: ``E(x) − log q(x)``, and for a joint model both its
    marginal ``−logsumexp g(x) − log q(x)`` and its class-conditional
    ``E(x, y) = −g(x)[y] − log q(x)`` (``run.joint`` carries both; its ``logits_fn``, hence
    ``p(y | x) = softmax g(x)``, is unchanged: ``q`` cancels in it).

    Keys: ``key(train.seed)`` split six ways (model, initial state, training loop, test
    set, fitted densities, figures), plus ``fold_in(key, 6)`` for evaluation.

    Args:
      config: the run's config.
      energy: optional ``(energy_fn, params)`` for one unbatched point of the data's
        event shape (``energy_fn(params, x, sigma)`` with a noise ladder), or a
        :class:`~jebm.energies.conv.JointEnergy` (for ``objective.name=jem``).

    Returns:
      A :class:`Run`.
    """
    from jebm.energies.conv import JointEnergy
    from jebm.train.state import init_train_state

    (k_model, k_state, train_key, k_test, k_noise, sample_key), eval_key = _run_keys(
        config.train.seed)
    data = build_data(config, k_test)
    if config.sampler.space == "logit" and data.toy is not None:
        raise ValueError(f"sampler.space=logit samples densities on [0, 1]^d (images); "
                         f"{data.name} lives on R^2: use sampler.space=data.")
    built = energy if energy is not None else build_energy(config, k_model, data.event_shape)
    joint = built if isinstance(built, JointEnergy) else None
    energy_fn, params = (joint.energy_fn, joint.params) if joint is not None else built
    base = None
    if config.model.base != "none":
        base = fit_density(data, config.model.base, k_noise, "model.base")
        energy_fn = with_base(energy_fn, base)
        if joint is not None:  # E(x, y) = −g(x)[y] − log q(x); the logits, p(y | x), stay
            joint = joint._replace(
                energy_fn=energy_fn,
                conditional_energy_fn=with_base(joint.conditional_energy_fn, base))
    recipe = OBJECTIVES[config.objective.name]
    objective = build_objective(config, energy_fn, data, k_noise, joint=joint, base=base)
    params = recipe.params(params)
    model_energy_fn = recipe.model_energy(config, energy_fn)
    batches = data.labelled if recipe.joint else data.sample
    if batches is None:
        raise ValueError(f"objective.name={config.objective.name} trains on labelled data; "
                         f"data.name={config.data.name} has no labels.")
    optimizer = build_optimizer(config)
    batch_size, ema = config.data.batch_size, config.train.ema_decay > 0
    # the example batch, the optimizer state and the objective's (e.g. a replay buffer)
    # as one XLA program, not one per eager op
    state = jax.jit(lambda k, p: init_train_state(k, p, optimizer, objective,
                                                  batches(k, batch_size), ema=ema))(
        k_state, params)
    return Run(config, data, energy_fn, model_energy_fn, base,
               build_sampler(config.sampler, data.event_shape), objective, optimizer, state,
               train_key, sample_key, eval_key, batches, joint)


@functools.partial(jax.jit, static_argnums=0)  # static: any Python int seed, as eagerly
def _run_keys(seed: int):
    """``key(seed)`` split six ways, and ``fold_in(key, 6)``: :func:`build_run`'s keys,
    derived in one XLA program (eagerly, the seeding, the split, the unstacking and the
    fold-in compile one program each)."""
    key = jax.random.key(seed)
    return tuple(jax.random.split(key, 6)), jax.random.fold_in(key, 6)


def initial_density(config: Config, data: Data, base: Density | None) -> Density:
    """Where chains start, in training (PCD's buffer and restarts) and in sampling:
    ``model.base`` if the model has one, else uniform on the box
    ``[objective.init_low, objective.init_high]``.

    Args:
      config: the run's config.
      data: the run's :class:`Data` (its event shape).
      base: the fitted base density, or ``None``.

    Returns:
      A :class:`~jebm.densities.Density`.
    """
    if base is not None:
        return base
    obj = config.objective
    return densities.uniform_box(obj.init_low, obj.init_high, data.event_shape)


def initial_positions(run: Run, key: PRNGKey, n: int) -> Array:
    """Where sampling chains start: draws of ``model.base`` if the model has one; with a
    noise ladder, the mean training point plus ``σ_max`` Gaussian noise; else uniform in
    the box ``[objective.init_low, objective.init_high]``.

    The ladder's start approximates the data smoothed at ``σ_max`` (each data point plus
    ``N(0, σ_max² I)``) by the data's mean plus that noise: it uses no single training
    point, and for ``σ_max`` near the data's spread the difference is washed out by the
    first levels.

    Args:
      run: the :class:`Run`.
      key: PRNG key of the draws.
      n: the number of chains (static).

    Returns:
      ``(n, *event_shape)`` starting positions.
    """
    ladder = run.config.objective.ladder
    if ladder is not None and run.base is None:
        points = run.data.train if run.data.train is not None else run.data.sample(
            jax.random.fold_in(key, 1), 10_000)
        mean = jnp.mean(points, axis=0, keepdims=True)
        return mean + max(ladder) * jax.random.normal(key, (n, *run.data.event_shape))
    return initial_density(run.config, run.data, run.base).sample(key, n)


def adapted_step_size(objective_state: Any) -> float | None:
    """The step size a PCD (or JEM) run with ``sampler.target_acceptance`` adapted to
    (read from its objective state), or ``None`` when nothing was adapted.

    Args:
      objective_state: a trained state's ``objective_state``.

    Returns:
      ``exp(log h)`` as a float, or ``None``.
    """
    log_h = getattr(objective_state, "log_step_size", None)
    return None if log_h is None else float(jnp.exp(log_h))


def replay_samples(objective_state: Any) -> Array | None:
    """The replay buffer's positions of a PCD-type objective state (plain, or wrapped
    with an adapted step size), or ``None`` for objectives without a buffer.

    Args:
      objective_state: a trained state's ``objective_state``.

    Returns:
      ``(buffer_size, *event)`` positions, or ``None``.
    """
    buffer = getattr(objective_state, "buffer", objective_state)
    return getattr(buffer, "samples", None)


def trained_sampler(run: Run, objective_state: Any = None) -> Callable | None:
    """The run's sampler as training left it, for :func:`sample_model`'s (and
    :func:`sample_conditional`'s) ``sampler``: with the :func:`adapted_step_size` of a
    PCD or JEM run with ``sampler.target_acceptance``;
    ``None`` (the model's own sampling) when nothing was adapted.

    Args:
      run: the :class:`Run`.
      objective_state: the trained state's ``objective_state``.

    Returns:
      ``factory(logdensity_fn) -> SamplingAlgorithm``, or ``None``.
    """
    step_size = adapted_step_size(objective_state)
    if step_size is None:
        return None
    return lambda logdensity_fn, **overrides: run.sampler(
        logdensity_fn, **{"step_size": step_size, **overrides})


def sample_trained(run: Run, state: Any, key: PRNGKey, num_chains: int,
                   num_steps: int) -> Array:
    """:func:`sample_model` of a trained :class:`~jebm.train.TrainState`: its
    :func:`~jebm.train.model_params` (the EMA when kept), with the
    :func:`trained_sampler` (the adapted step size, if any).

    Args:
      run: the :class:`Run`.
      state: the trained state.
      key: PRNG key of the starting positions and the transitions.
      num_chains: independent chains (static).
      num_steps: transitions per chain (static).

    Returns:
      ``(num_chains, *event_shape)`` final positions.
    """
    from jebm.train import model_params

    return sample_model(run, model_params(state), key, num_chains, num_steps,
                        sampler=trained_sampler(run, state.objective_state))


def sample_model(run: Run, params: PyTree, key: PRNGKey, num_chains: int, num_steps: int,
                 sampler: Callable | None = None) -> Array:
    """Final positions of ``num_chains`` draws of the trained model, made the way its
    objective says (:attr:`ObjectiveRecipe.sample`), from :func:`initial_positions`.

    * Energy models (and ``jem``, whose marginal is ``E(x) = −logsumexp g(x)``):
      ``num_steps`` transitions of the run's sampler (or ``sampler``) on
      ``run.model_energy_fn``.
    * ``dsm`` with a noise ladder (NCSN): annealed Langevin dynamics
      (:func:`jebm.samplers.annealed_langevin`) over the ladder, ``num_steps // L`` steps
      per level (at least one), ``ε = sampler.step_size`` the step at ``σ_min``.
    * ``drl`` with a noise ladder: :func:`jebm.objectives.recovery_sample` down the
      ladder in ``objective.drl_form``, ``num_steps // L`` conditional Langevin steps per
      level (``// (L − 1)`` in the diffusion form) with step ``objective.step_scale · σ²``.

    A ``sampler`` given explicitly always runs plain chains on ``run.model_energy_fn``
    (for a ladder, the energy at ``σ_min``). It jits the chains itself.

    Args:
      run: the :class:`Run`.
      params: the trained params (read through ``run.model_energy_fn``).
      key: PRNG key of the starting positions and the transitions.
      num_chains: independent chains (static).
      num_steps: transitions per chain (static); over a ladder, the total over its levels.
      sampler: ``factory(logdensity_fn) -> SamplingAlgorithm`` (e.g. from
        :func:`build_sampler`); ``None`` for the objective's own procedure.

    Returns:
      ``(num_chains, *event_shape)`` final positions; no trace is kept.
    """
    recipe = OBJECTIVES[run.config.objective.name]
    return recipe.sample(run, params, key, num_chains, num_steps, sampler)


def sample_conditional(run: Run, params: PyTree, key: PRNGKey, labels: Array,
                       num_steps: int, sampler: Callable | None = None) -> Array:
    """Class-conditional draws of a joint (JEM) run: chain ``i`` samples
    ``p(x | labels[i]) ∝ exp(−E(x, labels[i]))`` (``exp(g(x)[y]) q(x)`` with a
    ``model.base`` ``q``, else ``exp(g(x)[y])``) with the run's sampler, or ``sampler``.

    Chains start at :func:`initial_positions` (draws of ``q`` when the model has one);
    :func:`jebm.tasks.conditional_samples` runs them. It jits the chains itself. Pass
    ``sampler=trained_sampler(run, state.objective_state)`` (or call
    :func:`sample_conditional_trained`) to use the step size training adapted.

    Args:
      run: a :class:`Run` of a joint model (``run.joint`` is set).
      params: the trained params.
      key: PRNG key of the starting positions and the transitions.
      labels: ``(n,)`` integer classes, one per chain.
      num_steps: transitions per chain (static).
      sampler: ``factory(logdensity_fn) -> SamplingAlgorithm``; ``None`` for
        ``run.sampler`` (the config's tunables).

    Returns:
      ``(n, *event_shape)`` final positions.

    Raises:
      ValueError: if the run's model is not a joint model.
    """
    from jebm.tasks import conditional_samples

    if run.joint is None:
        raise ValueError(f"class-conditional samples need a joint model; model.kind="
                         f"{run.config.model.kind} is not one of {JOINT_MODELS}.")
    labels = jnp.asarray(labels, jnp.int32)
    k_init, k_run = jax.random.split(key)
    x0 = initial_positions(run, k_init, labels.shape[0])
    return jax.jit(lambda k, p, y, x: conditional_samples(
        k, run.joint.conditional_energy_fn, p, y, x, sampler=sampler or run.sampler,
        num_steps=num_steps))(k_run, params, labels, x0)


def sample_conditional_trained(run: Run, state: Any, key: PRNGKey, labels: Array,
                               num_steps: int) -> Array:
    """:func:`sample_conditional` of a trained :class:`~jebm.train.TrainState`: its
    :func:`~jebm.train.model_params` (the EMA when kept), with the
    :func:`trained_sampler` (the adapted step size, if any), as :func:`sample_trained`
    does for unconditional draws.

    Args:
      run: a :class:`Run` of a joint model.
      state: the trained state.
      key: PRNG key of the starting positions and the transitions.
      labels: ``(n,)`` integer classes, one per chain.
      num_steps: transitions per chain (static).

    Returns:
      ``(n, *event_shape)`` final positions.
    """
    from jebm.train import model_params

    return sample_conditional(run, model_params(state), key, labels, num_steps,
                              sampler=trained_sampler(run, state.objective_state))


def sampling_label(run: Run, num_steps: int) -> str:
    """A one-line description of how :func:`sample_model` draws (for figure titles).

    Args:
      run: the :class:`Run`.
      num_steps: the ``num_steps`` given to :func:`sample_model`.

    Returns:
      e.g. ``"ula chains from noise (60 steps)"`` or ``"annealed Langevin, 10 levels
      σ 3 → 0.02 (20 steps each)"``.
    """
    obj = run.config.objective
    ladder = obj.ladder
    if ladder is not None and obj.name in ("dsm", "drl"):
        per_level = _steps_per_level(num_steps, _sampled_levels(obj))
        how = "annealed Langevin" if obj.name == "dsm" else f"recovery sampling ({obj.drl_form})"
        return (f"{how}, {len(ladder)} levels σ {max(ladder):.3g} → {min(ladder):.3g} "
                f"({per_level} steps each)")
    start = "the base" if run.base is not None else "noise"
    return f"{run.config.sampler.name} chains from {start} ({num_steps} steps)"


# Config fields that may differ between a run and its resumption: they change neither the
# parameters nor how results are computed (train.num_steps may only grow: an extension).
RESUMABLE = ("train.chunk_size", "train.log_every", "train.eval_every",
             "train.checkpoint_every", "train.keep_checkpoints", "train.num_steps",
             "train.devices")


def training_devices(config: Config) -> int:
    """How many devices ``config``'s training is split over (``train.devices``).

    ``0`` takes the most of the default backend's devices that divide both
    ``data.batch_size`` and ``objective.num_chains``; a positive count is used as given.

    Args:
      config: the experiment :class:`Config`.

    Returns:
      The device count (1: no data parallelism).

    Raises:
      ValueError: if ``train.devices`` exceeds the devices there are or does not divide
        the batch size and the chain count.
    """
    available = len(jax.devices())
    sizes = {"data.batch_size": config.data.batch_size,
             "objective.num_chains": config.objective.num_chains}
    wanted = config.train.devices
    if wanted == 0:
        return _most_devices(*sizes.values())
    if wanted > available:
        raise ValueError(f"train.devices={wanted}, but there are only {available} "
                         f"{jax.default_backend()} devices (0 uses what there is).")
    for name, size in sizes.items():
        if size % wanted:
            raise ValueError(f"train.devices={wanted} does not divide {name}={size}; "
                             "data parallelism splits it evenly over the devices.")
    return wanted


def health_config(config: Config):
    """The :class:`jebm.train.HealthConfig` of ``config.health`` (``None`` when disabled).

    Args:
      config: the experiment :class:`Config`.

    Returns:
      A :class:`jebm.train.HealthConfig` with ``config.health``'s thresholds, or ``None``
      when ``config.health.enabled`` is false.
    """
    from jebm.train import HealthConfig

    h = config.health
    if not h.enabled:
        return None
    return HealthConfig(max_abs_energy=h.max_abs_energy, max_energy_growth=h.max_energy_growth,
                        max_energy_gap=h.max_energy_gap,
                        max_grad_norm_ratio=h.max_grad_norm_ratio,
                        min_grad_norm_ratio=h.min_grad_norm_ratio,
                        max_divergent_fraction=h.max_divergent_fraction, patience=h.patience)


def train_run(run: Run, workdir: str | Path | None = None, *, progress: bool = False,
              eval_fn: Callable | None = None, **loop_options):
    """Train ``run`` with its config's loop settings (:func:`jebm.train.train_loop`),
    data-parallel over :func:`training_devices` devices.

    The whole config is the run's identity in its checkpoints: resuming with a config that
    differs outside :data:`RESUMABLE` raises ``CheckpointError``; ``config.health`` sets the
    blow-up checks.

    Args:
      run: the :class:`Run`.
      workdir: checkpoints and ``metrics.jsonl`` go here (``None``: in memory only).
      progress: show a progress bar.
      eval_fn: ``state -> dict`` periodic evaluation (e.g.
        :func:`jebm.evaluation.periodic_eval_fn`).
      **loop_options: overrides of :func:`~jebm.train.train_loop` arguments.

    Returns:
      The :class:`~jebm.train.TrainResult`.
    """
    from jebm.train import make_train_step, train_loop

    cfg, tc = run.config, run.config.train
    options = dict(
        num_steps=tc.num_steps, batch_size=cfg.data.batch_size, chunk_size=tc.chunk_size,
        checkpoint_every=tc.checkpoint_every, max_to_keep=tc.keep_checkpoints,
        eval_fn=eval_fn, eval_every=tc.eval_every or None, log_every=tc.log_every,
        progress=progress, checkpoint_extra=config_to_dict(cfg), resumable=RESUMABLE,
        health=health_config(cfg))
    if workdir is None:  # in memory only: nothing to checkpoint
        options["checkpoint_every"] = None
    options.update(loop_options)
    step = make_train_step(run.objective, run.optimizer, ema_decay=tc.ema_decay)
    state, devices = run.initial_state, training_devices(cfg)
    if devices > 1:
        mesh = parallel.make_mesh(num_chain_devices=1, num_data_devices=devices)
        step = parallel.data_parallel_train_step(step, mesh)
        state = parallel.shard_train_state(state, mesh)
    return train_loop(run.train_key, state, step, run.batches, workdir=workdir, **options)


def restore_state(run: Run, workdir: str | Path, step: int | None = None):
    """The :class:`~jebm.train.TrainState` of a checkpoint of ``run`` in ``workdir``.

    Args:
      run: the :class:`Run` the checkpoint was trained from; its ``initial_state`` is the
        template of structure, shapes and dtypes.
      workdir: a training workdir (checkpoints under ``workdir/checkpoints``).
      step: the checkpoint step; ``None`` for the latest.

    Returns:
      The restored train state.

    Raises:
      CheckpointError: if there is no such checkpoint, or it does not match ``run`` or
        cannot be read.
    """
    from jebm.train import checkpoint_manager, restore_checkpoint

    manager = checkpoint_manager(Path(workdir) / "checkpoints")
    try:
        state, _ = restore_checkpoint(manager, run.initial_state, step=step)
    finally:
        manager.close()
    return state


class SamplingTarget(NamedTuple):
    """An analytic target for ``jebm sample``: its energy, exact moments and tuned steps.

    Attributes:
      energy: the :class:`~jebm.energies.AnalyticEnergy`.
      mean: the exact mean ``(2,)``.
      cov: the exact covariance ``(2, 2)``.
      extent: ``(x_low, x_high, y_low, y_high)`` for plots.
      label: where the moments come from.
      step_sizes: default step size per sampler name (MALA/ULA ``h``, RWMH proposal
        scale, HMC leapfrog step), tuned per target.
    """

    energy: Any
    mean: np.ndarray
    cov: np.ndarray
    extent: tuple[float, float, float, float]
    label: str
    step_sizes: dict[str, float]


def _gaussian_target() -> SamplingTarget:
    from jebm.energies import gaussian

    mean, cov = np.array([1.0, -1.0]), np.array([[1.0, 0.8], [0.8, 1.0]])
    return SamplingTarget(gaussian(mean, cov), mean, cov, (-3.0, 5.0, -5.0, 3.0), "exact",
                          {"mala": 0.4, "ula": 0.05, "rwmh": 1.2, "hmc": 0.4})


def _eight_gaussians_target() -> SamplingTarget:
    from jebm.energies import eight_gaussians

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
    from jebm.energies import rings

    target = rings()
    # no closed form: moments of 10⁶ exact draws (standard error ≈ 2e-3, far below MCMC's)
    draws = np.asarray(target.sample(jax.random.key(12345), 1_000_000), np.float64)
    return SamplingTarget(target, draws.mean(0), np.cov(draws, rowvar=False), (-4, 4, -4, 4),
                          "exact, 1e6 draws",
                          {"mala": 0.003, "ula": 0.0005, "rwmh": 0.15, "hmc": 0.04})


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
        step = tgt.step_sizes[name] if step_size is None else step_size
        scfg = SamplerConfig(name=name, step_size=step, num_integration_steps=num_integration_steps)
        x0 = init_scale * jax.random.normal(key, (num_chains, 2))
        return ChainSetup(target, tgt.energy.energy_fn, tgt.energy.params, scfg, x0, tgt.mean,
                          tgt.cov, tgt.extent, None, tgt.label, None, None)
    from jebm.train import model_params, params_kind

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


def stored_config(workdir: str | Path) -> Config:
    """The config a ``jebm train`` workdir was trained with (its ``config.yaml``).

    Args:
      workdir: a folder written by ``jebm train``.

    Returns:
      The :class:`~jebm.config.Config` read by :func:`~jebm.config.load_config`.

    Raises:
      CheckpointError: if ``workdir`` has no ``config.yaml``.
      ValueError: if the stored config is invalid.
    """
    from jebm.train import CheckpointError

    path = Path(workdir) / "config.yaml"
    if not path.exists():
        raise CheckpointError(
            f"{workdir} is not a jebm training workdir: {path.name} is missing "
            "(run `jebm train --workdir` first).")
    return load_config(str(path))


def load_model(workdir: str | Path, step: int | None = None):
    """The trained energy of a ``jebm train`` workdir, for use in Python.

    Args:
      workdir: a folder written by ``jebm train``.
      step: the checkpoint step (default: the latest).

    Returns:
      ``(energy_fn, params, config)``: ``energy_fn(params, x)`` is the model's energy of
      one ``x`` (the network plus ``model.base``; for NCE, without the learned ``c``,
      which is ``params["log_z"]``), and ``config`` the run's :class:`~jebm.config.Config`.
      ``params`` are :func:`jebm.train.model_params` of the checkpoint: the moving
      average when the run kept one (``train.ema_decay > 0``), else the raw parameters.

    Raises:
      CheckpointError: if ``workdir`` holds no config or no checkpoint.
    """
    from jebm.train import model_params

    run = build_run(stored_config(workdir))
    return run.model_energy_fn, model_params(restore_state(run, workdir, step)), run.config


# ---------------------------------------------------------------- jebm train's workdirs

_PACKAGES = ("jebm", "jax", "jaxlib", "flax", "optax", "orbax-checkpoint", "numpy", "tyro")


def _jsonable(value):
    """JSON has no NaN/inf: write them as null."""
    if isinstance(value, dict):
        return {k: _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    if isinstance(value, np.ndarray | jax.Array | np.generic):
        return _jsonable(np.asarray(value).tolist())
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def dumps_json(values: dict) -> str:
    """``values`` as indented JSON, arrays as lists and NaN/inf as ``null``.

    Args:
      values: a summary dictionary (numbers, strings, arrays, nested dicts and lists).

    Returns:
      The JSON text.
    """
    return json.dumps(_jsonable(values), indent=2, allow_nan=False)


def write_json(path: str | Path, values: dict) -> None:
    """Write :func:`dumps_json` of ``values`` to ``path`` (with a final newline).

    Args:
      path: the file.
      values: the summary dictionary.
    """
    Path(path).write_text(dumps_json(values) + "\n")


def _versions() -> dict[str, str]:
    out = {"python": platform.python_version()}
    for name in _PACKAGES:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = "not installed"
    return out


def check_same_config(workdir: str | Path, config: Config, advice: str) -> None:
    """Refuse a ``config`` that differs from the one ``workdir`` was trained with in a
    field that changes its results (any but :data:`RESUMABLE`).

    Args:
      workdir: a ``jebm train`` workdir.
      config: the requested config.
      advice: the error's last line, what the user can do instead.

    Raises:
      CheckpointError: naming every differing field, ``workdir -> requested``.
    """
    from jebm.config import config_diff
    from jebm.train import CheckpointError

    diff = config_diff(stored_config(workdir), config, ignore=RESUMABLE)
    if diff:
        raise CheckpointError(
            f"{workdir} holds a run of a different config; differing fields (workdir -> "
            "requested):\n  " + "\n  ".join(diff) + "\n" + advice)


def save_figures(run: Run, state: Any, out: str | Path, log_z: float | None = None) -> None:
    """The figures of a trained run, written into ``out``.

    2-D data: ``energy.png`` (learned and true densities) and ``samples.png`` (draws of
    the model over its energy, beside test points). Images: ``samples.png``, ``data.png``
    (test images), ``buffer.png`` (a replay buffer, if any) and, for a joint model,
    ``conditional.png`` (one class per row).

    Args:
      run: the :class:`Run`.
      state: its trained state.
      out: the folder.
      log_z: the 2-D model's quadrature ``log Z``, if known (it normalises energy.png).
    """
    from jebm import evaluation, plotting
    from jebm.train import model_params

    out = Path(out)
    ev, name = run.config.eval, run.config.sampler.name
    if not run.data.planar:
        count = ev.grid_rows * ev.grid_rows
        draws = sample_trained(run, state, run.sample_key, min(ev.num_samples, count),
                               ev.sample_steps)
        plotting.save_image_grid(out / "samples.png", draws, ev.grid_rows,
                                 title=sampling_label(run, ev.sample_steps))
        if run.joint is not None:  # a joint model: one class per row, in turn
            labels = jnp.arange(count) // ev.grid_rows % NUM_CLASSES
            draws = sample_conditional_trained(run, state, run.sample_key, labels,
                                               ev.sample_steps)
            plotting.save_image_grid(out / "conditional.png", draws, ev.grid_rows,
                                     title=f"p(x | y), {name} chains ({ev.sample_steps} "
                                     "steps), one class per row")
        plotting.save_image_grid(out / "data.png", run.data.test[:count], ev.grid_rows,
                                 title="test images")
        buffer = replay_samples(state.objective_state)
        if buffer is not None:
            plotting.save_image_grid(out / "buffer.png", buffer[:count], ev.grid_rows,
                                     title=f"replay buffer, step {int(state.step)}")
        return
    extent, learned, true, energies = evaluation.density_grid(run, model_params(state),
                                                              log_z=log_z)
    plotting.plot_densities(out / "energy.png", [learned, true],
                            [f"learned ({run.config.objective.name})",
                             f"true ({run.data.name})"], extent)
    draws = sample_trained(run, state, run.sample_key, ev.num_samples, ev.sample_steps)
    data = run.data.test[:ev.num_samples]  # exact draws of the toy already (data.num_test)
    plotting.plot_samples(out / "samples.png", np.asarray(draws), reference=np.asarray(data),
                          energy_grid=energies, extent=extent,
                          title=f"{name} draws from the model ({ev.sample_steps} steps)")


def _split_source(source: str) -> tuple[str, int | None]:
    """``W1:STEP`` (or ``W1``) as ``(W1, STEP or None)``."""
    head, sep, tail = source.rpartition(":")
    if sep and tail.isdigit():
        return head, int(tail)
    return source, None


def _prepare_workdir(out: Path, cfg: Config, source: str | None) -> dict | None:
    """Decide what a training on ``out`` may do; return the finished summary if there is
    nothing to do. A workdir is resumed or extended, never silently rewritten."""
    from jebm.train import CheckpointError

    if not (out / "config.yaml").exists():
        return None
    started = (out / "summary.json").exists() or any((out / "checkpoints").glob("*"))
    if not started:  # a start that failed before its first checkpoint: nothing to keep
        return None
    check_same_config(out, cfg, f"These change its results, so they need a new workdir: jebm "
                      f"train --from {out}:STEP --workdir NEW section.field=value ...")
    recorded = json.loads((out / "run.json").read_text()).get("from") if (
        out / "run.json").exists() else None
    if source is not None and (recorded is None or recorded["workdir"] != _split_source(
            source)[0]):
        raise CheckpointError(f"--from starts a new run, but {out} already holds another one; "
                              "choose an empty --workdir.")
    done = out / "summary.json"
    if done.exists():
        summary = json.loads(done.read_text())
        if summary.get("num_steps") == cfg.train.num_steps:
            print(f"jebm: {out} is already trained to step {cfg.train.num_steps}; nothing "
                  "was changed (raise train.num_steps to extend it).", file=sys.stderr)
            return summary
        if cfg.train.num_steps < summary.get("num_steps", 0):
            raise CheckpointError(f"{out} is trained to step {summary['num_steps']}; "
                                  f"train.num_steps={cfg.train.num_steps} cannot shorten it.")
        done.rename(out / f"summary-step{summary['num_steps']}.json")  # kept, not lost
    return None


def _explain(out: Path, summary: dict) -> None:
    """Tell the user where the files are and what the headline numbers mean."""
    lines = [f"jebm: results in {out}/: summary.json, metrics.jsonl, config.yaml, checkpoints/, "
             "and figures (*.png)."]
    if summary.get("nll_minus_entropy") is not None:
        lines.append(f"  test NLL {summary['test_nll']:.4f} nats; the data's entropy H = "
                     f"{summary['entropy']:.4f}; nll_minus_entropy = "
                     f"{summary['nll_minus_entropy']:.4f} (KL(data || model) + Monte Carlo "
                     "error: 0 is a perfect model, ~0.1 or less is good).")
    elif summary.get("error"):
        lines.append(f"  no test NLL: {summary['error']}")
    elif summary.get("test_nll") is not None:
        lines.append(f"  test NLL {summary['test_nll']:.2f} ± {summary['test_nll_stderr']:.2f} "
                     f"nats per image on [0, 1]^d (AIS; lower is better), against the "
                     f"logit-Gaussian's {summary['logit_gaussian_nll']:.2f} and the Gaussian's "
                     f"{summary['gaussian_nll']:.2f}.")
        if summary.get("test_nll_model"):
            lines.append(f"  that NLL is of {summary['test_nll_model']}.")
        if summary.get("ais_warning"):
            lines.append(f"  warning: {summary['ais_warning']}")
    if summary.get("accuracy") is not None:
        lines.append(f"  test accuracy of the classifier p(y | x): {summary['accuracy']:.3f}.")
    print("\n".join(lines), file=sys.stderr)


def train_workdir(config: Config, workdir: str | Path, *, from_checkpoint: str | None = None,
                  step: int | None = None, progress: bool = False) -> dict:
    """``jebm train``'s recipe: train ``config`` in ``workdir`` and write everything there.

    Writes ``config.yaml``, ``run.json`` (seed, versions, devices, argv, provenance),
    ``metrics.jsonl``, ``checkpoints/``, the figures (:func:`save_figures`) and
    ``summary.json`` (the run's :func:`jebm.evaluation.summary` with its step count,
    timings and final metrics), and tells stderr where they are. A workdir of the same
    config is resumed; a finished one is returned as it is (nothing is rewritten); a
    larger ``train.num_steps`` extends it in place, keeping the earlier summary as
    ``summary-stepN.json``; any other change is refused (:func:`check_same_config`).

    Args:
      config: the run's config.
      workdir: the output folder.
      from_checkpoint: ``W1:STEP`` (or ``W1``, its latest): start from that checkpoint of
        the run in ``W1``; recorded in ``run.json``.
      step: resume ``workdir`` from this checkpoint instead of the newest.
      progress: show a progress bar.

    Returns:
      The summary written to ``summary.json``.

    Raises:
      CheckpointError: for a workdir of another config or run, a shorter
        ``train.num_steps``, or an unreadable checkpoint.
      TrainingDivergedError: when the health checks stop the run.
    """
    from jebm import evaluation
    from jebm.config import dump_config
    from jebm.train import init_from_checkpoint, model_params, params_kind

    cfg, out = config, Path(workdir)
    finished = _prepare_workdir(out, cfg, from_checkpoint)
    if finished is not None:
        return finished
    tic = time.perf_counter()
    run = build_run(cfg)  # before anything is written: a bad config leaves nothing
    origin, provenance = None, None
    if from_checkpoint is not None:
        source, source_step = _split_source(from_checkpoint)
        state, origin = init_from_checkpoint(Path(source) / "checkpoints", run.initial_state,
                                             step=source_step)
        run = run._replace(initial_state=state)
        provenance = {"workdir": source, "step": int(state.step)}
    out.mkdir(parents=True, exist_ok=True)
    (out / "config.yaml").write_text(dump_config(cfg))
    write_json(out / "run.json", {"seed": cfg.train.seed, "versions": _versions(),
                                  "device": str(jax.devices()[0]),
                                  "devices": training_devices(cfg),
                                  "argv": sys.argv[1:],
                                  "from": provenance})
    periodic = jax.jit(evaluation.periodic_eval_fn(run))
    result = train_run(run, out, progress=progress, origin=origin, resume_step=step,
                       eval_fn=lambda state: periodic(model_params(state)))
    train_seconds = time.perf_counter() - tic
    # the last periodic evaluation is of the final params: its log Z normalises energy.png
    save_figures(run, result.state, out, log_z=result.eval.get("log_z"))
    summary = {"data": cfg.data.name, "objective": cfg.objective.name,
               "num_steps": int(result.state.step),
               "params": params_kind(result.state),
               **evaluation.summary(run, model_params(result.state), feature_cache=out,
                                    objective_state=result.state.objective_state),
               "final_metrics": result.metrics, "train_seconds": train_seconds,
               "steps_per_second": result.steps_per_second,
               "total_seconds": time.perf_counter() - tic}
    write_json(out / "summary.json", summary)
    _explain(out, summary)
    return summary
