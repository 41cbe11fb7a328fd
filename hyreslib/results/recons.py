"""Reconstructions saved by notebooks, for the RD notebook and the comparison viewer.

A notebook that decodes test images stores them with :func:`save` under a *label* (one RD point,
e.g. ``"HyRES λ=0.045"``) belonging to a *curve* (e.g. ``"HyRES"``): lossless PNGs plus an index
with each image's bpp (from the real file) and quality, registered in its manifest as the artifact
``recon:<label>``.
:func:`collect` finds every such set in a run by reading the manifests; :func:`read` reads one index
(the running notebook's own, before its manifest is written).
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import torch

from ..core.fileio import atomic_write_json, safe_name
from ..core.images import load_image, save_image
from . import manifest

PREFIX = "recon:"


@dataclass(frozen=True)
class Reconstruction:
    label: str
    image: str
    path: Path
    bpp: float
    psnr: float
    ms_ssim: float | None = None
    notebook: str = ""
    curve: str = ""

    def load(self) -> torch.Tensor:
        return load_image(self.path)


def save(run: manifest.Run, label: str, items: Iterable[tuple[str, torch.Tensor, float, float, float | None]],
         curve: str | None = None) -> Path:
    """Store (image name, decoded tensor, bpp, psnr, ms_ssim) rows under ``label`` as one point
    of ``curve`` (default: the label itself); returns the index path."""
    folder = run.path(f"recon/{safe_name(label, 'recon')}/x").parent
    rows = []
    for name, img, bpp, psnr, msssim in items:
        png = save_image(img, folder / f"{name}.png")
        rows.append({"image": name, "file": png.name, "bpp": float(bpp), "psnr": float(psnr),
                     "ms_ssim": None if msssim is None else float(msssim)})
    index = atomic_write_json(folder / "index.json", {"label": label, "curve": curve or label, "rows": rows})
    run.add_artifact(PREFIX + label, index)
    return index


def read(index: str | Path, notebook: str = "") -> list[Reconstruction]:
    """The reconstructions of one index written by :func:`save` (e.g. by the notebook that is
    running, before its manifest exists)."""
    index = Path(index)
    doc = json.loads(index.read_text())
    return [Reconstruction(doc["label"], r["image"], index.parent / r["file"], r["bpp"], r["psnr"], r.get("ms_ssim"),
                           notebook, doc["curve"]) for r in doc["rows"]]


def collect(run_dir: str | Path) -> list[Reconstruction]:
    """Every reconstruction recorded in the run's manifests (artifact hashes are checked)."""
    found = []
    for nb in manifest.available(run_dir):
        m = manifest.load(run_dir, nb)
        found += [r for name in m.record["artifacts"] if name.startswith(PREFIX) for r in read(m.artifact(name), nb)]
    return found
