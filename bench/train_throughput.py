"""Training throughput: the kit's engine on the paper-scale HyRES residual codec, next to a plain
training loop around a CompressAI model of similar size (``--peer``: ``cheng2020-checkerboard``,
the same two-pass checkerboard context, N = M = 192; or ``bmshj2018`` hyperprior), on the same
crops, in one run.

    .venv/bin/python bench/train_throughput.py [--device cpu|cuda|auto] [--steps 6] [--crop 128]
                                               [--batch 8] [--peer cheng2020-checkerboard] [--threads 0]

Both consume the same DataLoader (crops with their JPEG base computed in the workers; the plain
loop ignores the base). Each run does ``--warmup`` untimed steps, then ``--steps`` timed steps;
reported: images/s and seconds per step, and the ratio engine / plain. The engine's extra work
per step (finite checks, gradient clipping, the aux optimiser, logging) is what the ratio shows.
"""

from __future__ import annotations

import argparse
import sys
import time
import warnings
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from hyreslib.core.device import describe_device, resolve_device  # noqa: E402
from hyreslib.datasets import data
from hyreslib.hyres import JpegSettings, ResidualCodec, ResidualConfig  # noqa: E402
from hyreslib.hyres.train import JpegBase, make_step  # noqa: E402
from hyreslib.training import engine  # noqa: E402


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def time_engine(loader, args, device) -> float:
    """Seconds for ``args.steps`` engine steps on the paper-scale residual codec (after warm-up)."""
    torch.manual_seed(0)
    model = ResidualCodec(ResidualConfig(N=128, M=192, depth=4))
    step = make_step(args.lmbda)
    cfg = engine.TrainConfig(steps=args.warmup + args.steps, lr=1e-4, log_every=10 ** 9, device=str(device),
                             amp=args.amp)
    trainer = engine.Trainer(model, step, loader, cfg)
    for _ in range(args.warmup):
        trainer.train_step()
    _sync(device)
    t0 = time.perf_counter()
    for _ in range(args.steps):
        trainer.train_step()
    _sync(device)
    return time.perf_counter() - t0


def time_plain(loader, args, device) -> tuple[float, int]:
    """Seconds for ``args.steps`` steps of a minimal CompressAI-style loop (Adam + aux Adam + clip)."""
    from compressai.losses import RateDistortionLoss
    from compressai.models import Cheng2020AnchorCheckerboard
    from compressai.zoo import bmshj2018_hyperprior

    torch.manual_seed(0)
    net = (Cheng2020AnchorCheckerboard(N=192) if args.peer == "cheng2020-checkerboard"
           else bmshj2018_hyperprior(quality=args.quality, pretrained=False)).to(device).train()
    main = [p for n, p in net.named_parameters() if not n.endswith(".quantiles")]
    aux = [p for n, p in net.named_parameters() if n.endswith(".quantiles")]
    opt, aux_opt = torch.optim.Adam(main, lr=1e-4), torch.optim.Adam(aux, lr=1e-3)
    criterion = RateDistortionLoss(lmbda=args.lmbda)
    batches = iter(loader)

    def one_step() -> None:
        nonlocal batches
        try:
            x = next(batches)[0].to(device)
        except StopIteration:
            batches = iter(loader)
            x = next(batches)[0].to(device)
        opt.zero_grad()
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=args.amp == "bf16"):
            loss = criterion(net(x), x)["loss"]
        loss.backward()
        torch.nn.utils.clip_grad_norm_(main, 1.0)
        opt.step()
        aux_opt.zero_grad()
        net.aux_loss().backward()
        aux_opt.step()

    for _ in range(args.warmup):
        one_step()
    _sync(device)
    t0 = time.perf_counter()
    for _ in range(args.steps):
        one_step()
    _sync(device)
    return time.perf_counter() - t0, sum(p.numel() for p in net.parameters())


def main() -> None:
    warnings.filterwarnings("ignore", category=FutureWarning)
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--device", default="auto")
    ap.add_argument("--steps", type=int, default=6)
    ap.add_argument("--warmup", type=int, default=2)
    ap.add_argument("--crop", type=int, default=128)
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--peer", default="cheng2020-checkerboard", choices=["cheng2020-checkerboard", "bmshj2018"])
    ap.add_argument("--quality", type=int, default=6, help="bmshj2018-hyperprior quality (6: N=192, M=320)")
    ap.add_argument("--lmbda", type=float, default=0.045)
    ap.add_argument("--amp", default="none", help="autocast on CUDA for both loops: none | bf16 (fp16: engine only)")
    ap.add_argument("--workers", type=int, default=1)
    ap.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: default)")
    ap.add_argument("--data-root", default=None)
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    device = resolve_device(args.device)
    images = data.train_set(root=args.data_root)
    loader = data.crop_loader(images, args.crop, args.batch, seed=0, workers=args.workers,
                              transform=JpegBase(JpegSettings(quality=1)))
    print(f"device {describe_device(device)}; {images.describe()}; crops {args.crop}², batch {args.batch}")
    t_engine = time_engine(loader, args, device)
    hyres_params = sum(p.numel() for p in ResidualCodec(ResidualConfig(N=128, M=192, depth=4)).parameters())
    t_plain, plain_params = time_plain(loader, args, device)
    n = args.steps * args.batch
    print(f"{'model':<52}{'params':>12}{'s/step':>9}{'images/s':>10}")
    print(f"{'HyRES residual codec N128 M192, kit engine':<52}{hyres_params:>12,}{t_engine / args.steps:>9.3f}"
          f"{n / t_engine:>10.2f}")
    peer = "Cheng2020 checkerboard N192" if args.peer == "cheng2020-checkerboard" else f"bmshj2018 q{args.quality}"
    print(f"{f'{peer}, plain loop':<52}{plain_params:>12,}{t_plain / args.steps:>9.3f}"
          f"{n / t_plain:>10.2f}")
    print(f"throughput ratio engine / plain: {t_plain / t_engine:.2f}")


if __name__ == "__main__":
    main()
