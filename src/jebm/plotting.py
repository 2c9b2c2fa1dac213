"""Figures for 2-D runs. matplotlib is imported lazily inside each function and drawn
on an Agg canvas (``matplotlib.figure.Figure``), so importing jebm never loads it and
no display or global backend is touched.
"""

import os
from collections.abc import Sequence

import numpy as np

__all__ = ["plot_densities", "plot_samples"]


def _figure(ncols: int, size: float = 4.0):
    from matplotlib.figure import Figure

    fig = Figure(figsize=(size * ncols, size), layout="constrained")
    return fig, [fig.add_subplot(1, ncols, i + 1) for i in range(ncols)]


def plot_densities(
    path: str | os.PathLike,
    log_densities: Sequence[np.ndarray],
    titles: Sequence[str],
    extent: tuple[float, float, float, float],
) -> None:
    """Side-by-side heat maps of densities given as log-densities on a grid.

    Args:
      path: output image (PNG).
      log_densities: arrays ``(n, n)`` with ``[i, j]`` the value at ``(x_j, y_i)``
        (the layout of ``meshgrid(xs, ys)``); plotted as ``exp``.
      titles: one title per panel.
      extent: ``(x_low, x_high, y_low, y_high)`` of the grid.
    """
    fig, axes = _figure(len(log_densities))
    for ax, log_p, title in zip(axes, log_densities, titles, strict=True):
        ax.imshow(np.exp(np.asarray(log_p, np.float64)), origin="lower", extent=extent,
                  cmap="viridis", interpolation="nearest")
        ax.set_title(title)
        ax.set_aspect("equal")
        ax.set_xticks([])
        ax.set_yticks([])
    fig.savefig(path, dpi=100)


def plot_samples(
    path: str | os.PathLike,
    samples: np.ndarray,
    *,
    reference: np.ndarray | None = None,
    energy_grid: np.ndarray | None = None,
    extent: tuple[float, float, float, float] | None = None,
    title: str = "samples",
    reference_label: str = "data",
) -> None:
    """Scatter of 2-D draws over energy contours and/or reference points.

    Args:
      path: output image (PNG).
      samples: ``(n, 2)`` draws.
      reference: optional ``(m, 2)`` points drawn underneath (e.g. data), in grey.
      energy_grid: optional ``(k, k)`` energies on the grid of ``extent`` (layout
        of ``meshgrid(xs, ys)``) drawn as contours.
      extent: ``(x_low, x_high, y_low, y_high)``; also the axis limits.
      title: panel title.
      reference_label: legend label of ``reference``.
    """
    fig, (ax,) = _figure(1, size=5.0)
    samples = np.asarray(samples)
    if energy_grid is not None:
        if extent is None:
            raise ValueError("energy_grid needs the grid's extent.")
        k = energy_grid.shape[0]
        xs = np.linspace(extent[0], extent[1], k)
        ys = np.linspace(extent[2], extent[3], energy_grid.shape[1] if energy_grid.ndim > 1 else k)
        energy = np.asarray(energy_grid, np.float64)
        low = np.nanmin(energy)
        levels = low + np.linspace(0.0, 12.0, 13)  # up to exp(-12) below the mode
        ax.contour(xs, ys, energy, levels=levels, cmap="Blues_r", linewidths=0.8)
    if reference is not None:
        reference = np.asarray(reference)
        ax.scatter(reference[:, 0], reference[:, 1], s=2, c="0.6", alpha=0.5,
                   label=reference_label)
    ax.scatter(samples[:, 0], samples[:, 1], s=2, c="tab:red", alpha=0.6, label="samples")
    if extent is not None:
        ax.set_xlim(extent[0], extent[1])
        ax.set_ylim(extent[2], extent[3])
    ax.set_aspect("equal")
    ax.set_title(title)
    if reference is not None:
        ax.legend(loc="upper right", markerscale=4)
    fig.savefig(path, dpi=100)
