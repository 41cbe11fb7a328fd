"""Training the learned predictors for rate: the loss is the discretized-Laplace code length of
every level's odd set given that level's TRUE even set, in bits per sub-pixel of the crop.

That is exactly the lossless rate the codec achieves (the encoder has the true pixels, and
closed-loop decoding reproduces them), and it trains the mean and the scale together::

    crop (B,3,S,S) in [0,1] -> integer pixels in the predictor's colour space -> per level: even, odd = split
        -> predictor(even, odd teacher-forced) -> mean, scale -> bits(odd) -> sum / (B*3*S*S)

The loop itself is :func:`hyreslib.training.engine.train` with the caller's
:class:`~hyreslib.training.engine.TrainSetup` (notebook 01: AdamW, cosine annealing); validation (per-level
rate, PSNR and per-image SSIM of the predictions on validation images) picks the weights that are kept.
"""

from __future__ import annotations

from pathlib import Path

import torch

from ..core.checkpoint import build_model, load_checkpoint, save_checkpoint
from ..datasets.data import ImageSet, crop_loader
from ..training.engine import History, TrainSetup, train
from .colour import to_pixels
from .entropy import laplace_bits
from .predictors import Predictor, build_predictor
from .split import level_pairs

CHECKPOINT_KIND = "hidenet-predictor"


def rate_step(levels: int):
    """A ``step_fn`` for the engine: loss = residual bits per sub-pixel of the batch."""

    def step(model: Predictor, batch: torch.Tensor) -> dict[str, torch.Tensor]:
        pixels = to_pixels(batch, model.colour)
        total = pixels.numel()
        out: dict[str, torch.Tensor] = {}
        loss = pixels.new_zeros(())
        for level, even, odd in level_pairs(pixels, levels):
            if odd.numel() == 0:
                continue
            mean, scale = model(even, odd, level)
            bits = laplace_bits(odd, mean, scale).sum()
            loss = loss + bits / total
            out[f"bpsp_l{level}"] = (bits / odd.numel()).detach()
        out["loss"] = loss
        return out

    return step


def train_predictor(model: Predictor, train_images: ImageSet, val_images: ImageSet, setup: TrainSetup,
                    val_crop: int | None = 256, log_csv: str | Path | None = None, progress: bool = True,
                    desc: str = "predictor") -> History:
    """Train ``model`` in place on the rate of its ``model.levels`` levels; keeps the best validated
    weights (validation on ``val_crop`` centre crops, None: whole images)."""
    from .evaluate import prediction_quality

    loader = crop_loader(train_images, setup.crop, setup.batch, seed=setup.seed, workers=setup.workers)

    def validate(m: Predictor) -> dict[str, float]:
        q = prediction_quality(m, val_images, m.levels, crop=val_crop)
        return {"loss": q["bpsp"], **{f"val_{k}": v for k, v in q.items() if k != "bpsp"}}

    hist = train(model, rate_step(model.levels), loader, setup, val_fn=validate, log_csv=log_csv,
                 progress=progress, desc=desc)
    if hist.best_state is not None:
        model.load_state_dict(hist.best_state)
    return hist


def save_predictor(path: str | Path, model: Predictor, extra: dict | None = None) -> Path:
    return save_checkpoint(path, CHECKPOINT_KIND, model.config(), model.state_dict(), extra)


def load_predictor(path: str | Path) -> Predictor:
    """Rebuild a predictor from a checkpoint written by :func:`save_predictor`."""
    payload = load_checkpoint(path, kind=CHECKPOINT_KIND)
    return build_model(lambda: build_predictor(payload["config"]), payload["state_dict"], f"{path}").eval()
