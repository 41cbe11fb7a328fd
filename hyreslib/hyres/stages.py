"""The HyRES training stages built on :func:`hyreslib.training.engine.train`: residual-codec phases along a
λ schedule, and refinement with the codec frozen.

Phases (one rate point each) chain from high to low λ; each starts from the previous phase's
best checkpoint, with a fresh optimiser::

    phase 1 (λ0) --best weights--> phase 2 (λ1) --> ... --> phase 6 (λ5)

:func:`run_schedule` runs that chain (notebook 03 and ``train_cli``), reusing finished phases and
resuming an interrupted one.

Refinement trains only the decoder-side :class:`~.refine.MultiScaleRefine` on what the frozen
codec reconstructs, with MSE + α·VGG16 perceptual loss; the bitstream cannot change.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..datasets.data import ImageSet, crop_loader
from ..results import manifest
from ..results.metrics import psnr_from_mse
from ..training import distributed, engine
from ..training.engine import TrainSetup
from .codec import HyresCodec, JpegSettings, compose
from .conditioning import side_input
from .perceptual import PerceptualLoss
from .reference import ReferenceCodec, bmshj2018
from .reference import rd_step as reference_step
from .refine import MultiScaleRefine
from .residual import ResidualCodec
from .train import JpegBase, finalize, make_step, make_val, validation_batch

VAL_CROP = 256


def train_residual(model: ResidualCodec, lmbda: float, settings: JpegSettings, train_images: ImageSet,
                   val_images: ImageSet, setup: TrainSetup, log_csv: str | Path | None = None,
                   on_log: Callable | None = None, state_path: str | Path | None = None,
                   desc: str = "train", on_validate: Callable[[nn.Module], None] | None = None
                   ) -> tuple[HyresCodec, engine.History]:
    """Train ``model`` at ``lmbda``; keeps the best validated weights and returns a ready codec.

    ``state_path`` makes the run resumable: re-running after an interruption continues from the
    last training checkpoint instead of starting over. ``on_validate(model)`` runs at every
    validation (every ``setup.val_every`` steps and at the end), e.g. to keep snapshots.
    """
    torch.manual_seed(setup.seed)
    model.set_quantizer(setup.quantizer)
    loader = _crops(train_images, settings, setup)
    val_fn = _with_hook(make_val(val_images, lmbda, VAL_CROP, settings, setup.device), on_validate)
    step = make_step(lmbda, int(setup.rate_warmup * setup.steps), setup.latent_dropout)
    hist = engine.train(model, step, loader, setup, val_fn=val_fn, log_csv=log_csv,
                        on_log=on_log, desc=desc, checkpoint_path=state_path, resume=state_path is not None)
    model.load_state_dict(hist.best_state)
    return HyresCodec(finalize(model.cpu()), settings, device=setup.device, lmbda=lmbda), hist


def _with_hook(val_fn: engine.ValFn, hook: Callable[[nn.Module], None] | None) -> engine.ValFn:
    if hook is None:
        return val_fn

    def val(model: nn.Module) -> dict[str, float]:
        hook(model)
        return val_fn(model)

    return val


def _crops(train_images: ImageSet, settings: JpegSettings, setup: TrainSetup):
    """The training crops with their JPEG bases: the same for every model trained on one setup."""
    return crop_loader(train_images, setup.crop, setup.batch, seed=setup.seed, workers=setup.workers,
                       transform=JpegBase(settings))


def train_reference(lmbda: float, N: int, M: int, train_images: ImageSet, val_images: ImageSet, setup: TrainSetup,
                    settings: JpegSettings = JpegSettings(), log_csv: str | Path | None = None,
                    desc: str = "bmshj2018", on_validate: Callable[[nn.Module], None] | None = None
                    ) -> tuple[ReferenceCodec, engine.History]:
    """CompressAI's bmshj2018-hyperprior trained on exactly the crops, steps and λ of
    :func:`train_residual` with the same ``setup`` (the base in each batch is not used)."""
    torch.manual_seed(setup.seed)
    model = bmshj2018(N, M)
    x, _ = validation_batch(val_images, VAL_CROP, settings, setup.device)
    step = reference_step(lmbda)

    @torch.no_grad()
    def val(m: nn.Module) -> dict[str, float]:
        return {k: float(v) for k, v in step(m, (x,)).items()}

    hist = engine.train(model, step, _crops(train_images, settings, setup), setup,
                        val_fn=_with_hook(val, on_validate),
                        log_csv=log_csv, desc=desc)
    model.load_state_dict(hist.best_state)
    return ReferenceCodec(model), hist


def phase_signature(lmbda: float, settings: JpegSettings, setup: TrainSetup, start: str) -> dict:
    """What a finished phase checkpoint must match to be reused instead of retrained."""
    return {"lmbda": lmbda, "jpeg": asdict(settings), "budget": setup.signature(), "start": start}


def load_finished(path: Path, signature: dict, device: str) -> HyresCodec | None:
    """A phase checkpoint written with the same signature, or None (then the phase is trained)."""
    from ..core.checkpoint import load_checkpoint

    if not path.is_file():
        return None
    saved = load_checkpoint(path)["extra"].get("signature")
    if json.dumps(saved, sort_keys=True) != json.dumps(signature, sort_keys=True):
        return None
    return HyresCodec.load(path, device=device)


def next_phase_model(codec: HyresCodec) -> ResidualCodec:
    """A trainable copy of a finished phase's residual model (the start of the next phase)."""
    return copy.deepcopy(codec.residual).cpu().train()


@dataclass(frozen=True)
class Phase:
    """One finished phase of a λ schedule."""

    index: int                 # 1-based
    lmbda: float
    codec: HyresCodec
    checkpoint: Path           # the codec's file
    origin: str                # how it came to be: trained (and how long), reused, or given
    history: engine.History | None = None  # only when trained in this call

    @property
    def tag(self) -> str:
        return f"phase{self.index}"


def run_schedule(lambdas: Sequence[float], settings: Sequence[JpegSettings], train_images: ImageSet,
                 val_images: ImageSet, setup: TrainSetup, out_dir: str | Path,
                 new_model: Callable[[], ResidualCodec], *, first_setup: TrainSetup | None = None,
                 init: HyresCodec | None = None, first: Phase | None = None, resume: bool = True,
                 on_phase: Callable[[Phase], None] | None = None) -> list[Phase]:
    """Train the λ schedule: phase k at ``lambdas[k]`` on the base ``settings[k]``, each phase from
    the previous phase's best validated weights; returns the phases.

    Phase 1 is ``first`` when given (a finished codec, e.g. notebook 02's, used as is), else it
    continues ``init`` with ``setup``, else trains ``new_model()`` from scratch with ``first_setup``
    (longer, with a rate warm-up). Phase k's files lie in ``out_dir/phaseK/``: ``codec.ckpt``
    (written by rank 0, with its signature), ``train_log.csv`` and, with ``resume``, a training state
    named by the signature. A phase whose ``codec.ckpt`` has the same signature (λ, base, setup and
    the fingerprint of the codec it starts from) is reused instead of trained; an interrupted one
    continues from its state, while changed settings start afresh. Under ``torchrun`` every rank runs
    this with the same arguments (``out_dir`` on storage they all see). ``on_phase(phase)`` runs on
    rank 0 as each phase is ready (notebook 03 evaluates the test images there).
    """
    if len(settings) != len(lambdas):
        raise ValueError(f"{len(settings)} base settings for {len(lambdas)} λ phases")
    if first is not None and init is not None:
        raise ValueError("give a finished first phase or a codec to start from, not both")
    world, out_dir = distributed.current(), Path(out_dir)
    phases = [first] if first is not None else []
    if first is not None and world.is_main and on_phase:
        on_phase(first)
    previous = first.codec if first is not None else init
    for i in range(len(phases), len(lambdas)):
        lmbda, phase_setup = lambdas[i], setup if previous is not None else (first_setup or setup)
        sig = phase_signature(lmbda, settings[i], phase_setup, previous.fingerprint.hex() if previous else "scratch")
        folder = out_dir / f"phase{i + 1}"
        folder.mkdir(parents=True, exist_ok=True)
        ckpt, hist = folder / "codec.ckpt", None
        codec = load_finished(ckpt, sig, phase_setup.device)
        if codec is not None and previous is None and codec.residual.config != new_model().config:
            codec = None  # the signature of a phase from scratch does not name the model's shape or parse
        if codec is not None:
            origin = "reused: finished earlier with the same settings"
        else:
            model = next_phase_model(previous) if previous is not None else new_model()
            state = folder / f"train_state-{manifest.digest(sig)}.pt" if resume else None
            codec, hist = train_residual(model, lmbda, settings[i], train_images, val_images, phase_setup,
                                         log_csv=folder / "train_log.csv" if world.is_main else None,
                                         state_path=state, desc=f"phase{i + 1} λ={lmbda}")
            resumed = f", resumed from step {hist.resumed_from}" if hist.resumed_from else ""
            origin = f"trained {phase_setup.steps} steps in {hist.seconds:.0f} s (best step {hist.best_step}{resumed})"
            if world.is_main:
                codec.save(ckpt, extra={"signature": sig, "lmbda": lmbda, "best_step": hist.best_step,
                                        "seconds": hist.seconds, "resumed_from": hist.resumed_from,
                                        "world_size": world.size})
        phases.append(Phase(i + 1, lmbda, codec, ckpt, origin, hist))
        if world.is_main and on_phase:
            on_phase(phases[-1])
        previous = codec
    return phases


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
        out = {"mse": mse.detach(), "psnr": psnr_from_mse(mse.detach()), "psnr_in": psnr_from_mse(F.mse_loss(x0, x))}
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
        return {"loss": float(mse), "psnr": float(psnr_from_mse(mse))}

    return val


def train_refine(codec: HyresCodec, train_images: ImageSet, val_images: ImageSet, setup: TrainSetup,
                 perceptual: PerceptualLoss | None, alpha: float, width: int = 64, stride: int = 1,
                 log_csv: str | Path | None = None, on_log: Callable | None = None,
                 desc: str = "refine") -> tuple[HyresCodec, engine.History]:
    """Train a refiner (``MultiScaleRefine(width, stride)``) for a frozen codec; returns the codec with
    the refiner attached."""
    torch.manual_seed(setup.seed)
    residual = copy.deepcopy(codec.residual)
    refine = MultiScaleRefine(width, stride)
    loader = _crops(train_images, codec.jpeg, setup)
    hist = engine.train(refine, make_refine_step(residual, perceptual, alpha), loader, setup,
                        val_fn=make_refine_val(residual, val_images, codec.jpeg, setup.device),
                        log_csv=log_csv, on_log=on_log, desc=desc)
    refine.load_state_dict(hist.best_state)
    return HyresCodec(codec.residual, codec.jpeg, refine.eval(), device=setup.device, lmbda=codec.lmbda), hist
