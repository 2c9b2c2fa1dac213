"""Figures: densities and draws of 2-D runs, grids of images.

matplotlib is imported lazily inside each function and drawn on an Agg canvas
(``matplotlib.figure.Figure``), so importing jebm never loads it and no display or global
backend is touched.
"""

import os
from collections.abc import Sequence

import numpy as np

__all__ = ["plot_densities", "plot_samples", "save_image_grid", "save_chain_grids"]


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

    All panels share one colour scale (0 to the largest density of any panel) and one
    colour bar, so the panels compare directly; axes show the coordinates.

    Args:
      path: output image (PNG).
      log_densities: arrays ``(n, n)`` with ``[i, j]`` the value at ``(x_j, y_i)``
        (the layout of ``meshgrid(xs, ys)``); plotted as ``exp``.
      titles: one title per panel.
      extent: ``(x_low, x_high, y_low, y_high)`` of the grid.
    """
    fig, axes = _figure(len(log_densities))
    dens = [np.exp(np.asarray(log_p, np.float64)) for log_p in log_densities]
    top = max(float(np.nanmax(d)) for d in dens) if dens else 1.0
    image = None
    for ax, d, title in zip(axes, dens, titles, strict=True):
        image = ax.imshow(d, origin="lower", extent=extent, cmap="viridis",
                          interpolation="nearest", vmin=0.0, vmax=top)
        ax.set_title(title)
        ax.set_aspect("equal")
        ax.set_xlabel("x₁")
        ax.set_ylabel("x₂")
    if image is not None:
        fig.colorbar(image, ax=axes, label="density", shrink=0.8)
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


def save_image_grid(
    path: str | os.PathLike,
    images: np.ndarray,
    nrow: int,
    *,
    title: str | None = None,
    vmin: float = 0.0,
    vmax: float = 1.0,
    cell_inches: float = 0.6,
) -> None:
    """Save ``images`` as a grid PNG, ``nrow`` images per row (grey ``vmin`` white, or RGB).

    Args:
      path: output file.
      images: ``(n, H, W)`` or ``(n, H, W, 1)`` grey images, or ``(n, H, W, 3)`` colour
        images (e.g. CIFAR-10, ``vmin`` black and ``vmax`` full intensity, clipped); the
        last row is padded with blanks.
      nrow: images per row.
      title: optional figure title.
      vmin: the value drawn white (grey) or black (colour).
      vmax: the value drawn black (grey) or at full intensity (colour).
      cell_inches: size of one image in the figure.
    """
    from matplotlib.figure import Figure

    images = np.asarray(images, np.float32)
    if images.ndim == 4 and images.shape[-1] == 1:
        images = images[..., 0]
    colour = images.ndim == 4 and images.shape[-1] == 3
    if images.ndim != 3 + colour or images.shape[0] < 1:
        raise ValueError(f"images must be (n, H, W) or (n, H, W, 3), got shape {images.shape}.")
    if isinstance(nrow, bool) or not isinstance(nrow, int) or nrow < 1:
        raise ValueError(f"nrow must be an int >= 1, got {nrow!r}.")
    n, h, w = images.shape[:3]
    ncol_cells = min(nrow, n)
    nrow_cells = -(-n // nrow)
    pad = 1
    frame = vmin + (0.75 if colour else 0.25) * (vmax - vmin)  # light grey separators
    canvas = np.full((nrow_cells * (h + pad) + pad, ncol_cells * (w + pad) + pad,
                      *images.shape[3:]), frame, np.float32)
    for i in range(n):
        r, c = divmod(i, nrow)
        top, left = pad + r * (h + pad), pad + c * (w + pad)
        canvas[top:top + h, left:left + w] = images[i]
    if colour:  # imshow draws RGB floats in [0, 1] as they are
        canvas = np.clip((canvas - vmin) / (vmax - vmin), 0.0, 1.0)
    extra = 0.3 if title else 0.0
    fig = Figure(figsize=(cell_inches * ncol_cells, cell_inches * nrow_cells + extra))
    ax = fig.add_axes((0.0, 0.0, 1.0, 1.0 - extra / (cell_inches * nrow_cells + extra)))
    if colour:
        ax.imshow(canvas, interpolation="nearest")
    else:
        ax.imshow(canvas, cmap="gray_r", vmin=vmin, vmax=vmax, interpolation="nearest")
    ax.set_axis_off()
    if title:
        fig.suptitle(title, fontsize=8)
    fig.savefig(os.fspath(path), dpi=100)


def save_chain_grids(out_dir: str | os.PathLike, x0: np.ndarray, trace: np.ndarray, rows: int,
                     sampler: str) -> None:
    """Image chains: ``chains.png`` (a row per chain, from its start to its last state in
    ``rows − 1`` even steps) and ``samples.png`` (the final states of up to ``rows²`` chains).

    Args:
      out_dir: output folder.
      x0: ``(num_chains, H, W)`` starting images.
      trace: ``(num_steps, num_chains, H, W)`` the chains.
      rows: images per row.
      sampler: the sampler's name, for the titles.
    """
    out_dir = os.fspath(out_dir)
    num_steps, num_chains = trace.shape[:2]
    frames = np.unique(np.linspace(0, num_steps - 1, rows - 1).round().astype(int))
    shown = min(num_chains, rows)
    strip = np.concatenate([x0[None, :shown], trace[frames, :shown]])  # (frames+1, chains)
    save_image_grid(os.path.join(out_dir, "chains.png"),
                    strip.swapaxes(0, 1).reshape(-1, *x0.shape[1:]), strip.shape[0],
                    title=f"{sampler} chains, steps 0 to {num_steps}")
    save_image_grid(os.path.join(out_dir, "samples.png"), trace[-1, : rows * rows], rows,
                    title=f"{sampler}: final states after {num_steps} steps")
