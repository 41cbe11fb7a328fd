"""``hyres eval``: any codec of the kit on a dataset, through real files, written the way CompressAI
writes its results, so that ``compressai.utils.plot`` and papers' scripts read them as they are.

A codec is a list of :class:`Point` s (one RD point each: a classical codec's quality, a HyRES
checkpoint or shipped model, a hideNet mode). Every image is encoded to bytes and decoded from
those bytes alone; rate comes from the bytes, quality from the decoded pixels::

    Point.encode(x) --> bytes --Point.decode--> x_hat --> ImageRecord (per image, per point)
    records --means over images per point--> {"name", "description", "results": {"bpp": [...],
                                              "psnr-rgb": [...], "ms-ssim-rgb": [...], "encoding_time": [...],
                                              "decoding_time": [...]}}

Means are plain averages over images of the per-image values, as CompressAI's ``eval_model``
takes them (PSNR averaged in dB, not computed from a mean MSE); points are in ascending bpp.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from tqdm.auto import tqdm

from ..codecs import standard
from ..core.device import resolve_device
from ..core.fileio import atomic_write_bytes, atomic_write_json, safe_name
from ..core.images import from_uint8, to_uint8
from ..datasets import data
from ..results.records import ImageRecord, measure_file, quality_setting
from . import baselines

KINDS = ("hyres", "hidenet")
CURVE_KEYS = {"bpp": "bpp", "psnr-rgb": "psnr", "ms-ssim-rgb": "ms_ssim", "encoding_time": "encode_s",
              "decoding_time": "decode_s"}


@dataclass(frozen=True)
class Point:
    """One RD point: its setting label, and file bytes from an image and back. ``parts`` splits a
    file's bytes into named parts (e.g. JPEG base, z, y) when the format has them."""

    setting: str
    encode: Callable[[torch.Tensor], bytes]
    decode: Callable[[bytes], torch.Tensor]
    parts: Callable[[bytes], dict[str, int]] = field(default=lambda data: {})


@dataclass(frozen=True)
class Subject:
    """A codec under evaluation: its name in the results, a description, its points."""

    name: str
    description: str
    points: list[Point]
    suffix: str = ".bin"  # file name suffix of its files, when they are kept


def classical(name: str, qualities: Sequence[int]) -> Subject:
    codec = standard.get_codec(name)
    settings = [None] if codec.lossless else list(dict.fromkeys(qualities))
    if not settings:
        raise ValueError(f"{name} needs at least one --quality")

    def point(q: int | None) -> Point:
        if q is not None:
            standard.check_quality(q)  # before any work, not at the first encode
        return Point(quality_setting(q), lambda x: codec.encode(to_uint8(x), q), lambda b: from_uint8(codec.decode(b)))
    return Subject(name, codec.description, [point(q) for q in settings], f".{name}")


def _hyres_point(codec, setting: str) -> Point:
    from ..hyres.evaluate import file_parts

    return Point(setting, codec.encode, codec.decode, file_parts)


def checkpoint_labels(paths: Sequence[str]) -> list[str]:
    """The shortest trailing parts of each path (suffix dropped) that tell the paths apart: a λ
    schedule keeps every phase's checkpoint as ``phaseN/codec.ckpt``, so stems alone would merge them."""
    parts = [Path(p).with_suffix("").parts for p in paths]
    for depth in range(1, max(map(len, parts), default=0) + 1):
        labels = ["/".join(p[-depth:]) for p in parts]
        if len(set(labels)) == len(labels):
            return labels
    if parts:
        raise ValueError("the same checkpoint is named twice")
    return []


def hyres(checkpoints: Sequence[str] = (), models_: Sequence[str] = (), device: str = "cpu") -> Subject:
    """HyRES: each checkpoint and each registered model is one point (at its own base quality)."""
    from . import models
    from ..hyres.codec import HyresCodec

    if not checkpoints and not models_:
        raise ValueError("--codec hyres needs a checkpoint (-c CKPT) or a registered model (--model NAME)")
    points = [_hyres_point(HyresCodec.load(c, device=device), label)
              for c, label in zip(checkpoints, checkpoint_labels(checkpoints))]
    points += [_hyres_point(models.load(m, device=device), m) for m in models_]
    what = ", ".join([*map(str, checkpoints), *models_])
    return Subject("HyRES", f"HyRES (JPEG base + learned residual): {what}", points, ".hyr")


def hidenet(checkpoint: str | None, model: str | None = None, steps: Sequence[int] = ()) -> Subject:
    """hideNet with a predictor checkpoint, ``fixed``, or a registered predictor (default: the kit's
    shipped one, as ``hyres hidenet encode`` uses): lossless, plus near-lossless per ``steps``."""
    from . import models
    from ..hidenet.codec import HidenetCodec
    from ..hidenet.predictors import FixedPredictor
    from ..hidenet.training import load_predictor

    if checkpoint == "fixed":
        predictor, what = FixedPredictor(), "fixed"
    elif checkpoint:
        predictor, what = load_predictor(checkpoint), checkpoint
    else:
        what = model or models.default_name(kind=models.PREDICTOR)
        predictor = models.load_predictor(what)

    def point(step: int | None) -> Point:
        codec = HidenetCodec(predictor) if step is None else HidenetCodec(predictor, "near-lossless", step)
        return Point("lossless" if step is None else f"step{step}", codec.encode, codec.decode)
    return Subject("hideNet", f"hideNet progressive codec, predictor {what}",
                   [point(None), *(point(s) for s in dict.fromkeys(steps))], ".hdn")


def measure(subject: Subject, point: Point, image: str, x: torch.Tensor, files: Path | None = None) -> ImageRecord:
    """Encode ``x`` to bytes, decode those bytes, and measure (files kept under ``files``)."""
    record, data_ = measure_file(image, subject.name, point.setting, x, point.encode, point.decode, point.parts)
    if files is not None:
        atomic_write_bytes(files / safe_name(point.setting, "point") / f"{image}{subject.suffix}", data_)
    return record


def evaluate(subject: Subject, images: data.ImageSet, files: str | Path | None = None,
             progress: bool = True) -> list[ImageRecord]:
    """Every image at every point of ``subject``: records image by image, points in order."""
    if not len(images):
        raise ValueError(f"no images in {images.describe()}")
    files = Path(files) if files is not None else None
    bar = tqdm(total=len(images) * len(subject.points), desc=f"eval {subject.name} on {images.name}", unit="file",
               disable=not progress)
    records = []
    with bar, torch.inference_mode():
        for name, x in images:
            for point in subject.points:
                records.append(measure(subject, point, name, x, files))
                bar.update()
    return records


def compressai_results(subject: Subject, records: Sequence[ImageRecord], dataset: str = "") -> dict:
    """The results in CompressAI's layout (one entry per point, means over images, ascending bpp),
    with ``settings`` and ``dataset`` beside ``results`` for the reader."""
    by_point: dict[str, list[ImageRecord]] = {}
    for r in records:
        by_point.setdefault(r.setting, []).append(r)
    means = [{key: float(np.mean([getattr(r, attr) for r in rs])) for key, attr in CURVE_KEYS.items()} | {"setting": s}
             for s, rs in by_point.items()]
    means.sort(key=lambda m: m["bpp"])
    return {"name": subject.name, "description": subject.description, "dataset": dataset,
            "settings": [m["setting"] for m in means],
            "results": {key: [m[key] for m in means] for key in CURVE_KEYS}}


def published_results(names: Sequence[str] | None = None) -> list[dict]:
    """The published Kodak reference curves (:func:`hyreslib.pipeline.baselines.load_published`), each in
    CompressAI's layout (bpp and PSNR only: the references give no more)."""
    curves = baselines.load_published()["curves"]
    return [{"name": f"{name} (published)", "description": c["source"],
             "results": {"bpp": list(c["bpp"]), "psnr-rgb": list(c["psnr"])}}
            for name, c in curves.items() if names is None or name in names]


def format_results(doc: dict) -> str:
    """The curve as a small text table."""
    res = doc["results"]
    lines = [f"{'setting':<22}{'bpp':>9}{'PSNR dB':>9}{'MS-SSIM':>9}{'enc s':>8}{'dec s':>8}"]
    for i, s in enumerate(doc["settings"]):
        lines.append(f"{s:<22}{res['bpp'][i]:>9.4f}{res['psnr-rgb'][i]:>9.3f}{res['ms-ssim-rgb'][i]:>9.4f}"
                     f"{res['encoding_time'][i]:>8.3f}{res['decoding_time'][i]:>8.3f}")
    return "\n".join(lines)


def open_dataset(spec: str, root: str | None = None) -> data.ImageSet:
    """A dataset by name (``kodak``, ``embedded``, ``cid22-validation``: name-split) or folder."""
    name, _, split = spec.rpartition("-")
    if name in (*data.LAYOUT, "embedded") and split:
        return data.dataset(name, split, root)
    return data.test_set(spec, root)


def subject_from_args(args: argparse.Namespace) -> Subject:
    if args.quality and args.codec in KINDS:
        raise ValueError(f"--quality is for classical codecs; {args.codec} codes at its model's own settings")
    if args.step and args.codec != "hidenet":
        raise ValueError("--step is for --codec hidenet (near-lossless steps)")
    if args.codec == "hyres":
        return hyres(args.checkpoint or (), args.model or (), str(resolve_device(args.device)))
    if args.codec == "hidenet":
        if len(args.checkpoint or []) + len(args.model or []) > 1:
            raise ValueError("--codec hidenet takes one predictor: -c CKPT, -c fixed or --model NAME")
        return hidenet((args.checkpoint or [None])[0], (args.model or [None])[0], args.step or ())
    if args.model:
        raise ValueError("--model names a kit model: use it with --codec hyres or hidenet")
    if args.checkpoint:
        raise ValueError(f"{args.codec} is a classical codec: it takes --quality, not a checkpoint")
    return classical(args.codec, args.quality or baselines.PUBLISHED_QUALITIES)


def _cmd_eval(args: argparse.Namespace) -> int:
    if not args.out and (args.records or args.published):
        raise ValueError("--records and --published write files beside --out: give --out")
    subject = subject_from_args(args)
    images = open_dataset(args.dataset, args.data_root).subset(args.limit)
    print(f"dataset: {images.describe()}\ncodec: {subject.description}")
    records = evaluate(subject, images, args.files)
    doc = compressai_results(subject, records, images.describe())
    print(format_results(doc))
    if args.out:
        out = Path(args.out)
        records_path = Path(args.records) if args.records else out.with_name(f"{out.stem}.records.json")
        atomic_write_json(records_path, {"dataset": images.describe(), "codec": subject.name,
                                         "records": [r.to_dict() for r in records]})
        print(f"wrote {atomic_write_json(out, doc)} (CompressAI layout) and {records_path} (per image)")
        if args.published:
            for ref in published_results():
                slug = safe_name(ref["name"].removesuffix(" (published)"), "point")
                path = out.with_name(f"{out.stem}.published-{slug}.json")
                print(f"wrote {atomic_write_json(path, ref)}")
    return 0


def add_commands(subparsers) -> None:
    p = subparsers.add_parser(
        "eval", help="evaluate a codec on a dataset through real files (CompressAI results JSON)",
        description="Encode every image to bytes, decode those bytes, and write mean bpp, PSNR, MS-SSIM and times "
                    "per RD point in CompressAI's results layout (read by compressai.utils.plot), plus per-image "
                    "records.")
    p.add_argument("--codec", required=True, choices=[*KINDS, *standard.CODECS],
                   help="hyres, hidenet, or a classical codec")
    p.add_argument("-c", "--checkpoint", action="append",
                   help="hyres: a codec checkpoint (repeat: one RD point each); hidenet: a predictor checkpoint or "
                        "'fixed'")
    p.add_argument("--model", action="append",
                   help="hyres: a registered model (`hyres models list`; repeatable); hidenet: a registered predictor "
                        "(default: the kit's shipped one)")
    p.add_argument("--quality", type=int, nargs="+", help="classical codecs: qualities 1..100 (default 5 10 ... 95)")
    p.add_argument("--step", type=int, nargs="+", help="hidenet: near-lossless steps (odd, >= 3) beside lossless")
    p.add_argument("--dataset", default="kodak", help="kodak, embedded, cid22-validation (name-split) or a folder")
    p.add_argument("--data-root", default=None, help="data folder (default: $HYRES_DATA, else data/)")
    p.add_argument("--limit", type=int, default=None, help="use only the first N images")
    p.add_argument("--device", default="cpu", help="hyres: cpu | cuda | auto")
    p.add_argument("--out", help="results JSON to write (CompressAI layout)")
    p.add_argument("--records", help="per-image records JSON (default: <out stem>.records.json beside --out)")
    p.add_argument("--files", help="keep the encoded files in this folder (one subfolder per point)")
    p.add_argument("--published", action="store_true",
                   help="also write the published Kodak reference curves beside --out, one CompressAI-layout file "
                        "each")
    p.set_defaults(func=_cmd_eval)
