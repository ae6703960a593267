"""Figures: rows of images (the reference figure and the denoising figure) and codes in 2-D."""

from __future__ import annotations

import os

import matplotlib
import numpy as np
from matplotlib.figure import Figure

from cae.io import atomic_path


def image_rows(rows: list[np.ndarray], titles: list[str], path: str | os.PathLike) -> None:
    """Save a grid: one row per array of images (N, H, W, C) in [0, 1], titled on the left.

    Grayscale images are drawn in gray, colour images as RGB. The PNG carries no
    timestamp or version string, so the same images give the same bytes.
    """
    n = max(len(r) for r in rows)
    # A bare Figure (no pyplot): no global backend switch, nothing left open.
    fig = Figure(figsize=(n * 1.0 + 0.6, len(rows) * 1.05))
    axes = fig.subplots(len(rows), n, squeeze=False)
    for r, (images, title) in enumerate(zip(rows, titles, strict=True)):
        for c in range(n):
            ax = axes[r][c]
            ax.set_xticks([])
            ax.set_yticks([])
            for spine in ax.spines.values():
                spine.set_visible(False)
            if c < len(images):
                img = np.clip(images[c], 0, 1)
                if img.shape[-1] == 1:
                    ax.imshow(img[..., 0], cmap="gray", vmin=0, vmax=1)
                else:
                    ax.imshow(img)
        axes[r][0].set_ylabel(title, rotation=0, ha="right", va="center", fontsize=9)
    fig.subplots_adjust(left=0.1, right=0.99, top=0.99, bottom=0.01, wspace=0.05, hspace=0.05)
    _save(fig, path)


def _save(fig: Figure, path: str | os.PathLike) -> None:
    """Write ``fig`` as a PNG without timestamp or version string, atomically."""
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=100, metadata={"Software": None})


def scatter_panels(panels: list[tuple[np.ndarray, np.ndarray, str]], path: str | os.PathLike) -> None:
    """Side-by-side scatter plots of 2-D points, one per ``(points (N, 2), labels (N,),
    title)``, coloured by label, with one legend for all of them."""
    classes = sorted({int(v) for _, labels, _ in panels for v in np.ravel(labels)})
    cmap = matplotlib.colormaps["tab10" if len(classes) <= 10 else "tab20"]
    fig = Figure(figsize=(5.2 * len(panels) + 1.2, 5.0))
    axes = fig.subplots(1, len(panels), squeeze=False)[0]
    for ax, (points, labels, title) in zip(axes, panels, strict=True):
        labels = np.ravel(labels)
        for k, c in enumerate(classes):
            mask = labels == c
            ax.scatter(points[mask, 0], points[mask, 1], s=3, color=cmap(k % cmap.N), label=str(c), rasterized=True)
        ax.set_title(title, fontsize=10)
        ax.set_xticks([])
        ax.set_yticks([])
    handles, names = axes[0].get_legend_handles_labels()
    fig.legend(handles, names, title="label", loc="center right", markerscale=4, frameon=False)
    fig.subplots_adjust(left=0.02, right=1 - 1.1 / fig.get_figwidth(), top=0.92, bottom=0.03, wspace=0.05)
    _save(fig, path)


def reference_figure(clean: np.ndarray, recon: np.ndarray, path: str | os.PathLike) -> None:
    """The reference figure: test images over their reconstructions."""
    image_rows([clean, recon], ["original", "reconstructed"], path)


def denoising_figure(noisy: np.ndarray, denoised: np.ndarray, clean: np.ndarray, path: str | os.PathLike) -> None:
    image_rows([noisy, denoised, clean], ["noisy", "denoised", "clean"], path)
