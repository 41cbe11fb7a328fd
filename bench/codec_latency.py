"""Encode/decode latency of the HyRES codec next to CompressAI's bmshj2018-hyperprior (quality 3),
Cheng2020AnchorCheckerboard (the same two-pass checkerboard context as HyRES) at the HyRES model's own N/M and at
the zoo's N = M = 192, and mbt2018 (serial autoregressive context, quality 3), on one 768x512 image, in one run.

    .venv/bin/python bench/codec_latency.py [--device cpu|cuda|auto] [--checkpoint CKPT | --model NAME]
                                            [--N 128 --M 192 --conditioning none|base --refine-width 0]
                                            [--image PATH] [--repeat 3] [--threads 2] [--json OUT]

HyRES times cover the whole codec (JPEG encode + canonical decode, residual coding, container;
decode: JPEG decode, residual decode, reconstruction, refiner); the CompressAI times cover
``compress``/``decompress`` of the padded image. A HyRES codec that knows its λ encodes by
choosing among its coding modes, which decodes each candidate picture (a synthesis per mode with a
latent; the peers' ``compress`` runs no synthesis), so encode is timed twice: with that mode search,
and in the mode it chose (``encode_detailed(mode=...)``). Each model is run once to warm up, then
``--repeat`` times; the median is reported. The ratio columns are HyRES / peer, measured in the same run.

The same-size peer is CompressAI's Cheng2020AnchorCheckerboard with its latent width (g_a's last
convolution, g_s's first block, h_a's input, h_s's output, the entropy parameters and the context
model) changed from N to M, so that both codecs code an M-channel latent with N-channel transforms.

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
from hyreslib.hyres import HyresCodec, ResidualCodec, ResidualConfig, bitstream  # noqa: E402
from hyreslib.hyres.refine import MultiScaleRefine  # noqa: E402


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


def hyres_codec(args, x: torch.Tensor, device: torch.device) -> tuple[HyresCodec, str]:
    """The codec under test: a checkpoint, a shipped model, or an untrained model of the given size."""
    if args.checkpoint or args.model:
        from hyreslib import models

        path = args.checkpoint or models.model_path(args.model)
        return HyresCodec.load(path, device=device), f"{args.checkpoint or args.model}"
    torch.manual_seed(0)
    config = ResidualConfig(N=args.N, M=args.M, conditioning=args.conditioning)
    refine = MultiScaleRefine(args.refine_width) if args.refine_width else None
    codec = HyresCodec(ResidualCodec(config), refine=refine, device=device)
    with torch.no_grad():
        _, base = codec.base_layer(x)
        cond = codec._cond(base, codec.jpeg.quality)
        latent = codec.residual.analyse(codec._residual_input(x, base), cond)
    scale_latent(codec.residual, latent, args.latent_std)
    return codec, (f"untrained N={args.N} M={args.M} {args.conditioning} conditioning, refiner width "
                   f"{args.refine_width or 'none'}, latent std scaled to {args.latent_std}")


def bench_hyres(args, x: torch.Tensor, device: torch.device) -> list[dict]:
    codec, note = hyres_codec(args, x, device)
    enc_s, encoded = timed(lambda: codec.encode_detailed(x), device, args.repeat)
    dec_s, _ = timed(lambda: codec.decode(encoded.data), device, args.repeat)
    params = sum(p.numel() for p in codec.residual.parameters())
    cfg = codec.residual.config
    search = "modes " + "/".join(bitstream.MODES) if codec.lmbda is not None else "latent only: no λ"
    rows = [{"model": "HyRES", "params": params, "encode_s": enc_s, "decode_s": dec_s, "bytes": len(encoded.data),
             "N": cfg.N, "M": cfg.M, "note": f"{note}; encode = mode search ({search}), chose {encoded.mode}"}]
    if codec.lmbda is not None:
        fixed_s, fixed = timed(lambda: codec.encode_detailed(x, mode=encoded.mode), device, args.repeat)
        rows.append({"model": f"HyRES, {encoded.mode} mode only", "params": params, "encode_s": fixed_s,
                     "decode_s": dec_s, "bytes": len(fixed.data), "N": cfg.N, "M": cfg.M,
                     "note": f"encode_detailed(mode={encoded.mode!r}): no mode search; same decode"})
    return rows


def cheng_checkerboard(N: int, M: int) -> nn.Module:
    """CompressAI's Cheng2020AnchorCheckerboard with N-channel transforms and an M-channel latent
    (the zoo model is N = M)."""
    from compressai.layers import CheckerboardMaskedConv2d, ResidualBlock, conv3x3
    from compressai.models import Cheng2020AnchorCheckerboard

    model = Cheng2020AnchorCheckerboard(N=N)
    if M == N:
        return model
    model.g_a[-1] = conv3x3(N, M, stride=2)
    model.g_s[0] = ResidualBlock(M, N)
    hyper, cb = model.latent_codec.hyper, model.latent_codec.y
    hyper.h_a[0] = conv3x3(M, N)
    hyper.h_s[-1] = conv3x3(N * 3 // 2, 2 * M)
    cb.entropy_parameters = nn.Sequential(nn.Conv2d(4 * M, 10 * M // 3, 1), nn.LeakyReLU(inplace=True),
                                          nn.Conv2d(10 * M // 3, 8 * M // 3, 1), nn.LeakyReLU(inplace=True),
                                          nn.Conv2d(8 * M // 3, 2 * M, 1))
    cb.context_prediction = CheckerboardMaskedConv2d(M, 2 * M, kernel_size=5, stride=1, padding=2)
    return model


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
    p.add_argument("--model", help="a shipped model by name (hyres models list)")
    p.add_argument("--N", type=int, default=128, help="untrained model: transform channels")
    p.add_argument("--M", type=int, default=192, help="untrained model: latent channels")
    p.add_argument("--conditioning", default="none", help="untrained model: none | base")
    p.add_argument("--refine-width", type=int, default=0, help="untrained model: refiner width (0: none)")
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

    from compressai.zoo import bmshj2018_hyperprior, mbt2018

    hyres = bench_hyres(args, x, device)
    N, M = hyres[0]["N"], hyres[0]["M"]
    peers = [bench_zoo(f"Cheng2020 checkerboard N{N} M{M}", cheng_checkerboard(N, M), x, device, args)]
    if (N, M) != (192, 192):
        peers.append(bench_zoo("Cheng2020 checkerboard N192", cheng_checkerboard(192, 192), x, device, args))
    peers += [bench_zoo("bmshj2018-hyperprior q3", bmshj2018_hyperprior(quality=3, pretrained=False), x, device, args),
              bench_zoo("mbt2018 q3 (autoregressive)", mbt2018(quality=3, pretrained=False), x, device, args)]
    print(f"{'model':34s} {'params':>10s} {'enc s':>8s} {'dec s':>8s} {'bytes':>8s}")
    for r in hyres + peers:
        print(f"{r['model']:34s} {r['params']:10d} {r['encode_s']:8.3f} {r['decode_s']:8.3f} {r['bytes']:8d}")
    print(f"\nHyRES / peer (same run; < 1: HyRES faster)\n{'peer':34s} {'encode':>8s} {'enc, 1 mode':>11s} {'decode':>8s}")
    for r in peers:
        ratios = {"encode": hyres[0]["encode_s"] / r["encode_s"], "encode_one_mode": hyres[-1]["encode_s"] / r["encode_s"],
                  "decode": hyres[0]["decode_s"] / r["decode_s"]}
        r["hyres_over_peer"] = ratios
        print(f"{r['model']:34s} {ratios['encode']:8.2f} {ratios['encode_one_mode']:11.2f} {ratios['decode']:8.2f}")
    print()
    for r in hyres + peers:
        print(f"  {r['model']}: {r['note']}")
    rows = hyres + peers
    if args.json:
        Path(args.json).write_text(json.dumps({"image": name, "device": str(device), "rows": rows}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
