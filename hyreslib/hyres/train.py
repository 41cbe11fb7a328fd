"""Training the residual codec with :func:`hyreslib.training.engine.train`.

The JPEG base of every crop is computed by :class:`JpegBase` inside the DataLoader workers, so a
batch arrives as ``(x, base, jpeg_bpp, quality)`` and the training step only runs the network::

    crop --JpegBase (worker)--> (x, base, jpeg_bpp, quality) --rd_terms--> loss = lambda*255^2*MSE + bpp_y + bpp_z

``jpeg_bpp`` is reported beside the loss but has no gradient (the base layer is fixed).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor

from ..codecs import jpeg as jpeg_io
from ..core.images import center_crop
from ..datasets.data import ImageSet
from ..results.metrics import psnr_from_mse
from ..training.engine import StepFn, ValFn
from .codec import JpegSettings, compose
from .conditioning import side_input
from .residual import ResidualCodec, likelihood_bits


@dataclass(frozen=True)
class JpegBase:
    """DataLoader transform: a crop -> (crop, its decoded JPEG, the JPEG's bits per pixel, the
    JPEG quality); a mid-grey base and 0 bpp for settings without a base layer."""

    settings: JpegSettings = JpegSettings()

    def __call__(self, crop: Tensor) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        s = self.settings
        quality = torch.tensor(float(s.quality))
        if not s.has_base:
            return crop, torch.full_like(crop, 0.5), torch.tensor(0.0), quality
        batch = jpeg_io.roundtrip(crop, s.quality, s.subsampling, s.optimize, backend="cpu")
        bpp = 8.0 * batch.nbytes[0] / (crop.shape[-2] * crop.shape[-1])
        return crop, batch.decoded[0], torch.tensor(bpp, dtype=torch.float32), quality


def rd_terms(model: ResidualCodec, x: Tensor, base: Tensor, lmbda: float, quality: int | Tensor,
             skip: Tensor | None = None) -> dict[str, Tensor]:
    """Rate-distortion loss and its parts for a batch (x and base of equal, codable size; the
    base's JPEG ``quality`` is seen by base-conditioned models; ``skip`` marks items trained in
    the latent-free mode)."""
    out = model(x - base, side_input(base, quality), skip)
    x_hat = compose(base, out["r_hat"], clamp=False)
    pixels = x.shape[0] * x.shape[-2] * x.shape[-1]
    bpp = {f"bpp_{k}": likelihood_bits(v) / pixels for k, v in out["likelihoods"].items()}
    mse = F.mse_loss(x_hat, x)
    return {"loss": lmbda * 255.0 ** 2 * mse + bpp["bpp_y"] + bpp["bpp_z"], "mse": mse.detach(),
            "psnr": psnr_from_mse(mse.detach()), **bpp}


class _RateDistortionStep:
    """The step function :func:`make_step` returns. It counts its calls for the rate warm-up and
    exposes the count as ``state_dict``, which the engine checkpoints: a resumed run continues the
    ramp where it stopped instead of starting it again from 0."""

    def __init__(self, lmbda: float, rate_warmup: int, latent_dropout: float):
        self.lmbda, self.rate_warmup, self.latent_dropout, self.calls = lmbda, rate_warmup, latent_dropout, 0

    def __call__(self, model: ResidualCodec, batch) -> dict[str, Tensor]:
        x, base, jpeg_bpp, quality = batch
        skip = torch.rand(x.shape[0], device=x.device) < self.latent_dropout if self.latent_dropout else None
        terms = rd_terms(model, x, base, self.lmbda, quality, skip)
        weight = min(1.0, self.calls / self.rate_warmup) if self.rate_warmup else 1.0
        self.calls += 1
        rate = terms["bpp_y"] + terms["bpp_z"]
        return {**terms, "loss": terms["loss"] - (1.0 - weight) * rate, "rd_loss": terms["loss"].detach(),
                "bpp_jpeg": jpeg_bpp.mean()}

    def state_dict(self) -> dict[str, int]:
        return {"calls": self.calls}

    def load_state_dict(self, state: dict[str, int]) -> None:
        self.calls = state["calls"]


def make_step(lmbda: float, rate_warmup: int = 0, latent_dropout: float = 0.0) -> StepFn:
    """The engine's step function for batches from :class:`JpegBase`.

    ``rate_warmup``: over the first this-many calls the weight of the rate in the loss ramps from
    0 to 1. A JPEG residual is small, so its distortion gradients are weak next to the rate's;
    from a cold start the rate can then push the latent to the hyperprior means before it carries
    anything, a state it does not leave (seen at base quality 10). ``loss`` is what is trained;
    ``rd_loss`` is the full rate-distortion loss. ``latent_dropout``: the fraction of items
    trained in the latent-free mode (see :meth:`ResidualCodec.forward`).
    """
    return _RateDistortionStep(lmbda, rate_warmup, latent_dropout)


def validation_batch(images: ImageSet, crop: int, settings: JpegSettings,
                     device: torch.device | str = "cpu") -> tuple[Tensor, Tensor]:
    """(x, JPEG base) of fixed centre crops of the validation images, stacked once."""
    base = JpegBase(settings)
    crops = []
    for name, img in images:
        if min(img.shape[-2:]) < crop:
            raise ValueError(f"validation image {name} ({img.shape[-1]}x{img.shape[-2]}) is smaller than "
                             f"the {crop}-pixel validation crop")
        crops.append(base(center_crop(img, crop)))
    return torch.stack([c[0] for c in crops]).to(device), torch.stack([c[1] for c in crops]).to(device)


def make_val(images: ImageSet, lmbda: float, crop: int, settings: JpegSettings,
             device: torch.device | str = "cpu") -> ValFn:
    """Validation on fixed centre crops (prepared once): the same loss, estimated rate.

    Use validation images only; model selection on the test set would flatter the results.
    """
    x, xj = validation_batch(images, crop, settings, device)

    @torch.no_grad()
    def val(model: ResidualCodec) -> dict[str, float]:
        return {k: float(v) for k, v in rd_terms(model, x, xj, lmbda, settings.quality).items()}

    return val


def finalize(model: ResidualCodec) -> ResidualCodec:
    """After training: settle the entropy bottleneck's quantiles (exactly, by bisection, instead
    of the aux loss's approximation) and build the coding tables."""
    model.eval()
    model.update(force=True, update_quantiles=True)
    return model

