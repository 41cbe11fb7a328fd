"""Train the HyRES λ schedule outside the notebooks, on one process or many (``torchrun``).

    python -m hyreslib.hyres.train_cli --lambdas 0.045 0.032 --first-steps 2000 --steps 1000 --out runs/cli
    torchrun --nproc_per_node 4 -m hyreslib.hyres.train_cli --lambdas 0.045 0.032 0.016 0.008 0.004 0.002 \\
        --first-steps 200000 --steps 100000 --amp auto --channels-last auto --resume --out runs/cli

The same :func:`~.stages.run_schedule` as notebook 03: phase k is written to ``<out>/phaseK/codec.ckpt``,
each phase starts from the previous one's best weights (phase 1 from ``--init`` when given), finished
phases with the same settings are reused, and ``--resume`` keeps a training state per phase so an
interrupted run continues where it stopped. Under ``torchrun`` each rank trains on its share of every
global batch and rank 0 writes the files.
"""

from __future__ import annotations

import argparse
import warnings
from dataclasses import replace
from pathlib import Path

import torch

from ..datasets import data
from ..training import distributed
from ..training.engine import TrainSetup
from .codec import HyresCodec, JpegSettings
from .residual import CONDITIONINGS, PARSES, ResidualCodec, ResidualConfig
from .stages import Phase, run_schedule

SWITCH = {"auto": "auto", "on": True, "off": False}


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m hyreslib.hyres.train_cli", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--lambdas", "--lmbda", type=float, nargs="+", required=True, help="the schedule, high to low")
    p.add_argument("--out", type=Path, required=True, help="folder of the phases: <out>/phaseK/codec.ckpt")
    p.add_argument("--init", type=Path, help="phase 1 continues this codec checkpoint (else: from scratch)")
    p.add_argument("--steps", type=int, default=1000, help="steps per phase")
    p.add_argument("--first-steps", type=int, help="steps of phase 1 when trained from scratch (default: --steps)")
    p.add_argument("--rate-warmup", type=float, default=0.0,
                   help="phase 1 from scratch: fraction of its steps over which the rate's weight ramps 0 -> 1")
    p.add_argument("--batch", type=int, default=16, help="global batch (split across ranks)")
    p.add_argument("--crop", type=int, default=256)
    p.add_argument("--lr", type=float, default=1e-4)
    p.add_argument("--N", type=int, default=128)
    p.add_argument("--M", type=int, default=192)
    p.add_argument("--depth", type=int, default=4)
    p.add_argument("--jpeg-quality", type=int, default=1, help="base quality of every phase (with --init: its own)")
    p.add_argument("--base-qualities", type=int, nargs="+", help="one JPEG base quality per λ")
    p.add_argument("--conditioning", choices=CONDITIONINGS, default="none",
                   help="base: the decoded JPEG base also feeds g_a, the entropy model and g_s")
    p.add_argument("--parse", choices=PARSES,
                   help="integer: y's coding tables chosen in integer arithmetic from z, so files decode on any "
                        "machine (default: float; with --init: its own)")
    p.add_argument("--latent-dropout", type=float, default=0.0,
                   help="fraction of crops trained without a latent (the encoder's latent-free mode)")
    p.add_argument("--val-images", type=int, default=0, help="validation images for model selection (0: all)")
    p.add_argument("--workers", type=int, default=4)
    p.add_argument("--val-every", type=int, default=5000)
    p.add_argument("--amp", choices=("none", "bf16", "fp16", "auto"), default="none",
                   help="mixed precision (auto: bf16 on CUDA, none on a CPU)")
    p.add_argument("--channels-last", choices=tuple(SWITCH), default="off", help="NHWC layout (auto: on CUDA)")
    p.add_argument("--checkpoint-every-s", type=float, default=300.0, help="with --resume: seconds between states")
    p.add_argument("--checkpoint-every-steps", type=int, default=0, help="with --resume: steps between states")
    p.add_argument("--data-root", default=None)
    p.add_argument("--device", default="auto")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--resume", action="store_true", help="keep a training state per phase and continue from it")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> None:
    warnings.filterwarnings("ignore", message=".*torch.jit.script.*", category=FutureWarning)
    args = parse_args(argv)
    qualities = args.base_qualities
    if qualities and len(qualities) != len(args.lambdas):
        raise SystemExit(f"train_cli: {len(qualities)} base qualities for {len(args.lambdas)} λ phases")
    world, device = distributed.setup(args.device)
    init = HyresCodec.load(args.init) if args.init else None
    if init and args.parse and args.parse != init.residual.config.parse:
        raise SystemExit(f"train_cli: --init codes with the {init.residual.config.parse} parse, not {args.parse}")
    base = init.jpeg if init else JpegSettings(quality=args.jpeg_quality)
    settings = [replace(base, quality=q) for q in qualities] if qualities else [base] * len(args.lambdas)
    train_images = data.train_set(root=args.data_root)
    val_images = data.train_set(split="validation", root=args.data_root).subset(args.val_images or None)
    if world.is_main:
        print(f"{train_images.describe()}\n{val_images.describe()}\nworld size {world.size}, device {device}")
    setup = TrainSetup(steps=args.steps, crop=args.crop, batch=args.batch, lr=args.lr, workers=args.workers,
                       latent_dropout=args.latent_dropout, val_every=args.val_every, seed=args.seed,
                       device=str(device), amp=args.amp, channels_last=SWITCH[args.channels_last],
                       checkpoint_every_s=args.checkpoint_every_s, checkpoint_every_steps=args.checkpoint_every_steps)
    first_setup = replace(setup, steps=args.first_steps or args.steps, rate_warmup=args.rate_warmup)
    config = ResidualConfig(N=args.N, M=args.M, depth=args.depth, conditioning=args.conditioning,
                            parse=args.parse or "float")

    def report(phase: Phase) -> None:
        print(f"phase {phase.index} (λ={phase.lmbda}, base q{phase.codec.jpeg.quality}): {phase.checkpoint} — "
              f"{phase.origin}", flush=True)

    run_schedule(args.lambdas, settings, train_images, val_images, setup, args.out, lambda: ResidualCodec(config),
                 first_setup=first_setup, init=init, resume=args.resume, on_phase=report)
    distributed.teardown()


if __name__ == "__main__":
    torch.set_float32_matmul_precision("high")
    main()
