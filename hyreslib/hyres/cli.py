"""``hyres encode`` / ``hyres decode`` / ``hyres extract-jpeg``: the HyRES codec on files."""

from __future__ import annotations

import argparse
import sys
import warnings

from ..core import limits
from ..core.device import resolve_device
from ..core.fileio import atomic_write_bytes, read_input
from ..core.images import ImageModeNotice, load_image, png_bytes
from ..results.metrics import bpp
from . import bitstream


def _load_codec(args: argparse.Namespace, use_refine: bool = True, data: bytes | None = None):
    """The codec named by ``-c`` or ``--model``; else, to decode ``data``, the registered model
    whose fingerprint the file carries; else the registry's default model."""
    from ..pipeline import models
    from .codec import HyresCodec

    device = resolve_device(args.device)
    if args.checkpoint:
        return HyresCodec.load(args.checkpoint, device=device, use_refine=use_refine)
    name = args.model
    if name is None and data is not None:
        name = models.by_fingerprint(bitstream.read(data)[0].fingerprint)
        if name is None:
            raise ValueError(f"{args.input} was made by a model that is not registered: name its checkpoint with -c")
    return models.load(name, device=str(device), use_refine=use_refine)


def _cmd_encode(args: argparse.Namespace) -> int:
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", ImageModeNotice)
        image = load_image(args.input, args.max_pixels)
    for w in caught:
        print(f"hyres encode: notice: {w.message}", file=sys.stderr)
    note = ""
    if args.target_bpp is None:
        data = _load_codec(args, use_refine=False).encode(image, args.jpeg_quality, args.max_pixels)
    else:
        if args.jpeg_quality is not None:
            raise ValueError("give either --target-bpp or --jpeg-quality, not both")
        from .rate import encode_to_rate

        names, codecs = _curve(args)
        choice = encode_to_rate(codecs, image, args.target_bpp, args.max_pixels)
        data = choice.encoded.data
        note = (f"; target {args.target_bpp:g} bpp: base quality {choice.quality}, model {names[choice.model]}"
                + ("" if choice.met else " (the lowest rate it reaches is above the target)"))
    atomic_write_bytes(args.output, data)
    h, w = image.shape[-2:]
    parts = bitstream.breakdown(data)
    detail = ", ".join(f"{k} {bpp(v, h, w):.4f}" for k, v in parts.items())
    print(f"{args.output}: {w}x{h}, {len(data)} bytes, {bpp(len(data), h, w):.4f} bpp ({detail}){note}")
    return 0


def _curve(args: argparse.Namespace) -> tuple[list[str], list]:
    """The codecs rate control chooses among: ``-c``'s checkpoint alone, else every model of the
    shipped curve of ``--model`` (or of the default), without refiners (the encoder needs none)."""
    from ..pipeline import models

    if args.checkpoint:
        return [args.checkpoint], [_load_codec(args, use_refine=False)]
    device = str(resolve_device(args.device))
    _, entries = models.curve(args.model)
    return [e.name for e in entries], [models.load(e.name, device=device, use_refine=False) for e in entries]


def _cmd_decode(args: argparse.Namespace) -> int:
    data = read_input(args.input)
    codec = _load_codec(args, use_refine=not args.no_refine, data=data)
    image = codec.decode(data, **limits.from_arguments(args))
    atomic_write_bytes(args.output, png_bytes(image))
    print(f"{args.output}: {image.shape[-1]}x{image.shape[-2]}")
    return 0


def _cmd_extract_jpeg(args: argparse.Namespace) -> int:
    header, parts = bitstream.read(read_input(args.input))
    if not parts["jpeg"]:
        raise ValueError(f"{args.input} was made by a model without a JPEG base layer")
    atomic_write_bytes(args.output, parts["jpeg"])
    print(f"{args.output}: {header.width}x{header.height} JPEG, quality {header.jpeg_quality}, "
          f"{header.subsampling}, {len(parts['jpeg'])} bytes")
    return 0


def add_commands(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("encode", help="encode an image to a .hyr file (JPEG base + learned residual)")
    p.add_argument("input", help="image file (PNG, JPEG, ...; converted to RGB with a notice)")
    p.add_argument("output", help="the .hyr file to write")
    p.add_argument("-c", "--checkpoint", help="trained HyRES codec checkpoint (default: a registered model)")
    p.add_argument("--model", help="a registered model (`hyres models list`; default: the registry's default)")
    p.add_argument("-q", "--jpeg-quality", type=int, default=None, help="base-layer quality (default: the model's)")
    p.add_argument("--target-bpp", type=float, default=None,
                   help="rate control: the highest base quality whose file fits this many bits per pixel, each "
                        "quality coded by the model of the curve (of --model, or the default) trained nearest to it")
    p.add_argument("--device", default="cpu", help="cpu | cuda | auto; decode on the same device type")
    limits.add_arguments(p, memory=False)
    p.set_defaults(func=_cmd_encode)

    p = sub.add_parser("decode", help="decode a .hyr file to a PNG")
    p.add_argument("input", help="the .hyr file")
    p.add_argument("output", help="PNG file to write")
    p.add_argument("-c", "--checkpoint", help="the checkpoint that encoded the file (default: the registered "
                   "model whose fingerprint the file carries)")
    p.add_argument("--model", help="a registered model (`hyres models list`)")
    p.add_argument("--no-refine", action="store_true", help="skip the decoder-side refiner, if the checkpoint has one")
    p.add_argument("--device", default="cpu", help="cpu | cuda | auto; the device type that encoded the file")
    limits.add_arguments(p)
    p.set_defaults(func=_cmd_decode)

    p = sub.add_parser("extract-jpeg", help="write the base layer of a .hyr file as a standard JPEG")
    p.add_argument("input", help="the .hyr file")
    p.add_argument("output", help="JPEG file to write")
    p.set_defaults(func=_cmd_extract_jpeg)
