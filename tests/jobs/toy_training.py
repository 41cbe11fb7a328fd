"""A small training job for engine tests (run as a script or under torchrun). Its step draws noise
from the global RNG, so a resumed run matches the uninterrupted one only if the RNG is restored.

usage: toy_training.py OUT_DIR STEPS GLOBAL_BATCH [SLEEP_PER_STEP]
Writes OUT_DIR/log.csv, OUT_DIR/state.pt (resume file) and OUT_DIR/final_rank<R>.pt.
"""

import sys
import time
from pathlib import Path

import torch
from torch import nn

from hyreslib.training import distributed
from hyreslib.training.engine import TrainConfig, train

out, steps, batch = Path(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])
sleep = float(sys.argv[4]) if len(sys.argv) > 4 else 0.0
torch.set_num_threads(1)
world, device = distributed.setup("cpu")
torch.manual_seed(0)
data = torch.utils.data.TensorDataset(torch.randn(96, 3, 8, 8), torch.randn(96, 3, 8, 8))
loader = distributed.make_loader(data, batch, seed=1)
model = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(), nn.Conv2d(8, 3, 3, padding=1))


def step(m, b):
    x, y = b
    time.sleep(sleep)
    # Noise for the global batch, of which this rank takes its items (the sampler's r, r+N, ...),
    # so that one process and N processes add the same noise to the same item.
    noise = torch.randn(world.size * x.shape[0], *x.shape[1:])[world.rank::world.size]
    return {"loss": (m(x + 0.1 * noise) - y).pow(2).mean()}


cfg = TrainConfig(steps=steps, lr=1e-2, log_every=1, checkpoint_every_steps=5, schedule="cosine")
hist = train(model, step, loader, cfg, log_csv=out / "log.csv", checkpoint_path=out / "state.pt",
             resume=True, progress=False)
torch.save({"model": model.state_dict(), "resumed_from": hist.resumed_from}, out / f"final_rank{world.rank}.pt")
distributed.teardown()
