"""Run configuration, as ``jebm.config``: the names of :mod:`jebm.experiment.config`.

A :class:`Config` has eight sections (``data``, ``model``, ``objective``, ``sampler``,
``optimizer``, ``train``, ``eval``, ``health``), validated at construction against the
experiment layer's registries; its defaults are the default job. The sections live in
:mod:`jebm.experiment.sections`, the whole config and its YAML in
:mod:`jebm.experiment.config`; this module only gives them their short public name.

Examples:
  >>> from jebm.config import Config, apply_overrides
  >>> apply_overrides(Config(), ["train.num_steps=500"]).train.num_steps
  500
"""

from jebm.experiment.config import (
    Config,
    DataConfig,
    EvalConfig,
    HealthSection,
    ModelConfig,
    ObjectiveConfig,
    OptimizerConfig,
    SamplerConfig,
    TrainConfig,
    apply_overrides,
    config_diff,
    config_from_dict,
    config_to_dict,
    dump_config,
    load_config,
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
    "config_diff",
]
