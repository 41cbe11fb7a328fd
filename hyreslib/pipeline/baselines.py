"""Classical codec baselines measured on real files: JPEG, WebP, AVIF, JPEG XL and lossless formats.

Every codec sits behind one interface (``encode(uint8 HxWx3, quality) -> bytes``, ``decode(bytes)
-> uint8 HxWx3``), so a sweep measures them all the same way: bpp from the bytes actually written,
PSNR and MS-SSIM from the decoded pixels through :mod:`hyreslib.results.metrics`.

Data flow::

    ImageSet --sweep--> records (ImageRecord, one per image x codec x quality) --mean_curve--> curves per codec
                                                  \\--save_results--> JSON {dataset, records, curves}

Curves are means over images at each quality setting, which is how published curves (e.g.
CompressAI's) are built, so the two can be compared point by point.
"""

from __future__ import annotations

import argparse
import json
import math
import multiprocessing
from collections.abc import Iterable, Sequence
from pathlib import Path

import imagecodecs
import numpy as np
import torch
from tqdm.auto import tqdm

from ..codecs.standard import CODECS, JXL_EFFORT, Codec, _jxl_decode, check_quality, get_codec
from ..core.fileio import atomic_write_bytes
from ..core.images import from_uint8, to_uint8
from ..core.roots import PROJECT_ROOT
from ..datasets.data import ImageSet, test_set
from ..results import metrics, rd
from ..results.records import ImageRecord, measure_file, quality_setting

PUBLISHED_KODAK = PROJECT_ROOT / "data" / "reference" / "kodak_published.json"
# The grid of CompressAI's published JPEG and WebP curves (19 points; matched by measurement).
PUBLISHED_QUALITIES = tuple(range(5, 100, 5))
JXL_DISTANCES = (0.01, 8.0)  # the lossy distances jxl_at_psnr searches (about 57 .. 28 dB on Kodak)


def jxl_at_psnr(arr: np.ndarray, target: float, steps: int = 6) -> tuple[bytes, float]:
    """JPEG XL lossy (effort ``JXL_EFFORT``, 1 thread) at the largest distance found whose PSNR is
    at least ``target`` dB: bisection on log distance over ``JXL_DISTANCES`` (``steps`` encodes, about
    0.3 dB apart on Kodak). The near-lossless anchor "JPEG XL at a matched distance": JPEG XL bounds
    no error, so it is compared at equal PSNR. Returns (file, distance); the smallest distance's
    file when even that misses ``target``."""
    x = from_uint8(arr)
    lo, hi = (math.log(d) for d in JXL_DISTANCES)
    found: tuple[bytes, float] | None = None
    for _ in range(steps):
        distance = math.exp((lo + hi) / 2)
        data = bytes(imagecodecs.jpegxl_encode(arr, distance=distance, effort=JXL_EFFORT, numthreads=1))
        if metrics.psnr(x, from_uint8(_jxl_decode(data))) >= target:
            found, lo = (data, distance), math.log(distance)
        else:
            hi = math.log(distance)
    if found is None:
        distance = JXL_DISTANCES[0]
        found = bytes(imagecodecs.jpegxl_encode(arr, distance=distance, effort=JXL_EFFORT, numthreads=1)), distance
    return found


def measure(codec: Codec, arr: np.ndarray, quality: int | None, image: str = "") -> ImageRecord:
    """Encode and decode one (H, W, 3) uint8 image; rate from the bytes, quality from the pixels."""
    q = None if codec.lossless else int(quality)
    return measure_file(image, codec.name, quality_setting(q), from_uint8(arr), lambda _: codec.encode(arr, quality),
                           lambda data: from_uint8(codec.decode(data)),
                           extra={"quality": q, "description": codec.description})[0]


def _settings(codecs: Sequence[str], qualities: Sequence[int]) -> list[tuple[Codec, int | None]]:
    """(codec, quality) pairs without repeats; a lossless codec is run once, whatever the qualities."""
    pairs = []
    for name in dict.fromkeys(codecs):
        codec = get_codec(name)
        pairs += [(codec, None)] if codec.lossless else [(codec, check_quality(q)) for q in dict.fromkeys(qualities)]
    return pairs


def _image_records(job: tuple[ImageSet, int, list[str], list[int]]) -> list[dict]:
    """All records of one image (one task of a sweep), as :class:`ImageRecord` dictionaries."""
    images, index, codecs, qualities = job
    name, x = images[index]
    arr = to_uint8(x)
    return [measure(codec, arr, q, name).to_dict() for codec, q in _settings(codecs, qualities)]


def _worker_init() -> None:
    torch.set_num_threads(1)  # one core per worker process; threads would only compete


def sweep(images: ImageSet, codecs: Sequence[str], qualities: Sequence[int], workers: int = 1,
          progress: bool = True) -> list[dict]:
    """Measure every image with every codec at every quality.

    Records come image by image, then in the order of ``codecs`` and ``qualities``, whatever the
    number of ``workers`` (separate processes, one image per task, results gathered in order).
    """
    if not codecs:
        raise ValueError("no codec given")
    if not len(images):
        raise ValueError(f"no images in {images.describe()}")
    _settings(codecs, qualities)  # validate before starting any work
    if not qualities and not all(get_codec(c).lossless for c in codecs):
        raise ValueError("no quality given for a lossy codec")
    jobs = [(images, i, list(codecs), list(qualities)) for i in range(len(images))]
    bar = {"total": len(jobs), "desc": f"baselines on {images.name}", "unit": "image", "disable": not progress}
    if workers <= 1 or len(jobs) == 1:
        per_image = [_image_records(job) for job in tqdm(jobs, **bar)]
    else:
        ctx = multiprocessing.get_context("spawn")  # fork after torch/OpenMP start-up can hang
        with ctx.Pool(min(workers, len(jobs)), initializer=_worker_init) as pool:
            per_image = list(tqdm(pool.imap(_image_records, jobs), **bar))
    return [record for records in per_image for record in records]


def mean_curve(records: Iterable[dict]) -> dict[str, dict]:
    """Per codec, per quality: mean bpp, PSNR and MS-SSIM over images, and the image count.

    Returns ``{codec: {"description", "quality": [...], "bpp": [...], "psnr": [...],
    "ms_ssim": [...], "n": [...]}}`` with points in ascending bpp (see :func:`hyreslib.results.rd.mean_curves`);
    a lossless codec has one point with quality ``None``.
    """
    records = list(records)
    descriptions = {r["codec"]: r["description"] for r in records}
    curves = rd.mean_curves(records, curve_key="codec", point_key="quality")
    return {name: {"description": descriptions[name], **curve} for name, curve in curves.items()}


def results(images: ImageSet, records: list[dict]) -> dict:
    """The results document: which data, every measurement, and the mean curves."""
    return {"dataset": images.describe(), "records": records, "curves": mean_curve(records)}


def save_results(path: str | Path, doc: dict) -> Path:
    """Write a results document as JSON, atomically (lossless PSNR is written as ``Infinity``, as
    Python reads it)."""
    return atomic_write_bytes(path, (json.dumps(doc, indent=1) + "\n").encode())


def load_published(path: str | Path = PUBLISHED_KODAK) -> dict:
    """Published Kodak reference curves (``{"curves": {name: {"source", "bpp", "psnr"}}}``): figures
    from the literature for plotting beside measured ones, never results of this kit."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"published reference curves not found at {path}")
    return json.loads(path.read_text())


def format_curves(curves: dict[str, dict]) -> str:
    """A small text table of mean curves for the terminal."""
    lines = [f"{'codec':<14}{'quality':>8}{'bpp':>9}{'PSNR dB':>9}{'MS-SSIM':>9}{'n':>5}"]
    for name, c in curves.items():
        for q, b, p, s, n in zip(c["quality"], c["bpp"], c["psnr"], c["ms_ssim"], c["n"]):
            lines.append(f"{name:<14}{'-' if q is None else q:>8}{b:>9.4f}{p:>9.3f}{s:>9.4f}{n:>5}")
    return "\n".join(lines)


def _cmd_baselines(args: argparse.Namespace) -> int:
    codecs = args.codec or ["jpeg"]
    images = test_set(args.dataset, args.data_root).subset(args.limit)
    print(f"dataset: {images.describe()}")
    for name in codecs:
        print(f"codec {name}: {get_codec(name).description}")
    records = sweep(images, codecs, args.quality, workers=args.workers)
    doc = results(images, records)
    print(format_curves(doc["curves"]))
    if args.out:
        print(f"wrote {save_results(args.out, doc)}")
    return 0


def add_commands(subparsers) -> None:
    p = subparsers.add_parser("baselines", help="rate-distortion sweep of classical codecs (JPEG, WebP, AVIF, JPEG XL...)",
                              description="Encode every test image with classical codecs and report bpp from the "
                                          "real bytes, PSNR and MS-SSIM, per image and as mean curves.")
    p.add_argument("--dataset", default="auto",
                   help="kodak, embedded or a folder of images; auto = Kodak when present, else embedded")
    p.add_argument("--data-root", default=None, help="data folder (default: $HYRES_DATA, else data/)")
    p.add_argument("--codec", action="append", choices=list(CODECS),
                   help="codec to run; repeat for several (default: jpeg)")
    p.add_argument("--quality", type=int, nargs="+", default=list(PUBLISHED_QUALITIES),
                   help="qualities 1..100 (default: 5 10 ... 95, the published JPEG/WebP grid)")
    p.add_argument("--limit", type=int, default=None, help="use only the first N images")
    p.add_argument("--workers", type=int, default=min(2, multiprocessing.cpu_count()),
                   help="worker processes (default: up to 2)")
    p.add_argument("--out", default=None, help="write the results JSON here")
    p.set_defaults(func=_cmd_baselines)
