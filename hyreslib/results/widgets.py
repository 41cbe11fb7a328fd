"""Side-by-side comparison of reconstructions with ipywidgets.

Every control calls one :meth:`ReconstructionComparer.render`, which computes the view from the
control values alone; tests drive it headless by setting ``.value`` on the controls. In a batch
run (papermill) :meth:`static_figure` draws the same view with matplotlib, so executed notebooks
and HTML exports show the comparison without a live kernel.

Data flow::

    (image, label) --load/cache--> full image --crop(zoom, centre)--> view A, view B
        --mode--> side by side | wipe at x | |A - B| x 4 --> PNG bytes in widgets.Image + caption
"""

from __future__ import annotations

import html
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path

import torch
import torch.nn.functional as F

from ..core.images import png_bytes
from .recons import Reconstruction

ORIGINAL = "original"
MODES = ("side by side", "wipe", "difference ×4")


class ReconstructionComparer:
    """Choose an image and two reconstructions (or the original), zoom into a crop, and compare
    them side by side, with a before/after wipe, or as an amplified difference."""

    def __init__(self, originals: Mapping[str, torch.Tensor], recons: Sequence[Reconstruction],
                 display_px: int = 512):
        import ipywidgets as W

        if not originals:
            raise ValueError("no original images to compare against")
        self.originals = dict(originals)
        self.recons: dict[str, dict[str, Reconstruction]] = {}
        for r in recons:
            if r.image in self.originals:
                self.recons.setdefault(r.image, {})[r.label] = r
        self.display_px = display_px
        self._cache: dict[tuple[str, str], torch.Tensor] = {}
        self._switching = False  # see _quiet()

        first = sorted(self.originals)[0]
        labels = self.labels(first)
        self.image = W.Dropdown(options=sorted(self.originals), value=first, description="image")
        self.left = W.Dropdown(options=labels, value=labels[0], description="A")
        self.right = W.Dropdown(options=labels, value=labels[-1], description="B")
        self.mode = W.ToggleButtons(options=MODES, value=MODES[0])
        self.wipe = W.FloatSlider(value=0.5, min=0.0, max=1.0, step=0.01, description="wipe")
        self.zoom = W.IntSlider(value=1, min=1, max=16, description="zoom ×")
        self.cx = W.FloatSlider(value=0.5, min=0.0, max=1.0, step=0.01, description="centre x")
        self.cy = W.FloatSlider(value=0.5, min=0.0, max=1.0, step=0.01, description="centre y")
        self.view_a = W.Image(format="png")
        self.view_b = W.Image(format="png")
        self.caption = W.HTML()
        self.image.observe(self._on_image, names="value")
        for w in (self.left, self.right, self.mode, self.wipe, self.zoom, self.cx, self.cy):
            w.observe(self._on_control, names="value")
        self.ui = W.VBox([W.HBox([self.image, self.left, self.right]), self.mode,
                          W.HBox([self.zoom, self.cx, self.cy]), self.wipe,
                          W.HBox([self.view_a, self.view_b]), self.caption])
        self.ui.add_class("hyres-viewer")  # how the browser test finds it on the page
        self.render()

    # --- data -----------------------------------------------------------------------------
    def labels(self, image: str) -> list[str]:
        return [ORIGINAL, *sorted(self.recons.get(image, {}))]

    def pixels(self, image: str, label: str) -> torch.Tensor:
        key = (image, label)
        if key not in self._cache:
            self._cache[key] = self.originals[image] if label == ORIGINAL else self.recons[image][label].load()
        return self._cache[key]

    def describe(self, image: str, label: str) -> str:
        if label == ORIGINAL:
            return "original"
        r = self.recons[image][label]
        extra = f", MS-SSIM {r.ms_ssim:.4f}" if r.ms_ssim is not None else ""
        return f"{label}: {r.bpp:.3f} bpp, {r.psnr:.2f} dB{extra}"

    def default_pair(self, image: str) -> tuple[str, str]:
        """(A, B) for a first look: the JPEG base against the best HyRES reconstruction (highest
        PSNR, refined or not) of ``image``; without them, the original and the best of the rest."""
        here = list(self.recons.get(image, {}).values())
        base = [r.label for r in here if r.curve == "JPEG base"]
        hyres = [r for r in here if r.curve.startswith("HyRES")] or [r for r in here if r.curve != "JPEG base"]
        best = max(hyres, key=lambda r: r.psnr).label if hyres else ORIGINAL
        return (base[0] if base else ORIGINAL), best

    def shipped_pair(self, image: str) -> tuple[str, str] | None:
        """(shipped, this run's) for ``image``: the best HyRES reconstruction of the run against the
        shipped model's reconstruction nearest to it in bpp; None when the run has no shipped curve."""
        here = list(self.recons.get(image, {}).values())
        shipped = [r for r in here if r.curve.startswith("shipped")]
        mine = [r for r in here if r.curve.startswith("HyRES")]
        if not shipped or not mine:
            return None
        best = max(mine, key=lambda r: r.psnr)
        return min(shipped, key=lambda r: abs(r.bpp - best.bpp)).label, best.label

    def select(self, image: str | None = None, a: str | None = None, b: str | None = None) -> None:
        """Show ``image`` with A and B (each defaulting to :meth:`default_pair` of the image)."""
        image = image or self.image.value
        pair = self.default_pair(image)
        self.image.value = image
        with self._quiet():
            self.left.value, self.right.value = a or pair[0], b or pair[1]
        self.render()

    # --- view -----------------------------------------------------------------------------
    def crop(self, img: torch.Tensor) -> torch.Tensor:
        """The zoomed window around (cx, cy), enlarged with nearest neighbour (pixels stay pixels)."""
        _, h, w = img.shape
        ch, cw = max(1, h // self.zoom.value), max(1, w // self.zoom.value)
        top = min(max(0, round(self.cy.value * h - ch / 2)), h - ch)
        left = min(max(0, round(self.cx.value * w - cw / 2)), w - cw)
        win = img[:, top:top + ch, left:left + cw]
        scale = max(1, self.display_px // max(ch, cw))
        return F.interpolate(win[None], scale_factor=scale, mode="nearest")[0] if scale > 1 else win

    def views(self) -> tuple[torch.Tensor, torch.Tensor | None]:
        """(first panel, second panel or None) for the current control values."""
        a = self.crop(self.pixels(self.image.value, self.left.value))
        b = self.crop(self.pixels(self.image.value, self.right.value))
        if self.mode.value == "wipe":
            cut = round(self.wipe.value * a.shape[-1])
            out = b.clone()
            out[..., :cut] = a[..., :cut]
            return out, None
        if self.mode.value == MODES[2]:
            return a, ((a - b).abs() * 4).clamp(0, 1)
        return a, b

    def render(self) -> None:
        first, second = self.views()
        self.view_a.value = png_bytes(first)
        self.view_b.value = png_bytes(second) if second is not None else b""
        self.view_b.layout.display = None if second is not None else "none"
        self.wipe.layout.display = None if self.mode.value == "wipe" else "none"
        img = self.image.value
        self.caption.value = (f"<b>{html.escape(img)}</b> — A: {html.escape(self.describe(img, self.left.value))}"
                              f" | B: {html.escape(self.describe(img, self.right.value))}")

    def _on_control(self, _change) -> None:
        if not self._switching:
            self.render()

    @contextmanager
    def _quiet(self) -> Iterator[None]:
        """Change several controls with one render (by the caller) instead of one per control."""
        self._switching = True
        try:
            yield
        finally:
            self._switching = False

    def _on_image(self, change) -> None:
        """Keep A and B when the new image has them too. (Swapping options inside
        ``hold_trait_notifications`` lost the choice: the held index reset won over the new value.)"""
        labels = self.labels(change["new"])
        keep_a = self.left.value if self.left.value in labels else labels[0]
        keep_b = self.right.value if self.right.value in labels else labels[-1]
        with self._quiet():
            for w, keep in ((self.left, keep_a), (self.right, keep_b)):
                w.options = labels
                w.value = keep
        self.render()

    def static_figure(self, path: str | Path | None = None, **controls):
        """The current view as a matplotlib figure (saved deterministically when ``path`` is given).

        ``controls`` (e.g. ``mode="wipe", zoom=3``) apply to this figure only: the live widget keeps
        the user's settings."""
        saved = {name: getattr(self, name).value for name in controls}
        with self._quiet():
            for name, value in controls.items():
                getattr(self, name).value = value
        try:
            return self._draw(path)
        finally:
            with self._quiet():
                for name, value in saved.items():
                    getattr(self, name).value = value

    def _draw(self, path: str | Path | None):
        import matplotlib.pyplot as plt

        from ..core.images import to_uint8
        from .plotting import savefig

        first, second = self.views()
        panels = [first] + ([second] if second is not None else [])
        img = self.image.value
        titles = ([f"{self.describe(img, self.left.value)} | {self.describe(img, self.right.value)}"]
                  if second is None else
                  [self.describe(img, self.left.value),
                   "|A − B| × 4" if self.mode.value == MODES[2] else self.describe(img, self.right.value)])
        aspect = first.shape[-2] / first.shape[-1]
        fig, axes = plt.subplots(1, len(panels), figsize=(6 * len(panels), 6 * aspect + 0.9), squeeze=False)
        for ax, panel, title in zip(axes[0], panels, titles):
            ax.imshow(to_uint8(panel), interpolation="nearest")
            ax.set_title(title, fontsize=9)
            ax.axis("off")
        fig.suptitle(f"{img} (zoom ×{self.zoom.value})")
        fig.tight_layout()
        if path is not None:
            savefig(fig, Path(path).with_suffix(""), formats=(Path(path).suffix.lstrip(".") or "png",))
        return fig

    def _repr_mimebundle_(self, **kwargs):
        return self.ui._repr_mimebundle_(**kwargs)
