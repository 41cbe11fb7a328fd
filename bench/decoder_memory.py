"""Peak memory of decoding, against the estimates the decoders check before they start
(``HyresCodec.working_memory``, ``HidenetCodec.working_memory``), in one run.

    .venv/bin/python bench/decoder_memory.py [--size 1024]

Each file is encoded in one process and decoded in a fresh one, whose peak RSS above its level
after loading the model is the measurement (untrained models: memory does not depend on the
weights). The estimate must stay above the measurement (ratio < 1) for the limit to be safe.
"""

from __future__ import annotations

import argparse
import resource
import subprocess
import sys
import tempfile
import warnings
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from hyreslib.core.images import from_uint8  # noqa: E402

CASES = {"hyres N=32": ("hyres", 32), "hyres N=48 conditional": ("hyres-base", 48), "hyres N=128": ("hyres", 128),
         "hidenet fixed": ("hidenet", 0), "hidenet CNNP width 16": ("hidenet", 16)}


def _codec(kind: str, width: int):
    torch.manual_seed(0)
    if kind.startswith("hyres"):
        from hyreslib.hyres import HyresCodec, ResidualCodec, ResidualConfig

        conditioning = "base" if kind == "hyres-base" else "none"
        return HyresCodec(ResidualCodec(ResidualConfig(N=width, M=width * 3 // 2, conditioning=conditioning)))
    from hyreslib.hidenet.codec import HidenetCodec
    from hyreslib.hidenet.predictors import CNNP

    return HidenetCodec(None if width == 0 else CNNP(width=width, levels=8), levels=8)


def _image(kind: str, size: int) -> torch.Tensor:
    """Noise for HyRES; for hideNet a noisy ramp (pure noise would be incompressible)."""
    if kind.startswith("hyres"):
        return torch.rand(3, size, size, generator=torch.Generator().manual_seed(0))
    rng = np.random.default_rng(0)
    rgb = (rng.random((size, size, 3)) * 64 + np.linspace(0, 128, size)[:, None, None]).astype(np.uint8)
    return from_uint8(rgb)


def child(kind: str, width: int, size: int, path: Path, encode: bool) -> None:
    """Encode to ``path``, or decode it and print ``peak_bytes estimate_bytes``."""
    warnings.filterwarnings("ignore")
    codec = _codec(kind, width)
    if encode:
        path.write_bytes(codec.encode(_image(kind, size)))
        return
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    codec.decode(path.read_bytes())
    peak = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) * 1024
    print(peak, codec.working_memory(size, size))


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--size", type=int, default=1024, help="square image side")
    p.add_argument("--child", nargs=4, help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.child:
        kind, width, path, mode = args.child
        child(kind, int(width), args.size, Path(path), mode == "encode")
        return 0
    print(f"{'decoder':24s} {'measured MiB':>12s} {'estimate MiB':>12s} {'B/pixel':>8s} {'measured/estimate':>18s}")
    with tempfile.TemporaryDirectory() as tmp:
        for name, (kind, width) in CASES.items():
            path = Path(tmp) / f"{kind}{width}.bin"
            run = [sys.executable, __file__, "--size", str(args.size), "--child", kind, str(width), str(path)]
            subprocess.run([*run, "encode"], check=True)
            peak, estimate = map(int, subprocess.run([*run, "decode"], check=True, capture_output=True,
                                                     text=True).stdout.split())
            print(f"{name:24s} {peak / 2**20:12.0f} {estimate / 2**20:12.0f} {peak / args.size**2:8.0f} "
                  f"{peak / estimate:18.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
