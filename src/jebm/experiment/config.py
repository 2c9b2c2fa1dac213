"""A run's config: the sections together, checked across sections; YAML in and out, overrides.

A :class:`Config` has eight sections, ``data``, ``model``, ``objective``, ``sampler``,
``optimizer``, ``train``, ``eval`` and ``health``. Its defaults are the default job: persistent
contrastive divergence on ``8gaussians`` with a 2→128→128→1 SiLU MLP energy.

The data set decides how a run is evaluated: a 2-D toy by grid quadrature of ``log Z``
and density plots (``eval.grid_*``); the 8×8 ``digits`` images by annealed importance
sampling in logit coordinates (``eval.ais_*``) and image grids.

Every error names the offending field by its dotted path: an unknown key
(``train.num_stepz``, with a suggestion), a wrong type (``train.num_steps`` given
``"many"``), or an invalid value (``optimizer.learning_rate`` must be positive).

Examples:
  >>> from jebm.config import Config, apply_overrides
  >>> config = apply_overrides(Config(), ["train.num_steps=500", "objective.name=dsm"])
  >>> config.train.num_steps, config.objective.name
  (500, 'dsm')
"""

import dataclasses
import difflib
import re
import types
import typing
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import yaml

from jebm.experiment.components import JOINT_MODELS, NOISE_CONDITIONAL_MODELS
from jebm.experiment.data import LABELLED_DATASETS
from jebm.experiment.recipes import OBJECTIVES
from jebm.experiment.sections import (
    DataConfig,
    EvalConfig,
    HealthSection,
    ModelConfig,
    ObjectiveConfig,
    OptimizerConfig,
    SamplerConfig,
    TrainConfig,
    _ladder_field,
    _ladder_objectives,
    _require,
)

__all__ = [
    "DataConfig",
    "ModelConfig",
    "ObjectiveConfig",
    "SamplerConfig",
    "OptimizerConfig",
    "TrainConfig",
    "EvalConfig",
    "HealthSection",
    "Config",
    "config_from_dict",
    "config_to_dict",
    "load_config",
    "apply_overrides",
    "dump_config",
    "describe_config",
    "field_docs",
    "config_diff",
]


@dataclass(frozen=True)
class Config:
    """A whole run; see the module docstring."""

    data: DataConfig = field(default_factory=DataConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    objective: ObjectiveConfig = field(default_factory=ObjectiveConfig)
    sampler: SamplerConfig = field(default_factory=SamplerConfig)
    optimizer: OptimizerConfig = field(default_factory=OptimizerConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    eval: EvalConfig = field(default_factory=EvalConfig)
    health: HealthSection = field(default_factory=HealthSection)

    def __post_init__(self):
        if self.sampler.target_acceptance is not None:
            adaptive = tuple(name for name, r in OBJECTIVES.items() if r.adapts_step_size)
            _require(self.objective.name in adaptive, "sampler.target_acceptance",
                     f"adapts the PCD negatives' sampler of objective.name in {adaptive} "
                     f"only (set it to null for {self.objective.name})",
                     self.sampler.target_acceptance)
        _check_model_fits_objective(self)


def _check_model_fits_objective(config: Config) -> None:
    """Checks across sections: the model kind an objective needs, and the data it reads."""
    model, obj = config.model, config.objective
    recipe = OBJECTIVES[obj.name]
    if obj.ladder is not None and model.kind not in NOISE_CONDITIONAL_MODELS:
        raise ValueError(
            f"{_ladder_field(obj)} sets a noise ladder, which trains a noise-conditional "
            f"energy E(x, sigma): model.kind must be one of {NOISE_CONDITIONAL_MODELS}, got "
            f"model.kind={model.kind!r}.")
    if model.kind in NOISE_CONDITIONAL_MODELS:
        if obj.ladder is None:
            raise ValueError(
                f"model.kind={model.kind} (an energy E(x, sigma)) is trained over a noise "
                "ladder: set objective.sigma_max, objective.sigma_min and "
                "objective.num_levels (or objective.sigmas), with objective.name in "
                f"{_ladder_objectives()}; got objective.name={obj.name!r} without one.")
        _require(not model.spectral_norm, "model.spectral_norm",
                 f"is not supported by model.kind={model.kind} (set it to false)",
                 model.spectral_norm)
    if recipe.joint:
        _require(model.kind in JOINT_MODELS, "model.kind",
                 f"must be one of {JOINT_MODELS} (class logits) for objective.name={obj.name}",
                 model.kind)
        _require(config.data.name in LABELLED_DATASETS, "data.name",
                 f"must be a labelled data set {LABELLED_DATASETS} for "
                 f"objective.name={obj.name}", config.data.name)
    if model.kind in NOISE_CONDITIONAL_MODELS:
        _require(model.base == "none", "model.base",
                 f"must be none for model.kind={model.kind}", model.base)
    if model.kind in JOINT_MODELS + NOISE_CONDITIONAL_MODELS:
        _require(len(model.hidden) == 1, "model.hidden",
                 f"must hold one width (the dense layer) when model.kind is {model.kind}",
                 model.hidden)


def _fields(cls) -> dict[str, Any]:
    hints = typing.get_type_hints(cls)
    return {f.name: hints[f.name] for f in dataclasses.fields(cls)}


def _type_name(tp) -> str:
    return getattr(tp, "__name__", None) or str(tp).replace("typing.", "")


def _coerce(value: Any, tp: Any, path: str) -> Any:
    """Check ``value`` against ``tp`` (int, float, str, bool, tuple[int, ...], X | None)."""
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        args = typing.get_args(tp)
        if value is None and type(None) in args:
            return None
        (inner,) = [a for a in args if a is not type(None)]
        return _coerce(value, inner, path)
    if origin is tuple:
        (item, _) = typing.get_args(tp)
        if not isinstance(value, list | tuple):
            raise ValueError(f"{path} must be a list of {_type_name(item)}, got {value!r}.")
        return tuple(_coerce(v, item, f"{path}[{i}]") for i, v in enumerate(value))
    if tp is bool:
        ok = isinstance(value, bool)
    elif tp is int:
        ok = isinstance(value, int) and not isinstance(value, bool)
    elif tp is float:
        if isinstance(value, str):  # YAML 1.1 reads "1e-3" as a string
            try:
                value = float(value)
            except ValueError:
                pass
        ok = isinstance(value, int | float) and not isinstance(value, bool)
        value = float(value) if ok else value
    elif tp is str:
        ok = isinstance(value, str)
    else:  # pragma: no cover - a field type this module does not support
        raise TypeError(f"unsupported config field type {tp} at {path}")
    if not ok:
        raise ValueError(
            f"{path} must be of type {_type_name(tp)}, got {value!r} ({type(value).__name__})."
        )
    return value


def _unknown(name: str, known: Iterable[str], where: str) -> ValueError:
    close = difflib.get_close_matches(name, list(known), n=1)
    hint = f" Did you mean {where}{close[0]}?" if close else ""
    return ValueError(
        f"Unknown config field {where}{name}.{hint} Known fields: {', '.join(sorted(known))}."
    )


def _section_from_dict(cls, values: Any, name: str):
    if values is None:
        values = {}
    if not isinstance(values, Mapping):
        raise ValueError(f"config section {name} must be a mapping, got {values!r}.")
    fields = _fields(cls)
    kwargs = {}
    for key, value in values.items():
        if key not in fields:
            raise _unknown(str(key), fields, f"{name}.")
        kwargs[key] = _coerce(value, fields[key], f"{name}.{key}")
    return cls(**kwargs)


def config_from_dict(values: Mapping | None) -> Config:
    """Build and validate a :class:`Config` from nested mappings (missing fields default).

    A float field given a string such as ``"1e-3"`` (YAML 1.1 reads ``1e-3`` as one) is
    converted; a list for a tuple field becomes a tuple.

    Args:
      values: a mapping of section names to mappings of field values, as read from YAML;
        ``None`` or a missing section means all defaults.

    Returns:
      The validated, frozen :class:`Config`.

    Raises:
      ValueError: naming the dotted path of an unknown, ill-typed or invalid field.

    Examples:
      >>> from jebm.config import config_from_dict
      >>> config_from_dict({"model": {"hidden": [64, 64]}}).model.hidden
      (64, 64)
    """
    values = {} if values is None else values
    if not isinstance(values, Mapping):
        raise ValueError(f"a config must be a mapping of sections, got {values!r}.")
    sections = _fields(Config)
    kwargs = {}
    for name, section in values.items():
        if name not in sections:
            raise _unknown(str(name), sections, "")
        kwargs[name] = _section_from_dict(sections[name], section, name)
    return Config(**kwargs)


def config_to_dict(config: Config) -> dict:
    """Nested plain dictionaries (tuples become lists), ready for YAML or JSON.

    Args:
      config: the config to convert.

    Returns:
      A dictionary of the seven sections, each a dictionary of its fields; the inverse
      of :func:`config_from_dict`.

    Examples:
      >>> from jebm.config import Config, config_to_dict
      >>> config_to_dict(Config())["model"]["hidden"]
      [128, 128]
    """

    def plain(v):
        return list(v) if isinstance(v, tuple) else v

    return {
        name: {k: plain(v) for k, v in dataclasses.asdict(getattr(config, name)).items()}
        for name in _fields(Config)
    }


def dump_config(config: Config) -> str:
    """The config as YAML text (loads back with :func:`load_config`).

    Args:
      config: the config to write.

    Returns:
      YAML text of :func:`config_to_dict`, sections and fields in declaration order.
    """
    return yaml.safe_dump(config_to_dict(config), sort_keys=False)


def field_docs(section_cls) -> dict[str, str]:
    """``{field: description}`` from a config section's ``Attributes:`` docstring, as plain
    text on one line (double backquotes and ``:role:`` markup removed)."""
    docs, name = {}, None
    lines = (section_cls.__doc__ or "").split("Attributes:", 1)[-1].splitlines()
    for line in lines:
        match = re.match(r"^ {6}(\w+): (.*)$", line)
        if match:
            name, docs[match.group(1)] = match.group(1), match.group(2)
        elif name and line.startswith(" " * 8) and line.strip():
            docs[name] += " " + line.strip()
        elif line.strip():
            name = None
    return {k: re.sub(r":\w+:`~?([^`]+)`", r"\1", v).replace("``", "") for k, v in docs.items()}


def describe_config(config: Config) -> str:
    """The config as YAML, each field followed by what it means (``jebm config``)."""
    out, values = [], config_to_dict(config)
    for section in dataclasses.fields(config):
        value = getattr(config, section.name)
        out.append(f"{section.name}:")
        docs = field_docs(type(value))
        for f in dataclasses.fields(value):
            text = yaml.safe_dump({f.name: values[section.name][f.name]},
                                  default_flow_style=True, width=10_000).strip()[1:-1]
            out.append(f"  {text}" + (f"  # {docs[f.name]}" if f.name in docs else ""))
    return "\n".join(out) + "\n"


def _parse_override(override: str) -> tuple[list[str], Any]:
    if "=" not in override:
        raise ValueError(f"override {override!r} must look like section.field=value.")
    path, text = override.split("=", 1)
    parts = path.strip().split(".")
    if len(parts) != 2 or not all(parts):
        raise ValueError(f"override {override!r}: the key must be section.field, got {path!r}.")
    return parts, yaml.safe_load(text) if text.strip() else ""


def apply_overrides(config: Config, overrides: Iterable[str]) -> Config:
    """Apply dotted overrides such as ``train.num_steps=500`` or ``model.hidden=[64,64]``.

    Values are parsed as YAML (``1e-3``, ``null``, ``[64, 64]``, ``true``); an empty value
    is the empty string. The result is validated as a whole.

    Args:
      config: the config to start from (not modified).
      overrides: strings ``section.field=value``, applied in order.

    Returns:
      A new, validated :class:`Config`.

    Raises:
      ValueError: naming the field, for unknown keys and ill-typed or invalid values.
    """
    values = config_to_dict(config)
    for override in overrides:
        (section, name), value = _parse_override(override)
        if section not in values:
            raise _unknown(section, values, "")
        if name not in values[section]:
            raise _unknown(name, values[section], f"{section}.")
        values[section][name] = value
    return config_from_dict(values)


def load_config(path: str | None = None, overrides: Iterable[str] = ()) -> Config:
    """Read a YAML config (defaults for missing fields, or all defaults with no path),
    then apply dotted overrides.

    Args:
      path: a YAML file holding a mapping of config sections; ``None`` for the defaults.
      overrides: strings ``section.field=value`` applied after the file, as in
        :func:`apply_overrides`.

    Returns:
      The validated :class:`Config`.

    Raises:
      ValueError: naming the field for unknown, ill-typed or invalid entries (and the
        file, for entries read from it); or if the file is not valid YAML or not a
        mapping.
      OSError: if the file cannot be read.
    """
    values = {}
    if path is not None:
        with open(path) as f:
            try:
                values = yaml.safe_load(f)
            except yaml.YAMLError as err:
                raise ValueError(f"{path} is not valid YAML: {err}") from err
        if values is not None and not isinstance(values, Mapping):
            raise ValueError(f"{path} must hold a mapping of config sections.")
    try:
        config = config_from_dict(values)
    except ValueError as err:
        where = f" in {path}" if path is not None else ""
        raise ValueError(f"{err}{where}") from None
    return apply_overrides(config, overrides)


def config_diff(a: Config, b: Config, *, ignore: Iterable[str] = ()) -> list[str]:
    """Fields that differ, as ``section.field: a -> b`` lines (dotted paths in ``ignore`` skip).

    Args:
      a: the first config.
      b: the second config.
      ignore: dotted paths (``train.num_steps``) left out of the comparison.

    Returns:
      One line per differing field, in declaration order, values as ``repr``; empty if
      the configs agree.

    Examples:
      >>> from jebm.config import Config, apply_overrides, config_diff
      >>> config_diff(Config(), apply_overrides(Config(), ["train.seed=3"]))
      ['train.seed: 0 -> 3']
    """
    da, db = config_to_dict(a), config_to_dict(b)
    ignore = set(ignore)
    return [
        f"{s}.{k}: {da[s][k]!r} -> {db[s][k]!r}"
        for s in da
        for k in da[s]
        if da[s][k] != db[s][k] and f"{s}.{k}" not in ignore
    ]
