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

from jebm.experiment import config as _config
from jebm.experiment.config import *  # noqa: F403  (this module is only a shorter name)

__all__ = list(_config.__all__)
