"""Encode/decode latency of the HyRES codec next to CompressAI's bmshj2018-hyperprior (quality 3),
Cheng2020AnchorCheckerboard (the same two-pass checkerboard context as HyRES) at the HyRES model's own N/M and at
the zoo's N = M = 192, and mbt2018 (serial autoregressive context, quality 3), on one 768x512 image, in one run.

    .venv/bin/python bench/codec_latency.py [--device cpu|cuda|auto] [--checkpoint CKPT | --model NAME]
                                            [--N 128 --M 192 --conditioning none|base --refine-width 0
                                             --refine-stride 1]
                                            [--image PATH] [--repeat 3] [--threads 2] [--peers all|same]
                                            [--json OUT]

HyRES times cover the whole codec (JPEG encode + canonical decode, residual coding, container;
decode: JPEG decode, residual decode, reconstruction, refiner); the CompressAI times cover
``compress``/``decompress`` of the padded image. A HyRES codec that knows its λ encodes by
choosing among its coding modes, which decodes each candidate picture (a synthesis per mode with a
latent; the peers' ``compress`` runs no synthesis). It searches the modes it kept on validation data
(``HyresCodec.modes``); when those are not all, a second row times the search over every mode, and
when they are several, a third the mode it chose alone (``encode_detailed(mode=...)``, the same
file). Each model is run once to warm up, then
``--repeat`` times, every codec in turn in each round; the median is reported. The ratio columns are
HyRES / peer, measured in the same run.

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

from hyreslib.core.device import describe_device, resolve_device  # noqa: E402
from hyreslib.datasets import data  # noqa: E402
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


def measure(cases: list[dict], device: torch.device, repeat: int) -> None:
    """Time every case's ``encode`` and ``decode`` in turns (one warm-up call each, then ``repeat``
    rounds over all cases), so that a change of the machine's load during the run reaches every
    codec alike; store the medians as ``encode_s`` / ``decode_s``."""
    ops = [(case, op) for case in cases for op in ("encode", "decode")]
    times: dict[tuple[int, str], list[float]] = {(id(c), op): [] for c, op in ops}
    for case, op in ops:
        case[op]()
    for _ in range(repeat):
        for case, op in ops:
            sync(device)
            t0 = time.perf_counter()
            case[op]()
            sync(device)
            times[id(case), op].append(time.perf_counter() - t0)
    for case, op in ops:
        case[f"{op}_s"] = statistics.median(times[id(case), op])
        del case[op]


def load_image(path: str | None) -> tuple[str, torch.Tensor]:
    from hyreslib.core.images import load_image as load

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
        from hyreslib.pipeline import models

        path = args.checkpoint or models.model_path(args.model)
        return HyresCodec.load(path, device=device), f"{args.checkpoint or args.model}"
    torch.manual_seed(0)
    config = ResidualConfig(N=args.N, M=args.M, conditioning=args.conditioning)
    refine = MultiScaleRefine(args.refine_width, args.refine_stride) if args.refine_width else None
    codec = HyresCodec(ResidualCodec(config), refine=refine, device=device)
    with torch.no_grad():
        _, base = codec.base_layer(x)
        cond = codec._cond(base, codec.jpeg.quality)
        latent = codec.residual.analyse(codec._residual_input(x, base), cond)
    scale_latent(codec.residual, latent, args.latent_std)
    refiner = f"width {args.refine_width}, stride {args.refine_stride}" if args.refine_width else "none"
    return codec, (f"untrained N={args.N} M={args.M} {args.conditioning} conditioning, refiner {refiner}, "
                   f"latent std scaled to {args.latent_std}")


def bench_hyres(args, x: torch.Tensor, device: torch.device) -> list[dict]:
    codec, note = hyres_codec(args, x, device)
    encoded = codec.encode_detailed(x)
    cfg = codec.residual.config
    row = {"params": sum(p.numel() for p in codec.residual.parameters()), "bytes": len(encoded.data),
           "N": cfg.N, "M": cfg.M}
    search = "modes " + "/".join(codec.modes) if codec.lmbda is not None else "latent only: no λ"
    rows = [{**row, "model": "HyRES", "encode": lambda: codec.encode_detailed(x),
             "decode": lambda: codec.decode(encoded.data),
             "note": f"{note}; encode = mode search ({search}), chose {encoded.mode}"}]
    if codec.lmbda is not None and codec.modes != bitstream.MODES:
        full = codec.with_modes(bitstream.MODES)
        chose = full.encode_detailed(x).mode
        rows.append({**row, "model": "HyRES, every mode searched", "encode": lambda: full.encode_detailed(x),
                     "decode": lambda: codec.decode(encoded.data),
                     "note": f"the search over {'/'.join(bitstream.MODES)}, not only the modes the model kept on "
                             f"validation data; chose {chose}"})
    if codec.lmbda is not None and len(codec.modes) > 1:
        rows.append({**row, "model": f"HyRES, {encoded.mode} mode only",
                     "encode": lambda: codec.encode_detailed(x, mode=encoded.mode),
                     "decode": lambda: codec.decode(encoded.data),
                     "note": f"encode_detailed(mode={encoded.mode!r}): no mode search; the same file"})
    if codec.refine is not None:
        def bare_decode() -> torch.Tensor:
            refine, codec.refine = codec.refine, None
            try:
                return codec.decode(encoded.data)
            finally:
                codec.refine = refine

        rows.append({**row, "model": "HyRES without its refiner", "encode": lambda: codec.encode_detailed(x),
                     "decode": bare_decode,
                     "note": f"the same model and file, no refiner (width {codec.refine.width}, stride "
                             f"{codec.refine.stride}) when decoding"})
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
        out = model.compress(xp)
    return {"model": name, "params": sum(p.numel() for p in model.parameters()), "bytes": _nbytes(out["strings"]),
            "encode": torch.no_grad()(lambda: model.compress(xp)),
            "decode": torch.no_grad()(lambda: model.decompress(out["strings"], out["shape"])),
            "note": f"untrained, latent std scaled to {args.latent_std}"}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--device", default="cpu", help="cpu | cuda | auto")
    p.add_argument("--checkpoint", help="trained HyRES codec checkpoint (default: untrained paper-scale model)")
    p.add_argument("--model", help="a shipped model by name (hyres models list)")
    p.add_argument("--N", type=int, default=128, help="untrained model: transform channels")
    p.add_argument("--M", type=int, default=192, help="untrained model: latent channels")
    p.add_argument("--conditioning", default="none", help="untrained model: none | base")
    p.add_argument("--refine-width", type=int, default=0, help="untrained model: refiner width (0: none)")
    p.add_argument("--refine-stride", type=int, default=1, help="untrained model: refiner stride (2: half resolution)")
    p.add_argument("--image", help="image file (default: kodim01, else an embedded photo resized to 768x512)")
    p.add_argument("--repeat", type=int, default=1, help="timed runs per model after one warm-up (median)")
    p.add_argument("--threads", type=int, default=0, help="torch CPU threads (0 = torch default)")
    p.add_argument("--latent-std", type=float, default=4.0, help="latent spread given to untrained models")
    p.add_argument("--peers", choices=["all", "same"], default="all",
                   help="all: every CompressAI peer; same: only the checkerboard of HyRES's N/M")
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
    if args.peers == "all":
        if (N, M) != (192, 192):
            peers.append(bench_zoo("Cheng2020 checkerboard N192", cheng_checkerboard(192, 192), x, device, args))
        peers += [bench_zoo("bmshj2018-hyperprior q3", bmshj2018_hyperprior(quality=3, pretrained=False), x, device,
                            args),
                  bench_zoo("mbt2018 q3 (autoregressive)", mbt2018(quality=3, pretrained=False), x, device, args)]
    measure(hyres + peers, device, args.repeat)
    print(f"{'model':34s} {'params':>10s} {'enc s':>8s} {'dec s':>8s} {'bytes':>8s}")
    for r in hyres + peers:
        print(f"{r['model']:34s} {r['params']:10d} {r['encode_s']:8.3f} {r['decode_s']:8.3f} {r['bytes']:8d}")
    print("\nHyRES / peer, measured in this run (< 1: HyRES faster)")
    print(f"{'HyRES':34s} {'peer':34s} {'encode':>7s} {'decode':>7s}")
    for r in peers:
        r["hyres_over_peer"] = {h["model"]: {k: h[f"{k}_s"] / r[f"{k}_s"] for k in ("encode", "decode")}
                                for h in hyres}
        for h, ratio in r["hyres_over_peer"].items():
            print(f"{h:34s} {r['model']:34s} {ratio['encode']:7.2f} {ratio['decode']:7.2f}")
    print()
    for r in hyres + peers:
        print(f"  {r['model']}: {r['note']}")
    rows = hyres + peers
    if args.json:
        Path(args.json).write_text(json.dumps({"image": name, "device": str(device), "rows": rows}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
