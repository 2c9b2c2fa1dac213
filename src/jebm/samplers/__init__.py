"""MCMC samplers with BlackJAX's ``SamplingAlgorithm`` contract."""

from jebm.samplers.adaptation import (
    DualAveragingState,
    WarmupResult,
    dual_averaging_init,
    dual_averaging_update,
    dual_averaging_warmup,
)
from jebm.samplers.annealed import (
    AnnealedLangevinInfo,
    AnnealedLangevinState,
    annealed_langevin,
)
from jebm.samplers.base import SamplingAlgorithm
from jebm.samplers.discrete import (
    BlockGibbsInfo,
    BlockGibbsState,
    DiscreteInfo,
    DiscreteState,
    GWGState,
    block_gibbs,
    gibbs_with_gradients,
    metropolis_flip,
)
from jebm.samplers.hmc import HMCInfo, HMCState, hmc
from jebm.samplers.mala import MALAInfo, MALAState, mala
from jebm.samplers.nuts import NUTSInfo, nuts
from jebm.samplers.registry import SAMPLERS, TARGET_ACCEPTANCE, by_name
from jebm.samplers.runner import ChainResult, RunningMoments, run_chains, run_chains_chunked
from jebm.samplers.rwmh import RWMHInfo, RWMHState, rwmh
from jebm.samplers.tempering import (
    TemperedInfo,
    TemperedState,
    cold_position,
    parallel_tempering,
)
from jebm.samplers.transformed import TransformedState, logit_space, transformed
from jebm.samplers.ula import ULAInfo, ULAState, ula
from jebm.samplers.underdamped import (
    UnderdampedLangevinInfo,
    UnderdampedLangevinState,
    underdamped_langevin,
)

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
    "annealed_langevin",
    "AnnealedLangevinState",
    "AnnealedLangevinInfo",
    "by_name",
    "SAMPLERS",
    "TARGET_ACCEPTANCE",
    "run_chains",
    "run_chains_chunked",
    "ChainResult",
    "RunningMoments",
    "metropolis_flip",
    "gibbs_with_gradients",
    "block_gibbs",
    "DiscreteState",
    "DiscreteInfo",
    "GWGState",
    "BlockGibbsState",
    "BlockGibbsInfo",
    "dual_averaging_warmup",
    "dual_averaging_init",
    "dual_averaging_update",
    "DualAveragingState",
    "WarmupResult",
    "underdamped_langevin",
    "UnderdampedLangevinState",
    "UnderdampedLangevinInfo",
    "parallel_tempering",
    "TemperedState",
    "TemperedInfo",
    "cold_position",
    "nuts",
    "NUTSInfo",
    "transformed",
    "logit_space",
    "TransformedState",
]
