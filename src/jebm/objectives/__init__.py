"""Training objectives for energy-based models, all on the :class:`Objective` contract."""

from jebm.objectives.base import Objective, stateless
from jebm.objectives.contrastive import AdaptiveStepState, cd, cd_loss, pcd, pcd_loss
from jebm.objectives.discrete import (
    pseudo_likelihood,
    pseudo_likelihood_loss,
    ratio_matching,
    ratio_matching_loss,
)
from jebm.objectives.energy_discrepancy import energy_discrepancy, energy_discrepancy_loss
from jebm.objectives.jem import jem
from jebm.objectives.nce import nce, nce_loss, nce_params
from jebm.objectives.recovery_likelihood import (
    recovery_likelihood,
    recovery_likelihood_loss,
    recovery_sample,
)
from jebm.objectives.replay import (
    ReplayBuffer,
    init_replay_buffer,
    sample_replay_buffer,
    update_replay_buffer,
)
from jebm.objectives.score_matching import (
    denoising_score_matching,
    denoising_score_matching_loss,
    exact_score_matching,
    exact_score_matching_loss,
    sliced_score_matching,
    sliced_score_matching_loss,
)

__all__ = [
    "Objective",
    "stateless",
    "cd",
    "cd_loss",
    "pcd",
    "pcd_loss",
    "AdaptiveStepState",
    "ReplayBuffer",
    "init_replay_buffer",
    "sample_replay_buffer",
    "update_replay_buffer",
    "exact_score_matching",
    "exact_score_matching_loss",
    "sliced_score_matching",
    "sliced_score_matching_loss",
    "denoising_score_matching",
    "denoising_score_matching_loss",
    "nce",
    "nce_loss",
    "nce_params",
    "jem",
    "pseudo_likelihood",
    "pseudo_likelihood_loss",
    "ratio_matching",
    "ratio_matching_loss",
    "energy_discrepancy",
    "energy_discrepancy_loss",
    "recovery_likelihood",
    "recovery_likelihood_loss",
    "recovery_sample",
]
