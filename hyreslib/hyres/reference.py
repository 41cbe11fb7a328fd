"""The equal-budget reference: CompressAI's ``bmshj2018-hyperprior`` (its model class, randomly
initialised) trained by the kit's engine on the same crops, steps and λ as HyRES, and measured
through real files, so a budget study compares like with like::

    JpegBase batches (x, base, ...) --ref_step: lambda*255^2*MSE(x_hat, x) + bpp--> engine.train
    x --pad to 64--> ScaleHyperprior.compress --> y, z strings --container "BMS1"--> bytes

The base in each batch is ignored (the reference has no base layer); only ``x`` is used, so the
crops are exactly HyRES's.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from compressai.models import ScaleHyperprior
from torch import Tensor

from ..container import CorruptStreamError, pack, unpack
from ..engine import StepFn
from .residual import likelihood_bits

MAGIC = b"BMS1"
VERSION = 1
PAD = 64
_HEADER = struct.Struct("<II")


def bmshj2018(N: int, M: int) -> ScaleHyperprior:
    """CompressAI's ``bmshj2018-hyperprior`` architecture (GDN autoencoder, scale hyperprior)."""
    return ScaleHyperprior(N, M)


def rd_step(lmbda: float) -> StepFn:
    """Engine step: the same rate-distortion loss HyRES trains on, for a model without a base."""

    def step(model: ScaleHyperprior, batch) -> dict[str, Tensor]:
        x = batch[0]
        out = model(x)
        pixels = x.shape[0] * x.shape[-2] * x.shape[-1]
        bpp = {f"bpp_{k}": likelihood_bits(v) / pixels for k, v in out["likelihoods"].items()}
        mse = F.mse_loss(out["x_hat"], x)
        return {"loss": lmbda * 255.0 ** 2 * mse + sum(bpp.values()), "mse": mse.detach(),
                "psnr": -10.0 * torch.log10(mse.detach().clamp_min(1e-12)), **bpp}

    return step


@dataclass
class ReferenceCodec:
    """Real-byte encode/decode of a trained :func:`bmshj2018` model (CPU)."""

    model: ScaleHyperprior

    def __post_init__(self) -> None:
        self.model = self.model.cpu().eval()
        self.model.update(force=True)

    @torch.no_grad()
    def encode(self, x: Tensor) -> bytes:
        h, w = x.shape[-2:]
        xp = F.pad(x[None], (0, -w % PAD, 0, -h % PAD))
        out = self.model.compress(xp)
        return pack(MAGIC, VERSION, [_HEADER.pack(w, h), out["strings"][0][0], out["strings"][1][0]])

    @torch.no_grad()
    def decode(self, data: bytes) -> Tensor:
        _, chunks = unpack(data, MAGIC, [VERSION], what="bmshj2018 reference file")
        if len(chunks) != 3 or len(chunks[0]) != _HEADER.size:
            raise CorruptStreamError("bmshj2018 reference file: unexpected chunks")
        w, h = _HEADER.unpack(chunks[0])
        hp, wp = h + -h % PAD, w + -w % PAD
        out = self.model.decompress([[chunks[1]], [chunks[2]]], (hp // PAD, wp // PAD))
        return out["x_hat"][0, :, :h, :w].clamp(0, 1)
