"""``hyres hidenet encode|decode``: the hideNet codec on image files."""

from __future__ import annotations

import argparse

from .. import limits
from ..fileio import atomic_write_bytes, read_input
from ..images import load_image, save_image
from ..metrics import bpp
from .bitstream import MODES
from .codec import HidenetCodec
from .colour import SPACES
from .predictors import FixedPredictor, Predictor
from .training import load_predictor


def _predictor(args: argparse.Namespace) -> Predictor | None:
    colour, independent = getattr(args, "colour", None), getattr(args, "independent", False)
    if args.checkpoint:
        if colour or independent:
            raise ValueError("--colour and --independent set the fixed predictor; a checkpoint brings its own options")
        return load_predictor(args.checkpoint)
    if getattr(args, "predictor", None) == "fixed":
        return FixedPredictor(colour or "rgb", conditional=not independent)
    return None


def _cmd_encode(args: argparse.Namespace) -> int:
    if args.mode == "near-lossless" and args.step is None:
        raise ValueError("--mode near-lossless needs --step q (odd, >= 3; max error (q-1)/2)")
    image = load_image(args.input, args.max_pixels)
    data = HidenetCodec(_predictor(args), args.mode, args.step, args.levels).encode(image, args.max_pixels)
    atomic_write_bytes(args.output, data)
    h, w = image.shape[-2:]
    print(f"{args.output}: {len(data)} bytes, {bpp(len(data), h, w):.4f} bpp "
          f"({bpp(len(data), h, w) / 3:.4f} bits/sub-pixel), {args.mode}")
    return 0


def _cmd_decode(args: argparse.Namespace) -> int:
    data = read_input(args.input)
    out = HidenetCodec(_predictor(args)).decode_detailed(data, **limits.from_arguments(args), levels=args.levels,
                                                         fill=args.fill)
    save_image(out.image, args.output)
    h = out.header
    note = "checksum verified" if out.verified else f"{out.levels} of {h.levels} levels"
    print(f"{args.output}: {out.image.shape[2]}x{out.image.shape[1]} from a {h.width}x{h.height} {h.mode} file ({note})")
    return 0


def add_commands(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("hidenet", help="hierarchical odd/even pixel-splitting codec (lossless, near-lossless, generative)")
    hs = p.add_subparsers(dest="hidenet_command", required=True, metavar="ACTION")

    enc = hs.add_parser("encode", help="compress an image to a .hdn file")
    enc.add_argument("input", help="image file (PNG, JPEG, ...)")
    enc.add_argument("output", help="output file")
    enc.add_argument("--mode", choices=list(MODES), default="lossless")
    enc.add_argument("--step", type=int, default=None, help="near-lossless step q = 2*delta+1 (odd, >= 3)")
    enc.add_argument("--levels", type=int, default=None, help="split levels (default: the predictor's)")
    src = enc.add_mutually_exclusive_group(required=True)
    src.add_argument("--checkpoint", help="learned predictor checkpoint")
    src.add_argument("--predictor", choices=["fixed"], help="use the fixed interpolating predictor")
    enc.add_argument("--colour", choices=sorted(SPACES), default=None,
                     help="fixed predictor's colour space (default rgb; ycocg-r: lossless and generative only)")
    enc.add_argument("--independent", action="store_true",
                     help="fixed predictor: code the colour channels independently (no channel-conditional coding)")
    limits.add_arguments(enc, memory=False)
    enc.set_defaults(func=_cmd_encode)

    dec = hs.add_parser("decode", help="decompress a .hdn file to PNG")
    dec.add_argument("input")
    dec.add_argument("output", help="output image (.png)")
    dec.add_argument("--checkpoint", help="learned predictor checkpoint (needed if the file used one)")
    dec.add_argument("--levels", type=int, default=None,
                     help="decode only the k coarsest levels (a lower-resolution image)")
    dec.add_argument("--fill", action="store_true",
                     help="with --levels: predict the remaining levels so the output has full size")
    limits.add_arguments(dec)
    dec.set_defaults(func=_cmd_decode)
