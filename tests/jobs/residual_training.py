"""The real residual codec trained by the engine (main and auxiliary optimisers, entropy-bottleneck
quantiles outside DDP), for the DDP test (run under torchrun).

usage: residual_training.py OUT_DIR STEPS
Writes OUT_DIR/final_rank<R>.pt: the trained and the initial weights, and the logged rows.
"""

import sys
from pathlib import Path

import torch

from hyreslib.datasets import data
from hyreslib.hyres import JpegSettings, ResidualCodec, ResidualConfig
from hyreslib.hyres.train import JpegBase, make_step
from hyreslib.training import distributed, engine

out, steps = Path(sys.argv[1]), int(sys.argv[2])
torch.set_num_threads(1)
world, device = distributed.setup("cpu")
torch.manual_seed(0)
model = ResidualCodec(ResidualConfig(N=16, M=24, depth=4, scale_levels=64))
start = {k: v.clone() for k, v in model.state_dict().items()}
loader = data.crop_loader(data.embedded("train").subset(2), 64, 4, seed=0, transform=JpegBase(JpegSettings(quality=1)))
hist = engine.train(model, make_step(0.045), loader, engine.TrainConfig(steps=steps, lr=1e-3, log_every=1),
                    progress=False)
torch.save({"model": model.state_dict(), "start": start, "rows": hist.rows}, out / f"final_rank{world.rank}.pt")
distributed.teardown()
