"""The parts a run is built from, by name: energies, fitted densities, samplers, optimizers.

* :data:`ENERGIES` — ``mlp`` and ``conv`` (plain energies ``E(params, x)``),
  ``joint_conv`` (a classifier read as a joint energy, :data:`JOINT_MODELS`) and
  ``noise_conditional`` (``E(params, x, σ)``, :data:`NOISE_CONDITIONAL_MODELS`);
* :func:`fit_density` — the tractable densities of :data:`jebm.densities.DENSITIES`
  fitted to a run's training data (a model's ``base``, NCE's ``noise``);
* :func:`build_sampler` — a sampler section through :func:`jebm.samplers.by_name`;
* :data:`OPTIMIZERS` — ``adam``, ``adamw``, ``sgd`` (optax), with the config's schedule.

Each factory reads its config section (duck-typed: any object with the fields).
"""

import math
from collections.abc import Callable

import optax

from jebm.datasets.labels import NUM_CLASSES
from jebm.densities import DENSITIES, Density
from jebm.energies.conv import conv_energy, joint_energy_fns
from jebm.energies.mlp import mlp_energy
from jebm.energies.noise_conditional import noise_conditional_conv_energy
from jebm.samplers import logit_space
from jebm.samplers.registry import SAMPLERS, by_name
from jebm.types import PRNGKey

__all__ = ["ENERGIES", "JOINT_MODELS", "NOISE_CONDITIONAL_MODELS", "build_energy",
           "fit_density", "build_sampler", "OPTIMIZERS", "build_optimizer"]  # fmt: skip


# ----------------------------------------------------------------------------- energy


def _mlp(key: PRNGKey, model, event_shape: tuple[int, ...]):
    energy_fn, params = mlp_energy(key, math.prod(event_shape), model.hidden,
                                   activation=model.activation,
                                   fourier_features=model.fourier_features,
                                   fourier_scale=model.fourier_scale, dtype=model.dtype)
    if len(event_shape) == 1:
        return energy_fn, params
    return (lambda p, x: energy_fn(p, x.reshape(-1))), params


def _conv(key: PRNGKey, model, event_shape: tuple[int, ...]):
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
    return joint_energy_fns(key, _image_shape(model, event_shape), NUM_CLASSES,
                            features=model.features, hidden=model.hidden[0],
                            activation=model.activation, spectral_norm=model.spectral_norm)


def _noise_conditional(key: PRNGKey, model, event_shape: tuple[int, ...]):
    return noise_conditional_conv_energy(key, _image_shape(model, event_shape),
                                         features=model.features, hidden=model.hidden[0],
                                         activation=model.activation)


# name -> factory(key, model_config, event_shape): ``(energy_fn, params)`` of a plain energy
# E(params, x); a JointEnergy for JOINT_MODELS; ``(energy_fn, params)`` with
# ``energy_fn(params, x, sigma)`` for NOISE_CONDITIONAL_MODELS.
ENERGIES: dict[str, Callable] = {"mlp": _mlp, "conv": _conv, "joint_conv": _joint_conv,
                                 "noise_conditional": _noise_conditional}

# Model kinds that are a classifier read as a joint energy (jebm.energies.conv.JointEnergy:
# class logits g(x), E(x) = −logsumexp g(x), E(x, y) = −g(x)[y]); labels 0 … NUM_CLASSES − 1.
JOINT_MODELS: tuple[str, ...] = ("joint_conv",)
# Model kinds whose energy takes a noise level, E(params, x, sigma): trained over the
# objective's noise ladder (objective.sigmas or sigma_max/sigma_min/num_levels).
NOISE_CONDITIONAL_MODELS: tuple[str, ...] = ("noise_conditional",)


def build_energy(config, key: PRNGKey, event_shape: tuple[int, ...]):
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


# ------------------------------------------------------------------- fitted densities


def fit_density(data, kind: str, key: PRNGKey, field: str) -> Density:
    """A tractable density of :data:`jebm.densities.DENSITIES` fitted to the training data.

    The digits training images, or ``10⁴`` draws of a toy made with ``key``; ``field``
    names the config field in errors (``logit_gaussian`` needs data in ``[0, 1]``).

    Args:
      data: the run's :class:`~jebm.experiment.Data`.
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


# ---------------------------------------------------------------------------- sampler


def build_sampler(config, event_shape: tuple[int, ...]):
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
    accepted = SAMPLERS[config.name][1]
    factory = by_name(config.name, event_shape, **{k: getattr(config, k) for k in accepted})
    return logit_space(factory) if config.space == "logit" else factory


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


def build_optimizer(config) -> optax.GradientTransformation:
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
