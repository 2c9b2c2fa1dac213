"""Ready-made energies: analytic oracles with exact log Z, and neural energies."""

from jebm.energies.analytic import AnalyticEnergy, gaussian, gaussian_mixture

__all__ = ["AnalyticEnergy", "gaussian", "gaussian_mixture"]
