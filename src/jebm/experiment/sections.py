"""The sections of a run's config: frozen dataclasses that validate themselves.

Each section checks its own fields at construction and raises ``ValueError`` naming the
field by its dotted path (``train.num_steps must be > 0, got 0.``). Names are checked
against the registries they choose from (:data:`~jebm.experiment.DATASETS`,
:data:`~jebm.experiment.ENERGIES`, :data:`jebm.densities.DENSITIES`,
:data:`jebm.samplers.SAMPLERS`, :data:`~jebm.experiment.OBJECTIVES`,
:data:`~jebm.experiment.OPTIMIZERS`, :data:`jebm.densities.AIS_BASES`): there is no
second list. :class:`jebm.experiment.config.Config` puts them together and checks
across sections.
"""

import math
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, ClassVar

from jebm.datasets.labels import NUM_CLASSES
from jebm.densities import AIS_BASES, DENSITIES
from jebm.energies.mlp import ACTIVATIONS
from jebm.experiment.components import ENERGIES, OPTIMIZERS
from jebm.experiment.data import DATASETS, FILE_DATASETS
from jebm.experiment.recipes import OBJECTIVES
from jebm.objectives.recovery_likelihood import FORMS
from jebm.samplers.registry import SAMPLERS, TARGET_ACCEPTANCE

__all__ = ["DataConfig", "ModelConfig", "ObjectiveConfig", "SamplerConfig",
           "OptimizerConfig", "TrainConfig", "HealthSection", "EvalConfig"]  # fmt: skip


def _require(ok: bool, path: str, message: str, value: Any) -> None:
    if not ok:
        raise ValueError(f"{path} {message}, got {value!r}.")


def _positive(section: Any, *names: str, allow_zero: bool = False) -> None:
    for name in names:
        value = getattr(section, name)
        if value is None:
            continue
        ok = math.isfinite(value) and (value >= 0 if allow_zero else value > 0)
        _require(ok, f"{section._section}.{name}", "must be >= 0 and finite"
                 if allow_zero else "must be > 0 and finite", value)


def _choice(section: Any, name: str, choices: Iterable[str]) -> None:
    value = getattr(section, name)
    choices = tuple(choices)
    _require(value in choices, f"{section._section}.{name}", f"must be one of {choices}", value)


@dataclass(frozen=True)
class DataConfig:
    """The data set and batching.

    Attributes:
      name: a 2-D toy of :mod:`jebm.energies.toy_data` (``8gaussians``, ``2spirals``, ...),
        ``digits`` (:mod:`jebm.datasets.digits`, 8×8 images dequantised to [0, 1]), or
        ``mnist``, ``fashion_mnist``, ``cifar10`` (from your files in ``data.path``).
      batch_size: data points per update.
      num_test: 2-D toys: held-out points for the test NLL.
      test_fraction: digits: share of the images held out for the test NLL.
      split_seed: digits: seed of the fixed train/test permutation.
      classes: digits: labels to keep (e.g. ``[0, 1, 2, 3, 4]``); ``None`` keeps all ten.
      path: mnist, fashion_mnist, cifar10: the folder holding the data set's files (MNIST's
        idx-ubyte files, gzipped or not; CIFAR-10's *binary* batches). These machines
        cannot download them.
    """

    _section: ClassVar[str] = "data"
    name: str = "8gaussians"
    batch_size: int = 256
    num_test: int = 20_000
    test_fraction: float = 0.2
    split_seed: int = 0
    classes: tuple[int, ...] | None = None
    path: str | None = None

    def __post_init__(self):
        _choice(self, "name", DATASETS)
        _require(self.path is None or self.name in FILE_DATASETS, "data.path",
                 f"is read only by data.name in {FILE_DATASETS}; data.name={self.name} does "
                 "not read files (drop data.path)", self.path)
        _positive(self, "batch_size", "num_test")
        _positive(self, "split_seed", allow_zero=True)
        _require(0.0 < self.test_fraction < 1.0, "data.test_fraction", "must be in (0, 1)",
                 self.test_fraction)
        if self.classes is not None:
            _require(len(self.classes) > 0 and all(0 <= c < NUM_CLASSES for c in self.classes),
                     "data.classes",
                     f"must be null or a non-empty list of class labels 0-{NUM_CLASSES - 1}",
                     self.classes)


@dataclass(frozen=True)
class ModelConfig:
    """The energy network.

    Attributes:
      kind: ``mlp``, an MLP ``d → hidden… → 1`` on the flattened input; ``conv``,
        :class:`jebm.energies.conv.ConvEnergy` on images (convs ``features``, then one
        dense layer of width ``hidden[0]``); ``joint_conv``, the same network with 10
        class logits ``g(x)`` read as a joint energy (JEM: ``E(x) = −logsumexp g(x)``,
        ``E(x, y) = −g(x)[y]``; for ``objective.name=jem``); or ``noise_conditional``,
        :class:`jebm.energies.noise_conditional.NoiseConditionalConvEnergy`
        ``E(x, σ)`` (FiLM on ``log σ``, output ``/σ``; needs a noise ladder, see
        :class:`ObjectiveConfig`). The last two take no ``fourier_features``;
        ``noise_conditional`` no ``base`` and no ``spectral_norm``.
      hidden: widths of the hidden layers (conv kinds: exactly one, the dense width).
      activation: ``silu``, ``swish``, ``elu``, ``softplus``, ``tanh``, ``relu`` or ``gelu``.
      features: conv: channels of the conv layers (each after the first has stride 2).
      spectral_norm: conv: spectral normalisation of every layer (``nnx.SpectralNorm``):
        each weight is divided by ``σ̂``, the estimate of its largest singular value after
        ``spectral_norm_steps`` power iterations from a fixed random start vector, on
        every call. ``σ̂ <= σ₁``, so a normalised layer's spectral norm is ``σ₁/σ̂ >= 1``,
        tending to 1 with more iterations (at the digits model's initialisation: up to
        1.15 after 5 iterations, within 1e-3 of 1 after 20).
      spectral_norm_steps: conv: power iterations per call of each normalised layer.
      base: ``none``, or a tractable density ``q`` fitted to the training data whose
        energy ``−log q`` is added to the network's, so the network learns a correction
        of ``q``: ``gaussian`` (full covariance) or ``logit_gaussian`` (a Gaussian on the
        logits, a density on the unit box: data in ``[0, 1]`` only). With
        ``joint_conv`` both energies get it, ``E(x, y) = −g(x)[y] − log q(x)`` and
        ``E(x) = −logsumexp g(x) − log q(x)``, while ``p(y | x) = softmax g(x)`` is
        unchanged (``q`` cancels); PCD's and the class-conditional chains start from ``q``.
      fourier_features: mlp: random Fourier features of the input, ``[sin(Bᵀx),
        cos(Bᵀx)]`` with ``m`` columns in ``B`` (0: off); they let the MLP fit sharp
        features. The energy is then bounded: pair them with ``base: gaussian``.
      fourier_scale: mlp: standard deviation of the entries of ``B`` (radians per unit).
      dtype: the dtype the network computes in: ``float32``, or ``bfloat16`` for mixed
        precision. The parameters stay float32 (so do the optimizer state, the EMA and
        checkpoints) and the energy is returned in float32, so the samplers' state
        (positions, log-densities, gradients) and every gradient stay float32; only the
        network's arithmetic is rounded to bfloat16 (8 significant bits, about 0.4% per
        operation). It pays on accelerators with bfloat16 units; on CPU it is no faster.
    """

    _section: ClassVar[str] = "model"
    kind: str = "mlp"
    hidden: tuple[int, ...] = (128, 128)
    activation: str = "silu"
    features: tuple[int, ...] = (32, 64)
    spectral_norm: bool = False
    spectral_norm_steps: int = 5
    base: str = "none"
    fourier_features: int = 0
    fourier_scale: float = 1.0
    dtype: str = "float32"

    def __post_init__(self):
        _choice(self, "kind", ENERGIES)
        _choice(self, "dtype", ("float32", "bfloat16"))
        _choice(self, "base", ("none", *DENSITIES))
        _positive(self, "fourier_features", allow_zero=True)
        _positive(self, "fourier_scale", "spectral_norm_steps")
        if self.fourier_features:
            _require(self.kind == "mlp", "model.fourier_features",
                     "is supported by model.kind=mlp only (set it to 0)", self.fourier_features)
        _require(len(self.hidden) > 0 and all(h > 0 for h in self.hidden), "model.hidden",
                 "must be a non-empty list of positive widths", self.hidden)
        _choice(self, "activation", ACTIVATIONS)
        _require(len(self.features) > 0 and all(f > 0 for f in self.features),
                 "model.features", "must be a non-empty list of positive channel counts",
                 self.features)
        if self.kind == "conv":
            _require(len(self.hidden) == 1, "model.hidden",
                     "must hold one width (the dense layer) when model.kind is conv",
                     self.hidden)


@dataclass(frozen=True)
class ObjectiveConfig:
    """The training objective and its options (each used only by the objectives named).

    Attributes:
      name: ``cd``, ``pcd``, ``esm`` (exact score matching), ``ssm`` (sliced),
        ``dsm`` (denoising; with a noise ladder, NCSN), ``nce``, ``ed`` (energy
        discrepancy), ``drl`` (diffusion recovery likelihood, at one level or over a
        ladder) or ``jem`` (Joint Energy Model: cross-entropy of ``p(y | x)`` plus PCD
        on ``E(x) = −logsumexp g(x)``, on labelled images with ``model.kind=joint_conv``;
        the PCD fields and ``sampler`` set its negatives).
      buffer_size: pcd: replay-buffer entries.
      num_chains: pcd: buffer entries refreshed per update (null: the batch size).
      reinit_prob: pcd: probability of restarting a chain from the initial density
        (``model.base`` if the model has one, else the uniform box below).
      init_low: pcd: lower corner of the uniform box the buffer starts from (without a
        ``model.base``; also where `jebm sample` chains start).
      init_high: pcd: upper corner of that box.
      energy_l2: cd/pcd: weight of the ``mean E(x⁺)² + mean E(x⁻)²`` regulariser.
      num_projections: ssm: random projections per data point.
      variance_reduced: ssm: use the closed-form Gaussian-projection term (SSM-VR).
      sigma: dsm: the noise level.
      noise_ratio: nce: noise samples per data point.
      noise: nce: the noise density fitted to the training data, ``gaussian`` (full
        covariance) or ``logit_gaussian`` (data in ``[0, 1]`` only); see ``model.base``.
      num_negatives: ed: perturbed negatives per data point ``M``.
      stabilizer: ed: the weight ``w`` of the data point among its negatives.
      step_scale: drl: Langevin step size relative to ``sigma²`` (``sampler.num_steps``
        steps per update, and per level when sampling a ladder).
      drl_form: drl over a ladder: ``clean`` (every level models the clean data through
        ``p(x | x + σ_i ε)``) or ``diffusion`` (Gao et al.'s chain: level ``σ_i`` models
        the data smoothed at ``σ_i`` through ``p(x_i | x_{i+1})``, one rung up); see
        :mod:`jebm.objectives.recovery_likelihood`.
      sigma_max: dsm/drl: the largest level of a geometric noise ladder.
      sigma_min: dsm/drl: its smallest level.
      num_levels: dsm/drl: its number of levels ``L >= 2``, ``σ_i = σ_max (σ_min /
        σ_max)^(i / (L − 1))``.
      sigmas: dsm/drl: an explicit ladder, decreasing (instead of the three above).
      generative_weight: jem: weight of the generative (PCD) term beside the
        cross-entropy.

    ``sigma`` is also the perturbation of ``ed`` (Gaussian, σ) and the noise level of
    ``drl`` (diffusion recovery likelihood at one level).

    A noise ladder (``sigmas``, or ``sigma_max``, ``sigma_min`` and ``num_levels``
    together) turns ``dsm`` into multi-level DSM (NCSN, Song and Ermon 2019) and ``drl``
    into recovery likelihood over the ladder (Gao et al. 2021); either needs
    ``model.kind=noise_conditional``, which in turn needs a ladder. ``sigma`` is then
    unused. Their models are sampled down the ladder (annealed Langevin for ``dsm``,
    :func:`jebm.objectives.recovery_sample` for ``drl``; see
    :func:`jebm.experiment.sample_model`), and evaluated at ``σ_min``.
    """

    _section: ClassVar[str] = "objective"
    name: str = "pcd"
    buffer_size: int = 10_000
    num_chains: int | None = 256
    reinit_prob: float = 0.05
    init_low: float = -4.5
    init_high: float = 4.5
    energy_l2: float = 0.0
    num_projections: int = 1
    variance_reduced: bool = True
    sigma: float = 0.1
    noise_ratio: float = 1.0
    noise: str = "gaussian"
    num_negatives: int = 16
    stabilizer: float = 1.0
    step_scale: float = 0.1
    drl_form: str = "clean"
    sigma_max: float | None = None
    sigma_min: float | None = None
    num_levels: int | None = None
    sigmas: tuple[float, ...] | None = None
    generative_weight: float = 1.0

    @property
    def ladder(self) -> tuple[float, ...] | None:
        """The noise ladder, largest level first, or ``None`` (one level, ``sigma``)."""
        if self.sigmas is not None:
            return self.sigmas
        if self.sigma_max is None:
            return None
        n = self.num_levels
        ratio = self.sigma_min / self.sigma_max
        return tuple(self.sigma_max * ratio ** (i / (n - 1)) for i in range(n))

    def _check_ladder(self) -> None:
        geometric = {"sigma_max": self.sigma_max, "sigma_min": self.sigma_min,
                     "num_levels": self.num_levels}
        given = [name for name, value in geometric.items() if value is not None]
        if given:
            for name, value in geometric.items():
                _require(value is not None, f"objective.{name}",
                         f"must be set with objective.{given[0]} (a geometric noise ladder "
                         "needs sigma_max, sigma_min and num_levels)", value)
            _require(self.sigmas is None, "objective.sigmas",
                     "must be null when objective.sigma_max, sigma_min and num_levels give "
                     "the ladder", self.sigmas)
            _positive(self, "sigma_max", "sigma_min")
            _require(self.sigma_min < self.sigma_max, "objective.sigma_min",
                     f"must be < objective.sigma_max ({self.sigma_max})", self.sigma_min)
            _require(self.num_levels >= 2, "objective.num_levels", "must be >= 2",
                     self.num_levels)
        if self.sigmas is not None:
            s = self.sigmas
            _require(len(s) > 0 and all(v > 0 for v in s), "objective.sigmas",
                     "must be null or a non-empty list of levels > 0", s)
            _require(all(a > b for a, b in zip(s[:-1], s[1:], strict=True)), "objective.sigmas",
                     "must be strictly decreasing (largest level first)", s)
        if self.ladder is not None and not OBJECTIVES[self.name].ladder:
            raise ValueError(
                f"{_ladder_field(self)} sets a noise ladder, which objective.name in "
                f"{_ladder_objectives()} use; objective.name={self.name!r} takes none (set "
                "objective.sigmas, sigma_max, sigma_min and num_levels to null).")

    def __post_init__(self):
        _choice(self, "name", OBJECTIVES)
        _choice(self, "noise", DENSITIES)
        _choice(self, "drl_form", FORMS)
        _positive(self, "buffer_size", "num_projections", "sigma", "noise_ratio",
                  "num_negatives", "step_scale")
        _positive(self, "stabilizer", allow_zero=True)
        _positive(self, "num_chains")  # null (None): the batch size
        _positive(self, "energy_l2", allow_zero=True)
        _require(0.0 <= self.reinit_prob <= 1.0, "objective.reinit_prob", "must be in [0, 1]",
                 self.reinit_prob)
        _require(self.num_chains is None or self.num_chains <= self.buffer_size,
                 "objective.num_chains",
                 f"must be <= objective.buffer_size ({self.buffer_size})", self.num_chains)
        _require(self.init_low < self.init_high, "objective.init_low",
                 f"must be < objective.init_high ({self.init_high})", self.init_low)
        _positive(self, "generative_weight", allow_zero=True)
        self._check_ladder()
        _require(self.drl_form == "clean" or self.ladder is not None, "objective.drl_form",
                 "diffusion needs a noise ladder (objective.sigmas, or sigma_max, sigma_min "
                 "and num_levels)", self.drl_form)


@dataclass(frozen=True)
class SamplerConfig:
    """The MCMC kernel: negatives of cd/pcd, and ``jebm sample`` draws.

    Attributes:
      name: ``ula``, ``mala``, ``rwmh``, ``hmc``, ``underdamped`` or ``nuts`` (BlackJAX).
      num_steps: transitions per update (cd/pcd).
      step_size: the step size (ULA/MALA ``h``, RWMH proposal scale, HMC leapfrog step).
      noise_scale: ula only: ``None`` for the exact Langevin noise ``√(2h)``, else σ
        (samples the tempered density at ``T = σ²/(2h)``).
      clip_grad: ula only: clip each gradient element to ``[−c, c]``; ``None`` off.
      bounds: ula only: ``[low, high]``, clamp every coordinate of each new state to
        this box (e.g. ``[0, 1]``, the pixel range); ``None`` off.
      num_integration_steps: hmc: leapfrog steps per transition.
      friction: underdamped: the friction ``γ`` (``exp(−γh)`` of the momentum is kept
        each step; 0 is Hamiltonian dynamics with full momentum refresh never).
      space: ``data``, or ``logit``: run the kernel on ``z = logit(x)`` with the
        change-of-variables density (:func:`jebm.samplers.logit_space`), for image data
        on ``[0, 1]^d``: no clamping at the box's faces, and one step size suits every
        pixel (not with ``bounds``).
      target_acceptance: pcd or jem (its PCD negatives) with mala, hmc or rwmh: adapt
        the step size during training towards this mean acceptance (a traced ``log h`` in
        the objective state, starting at ``step_size``); samples drawn after training
        (a joint model's class-conditional ones too) use the adapted step.
        ``null``: off.
    """

    _section: ClassVar[str] = "sampler"
    name: str = "ula"
    num_steps: int = 10
    step_size: float = 0.02
    noise_scale: float | None = None
    clip_grad: float | None = None
    bounds: tuple[float, ...] | None = None
    num_integration_steps: int = 5
    friction: float = 1.0
    space: str = "data"
    target_acceptance: float | None = None

    def __post_init__(self):
        _choice(self, "name", SAMPLERS)
        _choice(self, "space", ("data", "logit"))
        if self.target_acceptance is not None:
            _require(0.0 < self.target_acceptance < 1.0, "sampler.target_acceptance",
                     "must be null or in (0, 1)", self.target_acceptance)
            adjusted = tuple(TARGET_ACCEPTANCE)
            _require(self.name in adjusted, "sampler.target_acceptance",
                     f"needs a Metropolis-adjusted sampler {adjusted}, not "
                     f"sampler.name={self.name}", self.target_acceptance)
        _require(self.space == "data" or self.bounds is None, "sampler.space",
                 "logit keeps positions inside (0, 1) by itself: set sampler.bounds to null",
                 self.space)
        _positive(self, "friction", allow_zero=True)
        _positive(self, "num_steps", "step_size", "noise_scale", "clip_grad",
                  "num_integration_steps")
        if self.bounds is not None:
            _require(len(self.bounds) == 2 and self.bounds[0] < self.bounds[1],
                     "sampler.bounds", "must be null or [low, high] with low < high",
                     self.bounds)
            _require(self.name == "ula", "sampler.bounds",
                     "is supported by sampler.name=ula only (set it to null)", self.bounds)


@dataclass(frozen=True)
class OptimizerConfig:
    """The optax optimizer.

    Attributes:
      name: ``adam``, ``adamw`` or ``sgd``.
      learning_rate: peak learning rate.
      b1: Adam β₁ (or SGD momentum when > 0).
      b2: Adam β₂.
      weight_decay: adamw decoupled weight decay.
      clip_norm: clip the gradient's global norm to this; ``None`` off.
      schedule: ``constant`` or ``cosine`` (decays to 0 at ``train.num_steps``).
      warmup_steps: linear warm-up steps before the schedule.
    """

    _section: ClassVar[str] = "optimizer"
    name: str = "adam"
    learning_rate: float = 2e-3
    b1: float = 0.9
    b2: float = 0.999
    weight_decay: float = 0.0
    clip_norm: float | None = None
    schedule: str = "cosine"
    warmup_steps: int = 0

    def __post_init__(self):
        _choice(self, "name", OPTIMIZERS)
        _choice(self, "schedule", ("constant", "cosine"))
        _positive(self, "learning_rate", "clip_norm")
        _positive(self, "weight_decay", "warmup_steps", allow_zero=True)
        for name in ("b1", "b2"):
            value = getattr(self, name)
            _require(0.0 <= value < 1.0, f"optimizer.{name}", "must be in [0, 1)", value)


@dataclass(frozen=True)
class TrainConfig:
    """The training loop.

    Attributes:
      seed: the run's integer seed (parameters, buffer, batches, sampler noise).
      num_steps: parameter updates.
      chunk_size: updates per jitted ``lax.scan`` call.
      log_every: metrics are averaged and logged every this many updates.
      checkpoint_every: checkpoint period (a final checkpoint is always written).
      keep_checkpoints: how many recent checkpoints to keep.
      eval_every: test-NLL evaluation period (0: only at the end).
      ema_decay: 0 (off), or the decay ``β`` in (0, 1) of an exponential moving average
        of the parameters (Polyak averaging), ``θ̄ ← β θ̄ + (1 − β) θ`` after every
        update, starting from the initial parameters. The average lives in the train
        state (``TrainState.ema_params``: checkpointed, restored, so a resumed run is
        exact), and when it is on, it — not the raw parameters — is what the periodic
        and final evaluation, the sample figures, :func:`jebm.experiment.load_model` and
        ``jebm sample``/``jebm evaluate`` use (``summary.json`` says ``"params": "ema"``).
        The objective keeps training (and PCD keeps sampling) with the raw parameters.
        ``β = 0.999`` averages over about the last ``1 / (1 − β) = 1000`` updates.
      devices: data-parallel training over this many devices of the default backend
        (:func:`jebm.parallel.data_parallel_train_step`: the batch and the objective's
        chains and buffer are split, the parameters replicated); ``0`` (default) takes
        the most devices, up to all of them, that divide ``data.batch_size`` and
        ``objective.num_chains``. Sharding changes where the update runs, not what it
        computes: results agree with a one-device run up to float summation order.
        ``jebm train`` exposes a CPU's cores as devices (:func:`jebm.parallel.use_cpu_cores`),
        so on a CPU it uses every core.
    """

    _section: ClassVar[str] = "train"
    seed: int = 0
    num_steps: int = 1500
    chunk_size: int = 250
    log_every: int = 50
    checkpoint_every: int = 500
    keep_checkpoints: int = 3
    eval_every: int = 500
    ema_decay: float = 0.0
    devices: int = 0

    def __post_init__(self):
        _positive(self, "num_steps", "chunk_size", "log_every", "checkpoint_every",
                  "keep_checkpoints")
        _positive(self, "seed", "eval_every", "devices", allow_zero=True)
        _require(self.ema_decay == 0.0 or 0.0 < self.ema_decay < 1.0, "train.ema_decay",
                 "must be 0 (off) or in (0, 1)", self.ema_decay)


@dataclass(frozen=True)
class HealthSection:
    """Training health beyond NaN (:class:`jebm.train.HealthConfig`); ``null`` turns a
    check off. A run stops with ``TrainingDivergedError`` after ``patience`` consecutive
    failing updates, and a checkpoint is marked healthy only when none of the last
    ``patience`` updates failed.

    Attributes:
      enabled: run the checks (otherwise only non-finite values stop training).
      max_abs_energy: largest allowed ``|E|`` of the data and negative energies.
      max_energy_growth: largest allowed ratio of ``|E|`` to its running median.
      max_energy_gap: largest allowed ``|E(data) − E(negatives)|`` (cd/pcd).
      max_grad_norm_ratio: largest allowed ratio of the gradient norm to its running median.
      min_grad_norm_ratio: smallest allowed ratio of the gradient norm to its running median
        (a collapsed model: dead units, a constant energy, no gradient).
      max_divergent_fraction: largest allowed fraction of divergent sampler transitions.
      patience: consecutive failing updates that stop training.
    """

    _section: ClassVar[str] = "health"
    enabled: bool = True
    max_abs_energy: float | None = 1e4
    max_energy_growth: float | None = 100.0
    max_energy_gap: float | None = 1e3
    max_grad_norm_ratio: float | None = 1e3
    min_grad_norm_ratio: float | None = 1e-6
    max_divergent_fraction: float | None = 0.5
    patience: int = 10

    def __post_init__(self):
        _positive(self, "max_abs_energy", "max_energy_growth", "max_energy_gap",
                  "max_grad_norm_ratio", "min_grad_norm_ratio", "max_divergent_fraction",
                  "patience")


@dataclass(frozen=True)
class EvalConfig:
    """Evaluation and plots: grid quadrature for 2-D data, AIS and image grids for images.

    Attributes:
      grid_low: 2-D: lower corner of the square quadrature grid for log Z.
      grid_high: 2-D: upper corner of that grid.
      grid_points: 2-D: grid points per axis.
      num_samples: chains drawn from the trained model for ``samples.png``.
      sample_steps: sampler transitions for those draws (from the uniform box).
      grid_rows: images: images per row of the PNG grids.
      ais_base: images: AIS base in logit coordinates, ``logit_gaussian`` (fitted to
        the training images) or ``uniform`` (the uniform density on the box).
      ais_chains: images: AIS chains for log Z.
      ais_bridges: images: AIS intermediate distributions.
      ais_step_size: images: initial MALA step size of AIS (adapted on the way).
      sample_quality: labelled images (digits, mnist, fashion_mnist, cifar10): score the
        model's samples in jebm's own features of the data set, an MLP classifier trained
        on the run's training split (Fréchet distance, MMD, class coverage, confidence)
        beside the baselines.
      quality_draws: independent draws of 360 samples each that sample quality scores, for
        the model and for every baseline: the Fréchet distance is their mean (with the
        spread and each draw's value beside it); the other scores are of the pooled draws.
    """

    _section: ClassVar[str] = "eval"
    grid_low: float = -6.0
    grid_high: float = 6.0
    grid_points: int = 300
    num_samples: int = 2000
    sample_steps: int = 500
    grid_rows: int = 10
    ais_base: str = "logit_gaussian"
    ais_chains: int = 128
    ais_bridges: int = 300
    ais_step_size: float = 0.05
    sample_quality: bool = True
    quality_draws: int = 1

    def __post_init__(self):
        _positive(self, "grid_points", "num_samples", "sample_steps", "grid_rows",
                  "ais_bridges", "ais_step_size", "quality_draws")
        _choice(self, "ais_base", AIS_BASES)
        _require(self.ais_chains >= 2, "eval.ais_chains", "must be >= 2", self.ais_chains)
        _require(self.grid_low < self.grid_high, "eval.grid_low",
                 f"must be < eval.grid_high ({self.grid_high})", self.grid_low)
        _require(self.grid_points >= 2, "eval.grid_points", "must be >= 2", self.grid_points)


def _ladder_field(obj: ObjectiveConfig) -> str:
    return "objective.sigmas" if obj.sigmas is not None else "objective.sigma_max"


def _ladder_objectives() -> tuple[str, ...]:
    return tuple(name for name, recipe in OBJECTIVES.items() if recipe.ladder)
