"""RD cost of the integer parse (decode anywhere) against the float parse, on one training budget.

Trains one λ schedule (or one λ) per parse with identical settings (same seed, CID22 training
crops, steps and λ list; each phase starts from the previous one, as ``stages.run_schedule``
does, and keeps its best weights on CID22 validation crops), then codes the test images (Kodak;
never used to choose anything) through real ``.hyr`` files on each ``--test-qualities`` base, in
the mode the encoder chooses by rate-distortion cost and forced into the latent mode, where the
parse is what is measured. Prints each point (bpp, PSNR, bits of y and z) and the BD-rates of the
integer parse against the float parse (positive: the integer parse needs more bits), along the
base qualities of each λ and along the λ schedule at each base quality::

    PYTHONPATH=$PWD python bench/parse_rd.py --out /tmp/parse_rd --lambdas 0.1 0.03 0.01 --first-steps 500 \
        --steps 300 --batch 4 --test-qualities 5 8 12 16 --images 8 --json /tmp/parse_rd.json

Phases are saved under ``--out/{float,integer}/phaseK``: a re-run reuses finished ones and resumes
an interrupted one, so an evaluation can be repeated without training. On a shared CPU, run with
``OMP_NUM_THREADS=1``: with two threads that the scheduler keeps apart a step takes ten times longer.
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import replace
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from hyreslib.datasets import data  # noqa: E402
from hyreslib.hyres import JpegSettings, ResidualCodec, ResidualConfig, bitstream  # noqa: E402
from hyreslib.hyres.codec import HyresCodec  # noqa: E402
from hyreslib.hyres.stages import run_schedule  # noqa: E402
from hyreslib.results.metrics import bd_rate, bpp, psnr  # noqa: E402
from hyreslib.training.engine import TrainSetup  # noqa: E402

MODES = ("chosen", "latent")  # what each curve codes: the encoder's choice, or the latent forced


def centre_crop(x: torch.Tensor, size: int) -> torch.Tensor:
    """The centre ``size`` x ``size`` of ``x`` (all of it when 0): at the training crop size the model
    meets only what training showed it, a whole image adds positions far from every border."""
    if not size:
        return x
    top, left = max(0, (x.shape[-2] - size) // 2), max(0, (x.shape[-1] - size) // 2)
    return x[:, top:top + size, left:left + size].contiguous()


def evaluate(codec: HyresCodec, test: list, quality: int) -> dict[str, dict]:
    """Per mode: mean bpp and PSNR over ``test`` on a base of ``quality``, the bits of y and z per
    pixel, and how many images coded y."""
    rows: dict[str, list] = {name: [] for name in MODES}
    for _, x in test:
        chosen = codec.encode_detailed(x, quality)
        latent = chosen if chosen.mode == "latent" else codec.encode_detailed(x, quality, mode="latent")
        h, w = x.shape[-2:]
        for name, enc in zip(MODES, (chosen, latent)):
            _, parts = bitstream.read(enc.data)
            y_bytes = len(parts["y_anchor"]) + len(parts["y_non_anchor"])
            rows[name].append((bpp(len(enc.data), h, w), psnr(codec.decode(enc.data), x), bpp(y_bytes, h, w),
                               bpp(len(parts["z"]), h, w), enc.mode == "latent"))
    out = {}
    for name, r in rows.items():
        mean = [sum(c) / len(r) for c in zip(*r)]
        out[name] = {"bpp": mean[0], "psnr": mean[1], "y_bpp": mean[2], "z_bpp": mean[3],
                     "latent_images": sum(row[4] for row in r)}
    return out


def curves(parse: str, args: argparse.Namespace, train, val, test) -> dict[str, list[dict]]:
    cfg = ResidualConfig(N=args.N, M=args.M, depth=4, conditioning=args.conditioning, parse=parse)
    setup = TrainSetup(steps=args.steps, crop=args.crop, batch=args.batch, lr=args.lr, seed=args.seed,
                       log_every=10 ** 9)
    first = replace(setup, steps=args.first_steps, rate_warmup=0.1)

    def new_model() -> ResidualCodec:
        torch.manual_seed(args.seed)
        return ResidualCodec(cfg)

    phases = run_schedule(args.lambdas, [JpegSettings(quality=args.quality)] * len(args.lambdas), train, val, setup,
                          args.out / parse, new_model, first_setup=first)
    out: dict[str, list[dict]] = {name: [] for name in MODES}
    for phase in phases:
        for quality in args.test_qualities or [args.quality]:
            for name, values in evaluate(phase.codec, test, quality).items():
                point = {"parse": parse, "lmbda": phase.lmbda, "quality": quality, "curve": name, **values,
                         "images": len(test), "origin": phase.origin}
                print(json.dumps(point), flush=True)
                out[name].append(point)
    return out


def bd(anchor: list[dict], test: list[dict]) -> float | None:
    try:  # too short a budget can leave a curve without distinct points (every image coded base-only)
        return bd_rate([p["bpp"] for p in anchor], [p["psnr"] for p in anchor],
                       [p["bpp"] for p in test], [p["psnr"] for p in test])
    except ValueError as exc:
        print(f"  not computable: {exc}")
        return None


def bd_rates(f: list[dict], i: list[dict]) -> dict[str, float | None]:
    """BD-rates of the integer curve against the float one: along the base qualities of each λ, and
    along the λ schedule at each base quality (wherever that makes more than one point)."""
    out = {}
    for key, along in (("lmbda", "quality"), ("quality", "lmbda")):
        for value in dict.fromkeys(p[key] for p in f):
            same = [[p for p in c if p[key] == value] for c in (f, i)]
            if len(same[0]) > 1:
                print(f"  {key} {value}, along {along}:")
                out[f"{key}={value}"] = value = bd(*same)
                if value is not None:
                    print(f"    {value:+.2f} %")
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, required=True, help="folder of the trained phases (reused on a re-run)")
    ap.add_argument("--first-steps", type=int, default=600, help="steps of the first phase (from scratch)")
    ap.add_argument("--steps", type=int, default=150, help="steps of every later phase")
    ap.add_argument("--lambdas", type=float, nargs="+", default=[0.2, 0.1, 0.05, 0.025])
    ap.add_argument("--quality", type=int, default=8, help="JPEG base quality of training")
    ap.add_argument("--test-qualities", type=int, nargs="+",
                    help="base qualities each phase codes the test images with (default: --quality); one λ and "
                         "several base qualities also make a curve")
    ap.add_argument("--N", type=int, default=32)
    ap.add_argument("--M", type=int, default=48)
    ap.add_argument("--conditioning", default="none")
    ap.add_argument("--crop", type=int, default=128)
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--lr", type=float, default=1e-3)
    ap.add_argument("--seed", type=int, default=0,
                    help="initial weights and crops (another seed of one parse: the spread to judge a BD-rate by)")
    ap.add_argument("--val-crops", type=int, default=4, help="CID22 validation images that choose the best step")
    ap.add_argument("--test", default="kodak", help="the images reported (never used to choose)")
    ap.add_argument("--images", type=int, default=0, help="test images coded (0: all)")
    ap.add_argument("--test-crop", type=int, default=0,
                    help="code the centre crop of this size of each test image (0: the whole image)")
    ap.add_argument("--json", type=Path)
    args = ap.parse_args()
    train, val = data.dataset("cid22", "train"), data.dataset("cid22", "validation").subset(args.val_crops)
    test = [(name, centre_crop(x, args.test_crop)) for name, x in data.dataset(args.test, "test").subset(args.images)]
    result = {"args": {k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items()},
              "curves": {parse: curves(parse, args, train, val, test) for parse in ("float", "integer")}}
    for name in MODES:
        print(f"BD-rate, integer parse vs float parse, {name} mode:")
        result[f"bd_rate_{name}_percent"] = bd_rates(result["curves"]["float"][name],
                                                     result["curves"]["integer"][name])
    if args.json:
        args.json.write_text(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
