"""jebm: a JAX functional toolkit for energy-based models.

Data flow: dataset → energy → sampler → objective → train step → checkpoint → evaluation.
The sign convention (density ∝ exp(−E), samplers see −E) lives in :mod:`jebm.energy`.

Submodules are imported on first use (PEP 562), so ``import jebm`` loads neither JAX's
extras nor orbax, yaml or matplotlib until a module that needs them is touched.
"""

import importlib

__version__ = "0.1.0"

_SUBMODULES = (
    "config",
    "datasets",
    "densities",
    "diagnostics",
    "energies",
    "energy",
    "evaluation",
    "experiment",
    "objectives",
    "parallel",
    "partition",
    "plotting",
    "sample_quality",
    "samplers",
    "tasks",
    "train",
)
_FUNCTIONS = {
    "logdensity_fn": "jebm.energy",
    "score_fn": "jebm.energy",
    "log_ratio": "jebm.energy",
    "run_chains": "jebm.samplers",
}

__all__ = ["__version__", *_SUBMODULES, *_FUNCTIONS]


def __getattr__(name: str):
    if name in _SUBMODULES:
        return importlib.import_module(f"jebm.{name}")
    if name in _FUNCTIONS:
        return getattr(importlib.import_module(_FUNCTIONS[name]), name)
    raise AttributeError(f"module 'jebm' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(__all__)
