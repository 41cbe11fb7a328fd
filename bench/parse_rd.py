"""RD cost of the integer parse (decode anywhere) against the float parse, on one training budget.

Trains the residual codec once per parse and λ with identical settings (same seed, crops and
steps), codes the validation images through real ``.hyr`` files, and prints each curve and the
BD-rate of the integer parse against the float parse (positive: the integer parse needs more bits)::

    PYTHONPATH=$PWD python bench/parse_rd.py --steps 300 --json /tmp/parse_rd.json
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from hyreslib import data  # noqa: E402
from hyreslib.hyres import JpegSettings, ResidualCodec, ResidualConfig  # noqa: E402
from hyreslib.hyres.stages import Budget, train_residual  # noqa: E402
from hyreslib.metrics import bd_rate, bpp, psnr  # noqa: E402


def curve(parse: str, args: argparse.Namespace, train, val, test) -> list[dict]:
    points = []
    for lmbda in args.lambdas:
        torch.manual_seed(0)
        model = ResidualCodec(ResidualConfig(N=args.N, M=args.M, depth=4, conditioning=args.conditioning, parse=parse))
        start = time.perf_counter()
        codec, _ = train_residual(model, lmbda, JpegSettings(quality=args.quality), train, val,
                                  Budget(steps=args.steps, crop=args.crop, batch=args.batch, lr=args.lr,
                                         rate_warmup=0.1, log_every=10 ** 9), desc=f"{parse} λ={lmbda}")
        trained = time.perf_counter() - start
        rates, psnrs = [], []
        for _, x in test:
            coded = codec.encode(x)
            rates.append(bpp(len(coded), x.shape[-2], x.shape[-1]))
            psnrs.append(psnr(codec.decode(coded), x))
        point = {"parse": parse, "lmbda": lmbda, "bpp": sum(rates) / len(rates), "psnr": sum(psnrs) / len(psnrs),
                 "train_s": round(trained, 1), "images": len(rates)}
        print(json.dumps(point), flush=True)
        points.append(point)
    return points


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=300)
    ap.add_argument("--lambdas", type=float, nargs="+", default=[0.032, 0.008, 0.002])
    ap.add_argument("--quality", type=int, default=10, help="JPEG base quality")
    ap.add_argument("--N", type=int, default=32)
    ap.add_argument("--M", type=int, default=48)
    ap.add_argument("--conditioning", default="none")
    ap.add_argument("--crop", type=int, default=128)
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--lr", type=float, default=1e-3)
    ap.add_argument("--dataset", default="cid22")
    ap.add_argument("--images", type=int, default=0, help="validation images coded (0: all)")
    ap.add_argument("--json", type=Path)
    args = ap.parse_args()
    train, val = data.dataset(args.dataset, "train"), data.dataset(args.dataset, "validation")
    test = list(val)[:args.images or None]
    curves = {parse: curve(parse, args, train, val.subset(4), test) for parse in ("float", "integer")}
    f, i = curves["float"], curves["integer"]
    result = {"args": {k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items()}, "curves": curves}
    try:  # too short a budget can leave a curve without distinct points (every image coded base-only)
        bd = bd_rate([p["bpp"] for p in f], [p["psnr"] for p in f], [p["bpp"] for p in i], [p["psnr"] for p in i])
        print(f"BD-rate, integer parse vs float parse: {bd:+.2f} %")
    except ValueError as exc:
        bd = None
        print(f"BD-rate, integer parse vs float parse: not computable ({exc})")
    result["bd_rate_integer_vs_float_percent"] = bd
    if args.json:
        args.json.write_text(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
