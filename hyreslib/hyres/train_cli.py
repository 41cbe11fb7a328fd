"""Train one HyRES phase outside the notebooks, on one process or many (``torchrun``).

    python -m hyreslib.hyres.train_cli --lmbda 0.045 --steps 200000 --out phase1.ckpt
    torchrun --nproc_per_node 4 -m hyreslib.hyres.train_cli --lmbda 0.032 --init phase1.ckpt --out phase2.ckpt

The same :func:`~.stages.train_residual` as notebooks 02/03; under ``torchrun`` each rank trains on
its share of every global batch and rank 0 writes the checkpoint. ``--resume`` continues an
interrupted run from ``<out>.state``.
"""

from __future__ import annotations

import argparse
import warnings
from pathlib import Path

import torch

from .. import data, distributed
from .codec import HyresCodec, JpegSettings
from .residual import CONDITIONINGS, ResidualCodec, ResidualConfig
from .stages import Budget, next_phase_model, train_residual


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m hyreslib.hyres.train_cli", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--lmbda", type=float, required=True)
    p.add_argument("--out", type=Path, required=True, help="codec checkpoint to write")
    p.add_argument("--init", type=Path, help="start from this codec checkpoint (the previous phase)")
    p.add_argument("--steps", type=int, default=1000)
    p.add_argument("--batch", type=int, default=16, help="global batch (split across ranks)")
    p.add_argument("--crop", type=int, default=256)
    p.add_argument("--lr", type=float, default=1e-4)
    p.add_argument("--N", type=int, default=128)
    p.add_argument("--M", type=int, default=192)
    p.add_argument("--depth", type=int, default=4)
    p.add_argument("--jpeg-quality", type=int, default=1)
    p.add_argument("--conditioning", choices=CONDITIONINGS, default="none",
                   help="base: the decoded JPEG base also feeds g_a, the entropy model and g_s")
    p.add_argument("--latent-dropout", type=float, default=0.0,
                   help="fraction of crops trained without a latent (the encoder's latent-free mode)")
    p.add_argument("--val-images", type=int, default=0, help="validation images for model selection (0: all)")
    p.add_argument("--workers", type=int, default=4)
    p.add_argument("--val-every", type=int, default=5000)
    p.add_argument("--data-root", default=None)
    p.add_argument("--device", default="auto")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--resume", action="store_true")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> None:
    warnings.filterwarnings("ignore", message=".*torch.jit.script.*", category=FutureWarning)
    args = parse_args(argv)
    world, device = distributed.setup(args.device)
    if args.init:
        start = HyresCodec.load(args.init)
        model, settings = next_phase_model(start), start.jpeg
    else:
        model = ResidualCodec(ResidualConfig(N=args.N, M=args.M, depth=args.depth, conditioning=args.conditioning))
        settings = JpegSettings(quality=args.jpeg_quality)
    train_images = data.train_set(root=args.data_root)
    val_images = data.train_set(split="validation", root=args.data_root).subset(args.val_images or None)
    if world.is_main:
        print(f"{train_images.describe()}\n{val_images.describe()}\nworld size {world.size}, device {device}")
    budget = Budget(steps=args.steps, crop=args.crop, batch=args.batch, lr=args.lr, workers=args.workers,
                    latent_dropout=args.latent_dropout, val_every=args.val_every, seed=args.seed, device=str(device))
    codec, hist = train_residual(model, args.lmbda, settings, train_images, val_images, budget,
                                 log_csv=args.out.with_suffix(".csv") if world.is_main else None,
                                 state_path=args.out.with_suffix(".state") if args.resume else None,
                                 desc=f"λ={args.lmbda}")
    if world.is_main:
        codec.save(args.out, extra={"lmbda": args.lmbda, "steps": args.steps, "best_step": hist.best_step,
                                    "resumed_from": hist.resumed_from, "world_size": world.size})
        resumed = f", resumed from step {hist.resumed_from}" if hist.resumed_from else ""
        print(f"wrote {args.out} (best validation step {hist.best_step}, {hist.seconds:.0f} s{resumed})")
    distributed.teardown()


if __name__ == "__main__":
    torch.set_float32_matmul_precision("high")
    main()
