"""Figures for the hideNet notebook (01), drawn with :mod:`hyreslib.results.plotting`: the split pieces,
training curves, per-level prediction quality, predictions and their errors, where a file's bits go,
progressive decoding, and near-lossless rate against PSNR beside the anchors."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import matplotlib.pyplot as plt
import torch

from ..results.plotting import curve_style, image_grid, rd_axes, signed_map
from ..training.engine import History
from .colour import to_pixels
from .predictors import Predictor
from .split import Pyramid, split_axis, split_once


def split_pieces(pyr: Pyramid) -> plt.Figure:
    """The base and every odd set of one image, in decoding order (each scaled to one box)."""
    shown = {f"base {pyr.base.shape[-1]}x{pyr.base.shape[-2]}": pyr.base[0]}
    shown.update({f"odd set {k} ({'cols' if k % 2 == 0 else 'rows'}) {o.shape[-1]}x{o.shape[-2]}": o[0]
                  for k, o in reversed(list(enumerate(pyr.odds)))})
    return image_grid(shown, cols=5, size=2.4,
                      suptitle="The pieces, in decoding order (scaled to one box; sizes in the titles)")


def training(histories: Mapping[str, History], fixed_bpsp: float) -> plt.Figure:
    """Training and validation rate of each learned predictor, the fixed predictor's as a line."""
    fig, ax = plt.subplots(figsize=(6.5, 3.5))
    for arch, hist in histories.items():
        ax.plot([r["step"] for r in hist.rows], [r["loss"] for r in hist.rows], label=f"{arch} (train)")
        ax.plot([r["step"] for r in hist.val_rows], [r["loss"] for r in hist.val_rows], "o--",
                label=f"{arch} (validation)")
    ax.axhline(fixed_bpsp, color="k", lw=1, ls=":", label="fixed (validation)")
    ax.set(xlabel="step", ylabel="bits per sub-pixel (levels only)", title="Training on the lossless rate")
    ax.legend()
    return fig


def prediction_psnr(quality: Mapping[str, Mapping[str, float]], levels: int) -> plt.Figure:
    """PSNR of each predictor's rounded mean per level (:func:`.evaluate.prediction_quality` results)."""
    fig, ax = plt.subplots(figsize=(6.5, 3.5))
    for i, (name, q) in enumerate(quality.items()):  # learned predictors start as the fixed one: curves can coincide
        ax.plot(range(levels), [q[f"psnr_l{k}"] for k in range(levels)], label=name,
                **curve_style(i, len(quality)))
    ax.set(xlabel="level (0 = finest)", ylabel="PSNR of predicted odd pixels (dB)",
           title="Prediction quality per level")
    ax.legend()
    return fig


@torch.no_grad()
def predictions(image: torch.Tensor, fixed: Predictor, learned: Predictor, label: str, title: str) -> plt.Figure:
    """Level 0 of ``image`` ((3, H, W) in [0, 1]): the true odd columns, both predictions, their
    errors (x4 around grey) and the learned scale (brighter = less certain). Both predictors must
    code in the same colour space."""
    if fixed.colour != learned.colour:
        raise ValueError(f"predictors in different colour spaces: {fixed.colour}, {learned.colour}")
    even, odd = split_once(to_pixels(image.unsqueeze(0), learned.colour), split_axis(0))
    m_fixed, _ = fixed(even, odd, 0)
    m_learn, s_learn = learned(even, odd, 0)

    def as_rgb(t: torch.Tensor) -> torch.Tensor:
        return learned.space.inverse(t[0]).div(255)

    shown = {"true odd columns": as_rgb(odd), "fixed prediction": as_rgb(m_fixed.round()),
             f"{label} prediction": as_rgb(m_learn.round()),
             "fixed error (x4)": signed_map(as_rgb(odd) - as_rgb(m_fixed.round())),
             f"{label} error (x4)": signed_map(as_rgb(odd) - as_rgb(m_learn.round())),
             f"{label} scale": (s_learn[0].mean(0, keepdim=True) / s_learn.max()).sqrt().expand(3, -1, -1)}
    return image_grid(shown, cols=3, size=3.0, suptitle=title)


def bits_per_part(parts: Mapping[str, int], subpixels: int, title: str) -> plt.Figure:
    """Bits of each part of a file (:func:`.evaluate.level_bytes`) per sub-pixel of the image."""
    fig, ax = plt.subplots(figsize=(7, 3.2))
    ax.bar(list(parts), [8 * v / subpixels for v in parts.values()])
    ax.set(ylabel="bits per sub-pixel of the image", title=title)
    ax.tick_params(axis="x", rotation=45)
    return fig


def progressive(rows: Sequence[dict]) -> plt.Figure:
    """Top: the low-resolution images of :func:`.evaluate.progressive`; bottom: the full-size previews."""
    shown = {f"{r['size'][1]}x{r['size'][0]} ({r['levels']} levels)": r["lowres"] for r in rows}
    shown.update({f"preview {r['levels']} levels: {r['bpp']:.2f} bpp, {r['psnr']:.1f} dB": r["preview"] for r in rows})
    return image_grid(shown, cols=len(rows), size=2.6, suptitle="Progressive decoding")


def near_lossless(curves: Mapping[str, Sequence[dict]], anchors: Sequence[dict] = ()) -> plt.Figure:
    """PSNR against bpp: hideNet's near-lossless curve (labelled with the bound) and generative point
    per predictor (:func:`.evaluate.curve_means` rows), and each anchor codec of
    :func:`.evaluate.near_lossless_table` rows (keys other than ``bound`` and ``hidenet-*``)."""
    fig, ax = plt.subplots(figsize=(6.5, 4))
    for i, (name, rows) in enumerate(curves.items()):
        pts = [r for r in rows if r["mode"] == "near-lossless"]
        ax.plot([r["bpp"] for r in pts], [r["psnr"] for r in pts], "o-", label=f"hideNet-{name} near-lossless")
        for r in pts if i == 0 else ():   # the bounds once: the curves lie close together
            ax.annotate(f"δ={r['bound']}", (r["bpp"], r["psnr"]), fontsize=7, xytext=(3, 3),
                        textcoords="offset points")
        for g in (r for r in rows if r["mode"] == "generative"):
            ax.plot([g["bpp"]], [g["psnr"]], "x", ms=9, label=f"hideNet-{name} generative")
    codecs = dict.fromkeys(k for row in anchors for k in row if k != "bound" and not k.startswith("hidenet-"))
    for codec_name in codecs:
        pts = [row[codec_name] for row in anchors if codec_name in row]
        ax.plot([p["bpp"] for p in pts], [p["psnr"] for p in pts], "s--", ms=4, label=codec_name)
    rd_axes(ax, title="Near-lossless: PSNR vs bpp (real files)")
    ax.legend(fontsize=8)
    return fig
