"""Figures for the residual-codec notebook, drawn with :mod:`hyreslib.results.plotting`: the base layer
and its residual, training curves (also live, as an engine ``on_log`` callback), reconstructions
from real decodes, and rate-distortion points."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import matplotlib.pyplot as plt
import torch

from ..codecs import jpeg as jpeg_io
from ..core.images import center_crop
from ..results.metrics import bpp, psnr
from ..results.plotting import LiveFigure, curve_style, image_grid, plot_curve, rd_axes, residual_gain, signed_map
from .codec import JpegSettings

TRAIN_KEYS = ("rd_loss", "psnr", "bpp_y", "bpp_z")


def base_and_residual(images: Sequence[tuple[str, torch.Tensor]], qualities: Sequence[int],
                      settings: JpegSettings) -> plt.Figure:
    """One row per image: the original, then the JPEG base and its residual (amplified by one gain
    for the whole figure, given in the titles) per quality."""
    rows = []
    for name, x in images:
        for q in qualities:
            b = jpeg_io.roundtrip(x, q, settings.subsampling, settings.optimize, backend="cpu")
            rows.append((name, x, q, b.decoded[0], bpp(b.nbytes[0], *x.shape[-2:])))
    gain = residual_gain([x - base for _, x, _, base, _ in rows])
    shown = {}
    for name, x, q, base, rate in rows:
        shown[name] = x
        shown[f"{name} JPEG q{q}: {rate:.3f} bpp, {psnr(base, x):.1f} dB"] = base
        shown[f"{name} residual q{q} (x{gain:g})"] = signed_map(x - base, gain)
    return image_grid(shown, cols=1 + 2 * len(qualities), size=2.4)


def training_curves(rows: Sequence[dict], keys: Sequence[str] = TRAIN_KEYS) -> plt.Figure:
    fig, axes = plt.subplots(1, len(keys), figsize=(3.2 * len(keys), 2.6), squeeze=False)
    for ax, key in zip(axes[0], keys):
        ax.plot([r["step"] for r in rows], [r[key] for r in rows])
        ax.set_title(key, fontsize=9)
        ax.set_xlabel("step")
        ax.grid(alpha=0.3)
    fig.tight_layout()
    return fig


def live_training_plot(keys: Sequence[str] = TRAIN_KEYS) -> Callable:
    """An engine ``on_log`` callback that redraws the training curves in place in a notebook.

    It replaces only its own display slot (clearing the cell output would also erase the
    progress bar and its ETA)."""
    live = LiveFigure()

    def on_log(hist) -> None:
        live.show(training_curves(hist.rows, keys))

    return on_log


def reconstructions(items: Sequence[dict], crop: int = 192) -> plt.Figure:
    """Centre crops of original, JPEG base and decoded image per item (dicts with ``image``, ``x``,
    ``base``, ``decoded`` and the row's ``bpp``, ``bpp_jpeg``, ``psnr``, ``psnr_jpeg``)."""
    shown = {}
    for it in items:
        c = min(crop, *it["x"].shape[-2:])
        name = it["image"]
        shown[f"{name} original"] = center_crop(it["x"], c)
        shown[f"{name} JPEG base: {it['bpp_jpeg']:.3f} bpp, {it['psnr_jpeg']:.2f} dB"] = center_crop(it["base"], c)
        shown[f"{name} HyRES: {it['bpp']:.3f} bpp, {it['psnr']:.2f} dB"] = center_crop(it["decoded"], c)
    return image_grid(shown, cols=3, size=3.0)


def rate_distortion(jpeg_curve: Sequence[dict], points: Sequence[dict], title: str = "") -> plt.Figure:
    """The JPEG base alone over qualities, and HyRES points (dicts with ``bpp``, ``psnr``, ``label``)."""
    fig, ax = plt.subplots(figsize=(6, 4))
    plot_curve(ax, [p["bpp"] for p in jpeg_curve], [p["psnr"] for p in jpeg_curve], "JPEG base alone")
    for p in jpeg_curve:
        ax.annotate(f"q{p['quality']}", (p["bpp"], p["psnr"]), fontsize=7, xytext=(3, -9), textcoords="offset points")
    for i, p in enumerate(points):
        style = curve_style(i, len(points))
        ax.plot(p["bpp"], p["psnr"], style["marker"], markersize=style["markersize"], label=p["label"])
    rd_axes(ax, title=title)
    ax.legend(fontsize=7)
    fig.tight_layout()
    return fig


def study_bd_by_step(table: Sequence[dict], title: str) -> plt.Figure:
    """BD-rate against JPEG 4:2:0 (real bytes) as training proceeds, one line per study variant."""
    fig, ax = plt.subplots(figsize=(6, 3.8))
    for variant in dict.fromkeys(t["variant"] for t in table):
        pts = [t for t in table if t["variant"] == variant and t["bd_rate_pct"] is not None]
        if pts:
            ax.plot([t["step"] for t in pts], [t["bd_rate_pct"] for t in pts], "o-", label=variant)
    ax.axhline(0.0, color="k", linewidth=0.8, linestyle=":", label="JPEG 4:2:0")
    ax.set_xlabel("training steps (per λ)")
    ax.set_ylabel("BD-rate vs JPEG 4:2:0 (%)")
    ax.set_title(title, fontsize=9)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)
    fig.tight_layout()
    return fig


def study_curves(rows: Sequence[dict], jpeg: Sequence[dict], title: str) -> plt.Figure:
    """RD curves of the last snapshot of each variant (real bytes, solid) beside the hybrids'
    estimated rate (the model's likelihoods, dotted and labelled), and the JPEG anchor."""
    fig, ax = plt.subplots(figsize=(6.5, 4.2))
    plot_curve(ax, [p["bpp"] for p in jpeg], [p["psnr"] for p in jpeg], "JPEG 4:2:0", color="k")
    for variant in dict.fromkeys(r["variant"] for r in rows):
        last = max(r["step"] for r in rows if r["variant"] == variant)
        pts = [r for r in rows if r["variant"] == variant and r["step"] == last]
        plot_curve(ax, [r["bpp"] for r in pts], [r["psnr"] for r in pts], f"{variant} ({last} steps)")
        if "bpp_estimated" in pts[0]:
            est = sorted(pts, key=lambda r: r["bpp_estimated"])
            ax.plot([r["bpp_estimated"] for r in est], [r["psnr"] for r in est], ":", color=ax.lines[-1].get_color(),
                    label=f"{variant}, estimated rate")
    rd_axes(ax, title=title)
    ax.legend(fontsize=7)
    fig.tight_layout()
    return fig


def bpp_breakdown(rows: Sequence[dict], title: str) -> plt.Figure:
    """Stacked real bytes per RD point of a hybrid: JPEG base / z / y / container."""
    parts = ("bpp_jpeg", "bpp_z", "bpp_y", "bpp_container")
    fig, ax = plt.subplots(figsize=(max(4.0, 0.9 * len(rows) + 2), 3.6))
    labels = [r["label"] for r in rows]
    bottom = [0.0] * len(rows)
    for part in parts:
        vals = [r[part] for r in rows]
        ax.bar(labels, vals, bottom=bottom, label=part.removeprefix("bpp_"))
        bottom = [b + v for b, v in zip(bottom, vals)]
    ax.set_ylabel("bpp (file bytes, mean over images)")
    ax.set_title(title, fontsize=9)
    ax.tick_params(axis="x", labelsize=7, rotation=30)
    ax.legend(fontsize=7)
    fig.tight_layout()
    return fig
