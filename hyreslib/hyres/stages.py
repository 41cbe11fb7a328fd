"""The HyRES training stages built on :func:`hyreslib.engine.train`: residual-codec phases along a
λ schedule, and refinement with the codec frozen.

Phases (one rate point each) chain from high to low λ; each starts from the previous phase's
best checkpoint, with a fresh optimiser::

    phase 1 (λ0) --best weights--> phase 2 (λ1) --> ... --> phase 6 (λ5)

Refinement trains only the decoder-side :class:`~.refine.MultiScaleRefine` on what the frozen
codec reconstructs, with MSE + α·VGG16 perceptual loss; the bitstream cannot change.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Callable
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .. import engine
from ..data import ImageSet, crop_loader
from .codec import HyresCodec, JpegSettings, compose
from .conditioning import side_input
from .perceptual import PerceptualLoss
from .reference import ReferenceCodec, bmshj2018
from .reference import rd_step as reference_step
from .refine import MultiScaleRefine
from .residual import ResidualCodec
from .train import JpegBase, finalize, make_step, make_val, validation_batch

PAPER_LAMBDAS = (0.045, 0.032, 0.016, 0.008, 0.004, 0.002)
VAL_CROP = 256


@dataclass(frozen=True)
class Budget:
    """How one stage trains (everything but the model and λ)."""

    steps: int
    crop: int = 128
    batch: int = 8
    lr: float = 1e-3
    quantizer: str = "ste"
    rate_warmup: float = 0.0   # fraction of the steps over which the rate's weight ramps 0 -> 1 (from scratch)
    latent_dropout: float = 0.0  # fraction of crops trained in the latent-free mode (base-only decode)
    workers: int = 1
    val_every: int = 0
    log_every: int = 25
    seed: int = 0
    device: str = "cpu"

    def config(self) -> engine.TrainConfig:
        return engine.TrainConfig(steps=self.steps, lr=self.lr, log_every=self.log_every, val_every=self.val_every,
                                  device=self.device)


def train_residual(model: ResidualCodec, lmbda: float, settings: JpegSettings, train_images: ImageSet,
                   val_images: ImageSet, budget: Budget, log_csv: str | Path | None = None,
                   on_log: Callable | None = None, state_path: str | Path | None = None,
                   desc: str = "train", on_validate: Callable[[nn.Module], None] | None = None
                   ) -> tuple[HyresCodec, engine.History]:
    """Train ``model`` at ``lmbda``; keeps the best validated weights and returns a ready codec.

    ``state_path`` makes the run resumable: re-running after an interruption continues from the
    last training checkpoint instead of starting over. ``on_validate(model)`` runs at every
    validation (every ``budget.val_every`` steps and at the end), e.g. to keep snapshots.
    """
    torch.manual_seed(budget.seed)
    model.set_quantizer(budget.quantizer)
    loader = _crops(train_images, settings, budget)
    val_fn = _with_hook(make_val(val_images, lmbda, VAL_CROP, settings, budget.device), on_validate)
    step = make_step(lmbda, int(budget.rate_warmup * budget.steps), budget.latent_dropout)
    hist = engine.train(model, step, loader, budget.config(), val_fn=val_fn, log_csv=log_csv,
                        on_log=on_log, desc=desc, checkpoint_path=state_path, resume=state_path is not None)
    model.load_state_dict(hist.best_state)
    return HyresCodec(finalize(model.cpu()), settings, device=budget.device, lmbda=lmbda), hist


def _with_hook(val_fn: engine.ValFn, hook: Callable[[nn.Module], None] | None) -> engine.ValFn:
    if hook is None:
        return val_fn

    def val(model: nn.Module) -> dict[str, float]:
        hook(model)
        return val_fn(model)

    return val


def _crops(train_images: ImageSet, settings: JpegSettings, budget: Budget):
    """The training crops with their JPEG bases: the same for every model trained on one budget."""
    return crop_loader(train_images, budget.crop, budget.batch, seed=budget.seed, workers=budget.workers,
                       transform=JpegBase(settings))


def train_reference(lmbda: float, N: int, M: int, train_images: ImageSet, val_images: ImageSet, budget: Budget,
                    settings: JpegSettings = JpegSettings(), log_csv: str | Path | None = None,
                    desc: str = "bmshj2018", on_validate: Callable[[nn.Module], None] | None = None
                    ) -> tuple[ReferenceCodec, engine.History]:
    """CompressAI's bmshj2018-hyperprior trained on exactly the crops, steps and λ of
    :func:`train_residual` with the same ``budget`` (the base in each batch is not used)."""
    torch.manual_seed(budget.seed)
    model = bmshj2018(N, M)
    x, _ = validation_batch(val_images, VAL_CROP, settings, budget.device)
    step = reference_step(lmbda)

    @torch.no_grad()
    def val(m: nn.Module) -> dict[str, float]:
        return {k: float(v) for k, v in step(m, (x,)).items()}

    hist = engine.train(model, step, _crops(train_images, settings, budget), budget.config(),
                        val_fn=_with_hook(val, on_validate),
                        log_csv=log_csv, desc=desc)
    model.load_state_dict(hist.best_state)
    return ReferenceCodec(model), hist


def phase_signature(lmbda: float, settings: JpegSettings, budget: Budget, start: str) -> dict:
    """What a finished phase checkpoint must match to be reused instead of retrained."""
    return {"lmbda": lmbda, "jpeg": asdict(settings), "budget": {**asdict(budget), "device": None}, "start": start}


def load_finished(path: Path, signature: dict, device: str) -> HyresCodec | None:
    """A phase checkpoint written with the same signature, or None (then the phase is trained)."""
    from ..checkpoint import load_checkpoint

    if not path.is_file():
        return None
    saved = load_checkpoint(path)["extra"].get("signature")
    if json.dumps(saved, sort_keys=True) != json.dumps(signature, sort_keys=True):
        return None
    return HyresCodec.load(path, device=device)


def next_phase_model(codec: HyresCodec) -> ResidualCodec:
    """A trainable copy of a finished phase's residual model (the start of the next phase)."""
    return copy.deepcopy(codec.residual).cpu().train()


# --- refinement ---------------------------------------------------------------------------------
def make_refine_step(residual: ResidualCodec, perceptual: PerceptualLoss | None, alpha: float) -> engine.StepFn:
    """Step function training a refiner on the frozen codec's reconstructions of JpegBase batches.

    The refiner gets what the decoder feeds it, the unclamped ``base + r_hat`` (see
    :func:`~.codec.compose`); only its output is clamped when decoding.
    """
    residual.eval()
    for p in residual.parameters():
        p.requires_grad_(False)

    def step(refine: nn.Module, batch) -> dict[str, Tensor]:
        x, base, _, quality = batch
        with torch.no_grad():
            x0 = compose(base, residual.to(x.device)(x - base, side_input(base, quality))["r_hat"], clamp=False)
        x_hat = refine(x0)
        mse = F.mse_loss(x_hat, x)
        out = {"mse": mse.detach(), "psnr": -10 * torch.log10(mse.detach().clamp_min(1e-12)),
               "psnr_in": -10 * torch.log10(F.mse_loss(x0, x).clamp_min(1e-12))}
        loss = mse
        if perceptual is not None and alpha > 0:
            p = perceptual.to(x.device)(x_hat, x)
            out["perceptual"] = p.detach()
            loss = loss + alpha * p
        return {"loss": loss, **out}

    return step


def make_refine_val(residual: ResidualCodec, images: ImageSet, settings: JpegSettings,
                    device: str) -> engine.ValFn:
    """Validation MSE of the refined reconstruction, computed as the decoder computes it, on fixed
    centre crops (validation images)."""
    x, base = validation_batch(images, VAL_CROP, settings, device)
    with torch.no_grad():
        r_hat = residual.to(device).eval()(x - base, side_input(base, settings.quality))["r_hat"]

    def val(refine: nn.Module) -> dict[str, float]:
        mse = F.mse_loss(compose(base, r_hat, refine), x)
        return {"loss": float(mse), "psnr": float(-10 * torch.log10(mse.clamp_min(1e-12)))}

    return val


def train_refine(codec: HyresCodec, train_images: ImageSet, val_images: ImageSet, budget: Budget,
                 perceptual: PerceptualLoss | None, alpha: float, width: int = 64,
                 log_csv: str | Path | None = None, on_log: Callable | None = None,
                 desc: str = "refine") -> tuple[HyresCodec, engine.History]:
    """Train a refiner for a frozen codec; returns the codec with the refiner attached."""
    torch.manual_seed(budget.seed)
    residual = copy.deepcopy(codec.residual)
    refine = MultiScaleRefine(width)
    loader = _crops(train_images, codec.jpeg, budget)
    hist = engine.train(refine, make_refine_step(residual, perceptual, alpha), loader,
                        replace(budget.config(), optimizer="adam"), val_fn=make_refine_val(residual, val_images,
                                                                                          codec.jpeg, budget.device),
                        log_csv=log_csv, on_log=on_log, desc=desc)
    refine.load_state_dict(hist.best_state)
    return HyresCodec(codec.residual, codec.jpeg, refine.eval(), device=budget.device, lmbda=codec.lmbda), hist
