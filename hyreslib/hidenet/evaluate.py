"""Evaluation of hideNet predictors and of the codec built on them, always from real bytes.

* :func:`prediction_quality`: per level, how well a predictor guesses the odd set from the TRUE
  even set (PSNR and per-image SSIM of the rounded mean, ideal code length in bits per sub-pixel).
* :func:`lossless_table`: bits per sub-pixel of real files, hideNet (learned / fixed) beside PNG,
  WebP lossless and JPEG XL lossless measured in the same run; every hideNet file is decoded and
  checked bit-exact.
* :func:`ablation_table`: what each coding option (YCoCg-R, channel-conditional coding) buys, in
  bits per sub-pixel of real, verified files.
* :func:`near_lossless_curve`: bpp, PSNR and maximum error for several steps (+ generative mode).
* :func:`near_lossless_anchors` / :func:`near_lossless_table`: JPEG-LS at the same maximum error and
  JPEG XL at the matched PSNR, measured in the same run, beside hideNet's near-lossless files.
* :func:`progressive`: what decoding only the k coarsest levels gives, and the bytes it needs.
* :func:`timings`: encode / decode seconds per image beside JPEG XL's (or another baseline's).
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterable, Sequence
from functools import partial

import numpy as np
import torch
from pytorch_msssim import ssim

from ..codecs import standard
from ..codecs.standard import get_codec
from ..core.images import center_crop, from_uint8, to_uint8
from ..pipeline import baselines
from ..results import metrics
from . import bitstream
from .codec import HidenetCodec
from .colour import to_pixels
from .entropy import laplace_bits
from .predictors import FixedPredictor, Predictor
from .split import level_pairs

LOSSLESS_BASELINES = ("png", "webp-lossless", "jxl-lossless", "jxl-lossless-e9", "jpegls-lossless")
# The fixed predictor's option ladder for the ablation: (label, colour space, channel-conditional, revision).
ABLATION_STEPS = (("fixed, RGB, channels independent", "rgb", False, 2),
                  ("fixed, RGB, channel-conditional (version-2 constants)", "rgb", True, 1),
                  ("fixed, RGB, channel-conditional", "rgb", True, 2),
                  ("fixed, YCoCg-R, channels independent", "ycocg-r", False, 2),
                  ("fixed, YCoCg-R + channel-conditional", "ycocg-r", True, 2))
REFERENCE_STEP = ABLATION_STEPS[1][0]     # the codec before the options existed
Images = Iterable[tuple[str, torch.Tensor]]


def _device_of(model: torch.nn.Module) -> torch.device:
    return next((p.device for p in model.parameters()), torch.device("cpu"))


def _ssim(pred: torch.Tensor, true: torch.Tensor) -> float:
    """SSIM of one image (data range 255), window shrunk to fit small grids; NaN below 3 px."""
    side = min(pred.shape[-2:])
    win = min(11, side if side % 2 else side - 1)
    if win < 3:
        return math.nan
    return float(ssim(pred, true, data_range=255.0, win_size=win, size_average=False)[0])


def _psnr(pred: torch.Tensor, true: torch.Tensor) -> float:
    return float(metrics.psnr_from_mse((pred - true).pow(2).mean(), peak=255.0))


@torch.no_grad()
def prediction_quality(predictor: Predictor, images: Images, levels: int, crop: int | None = None) -> dict[str, float]:
    """Per-level PSNR / SSIM (mean over images) and bits per sub-pixel of each level's odd set,
    predicted from the true even set; ``bpsp`` is all levels' bits over all sub-pixels (no base)."""
    was_training = predictor.training
    predictor.eval()
    dev = _device_of(predictor)
    bits = [0.0] * levels
    count = [0] * levels
    psnrs: list[list[float]] = [[] for _ in range(levels)]
    ssims: list[list[float]] = [[] for _ in range(levels)]
    total = 0
    for _, img in images:
        pixels = to_pixels(center_crop(img, crop).unsqueeze(0).to(dev), predictor.colour)
        total += pixels.numel()
        for level, even, odd in level_pairs(pixels, levels):
            if odd.numel() == 0:
                continue
            mean, scale = predictor(even, odd, level)
            bits[level] += float(laplace_bits(odd, mean, scale).sum())
            count[level] += odd.numel()
            psnrs[level].append(_psnr(mean.round(), odd))
            ssims[level].append(_ssim(mean.round(), odd))
    predictor.train(was_training)
    if not total:
        raise ValueError("no images to evaluate")
    out = {"bpsp": sum(bits) / total}
    for level in range(levels):
        if count[level]:
            finite = [p for p in psnrs[level] if math.isfinite(p)]
            valid = [s for s in ssims[level] if not math.isnan(s)]
            out[f"bpsp_l{level}"] = bits[level] / count[level]
            out[f"psnr_l{level}"] = float(np.mean(finite)) if finite else math.inf
            out[f"ssim_l{level}"] = float(np.mean(valid)) if valid else math.nan
    return out


def lossless_table(images: Images, predictors: dict[str, Predictor], levels: int,
                   baselines: Sequence[str] = LOSSLESS_BASELINES) -> list[dict]:
    """One row per image: bits per sub-pixel of each hideNet predictor and each baseline file.

    Raises if any hideNet file does not decode bit-exactly."""
    codecs = {label: HidenetCodec(pred, levels=levels) for label, pred in predictors.items()}
    rows = []
    for name, img in images:
        rgb = to_uint8(img)
        row: dict = {"image": name, "height": rgb.shape[0], "width": rgb.shape[1]}
        for label, codec in codecs.items():
            data = codec.encode(img)
            if not np.array_equal(to_uint8(codec.decode(data)), rgb):
                raise RuntimeError(f"hideNet-{label} lossless round trip failed on {name}")
            row[f"hidenet-{label}"] = metrics.bpp(len(data), *rgb.shape[:2]) / 3
        for base in baselines:
            c = get_codec(base)
            data = c.encode(rgb, None)
            if not np.array_equal(c.decode(data), rgb):
                raise RuntimeError(f"{base} is not lossless on {name}")
            row[base] = metrics.bpp(len(data), *rgb.shape[:2]) / 3
        rows.append(row)
    return rows


def ablation_table(images: Images, levels: int, learned: dict[str, Predictor] | None = None) -> list[dict]:
    """Lossless bits per sub-pixel (mean over ``images``, real files, each decoded and checked
    bit-exact) of the fixed predictor with each option of :data:`ABLATION_STEPS`, then of each
    ``learned`` predictor; ``delta`` and ``saving`` compare with :data:`REFERENCE_STEP`."""
    predictors: dict[str, Predictor] = {label: FixedPredictor(*options) for label, *options in ABLATION_STEPS}
    predictors.update(learned or {})
    per_image = lossless_table(list(images), predictors, levels, baselines=())
    mean = mean_row(per_image)
    ref = mean[f"hidenet-{REFERENCE_STEP}"]
    rows = []
    for label, pred in predictors.items():
        bpsp = mean[f"hidenet-{label}"]
        rows.append({"predictor": label, "colour": pred.colour, "conditional": pred.conditional,
                     "revision": pred.revision, "images": len(per_image), "bpsp": bpsp, "delta": bpsp - ref,
                     "saving": 1 - bpsp / ref})
    return rows


def mean_row(rows: Sequence[dict], label: str = "mean") -> dict:
    """Column means of the numeric entries (size columns excluded)."""
    keys = [k for k in rows[0] if k not in ("image", "height", "width") and isinstance(rows[0][k], (int, float))]
    return {"image": label, **{k: float(np.mean([r[k] for r in rows])) for k in keys}}


def _quality(x: torch.Tensor, y: torch.Tensor) -> dict[str, float]:
    """PSNR, MS-SSIM and the largest 8-bit error of two images on the 8-bit grid."""
    return {"psnr": float(metrics.psnr(x, y)), "ms_ssim": float(metrics.ms_ssim(x, y)),
            "max_err": int((x - y).abs().max().mul(255).round())}


def near_lossless_curve(images: Images, predictor: Predictor, steps: Sequence[int], levels: int,
                        generative: bool = True, decoded: list | None = None) -> list[dict]:
    """Rows (image, mode, step, bound, bytes, bpp, psnr, ms_ssim, max_err) for each near-lossless
    step and (optionally) generative mode, all from decoded files (lossless: :func:`lossless_table`).
    With a ``decoded`` list, each (row, decoded image tensor) pair is appended to it as well."""
    settings = [("near-lossless", q) for q in steps] + ([("generative", 0)] if generative else [])
    codecs = [(mode, q, HidenetCodec(predictor, mode, q or None, levels)) for mode, q in settings]
    rows = []
    for name, img in images:
        x = from_uint8(to_uint8(img))
        for mode, q, codec in codecs:
            data = codec.encode(x)
            rec = codec.decode(data)
            rows.append({"image": name, "mode": mode, "step": q, "bound": (q - 1) // 2 if q else None,
                         "bytes": len(data), "bpp": metrics.bpp(len(data), *x.shape[-2:]), **_quality(x, rec)})
            if decoded is not None:
                decoded.append((rows[-1], rec))
    return rows


def near_lossless_anchors(images: Images, max_errors: Sequence[int]) -> list[dict]:
    """Rows (image, codec, bound, bytes, bpp, psnr, ms_ssim, max_err[, distance]) from decoded files:
    JPEG-LS with every sub-pixel within each maximum error, and JPEG XL at the largest distance whose
    PSNR reaches JPEG-LS's on that image (:func:`hyreslib.pipeline.baselines.jxl_at_psnr`; no error bound)."""
    rows = []
    for name, img in images:
        rgb = to_uint8(img)
        x, size = from_uint8(rgb), rgb.shape[:2]
        for e in max_errors:
            data = standard.jpegls_encode(rgb, e)
            quality = _quality(x, from_uint8(standard.jpegls_decode(data)))
            if quality["max_err"] > e:
                raise RuntimeError(f"JPEG-LS exceeded its maximum error {e} on {name}")
            rows.append({"image": name, "codec": "jpeg-ls", "bound": e, "bytes": len(data),
                         "bpp": metrics.bpp(len(data), *size), **quality})
            data, distance = baselines.jxl_at_psnr(rgb, quality["psnr"])
            rows.append({"image": name, "codec": "jxl (matched PSNR)", "bound": e, "bytes": len(data),
                         "bpp": metrics.bpp(len(data), *size), "distance": distance,
                         **_quality(x, from_uint8(standard.CODECS["jxl"].decode(data)))})
    return rows


def near_lossless_table(curves: dict[str, Sequence[dict]], anchors: Sequence[dict]) -> list[dict]:
    """One row per maximum error: mean bpp and PSNR of each hideNet predictor (``curves``: name ->
    :func:`curve_means` rows) and of each anchor codec (:func:`near_lossless_anchors` rows), and the
    largest error seen per codec."""
    codecs: dict[str, list[dict]] = {f"hidenet-{n}": [r for r in rows if r["mode"] == "near-lossless"]
                                     for n, rows in curves.items()}
    for r in anchors:
        codecs.setdefault(r["codec"], []).append(r)
    table = []
    for bound in sorted({r["bound"] for r in anchors}):
        row: dict = {"bound": bound}
        for codec_name, rows in codecs.items():
            at = [r for r in rows if r["bound"] == bound]
            if at:
                row[codec_name] = {"bpp": float(np.mean([r["bpp"] for r in at])),
                                   "psnr": float(np.mean([r["psnr"] for r in at])),
                                   "max_err": max(r["max_err"] for r in at)}
        table.append(row)
    return table


def curve_means(rows: Sequence[dict]) -> list[dict]:
    """Means over images per (mode, step); max_err is the maximum."""
    groups: dict[tuple, list[dict]] = {}
    for r in rows:
        groups.setdefault((r["mode"], r["step"]), []).append(r)
    out = []
    for (mode, step), rs in groups.items():
        out.append({"mode": mode, "step": step, "bound": rs[0]["bound"], "images": len(rs),
                    "bpp": float(np.mean([r["bpp"] for r in rs])),
                    "psnr": float(np.mean([r["psnr"] for r in rs])),
                    "ms_ssim": float(np.mean([r["ms_ssim"] for r in rs])),
                    "max_err": max(r["max_err"] for r in rs)})
    return out


def level_bytes(data: bytes) -> dict[str, int]:
    """Bytes of each part of a file: header+container overhead, base, and each level."""
    header, chunks = bitstream.read(data)
    parts = {"base": len(chunks[0])}
    for i, chunk in enumerate(chunks[1:]):
        parts[f"level {header.levels - 1 - i}"] = len(chunk)
    parts["overhead"] = len(data) - sum(parts.values())
    return parts


def progressive(image: torch.Tensor, data: bytes, codec: HidenetCodec,
                counts: Sequence[int] | None = None) -> list[dict]:
    """Decode the k coarsest levels for each k in ``counts`` (default 0..L) of ``image``'s file. Each
    row holds the low-resolution image, the full-size preview (remaining levels predicted), its PSNR,
    and the bytes of the file prefix that holds the base and those k levels."""
    header, chunks = bitstream.read(data)
    prefix = len(data) - sum(len(c) for c in chunks[1:])   # container, header and base
    x = from_uint8(to_uint8(image))
    rows = []
    for k in (range(header.levels + 1) if counts is None else counts):
        low = codec.decode(data, levels=k)
        full = codec.decode(data, levels=k, fill=True)
        used = prefix + sum(len(c) for c in chunks[1:1 + k]) if header.mode != "generative" else len(data)
        rows.append({"levels": k, "lowres": low, "preview": full, "size": tuple(low.shape[-2:]),
                     "bytes": used, "bpp": metrics.bpp(used, *x.shape[-2:]), **_quality(x, full)})
    return rows


def _best_times(encode: Callable[[], bytes], decode: Callable[[bytes], object],
                repeats: int) -> tuple[float, float, bytes]:
    """Best-of-``repeats`` seconds of ``encode()`` and ``decode(file)``, and the file."""
    best_enc = best_dec = math.inf
    for _ in range(max(1, repeats)):
        t0 = time.perf_counter()
        data = encode()
        t1 = time.perf_counter()
        decode(data)
        best_enc, best_dec = min(best_enc, t1 - t0), min(best_dec, time.perf_counter() - t1)
    return best_enc, best_dec, data


def timings(images: Images, predictors: dict[str, Predictor], levels: int, mode: str = "lossless", repeats: int = 1,
            baseline: str = "jxl-lossless") -> list[dict]:
    """Per image: ``{"image", <codec>: {"encode_s", "decode_s", "bpsp"}}`` for hideNet with each
    predictor (``hidenet-<label>``; always one thread) and the ``baseline`` codec of the registry
    (default JPEG XL lossless, effort 7, one thread), measured in the same run, best of ``repeats``."""
    base = get_codec(baseline)
    codecs = {f"hidenet-{label}": HidenetCodec(p, mode, levels=levels) for label, p in predictors.items()}
    rows = []
    for name, img in images:
        rgb = to_uint8(img)
        row: dict = {"image": name}
        runs = {label: (partial(c.encode, img), c.decode) for label, c in codecs.items()}
        runs[baseline] = (partial(base.encode, rgb, None), base.decode)
        for label, (encode, decode) in runs.items():
            enc, dec, data = _best_times(encode, decode, repeats)
            row[label] = {"encode_s": enc, "decode_s": dec, "bpsp": metrics.bpp(len(data), *rgb.shape[:2]) / 3}
        rows.append(row)
    return rows
