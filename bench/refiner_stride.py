"""The refiner at full resolution (stride 1) against half resolution (stride 2), trained the same way for one
shipped model's frozen codec and measured on the validation images through real files: PSNR gain over no
refiner, training seconds and decoding seconds, in one run.

    .venv/bin/python bench/refiner_stride.py [--model hyres-cpu-phase3] [--strides 1 2] [--width 32]
                                             [--steps 120] [--val-images 0] [--threads 2]

Each refiner trains as notebook 04's cpu profile trains it (128² crops, batch 8, lr 1e-3, MSE, validated on
8 centre crops); the gain is measured on every validation image (``--val-images 0``), whose files are encoded
once by the model without a refiner (the refiner never changes a file). Prints one JSON line per refiner.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
import warnings
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from hyreslib.datasets import data  # noqa: E402
from hyreslib.hyres import HyresCodec  # noqa: E402
from hyreslib.hyres.stages import train_refine  # noqa: E402
from hyreslib.pipeline import models  # noqa: E402
from hyreslib.results.metrics import psnr  # noqa: E402
from hyreslib.training.engine import TrainSetup  # noqa: E402


def mean_psnr(codec: HyresCodec, files: list[bytes], images: data.ImageSet) -> tuple[float, float]:
    """Mean PSNR of the decoded files and the seconds decoding them took."""
    t0 = time.perf_counter()
    values = [float(psnr(codec.decode(f), x)) for f, (_, x) in zip(files, images)]
    return sum(values) / len(values), time.perf_counter() - t0


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--model", default="hyres-cpu-phase3", help="a shipped model (its codec is frozen)")
    p.add_argument("--strides", type=int, nargs="+", default=[1, 2])
    p.add_argument("--width", type=int, default=32)
    p.add_argument("--steps", type=int, default=120)
    p.add_argument("--val-images", type=int, default=0, help="validation images measured (0: all)")
    p.add_argument("--threads", type=int, default=2)
    args = p.parse_args(argv)
    warnings.filterwarnings("ignore")
    torch.set_num_threads(args.threads)
    base = models.load(args.model, use_refine=False)
    train = data.train_set()
    val = data.train_set(split="validation")
    measured = val.subset(args.val_images or None)
    files = [base.encode(x) for _, x in measured]
    before, seconds = mean_psnr(base, files, measured)
    print(json.dumps({"model": args.model, "images": measured.describe(), "psnr_without": before,
                      "decode_s_without": seconds}))
    for stride in args.strides:
        setup = TrainSetup(steps=args.steps, crop=128, batch=8, lr=1e-3, workers=0, log_every=10 ** 9)
        t0 = time.perf_counter()
        refined, hist = train_refine(base, train, val.subset(8), setup, None, 0.0, width=args.width, stride=stride,
                                     desc=f"stride {stride}")
        trained = time.perf_counter() - t0
        after, seconds = mean_psnr(refined, files, measured)
        print(json.dumps({"stride": stride, "width": args.width, "steps": args.steps, "train_s": trained,
                          "gain_db": after - before, "decode_s": seconds}), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
