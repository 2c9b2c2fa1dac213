"""MCMC samplers with BlackJAX's ``SamplingAlgorithm`` contract."""

from jebm.samplers.base import SamplingAlgorithm
from jebm.samplers.hmc import HMCInfo, HMCState, hmc
from jebm.samplers.mala import MALAInfo, MALAState, mala
from jebm.samplers.runner import ChainResult, RunningMoments, run_chains
from jebm.samplers.rwmh import RWMHInfo, RWMHState, rwmh
from jebm.samplers.ula import ULAInfo, ULAState, ula

__all__ = [
    "SamplingAlgorithm",
    "mala",
    "MALAState",
    "MALAInfo",
    "rwmh",
    "RWMHState",
    "RWMHInfo",
    "ula",
    "ULAState",
    "ULAInfo",
    "hmc",
    "HMCState",
    "HMCInfo",
    "run_chains",
    "ChainResult",
    "RunningMoments",
]
