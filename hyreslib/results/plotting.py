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

from ..core.images import to_uint8  # noqa: E402

COMMITTED_PROFILES = ("cpu", "full")  # runs whose figures are committed under figures/<profile>/
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


def figures_dir(profile: str, run_dir: Path) -> Path:
    """Where a notebook's figures go: ``figures/<profile>/`` in the project for the profiles whose
    figures are committed (the README shows them), else the notebook's own run folder."""
    from ..core.roots import PROJECT_ROOT

    return PROJECT_ROOT / "figures" / profile if profile in COMMITTED_PROFILES else run_dir / "figures"


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
        kw = {"linestyle": "--", "marker": "o", "markerfacecolor": "none", "alpha": 0.8, "markersize": 4, **kw}
        label = f"{label} (published)"
    else:
        kw = {"linestyle": "-", "marker": "o", "markersize": 4, **kw}
    ax.plot(xs, ys, label=label, **kw)


# Measured curves can coincide (a refiner that changes little, a point on top of another): each
# gets its own marker and line style, hollow markers, and earlier curves wider lines and larger
# markers, so one drawn later sits inside one drawn earlier instead of hiding it.
MARKERS = ("o", "s", "^", "D", "v", "P", "X", "<", ">", "*")
LINESTYLES = ("-", "-.", ":", (0, (5, 1, 1, 1)))


def curve_style(i: int, n: int) -> dict:
    """Matplotlib keywords for the ``i``-th of ``n`` measured curves."""
    rank = (n - 1 - i) / max(1, n - 1)  # 1 for the first curve drawn, 0 for the last
    return {"marker": MARKERS[i % len(MARKERS)], "linestyle": LINESTYLES[i % len(LINESTYLES)],
            "markersize": 4 + 7 * rank, "linewidth": 1 + 2 * rank, "markerfacecolor": "none",
            "markeredgewidth": 1.3, "zorder": 2 + i}


MS_SSIM_DB = "MS-SSIM (dB) = −10·log10(1 − MS-SSIM)"


def fit_y_to_visible(ax: plt.Axes, margin: float = 0.06) -> None:
    """Limit the y axis to the points inside the x range, so that points the x limit cuts off do
    not stretch it (a lossless-ish point at 6 bpp would flatten every low-rate curve)."""
    lo_x, hi_x = ax.get_xlim()
    ys = [y for line in ax.get_lines() for x, y in zip(line.get_xdata(), line.get_ydata())
          if lo_x <= x <= hi_x and y == y and abs(y) != float("inf")]
    if ys:
        lo, hi = min(ys), max(ys)
        pad = margin * (hi - lo) or 0.5
        ax.set_ylim(lo - pad, hi + pad)


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


def residual_gain(residuals: Iterable[torch.Tensor], quantile: float = 0.99) -> float:
    """A power-of-two gain for :func:`signed_map` that keeps ``quantile`` of the largest residual's
    magnitudes off the clip (a fixed ×4 saturates a quality-1 JPEG residual), shared by all the
    residuals of one figure so that they stay comparable."""
    peak = max(float(torch.quantile(r.abs().flatten().float()[::max(1, r.numel() // 200_000)], quantile))
               for r in residuals)
    gain = 1.0
    while gain < 16 and peak * gain * 2 <= 0.5:
        gain *= 2
    return gain


def signed_map(x: torch.Tensor, gain: float = 4.0) -> torch.Tensor:
    """A signed residual (e.g. ``x - jpeg(x)``) shown around mid-grey, amplified ``gain`` times."""
    return (0.5 + gain * x).clamp(0, 1)


def rd_figure(curves: Mapping[str, Mapping[str, list]], published: Mapping[str, Mapping[str, list]] | None = None,
              title: str = "", logx: bool = False, xmax: float | None = None) -> plt.Figure:
    """PSNR–bpp and MS-SSIM–bpp side by side. ``curves`` are measured (columnar dicts with
    ``bpp``, ``psnr`` and optionally ``ms_ssim`` lists); ``published`` curves are drawn dashed
    and labelled as published (PSNR panel only: published MS-SSIM is not on the same basis)."""
    from .metrics import ms_ssim_db

    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(13, 4.8))
    for i, (name, c) in enumerate(curves.items()):
        style = {"color": f"C{i % 10}", **curve_style(i, len(curves))}
        plot_curve(ax1, c["bpp"], c["psnr"], name, **style)
        ms = c.get("ms_ssim")
        if ms and all(v is not None for v in ms):
            plot_curve(ax2, c["bpp"], [ms_ssim_db(v) for v in ms], name, **style)
    for name, c in (published or {}).items():
        plot_curve(ax1, c["bpp"], c["psnr"], name, published=True)
    rd_axes(ax1, "PSNR (dB)", logx=logx, title=title)
    rd_axes(ax2, MS_SSIM_DB, logx=logx)
    top = max((max(c["bpp"]) for c in curves.values() if c["bpp"]), default=0.0)
    for ax in (ax1, ax2):
        if xmax and not logx and top > 0:
            ax.set_xlim(0, min(xmax, 1.08 * top))  # a cap, not a fixed range: low-rate runs stay readable
            fit_y_to_visible(ax)
        if ax.lines:
            ax.legend(fontsize=7)
    fig.tight_layout()
    return fig


class LiveFigure:
    """One display slot in a notebook whose figure is replaced as results arrive (e.g. the RD
    points of λ phases as each phase finishes); outside IPython it does nothing."""

    def __init__(self) -> None:
        self.handle = None

    def show(self, fig: plt.Figure) -> None:
        try:
            from IPython.display import display
        except ImportError:
            return
        if self.handle is None:
            self.handle = display(fig, display_id=True)
        else:
            self.handle.update(fig)
        plt.close(fig)
