"""MCMC samplers with BlackJAX's ``SamplingAlgorithm`` contract."""

from jebm.samplers.base import SamplingAlgorithm
from jebm.samplers.mala import mala
from jebm.samplers.runner import ChainResult, RunningMoments, run_chains

__all__ = ["SamplingAlgorithm", "mala", "run_chains", "ChainResult", "RunningMoments"]
