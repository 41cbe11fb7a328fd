"""Throughput of the JPEG base layer on a training batch, against a plain Pillow loop in the same run.

Training encodes and decodes the JPEG base of every crop at every step, so this is the cost the
base layer adds to a step. Each row times one full round trip of the batch (tensor in, decoded
tensor out); the baseline is Pillow's default ``save(format="JPEG", quality=q)`` and ``open().load()``
on ready-made PIL images, i.e. the codec alone, with no tensor conversion.

    .venv/bin/python bench/jpeg_throughput.py [--quality 50] [--batch 16] [--crop 256] [--repeats 20] [--threads N]
"""

from __future__ import annotations

import argparse
import io
import statistics
import time
from collections.abc import Callable

import torch
from PIL import Image

from hyreslib.codecs import jpeg
from hyreslib.core.device import describe_device
from hyreslib.core.images import to_pil
from hyreslib.datasets import data


def timed(fn: Callable[[], object], repeats: int, sync: Callable[[], None] = lambda: None) -> float:
    """Median wall time of ``fn`` over ``repeats`` runs, after one warm-up run."""
    fn()
    sync()
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        sync()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def pillow_loop(images: list[Image.Image], quality: int) -> None:
    for img in images:
        buf = io.BytesIO()
        img.save(buf, format="JPEG", quality=quality)
        buf.seek(0)
        Image.open(buf).load()


def training_batch(batch: int, crop: int, seed: int) -> tuple[torch.Tensor, str]:
    images = data.train_set()
    loader = data.crop_loader(images, crop, batch_size=batch, seed=seed, crops_per_image=-(-batch // len(images)))
    return next(iter(loader)), images.describe()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quality", type=int, default=50)
    parser.add_argument("--subsampling", default="4:2:0", choices=list(jpeg.SUBSAMPLING))
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--crop", type=int, default=256)
    parser.add_argument("--repeats", type=int, default=20)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=None,
                        help="torch intra-op threads (default: torch's choice); on a busy machine 1 can be "
                             "much faster, since each small tensor op waits for every thread")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)

    x, source = training_batch(args.batch, args.crop, args.seed)
    n = x.shape[0]
    q, sub = args.quality, args.subsampling
    print(f"batch: {n} crops of {args.crop}x{args.crop} from {source}; JPEG q{q} {sub}; "
          f"median of {args.repeats} runs; CPU {describe_device(torch.device('cpu'))}")

    pil_images = [to_pil(img) for img in x]
    rows = [("Pillow save/open loop, defaults (baseline)", timed(lambda: pillow_loop(pil_images, q), args.repeats))]
    for optimize in (False, True):
        rows.append((f"jpeg.roundtrip cpu, optimize={optimize}",
                     timed(lambda o=optimize: jpeg.roundtrip(x, q, sub, optimize=o, backend="cpu"), args.repeats)))
    if torch.cuda.is_available():
        dev = torch.device("cuda")
        xg = x.to(dev)
        label = f"jpeg.roundtrip nvjpeg on {describe_device(dev)}"
        if sub != jpeg.NVJPEG_ENCODE_SUBSAMPLING:
            label += f" (encode falls back to CPU for {sub})"
        rows.append((label, timed(lambda: jpeg.roundtrip(xg, q, sub), args.repeats, torch.cuda.synchronize)))
        gpu, cpu = jpeg.roundtrip(xg, q, sub).decoded.cpu(), jpeg.roundtrip(x, q, sub, backend="cpu").decoded
        diff = (gpu - cpu).abs()
        print(f"nvJPEG vs CPU base layer: max |diff| {255 * float(diff.max()):.0f}/255, "
              f"{100 * float((diff > 0).float().mean()):.2f} % of samples differ")
    else:
        print("no CUDA GPU: nvJPEG row skipped")

    base = rows[0][1]
    width = max(len(label) for label, _ in rows)
    print(f"{'':<{width}}  {'ms/batch':>9}  {'images/s':>9}  {'vs baseline':>11}")
    for label, seconds in rows:
        print(f"{label:<{width}}  {1000 * seconds:>9.1f}  {n / seconds:>9.1f}  {base / seconds:>10.2f}x")


if __name__ == "__main__":
    main()
