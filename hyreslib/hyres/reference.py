"""The equal-budget reference: CompressAI's ``bmshj2018-hyperprior`` (its model class, randomly
initialised) trained by the kit's engine on the same crops, steps and λ as HyRES, and measured
through real files, so a budget study compares like with like::

    JpegBase batches (x, base, ...) --ref_step: lambda*255^2*MSE(x_hat, x) + bpp--> engine.train
    x --pad to 64--> g_a, h_a --> y, z --hyreslib.codecs.ans (CompressAI's tables)--> strings
      --container "BMS1"--> bytes

The base in each batch is ignored (the reference has no base layer); only ``x`` is used, so the
crops are exactly HyRES's. Its strings go through the same bounds-checked coder as the kit's own
codecs (CompressAI's ``compress``/``decompress`` would use its unchecked rANS decoder).
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from compressai.models import ScaleHyperprior
from torch import Tensor

from ..codecs import ans
from ..codecs.container import CorruptStreamError, pack, unpack
from ..core.limits import check_size
from ..results.metrics import psnr_from_mse
from ..training.engine import StepFn
from .residual import likelihood_bits

MAGIC = b"BMS1"
VERSION = 2
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
                "psnr": psnr_from_mse(mse.detach()), **bpp}

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
        m = self.model
        y = m.g_a(F.pad(x[None], (0, -w % PAD, 0, -h % PAD)))
        z_strings, z_hat, _ = ans.encode_bottleneck(m.entropy_bottleneck, m.h_a(torch.abs(y)))
        indexes = m.gaussian_conditional.build_indexes(m.h_s(z_hat))
        y_strings = ans.encode_tensor(m.gaussian_conditional, m.gaussian_conditional.quantize(y, "symbols"), indexes)
        return pack(MAGIC, VERSION, [_HEADER.pack(w, h), y_strings[0], z_strings[0]])

    @torch.no_grad()
    def decode(self, data: bytes, max_pixels: int | None = None) -> Tensor:
        _, chunks = unpack(data, MAGIC, [VERSION], what="bmshj2018 reference file")
        if len(chunks) != 3 or len(chunks[0]) != _HEADER.size:
            raise CorruptStreamError("bmshj2018 reference file: unexpected chunks")
        w, h = _HEADER.unpack(chunks[0])
        check_size(w, h, max_pixels, what="bmshj2018 reference file's image")
        m = self.model
        z_hat, _ = ans.decode_bottleneck(m.entropy_bottleneck, [chunks[2]], (-(-h // PAD), -(-w // PAD)))
        indexes = m.gaussian_conditional.build_indexes(m.h_s(z_hat))
        symbols = ans.decode_tensor(m.gaussian_conditional, [chunks[1]], indexes, "y string")
        y_hat = m.gaussian_conditional.dequantize(symbols)
        return m.g_s(y_hat)[0, :, :h, :w].clamp(0, 1)
