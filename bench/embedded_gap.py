"""How well training crops predict the test rate on the embedded default: train the quick residual
codec (notebook 02's defaults) on an embedded training split and compare the rate of y the model
estimates on its training crops (mean over the last fifth of training) with the rate of y in real
files of the embedded test photos.

    .venv/bin/python bench/embedded_gap.py [--split new|old] [--seed 0] [--steps 300]

``old`` is the split before the embedded default was chosen for photographs (three mostly-black
frames, no augmentation); ``new`` is ``data.embedded("train")`` (augmented crops). Prints one JSON
line: training-crop and test rates of y, test bpp and PSNR, and the rate-distortion cost on test.
"""

from __future__ import annotations

import argparse
import csv
import json
import sys
import tempfile
import warnings
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from hyreslib.datasets import data  # noqa: E402
from hyreslib.hyres import JpegSettings, ResidualCodec, ResidualConfig  # noqa: E402
from hyreslib.hyres.evaluate import evaluate, summarize  # noqa: E402
from hyreslib.hyres.stages import train_residual  # noqa: E402
from hyreslib.training.engine import TrainSetup  # noqa: E402

OLD_SPLIT = ["astronaut", "motorcycle_left", "hubble_deep_field", "immunohistochemistry", "retina"]


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--split", choices=["new", "old"], default="new")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--steps", type=int, default=300)
    p.add_argument("--lmbda", type=float, default=0.045)
    p.add_argument("--quality", type=int, default=1)
    args = p.parse_args(argv)
    warnings.filterwarnings("ignore")
    torch.set_num_threads(1)
    train = (data.ImageSet("embedded", "train", OLD_SPLIT, "the old embedded split") if args.split == "old"
             else data.embedded("train"))
    setup = TrainSetup(steps=args.steps, crop=128, batch=8, lr=3e-3, rate_warmup=0.2, log_every=25, seed=args.seed)
    model = ResidualCodec(ResidualConfig(N=32, M=48, depth=4))
    with tempfile.TemporaryDirectory() as tmp:
        log = Path(tmp) / "log.csv"
        codec, _ = train_residual(model, args.lmbda, JpegSettings(quality=args.quality), train,
                                  data.embedded("validation"), setup, log_csv=log, desc=args.split)
        rows = list(csv.DictReader(log.open()))
    crops_y = float(np.mean([float(r["bpp_y"]) for r in rows[-max(1, len(rows) // 5):]]))
    test = summarize(evaluate(codec, data.embedded("test"), progress=False))
    cost = args.lmbda * 255 ** 2 * 10 ** (-test["psnr"] / 10) + test["bpp"]
    print(json.dumps({"split": args.split, "seed": args.seed, "train_crops_bpp_y": crops_y, "test_bpp_y": test["bpp_y"],
                      "ratio": test["bpp_y"] / crops_y, "test_bpp": test["bpp"], "test_psnr": test["psnr"],
                      "test_rd_cost": cost}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
