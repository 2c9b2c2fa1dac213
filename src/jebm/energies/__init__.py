"""Ready-made energies: analytic oracles with exact log Z, toy densities, and neural energies.

:mod:`jebm.energies.toy_data` holds the FFJORD 2-D toy data sets (:class:`Toy2D`): exact
samplers, log-densities and entropies, several of them the toy energies of this package.
"""

from jebm.energies.analytic import AnalyticEnergy, gaussian, gaussian_mixture
from jebm.energies.conv import ConvEnergy, JointEnergy, conv_energy, joint_energy_fns
from jebm.energies.discrete import (
    bernoulli_rbm,
    binary_states,
    categorical_states,
    enumerate_log_z,
    ising,
    lattice_couplings,
    potts,
    rbm_free_energy,
    rbm_init,
    rbm_log_z,
)
from jebm.energies.mlp import ACTIVATIONS, MLPEnergy, mlp_energy
from jebm.energies.noise_conditional import (
    NoiseConditionalConvEnergy,
    noise_conditional_conv_energy,
)
from jebm.energies.toy2d import checkerboard, eight_gaussians, rings
from jebm.energies.toy_data import Toy2D

__all__ = [
    "AnalyticEnergy",
    "gaussian",
    "gaussian_mixture",
    "eight_gaussians",
    "rings",
    "checkerboard",
    "Toy2D",
    "MLPEnergy",
    "mlp_energy",
    "ACTIVATIONS",
    "ConvEnergy",
    "conv_energy",
    "JointEnergy",
    "joint_energy_fns",
    "bernoulli_rbm",
    "rbm_free_energy",
    "rbm_log_z",
    "rbm_init",
    "ising",
    "potts",
    "lattice_couplings",
    "binary_states",
    "categorical_states",
    "enumerate_log_z",
    "NoiseConditionalConvEnergy",
    "noise_conditional_conv_energy",
]
