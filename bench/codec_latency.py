"""Encode/decode latency of the HyRES codec next to CompressAI's bmshj2018-hyperprior (quality 3),
Cheng2020AnchorCheckerboard (the same two-pass checkerboard context as HyRES, N = M = 192) and mbt2018
(serial autoregressive context, quality 3), on one 768x512 image, in one run.

    .venv/bin/python bench/codec_latency.py [--device cpu|cuda|auto] [--checkpoint CKPT]
                                            [--image PATH] [--repeat 3] [--threads 2] [--json OUT]

HyRES times cover the whole codec (JPEG encode + canonical decode, residual coding, container;
decode: JPEG decode, residual decode, reconstruction); the CompressAI times cover
``compress``/``decompress`` of the padded image. Each model is run once to warm up, then
``--repeat`` times; the median is reported.

Untrained models (no ``--checkpoint``, and CompressAI's zoo with ``pretrained=False``) produce a
latent that rounds to all zeros, which would time an empty bitstream. Their analysis transform
is therefore followed by a gain that scales the latent to a standard deviation of
``--latent-std`` (default 4, the order of trained latents), for every model alike.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
import warnings
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from hyreslib import data  # noqa: E402
from hyreslib.device import describe_device, resolve_device  # noqa: E402
from hyreslib.hyres import HyresCodec, ResidualCodec, ResidualConfig  # noqa: E402


class Gain(nn.Module):
    def __init__(self, gain: float):
        super().__init__()
        self.gain = gain

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.gain


def scale_latent(model: nn.Module, latent: torch.Tensor, std: float) -> None:
    """Append a gain to ``model.g_a`` that gives ``latent`` (its current output) standard deviation ``std``."""
    model.g_a = nn.Sequential(model.g_a, Gain(std / max(float(latent.std()), 1e-12)))


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def timed(fn, device: torch.device, repeat: int):
    fn()  # warm-up
    times, result = [], None
    for _ in range(repeat):
        sync(device)
        t0 = time.perf_counter()
        result = fn()
        sync(device)
        times.append(time.perf_counter() - t0)
    return statistics.median(times), result


def load_image(path: str | None) -> tuple[str, torch.Tensor]:
    from hyreslib.images import load_image as load

    if path:
        return Path(path).stem, load(path)
    try:
        return data.dataset("kodak", "test")[0]
    except FileNotFoundError:
        name, img = data.embedded("test")[0]
        # Resize the embedded photograph to Kodak's 768x512 so timings are comparable.
        return f"{name} (resized)", F.interpolate(img[None], size=(512, 768), mode="bilinear",
                                                  antialias=True, align_corners=False)[0].clamp(0, 1)


def bench_hyres(args, x: torch.Tensor, device: torch.device) -> dict:
    if args.checkpoint:
        codec = HyresCodec.load(args.checkpoint, device=device)
        note = f"checkpoint {args.checkpoint}"
    else:
        residual = ResidualCodec(ResidualConfig())
        codec = HyresCodec(residual, device=device)
        with torch.no_grad():
            latent = codec.residual.analyse(codec._residual_input(x, codec.base_layer(x)[1]))
        scale_latent(codec.residual, latent, args.latent_std)
        note = f"untrained N=128 M=192, latent std scaled to {args.latent_std}"
    enc_s, encoded = timed(lambda: codec.encode(x), device, args.repeat)
    dec_s, _ = timed(lambda: codec.decode(encoded), device, args.repeat)
    params = sum(p.numel() for p in codec.residual.parameters())
    return {"model": "HyRES (checkerboard)", "params": params, "encode_s": enc_s, "decode_s": dec_s,
            "bytes": len(encoded), "note": note}


def _nbytes(strings) -> int:
    """Bytes of CompressAI's (nested lists of) strings."""
    return len(strings) if isinstance(strings, bytes) else sum(_nbytes(s) for s in strings)


def bench_zoo(name: str, model: nn.Module, x: torch.Tensor, device: torch.device, args) -> dict:
    model = model.to(device).eval()
    h, w = x.shape[-2:]
    k = 64
    xp = F.pad(x[None], (0, -(-w // k) * k - w, 0, -(-h // k) * k - h)).to(device)
    with torch.no_grad():
        scale_latent(model, model.g_a(xp), args.latent_std)
    model.update(force=True)
    with torch.no_grad():
        enc_s, out = timed(lambda: model.compress(xp), device, args.repeat)
        dec_s, _ = timed(lambda: model.decompress(out["strings"], out["shape"]), device, args.repeat)
    return {"model": name, "params": sum(p.numel() for p in model.parameters()), "encode_s": enc_s,
            "decode_s": dec_s, "bytes": _nbytes(out["strings"]), "note": f"untrained, latent std scaled to {args.latent_std}"}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--device", default="cpu", help="cpu | cuda | auto")
    p.add_argument("--checkpoint", help="trained HyRES codec checkpoint (default: untrained paper-scale model)")
    p.add_argument("--image", help="image file (default: kodim01, else an embedded photo resized to 768x512)")
    p.add_argument("--repeat", type=int, default=1, help="timed runs per model after one warm-up (median)")
    p.add_argument("--threads", type=int, default=0, help="torch CPU threads (0 = torch default)")
    p.add_argument("--latent-std", type=float, default=4.0, help="latent spread given to untrained models")
    p.add_argument("--json", help="also write the results here")
    args = p.parse_args(argv)
    warnings.filterwarnings("ignore")
    if args.threads:
        torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    device = resolve_device(args.device)
    name, x = load_image(args.image)
    print(f"image {name} {x.shape[-1]}x{x.shape[-2]}, device {describe_device(device)}, "
          f"median of {args.repeat} after 1 warm-up")

    from compressai.models import Cheng2020AnchorCheckerboard
    from compressai.zoo import bmshj2018_hyperprior, mbt2018

    rows = [bench_hyres(args, x, device),
            bench_zoo("bmshj2018-hyperprior q3", bmshj2018_hyperprior(quality=3, pretrained=False), x, device, args),
            bench_zoo("Cheng2020 checkerboard N192", Cheng2020AnchorCheckerboard(N=192), x, device, args),
            bench_zoo("mbt2018 q3 (autoregressive)", mbt2018(quality=3, pretrained=False), x, device, args)]
    ref = rows[0]
    header = ("params", "enc s", "dec s", "enc/HyRES", "dec/HyRES", "bytes")
    print(f"{'model':30s} " + " ".join(f"{h:>10s}" for h in header))
    for r in rows:
        r["encode_ratio"] = r["encode_s"] / ref["encode_s"]
        r["decode_ratio"] = r["decode_s"] / ref["decode_s"]
        print(f"{r['model']:30s} {r['params']:10d} {r['encode_s']:10.3f} {r['decode_s']:10.3f} "
              f"{r['encode_ratio']:10.2f} {r['decode_ratio']:10.2f} {r['bytes']:10d}")
    for r in rows:
        print(f"  {r['model']}: {r['note']}")
    if args.json:
        Path(args.json).write_text(json.dumps({"image": name, "device": str(device), "rows": rows}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
