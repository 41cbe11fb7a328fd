"""Rate-distortion curves gathered from a run, and Bjøntegaard tables between them.

Every measured point of the kit reaches here as a per-image record (:class:`~hyreslib.results.records.ImageRecord`
as a dictionary: ``codec`` names the curve, ``setting`` the point; classical codecs from notebook 00,
reconstructions saved by the other notebooks through :mod:`hyreslib.results.recons`). Curves are means over
images per point, restricted to the images every curve has, so that all curves in one table or figure
describe the same images.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable, Sequence
from pathlib import Path

import numpy as np

from ..core.fileio import atomic_write_bytes
from .metrics import bd_psnr, bd_rate
from .recons import Reconstruction
from .records import ImageRecord

Curves = dict[str, dict[str, list]]


def mean_curves(records: Iterable[dict], curve_key: str = "codec", point_key: str = "setting",
                images: set[str] | None = None) -> Curves:
    """``{curve: {point_key: [...], "bpp", "psnr", "ms_ssim", "n"}}``, points in ascending order
    of bpp, each the mean over its images (only ``images`` when given). An image measured twice
    at the same point (e.g. by two notebooks) counts once: the later record wins."""
    unique = {(r[curve_key], r[point_key], r["image"]): r for r in records
              if images is None or r["image"] in images}
    groups: dict[str, dict] = {}
    for (curve, point, _), r in unique.items():
        groups.setdefault(curve, {}).setdefault(point, []).append(r)
    curves: Curves = {}
    for name, points in groups.items():
        rows = []
        for key, rs in points.items():
            ms = [r["ms_ssim"] for r in rs if r.get("ms_ssim") is not None]
            rows.append((float(np.mean([r["bpp"] for r in rs])), key, float(np.mean([r["psnr"] for r in rs])),
                         float(np.mean(ms)) if len(ms) == len(rs) else None, len(rs)))
        rows.sort(key=lambda t: t[0])
        curves[name] = {point_key: [t[1] for t in rows], "bpp": [t[0] for t in rows],
                        "psnr": [t[2] for t in rows], "ms_ssim": [t[3] for t in rows], "n": [t[4] for t in rows]}
    return curves


def classical_records(doc: dict) -> list[dict]:
    """Records of notebook 00's ``classical.json`` (lossless formats left out of RD curves); older
    files, written before the record had a ``setting``, are read too."""
    records = (ImageRecord.from_dict(r) for r in doc["records"])
    return [r.to_dict() for r in records if not r.lossless and r.setting != "lossless"]


def recon_records(recons: Iterable[Reconstruction]) -> list[dict]:
    return [ImageRecord(r.image, r.curve, r.label, r.bpp, r.psnr, r.ms_ssim).to_dict() for r in recons]


def common_images(records: Sequence[dict]) -> set[str]:
    """Images present in every curve."""
    per_curve: dict[str, set[str]] = {}
    for r in records:
        per_curve.setdefault(r["codec"], set()).add(r["image"])
    return set.intersection(*per_curve.values()) if per_curve else set()


def bd_table(curves: Curves, anchors: Sequence[str]) -> list[dict]:
    """BD-rate (%) and BD-PSNR (dB) of every curve against each anchor present; where a value
    cannot be computed it is ``None`` and ``note`` says why (:func:`why_not_comparable`)."""
    rows = []
    for anchor in (a for a in anchors if a in curves):
        ref = curves[anchor]
        for name, cur in curves.items():
            if name == anchor:
                continue
            row = {"codec": name, "anchor": anchor, "bd_rate_pct": None, "bd_psnr_db": None,
                   "points": len(cur["bpp"]), "note": ""}
            notes = []
            for key, fn, axis in (("bd_rate_pct", bd_rate, "psnr"), ("bd_psnr_db", bd_psnr, "bpp")):
                try:
                    row[key] = fn(ref["bpp"], ref["psnr"], cur["bpp"], cur["psnr"])
                except ValueError as exc:
                    notes.append(why_not_comparable(cur, ref, axis, exc))
            row["note"] = "; ".join(dict.fromkeys(notes))
            rows.append(row)
    return rows


def why_not_comparable(cur: dict, ref: dict, axis: str, exc: ValueError) -> str:
    """Why a BD value is missing, in the reader's terms: too few points, or no common range on
    ``axis`` (``"psnr"`` for BD-rate, which averages over quality; ``"bpp"`` for BD-PSNR)."""
    n = min(len(cur["bpp"]), len(ref["bpp"]))
    if n < 2:
        return f"{n} point{'s' if n != 1 else ''}: a BD value needs two or more on each curve"
    unit, fmt = (" dB", ".1f") if axis == "psnr" else (" bpp", ".3f")
    lo, hi, rlo, rhi = min(cur[axis]), max(cur[axis]), min(ref[axis]), max(ref[axis])
    if max(lo, rlo) < min(hi, rhi):
        return str(exc)  # e.g. repeated points
    return (f"no common {'PSNR' if axis == 'psnr' else 'bitrate'} range ({lo:{fmt}}–{hi:{fmt}}{unit} vs the "
            f"anchor's {rlo:{fmt}}–{rhi:{fmt}}{unit})")


def _fmt(v: float | None, spec: str) -> str:
    return "n/a" if v is None else format(v, spec)


def write_table(rows: Sequence[dict], stem: str | Path) -> tuple[Path, Path]:
    """The BD table as CSV and as a Markdown table (``stem.csv``, ``stem.md``)."""
    stem = Path(stem)
    csv_path, md_path = stem.with_suffix(".csv"), stem.with_suffix(".md")
    fields = ["codec", "anchor", "bd_rate_pct", "bd_psnr_db", "points", "note"]
    table = io.StringIO(newline="")
    w = csv.DictWriter(table, fieldnames=fields)
    w.writeheader()
    w.writerows(rows)
    atomic_write_bytes(csv_path, table.getvalue().encode())
    lines = ["| codec | anchor | BD-rate (%) | BD-PSNR (dB) | points | note |", "|---|---|---:|---:|---:|---|"]
    lines += [f"| {r['codec']} | {r['anchor']} | {_fmt(r['bd_rate_pct'], '+.1f')} | "
              f"{_fmt(r['bd_psnr_db'], '+.2f')} | {r['points']} | {r.get('note', '')} |" for r in rows]
    atomic_write_bytes(md_path, ("\n".join(lines) + "\n").encode())
    return csv_path, md_path
