"""Rate control: a target bpp -> the JPEG base quality, and the curve's model, whose real file fits it.

A shipped curve is one model per λ phase, each trained at its own base quality q_k. A file's size
is set mostly by its base quality, and a base-conditioned model takes the quality as an input, so
any quality can be coded by the model trained nearest to it (on the CID22 validation images the
cpu curve's nearest model gained +0.5 to +1.1 dB over the JPEG at every quality from 3 to 60).
The encoder searches the quality by bisection on real files::

    target bpp --bisection over q in 1..100--> nearest(q).encode(x, quality=q) --> the largest q that fits
               --> that file, encoded again with base-only among the modes searched

Files grow with the quality (JPEG's quantisers shrink), so the bisection finds the largest fitting
quality in about seven encodes; a pruned latent-free model's encode is a JPEG encode, so this
costs milliseconds. The final encode also searches the base-only mode, which writes the same bytes
as latent-free (no strings) and so is chosen exactly when the learned picture would be worse than
the JPEG itself: off its trained quality a model can then never do worse than its base.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from torch import Tensor

from ..core.images import check_image
from ..core.limits import check_size
from ..results.metrics import bpp
from .codec import Encoded, HyresCodec

QUALITIES = (1, 100)  # the JPEG base qualities searched


@dataclass
class RateChoice:
    encoded: Encoded   # the file and what the encoder knew of it
    model: int         # index in the codecs given
    quality: int       # the JPEG base quality
    bpp: float         # of the real file
    met: bool          # False when even the lowest quality is above the target (the file is then that one)


def nearest(codecs: Sequence[HyresCodec], quality: int) -> int:
    """The index of the codec trained at the base quality nearest ``quality`` (the lower one on a tie)."""
    return min(range(len(codecs)), key=lambda i: (abs(codecs[i].jpeg.quality - quality), codecs[i].jpeg.quality))


def encode_to_rate(codecs: Sequence[HyresCodec], image: Tensor, target_bpp: float,
                   max_pixels: int | None = None) -> RateChoice:
    """The largest base quality whose file, from the codec trained nearest to it, is at most
    ``target_bpp`` (real bytes, JPEG included), encoded with base-only among the modes searched."""
    if not codecs or not all(c.jpeg.has_base for c in codecs):
        raise ValueError("rate control needs one or more codecs with a JPEG base layer")
    if not target_bpp > 0:
        raise ValueError(f"the target rate must be a positive number of bits per pixel, got {target_bpp!r}")
    x = check_image(image)
    check_size(x.shape[-1], x.shape[-2], max_pixels)
    h, w = x.shape[-2:]

    def rate(q: int) -> float:
        return bpp(len(codecs[nearest(codecs, q)].encode(x, quality=q)), h, w)

    lo, hi = QUALITIES
    met = rate(lo) <= target_bpp
    if met and rate(hi) <= target_bpp:
        lo = hi
    while met and hi - lo > 1:  # rate(lo) fits, rate(hi) does not
        mid = (lo + hi) // 2
        lo, hi = (mid, hi) if rate(mid) <= target_bpp else (lo, mid)
    i = nearest(codecs, lo)
    final = codecs[i]
    if final.lmbda is not None:  # base-only searched too: its bytes are latent-free's
        final = final.with_modes((*final.modes, "base-only"))
    encoded = final.encode_detailed(x, quality=lo)
    return RateChoice(encoded, i, lo, bpp(len(encoded.data), h, w), met)
