"""Time and peak memory per megapixel of encoding and decoding large photos: HyRES whole-image
against HyRES in tiles (``HyresCodec.tiling``), and hideNet, at the same sizes, in one run.

    .venv/bin/python bench/large_photo.py [--sizes 0.5 1 2] [--N 32 --M 48 --conditioning none]
                                          [--refine-width 32 --refine-stride 1] [--untiled-max-mp 4]
                                          [--hidenet-width 16]
                                          [--threads 2]
    # the paper-scale model on a 24-MP photo, tiled only (whole-image would need far more than 8 GB):
    .venv/bin/python bench/large_photo.py --sizes 24 --N 128 --M 192 --conditioning base \\
                                          --refine-width 64 --untiled-max-mp 0 --codecs "hyres tiled"

Every encode and every decode runs in a fresh child process; its peak RSS (``ru_maxrss``, which
counts PyTorch's allocations, unlike tracemalloc) is reported whole and as the working part above
the child's RSS once the model and the input are in memory. The photo is an embedded photograph
resized to the size asked (3:2), as 8-bit RGB. Models are untrained (memory and time do not depend
on the weights); HyRES's latent gets content by scaling the last convolution of g_a, so its strings
are not empty, and it codes the latent mode (no λ, no mode search). ``estimate`` is the decoder's
own ``working_memory``, which its ``max_memory`` check uses: it must stay above the measured
working memory.
"""

from __future__ import annotations

import argparse
import math
import resource
import subprocess
import sys
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np
import torch
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

KINDS = ("hyres whole", "hyres tiled", "hidenet")


def photo(megapixels: float) -> np.ndarray:
    """An embedded photograph resized to about ``megapixels`` (3:2), (H, W, 3) uint8."""
    from hyreslib.datasets import data
    from hyreslib.core.images import to_uint8

    w = int(round(math.sqrt(megapixels * 1e6 * 1.5) / 8)) * 8
    h = int(round(w / 1.5 / 8)) * 8
    return np.asarray(Image.fromarray(to_uint8(data.embedded("test")[0][1])).resize((w, h), Image.BICUBIC))


def hyres_codec(args: argparse.Namespace, tiled: bool):
    from hyreslib.hyres import HyresCodec, MultiScaleRefine, ResidualCodec, ResidualConfig
    from hyreslib.hyres.tiling import Tiling

    torch.manual_seed(0)
    residual = ResidualCodec(ResidualConfig(N=args.N, M=args.M, conditioning=args.conditioning))
    with torch.no_grad():
        residual.g_a[-2].weight.mul_(30.0)  # an untrained latent rounds to zero; give it content
    refine = MultiScaleRefine(args.refine_width, args.refine_stride) if args.refine_width else None
    return HyresCodec(residual, refine=refine, tiling=Tiling(threshold=0 if tiled else 1 << 62))


def child(args: argparse.Namespace) -> None:
    """One encode (``path`` written) or decode (``path`` read); prints seconds, peak and base RSS
    (bytes) and the decoder's estimate."""
    kind, path, what = args.child[0], Path(args.child[1]), args.child[2]
    warnings.filterwarnings("ignore")
    from hyreslib.core.images import from_uint8

    x = from_uint8(photo(args.size))
    if kind == "hidenet":
        from hyreslib.hidenet.codec import HidenetCodec
        from hyreslib.hidenet.predictors import CNNP

        torch.manual_seed(0)
        model = HidenetCodec(CNNP(width=args.hidenet_width, levels=8), levels=8)
    else:
        model = hyres_codec(args, kind == "hyres tiled")
    run = (lambda: path.write_bytes(model.encode(x))) if what == "encode" else (lambda: model.decode(data))
    estimate = model.working_memory(*x.shape[-2:])
    data = path.read_bytes() if what == "decode" else b""
    base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    t0 = time.perf_counter()
    with torch.no_grad():
        run()
    seconds = time.perf_counter() - t0
    print(seconds, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024, base * 1024, estimate)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--sizes", type=float, nargs="+", default=[0.5, 1.0, 2.0], help="megapixels")
    p.add_argument("--N", type=int, default=32)
    p.add_argument("--M", type=int, default=48)
    p.add_argument("--conditioning", default="none", help="none | base")
    p.add_argument("--refine-width", type=int, default=32, help="HyRES refiner width (0: none)")
    p.add_argument("--refine-stride", type=int, default=1,
                   help="HyRES refiner stride (1: full resolution, the heavier case; 2: the notebooks' default)")
    p.add_argument("--untiled-max-mp", type=float, default=4.0, help="whole-image HyRES only up to this size")
    p.add_argument("--hidenet-width", type=int, default=16, help="hideNet CNNP predictor width")
    p.add_argument("--threads", type=int, default=2, help="torch CPU threads in each child")
    p.add_argument("--codecs", nargs="+", choices=KINDS, default=list(KINDS), metavar="CODEC",
                   help=f"which of {', '.join(repr(k) for k in KINDS)} to run (default: all)")
    p.add_argument("--size", type=float, help=argparse.SUPPRESS)
    p.add_argument("--child", nargs=3, help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    if args.child:
        child(args)
        return 0
    forward = list(argv if argv is not None else sys.argv[1:])
    refiner = f"width {args.refine_width}, stride {args.refine_stride}" if args.refine_width else "none"
    print(f"HyRES N={args.N} M={args.M} {args.conditioning} conditioning, refiner {refiner}; "
          f"hideNet CNNP width {args.hidenet_width}, 8 levels; {args.threads} threads; untrained weights")
    print(f"{'codec':12s} {'MP':>5s} {'step':6s} {'s':>7s} {'s/MP':>6s} {'peak MiB':>9s} {'work MiB':>9s} "
          f"{'MiB/MP':>7s} {'estimate MiB':>12s}")
    with tempfile.TemporaryDirectory() as tmp:
        for mp in args.sizes:
            for kind in args.codecs:
                if kind == "hyres whole" and mp > args.untiled_max_mp:
                    continue
                path = Path(tmp) / f"{kind.replace(' ', '_')}_{mp}.bin"
                for what in ("encode", "decode"):
                    done = subprocess.run([sys.executable, __file__, *forward, "--size", str(mp),
                                           "--child", kind, str(path), what], capture_output=True, text=True)
                    if done.returncode:
                        print(f"{kind:12s} {mp:5.1f} {what:6s} failed: {(done.stderr or done.stdout).strip()[-300:]}")
                        break
                    seconds, peak, base, estimate = (float(v) for v in done.stdout.split()[-4:])
                    work = peak - base
                    est = f"{estimate / 2**20:12.0f}" if what == "decode" else f"{'':12s}"
                    print(f"{kind:12s} {mp:5.1f} {what:6s} {seconds:7.2f} {seconds / mp:6.2f} {peak / 2**20:9.0f} "
                          f"{work / 2**20:9.0f} {work / 2**20 / mp:7.0f} {est}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
