"""Measure the codec on an image set through real files: every number comes from the bytes of an
encoded ``.hyr`` and from its real decode, never from the training forward pass.

Per image: the bpp breakdown (JPEG / z / y / container framing), PSNR and MS-SSIM of the decoded
image and of the JPEG base alone, encode/decode seconds, whether the decoder rebuilt the
encoder's latent exactly, and the rate the model *estimates* for the same residual next to the
real residual bits.
"""

from __future__ import annotations

import math
from collections import Counter
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
from tqdm.auto import tqdm

from ..codecs import jpeg as jpeg_io
from ..core.fileio import atomic_write_bytes
from ..datasets.data import ImageSet
from ..results import manifest, recons
from ..results.metrics import bpp, ms_ssim, psnr
from ..results.records import ImageRecord
from . import bitstream
from .codec import HyresCodec, JpegSettings


def file_parts(data: bytes) -> dict[str, int]:
    """Bytes of a ``.hyr`` file by part: the JPEG base, z, y (both passes) and the container."""
    size = bitstream.breakdown(data)
    return {"jpeg": size["jpeg"], "z": size["z"], "y": size["y_anchor"] + size["y_non_anchor"],
            "container": size["container"]}


def evaluate_image(codec: HyresCodec, x: torch.Tensor, quality: int | None = None, estimate: bool = True,
                   save_to: Path | None = None, image: str = "") -> dict:
    """Metrics of one image, an :class:`~hyreslib.results.records.ImageRecord` as a dictionary (the bpp
    parts, the base's PSNR, the mode, real and estimated bits in ``extra``); with ``save_to``, also
    writes the ``.hyr`` file there."""
    h, w = x.shape[-2:]
    t0 = time.perf_counter()
    enc = codec.encode_detailed(x, quality)
    t1 = time.perf_counter()
    dec = codec.decode_detailed(enc.data)
    t2 = time.perf_counter()
    if save_to is not None:
        atomic_write_bytes(save_to, enc.data)
    parts = file_parts(enc.data)
    real = {"y": 8 * parts["y"], "z": 8 * parts["z"]}
    extra = {"psnr_jpeg": psnr(dec.base, x), "latents_exact": bool(torch.equal(enc.y_hat, dec.y_hat)),
             "mode": enc.mode, "real_bits_y": real["y"], "real_bits_z": real["z"]}
    if estimate:
        est = codec.estimate_bits(x, quality)
        extra.update({"est_bits_y": est["y"], "est_bits_z": est["z"],
                      "rate_gap": (real["y"] + real["z"]) / (est["y"] + est["z"]) - 1.0})
    setting = f"λ={codec.lmbda} q{codec.jpeg.quality if quality is None else quality}"
    return ImageRecord(image, "HyRES", setting, bpp(len(enc.data), h, w), psnr(dec.image, x), ms_ssim(dec.image, x),
                       len(enc.data), w, h, t1 - t0, t2 - t1, {k: bpp(v, h, w) for k, v in parts.items()},
                       extra).to_dict()


def evaluate(codec: HyresCodec, images: ImageSet, quality: int | None = None, estimate: bool = True,
             out_dir: str | Path | None = None, progress: bool = True) -> list[dict]:
    """One record per image (see :func:`evaluate_image`); ``<image>.hyr`` files go to ``out_dir``
    when given."""
    rows = []
    for name, x in tqdm(images, desc="encode/decode", disable=not progress, leave=False):
        save_to = Path(out_dir) / f"{name}.hyr" if out_dir is not None else None
        rows.append(evaluate_image(codec, x, quality, estimate, save_to, name))
    return rows


# What prune() leaves out: a part of the codec that lowers the validation images' rate-distortion cost by less
# than this fraction only costs time. The cost λ·255²·MSE + bpp is in bits per pixel, so 0.1 % of it is about
# 0.1 % of the rate at equal quality (a BD-rate far below what a curve can show).
PRUNE_TOLERANCE = 1e-3
# Modes in the order prune() tries to drop them: the most expensive to search first (the latent costs an
# analysis, entropy coding and a synthesis; latent-free a synthesis; base-only nothing).
PRUNE_ORDER = ("latent", "latent-free", "base-only")


def prune(codec: HyresCodec, images: Sequence[tuple[str, torch.Tensor]], tolerance: float = PRUNE_TOLERANCE,
          progress: bool = True) -> tuple[HyresCodec, dict[str, Any]]:
    """``codec`` without what does not pay on ``images`` (validation images), and what was measured.

    Each image is encoded in every coding mode (real files). The refiner stays when decoding the
    best files with it lowers their total rate-distortion cost by at least ``tolerance``; then
    modes are dropped from the encoder's search (:data:`PRUNE_ORDER`) while the images' total
    cost with the best remaining mode stays within ``tolerance`` of the full search's. The
    returned codec shares ``codec``'s networks.
    """
    if codec.lmbda is None:
        raise ValueError("a codec without λ has no rate-distortion cost to prune by")
    table, plain, refined = [], 0.0, 0.0
    for _, x in tqdm(images, desc="prune", disable=not progress, leave=False):
        options = codec.encode_modes(x, bitstream.MODES)
        table.append({e.mode: e.cost for e in options})
        best = min(options, key=lambda e: e.cost)
        plain += best.cost
        if codec.refine is not None:
            refined += codec.rd_cost(codec.decode(best.data), x, best.data)

    def total(modes: Sequence[str]) -> float:
        return sum(min(costs[m] for m in modes) for costs in table)

    modes = list(bitstream.MODES)
    for m in PRUNE_ORDER:
        fewer = [k for k in modes if k != m]
        if fewer and total(fewer) <= plain * (1 + tolerance):
            modes = fewer
    out = codec.with_modes(modes)
    gain = plain / refined - 1 if codec.refine is not None else 0.0
    out.refine = codec.refine if gain >= tolerance else None
    return out, {"images": len(table), "modes": list(out.modes), "mode_cost": total(modes) / plain - 1,
                 "wins": dict(Counter(min(costs, key=costs.get) for costs in table)),
                 "refiner_gain": gain, "refiner_kept": out.refine is not None}


def summarize(rows: Sequence[dict]) -> dict[str, float]:
    """Means over images; ``modes`` counts the images per coding mode, and the rate gap is
    aggregated over the bits of those that coded a latent (sum real / sum estimated - 1)."""
    if not rows:
        raise ValueError("no rows to summarise")
    keys = [k for k, v in rows[0].items() if isinstance(v, (int, float)) and not isinstance(v, bool)]
    out = {k: sum(r[k] for r in rows) / len(rows) for k in keys if k != "rate_gap"}
    out["images"] = len(rows)
    out["latents_exact"] = all(r["latents_exact"] for r in rows)
    out["modes"] = dict(Counter(r["mode"] for r in rows))
    coded = [r for r in rows if r["mode"] == "latent"]
    if "est_bits_y" in rows[0]:
        real = sum(r["real_bits_y"] + r["real_bits_z"] for r in coded)
        est = sum(r["est_bits_y"] + r["est_bits_z"] for r in coded)
        out["rate_gap"] = real / est - 1.0 if coded else math.nan
    return out


def jpeg_curve(images: ImageSet, qualities: Sequence[int], settings: JpegSettings) -> list[dict]:
    """The base layer alone at several qualities: mean bpp (file bytes) and PSNR."""
    out = []
    for q in qualities:
        rates, quals = [], []
        for _, x in images:
            batch = jpeg_io.roundtrip(x, q, settings.subsampling, settings.optimize, backend="cpu")
            rates.append(bpp(batch.nbytes[0], *x.shape[-2:]))
            quals.append(psnr(batch.decoded[0], x))
        out.append({"quality": q, "bpp": sum(rates) / len(rates), "psnr": sum(quals) / len(quals)})
    return out


FILE_PREFIX = "hyr:"


def file_artifact(tag: str, image: str) -> str:
    """The manifest name of the ``.hyr`` file of ``image`` in the set ``tag`` (e.g. a λ phase)."""
    return f"{FILE_PREFIX}{tag}/{image}"


def record_files(run: manifest.Run, rows: Sequence[dict], files: str | Path, tag: str) -> None:
    """Register the ``.hyr`` files :func:`evaluate` wrote for ``rows`` as artifacts of the run, so
    that a later notebook reads them through the manifest, SHA-256 checked (:func:`file_artifact`)."""
    for r in rows:
        run.add_artifact(file_artifact(tag, r["image"]), Path(files) / f"{r['image']}.hyr")


def record_reconstructions(run: manifest.Run, codec: HyresCodec, rows: Sequence[dict], files: str | Path,
                           label: str, curve: str = "HyRES") -> Path:
    """Decode the ``.hyr`` files written by :func:`evaluate` and store the images as one RD point
    for the run's comparison notebooks (:mod:`hyreslib.results.recons`): what is stored is what the
    files decode to."""
    files = Path(files)
    decoded = ((r["image"], codec.decode((files / f"{r['image']}.hyr").read_bytes()), r["bpp"], r["psnr"], r["ms_ssim"])
               for r in rows)
    return recons.save(run, label, decoded, curve=curve)


def record_shipped(run: manifest.Run, images: Sequence[tuple[str, torch.Tensor]], name: str | None = None,
                   ) -> list[dict]:
    """The kit's shipped curve (every model of the default's group, or of ``name``'s) on ``images``,
    each model at its own base quality, through real files: stored as reconstructions of the curve
    ``shipped (<group>)`` for the comparison notebooks, and returned as image records whose codec
    is that curve and whose setting is the model's name."""
    from ..pipeline import models

    curve, members = models.curve(name)
    records = []
    for entry in members:
        codec = models.load(entry.name)
        files = run.path(f"shipped/{entry.name}/x").parent
        rows = evaluate(codec, images, estimate=False, out_dir=files, progress=False)
        record_reconstructions(run, codec, rows, files, label=f"{curve} λ={entry.lmbda} q{entry.base_quality}",
                               curve=curve)
        records += [{**r, "codec": curve, "setting": entry.name} for r in rows]
    return records
