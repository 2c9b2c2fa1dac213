"""Ready-made energies: analytic oracles with exact log Z, toy densities, and neural energies."""

from jebm.energies.analytic import AnalyticEnergy, gaussian, gaussian_mixture
from jebm.energies.conv import ConvEnergy, JointEnergy, conv_energy, joint_energy_fns
from jebm.energies.mlp import ACTIVATIONS, MLPEnergy, mlp_energy
from jebm.energies.noise_conditional import (
    NoiseConditionalConvEnergy,
    noise_conditional_conv_energy,
)
from jebm.energies.toy2d import checkerboard, eight_gaussians, rings

__all__ = [
    "AnalyticEnergy",
    "gaussian",
    "gaussian_mixture",
    "eight_gaussians",
    "rings",
    "checkerboard",
    "MLPEnergy",
    "mlp_energy",
    "ACTIVATIONS",
    "ConvEnergy",
    "conv_energy",
    "JointEnergy",
    "joint_energy_fns",
    "NoiseConditionalConvEnergy",
    "noise_conditional_conv_energy",
]
