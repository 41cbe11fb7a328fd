"""Figures: rate-distortion axes, image grids, and byte-deterministic saving.

Published reference curves are always drawn dashed with hollow markers and labelled
"(published)", so they can never be mistaken for curves measured by the kit.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path

import matplotlib

matplotlib.rcParams["svg.hashsalt"] = "hyres-kit"  # stable SVG element ids
import matplotlib.pyplot as plt  # noqa: E402
import torch  # noqa: E402

from .images import to_uint8  # noqa: E402

METADATA = {"png": {"Software": None}, "svg": {"Date": None, "Creator": None},
            "pdf": {"CreationDate": None, "Producer": None, "Creator": None}}


def savefig(fig: plt.Figure, stem: str | Path, formats: Iterable[str] = ("png", "svg"), dpi: int = 150) -> list[Path]:
    """Save ``fig`` as ``stem.<fmt>`` for each format, with no timestamps or versions in the
    metadata, so rendering the same data twice gives byte-identical files."""
    stem = Path(stem)
    stem.parent.mkdir(parents=True, exist_ok=True)
    paths = []
    for fmt in formats:
        path = stem.with_suffix(f".{fmt}")
        fig.savefig(path, format=fmt, dpi=dpi, metadata=METADATA.get(fmt), bbox_inches="tight")
        paths.append(path)
    return paths


def rd_axes(ax: plt.Axes, metric: str = "PSNR (dB)", logx: bool = False, title: str = "") -> plt.Axes:
    ax.set_xlabel("bits per pixel (from file bytes)")
    ax.set_ylabel(metric)
    if logx:
        ax.set_xscale("log")
    ax.grid(True, alpha=0.3)
    if title:
        ax.set_title(title)
    return ax


def plot_curve(ax: plt.Axes, bpp: Sequence[float], quality: Sequence[float], label: str,
               published: bool = False, **kw) -> None:
    """One RD curve; ``published=True`` draws reference figures from the literature distinctly."""
    order = sorted(range(len(bpp)), key=lambda i: bpp[i])
    xs, ys = [bpp[i] for i in order], [quality[i] for i in order]
    if published:
        kw = {"linestyle": "--", "marker": "o", "markerfacecolor": "none", "alpha": 0.8, **kw}
        label = f"{label} (published)"
    else:
        kw = {"linestyle": "-", "marker": "o", **kw}
    ax.plot(xs, ys, label=label, markersize=4, **kw)


def image_grid(images: Mapping[str, torch.Tensor], cols: int = 4, size: float = 3.2,
               suptitle: str = "") -> plt.Figure:
    """Show (3, H, W) tensors in a grid with their titles (e.g. 'JPEG q5: 0.19 bpp, 22.1 dB')."""
    n = len(images)
    cols = min(cols, n)
    rows = (n + cols - 1) // cols
    fig, axes = plt.subplots(rows, cols, figsize=(size * cols, size * rows), squeeze=False)
    for ax in axes.flat:
        ax.axis("off")
    for ax, (title, img) in zip(axes.flat, images.items()):
        ax.imshow(to_uint8(img))
        ax.set_title(title, fontsize=9)
    if suptitle:
        fig.suptitle(suptitle)
    fig.tight_layout()
    return fig


def signed_map(x: torch.Tensor, gain: float = 4.0) -> torch.Tensor:
    """A signed residual (e.g. ``x - jpeg(x)``) shown around mid-grey, amplified ``gain`` times."""
    return (0.5 + gain * x).clamp(0, 1)
