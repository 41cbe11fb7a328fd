"""Does a ``.hyr`` file parse on a decoder whose float path differs from the encoder's?

Encodes images with a codec (a checkpoint, or fresh models of both parses) on ``--device``, then
decodes every file on the CPU with perturbed float paths: other thread counts, the model in
float64, every float parameter one ULP up or down. Prints, per decoder, how many files parsed to
the encoder's symbols (their content CRC matched) and the largest pixel difference::

    PYTHONPATH=$PWD python bench/parse_robustness.py --checkpoint models/x.ckpt models/y.ckpt --device cuda
"""

from __future__ import annotations

import argparse
import copy
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from hyreslib.codecs.container import CorruptStreamError  # noqa: E402
from hyreslib.datasets import data  # noqa: E402
from hyreslib.hyres import HyresCodec, JpegSettings, ResidualCodec, ResidualConfig, bitstream  # noqa: E402
from hyreslib.hyres.codec import content_crc  # noqa: E402


def one_ulp(codec: HyresCodec, seed: int = 0) -> HyresCodec:
    """A CPU copy whose float parameters are each one ULP off (after the coding tables and integer
    weights were derived, as on a machine that loads the same model but computes differently)."""
    other = copy.deepcopy(codec)
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in other.residual.parameters():
            up = torch.rand(p.shape, generator=g) < 0.5
            p.copy_(torch.nextafter(p, torch.where(up, 1.0, -1.0).to(p) * float("inf")))
    return other


def decode(codec: HyresCodec, data_: bytes, dtype: torch.dtype) -> tuple[bool, torch.Tensor | None]:
    """(symbols and base as the encoder's, the picture) for one file, in ``dtype``."""
    header, parts = bitstream.read(data_)
    base = codec._decode_base(header, parts["jpeg"])
    cond = codec._cond(base, header.jpeg_quality)
    feats = codec.residual.features(None if cond is None else cond.to(dtype))
    hp, wp = codec._padded(header.height, header.width)
    try:
        out = codec.residual.decompress_latent({k: [parts[k]] for k in bitstream.STRINGS}, hp, wp, feats)
    except CorruptStreamError:
        return False, None
    if content_crc(out["z_symbols"][0], out["symbols"][0], base) != header.content_crc:
        return False, None
    with torch.no_grad():
        r_hat = codec.residual.synthesise(out["y_hat"], feats)[0, :, :header.height, :header.width]
    return True, (base + r_hat.float()).clamp(0, 1)


def check(codec: HyresCodec, images, label: str) -> None:
    files = [codec.encode(x) for _, x in images]
    cpu = copy.deepcopy(codec)
    cpu.residual, cpu.device = cpu.residual.cpu(), torch.device("cpu")
    reference = [decode(cpu, f, torch.float32)[1] for f in files]
    float64 = copy.deepcopy(cpu)
    float64.residual = float64.residual.double()
    decoders = [("cpu, 1 thread", cpu, torch.float32, 1), ("cpu, 3 threads", cpu, torch.float32, 3),
                ("cpu, float64", float64, torch.float64, None), ("cpu, 1 ULP", one_ulp(cpu), torch.float32, None),
                ("cpu, 1 ULP other signs", one_ulp(cpu, 1), torch.float32, None)]
    threads = torch.get_num_threads()
    for name, decoder, dtype, n in decoders:
        torch.set_num_threads(n or threads)
        parsed, diff = 0, 0.0
        for f, ref in zip(files, reference):
            ok, image = decode(decoder, f, dtype)
            parsed += ok
            if ok and ref is not None:
                diff = max(diff, float((image - ref).abs().max()))
        torch.set_num_threads(threads)
        print(f"{label:28s} encoded on {codec.device}, decoded on {name:24s}: {parsed}/{len(files)} parse, "
              f"max |pixel diff| {diff:.2e}", flush=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--checkpoint", type=Path, nargs="+",
                    help="codec checkpoints (default: fresh N=48/M=64 models of both parses)")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--dataset", default="kodak")
    ap.add_argument("--images", type=int, default=4)
    args = ap.parse_args()
    images = list(data.dataset(args.dataset, "test" if args.dataset == "kodak" else "validation"))[:args.images]
    for path in args.checkpoint or []:
        codec = HyresCodec.load(path, device=args.device)
        check(codec, images, f"{path.parent.name}/{path.name} ({codec.residual.config.parse})")
    if args.checkpoint:
        return
    for parse in ("float", "integer"):
        torch.manual_seed(0)
        residual = ResidualCodec(ResidualConfig(N=48, M=64, depth=4, parse=parse))
        with torch.no_grad():  # an untrained latent rounds to zero; give it content
            residual.g_a[-2].weight.mul_(30.0)
            residual.latent_codec.hyper.h_a[-1].weight.mul_(10.0)
        check(HyresCodec(residual, JpegSettings(quality=10), device=args.device), images, f"untrained ({parse})")


if __name__ == "__main__":
    main()
