"""hideNet as a real progressive codec: a losslessly coded base plus, per level, the quantised
prediction residual of the odd set, rANS-coded with the predictor's (mean, scale). The file format
is :mod:`.bitstream`; :class:`HidenetCodec` has the shape of :class:`hyreslib.hyres.HyresCodec`
(images are (3, H, W) float tensors in [0, 1], ``encode`` / ``decode`` / ``decode_detailed``,
``working_memory``, the limits of :mod:`hyreslib.core.limits`, the same errors for the same failures).

Data flow (closed loop, integer domain, the predictor's colour space in coding order, e.g. G, R, B)::

    x = to_pixels(image) --split--> base, o_0..o_{L-1}         (the one conversion in; lossless = on the 8-bit grid)
    decoded = base
    for level L-1 .. 0:   mean, scale = predictor(decoded even set)   # per channel, in order
                          k = Q_q(o - round(mean))   -> rANS with table index(scale/q, frac(mean)/q)
                          o^ = clip(round(mean) + q k) ; decoded = merge(decoded, o^)
    image = inverse colour(decoded) / 255                     (the one conversion out; its 8-bit CRC is stored)

The base is coded by vertical DPCM (first row horizontal) with one Laplace scale per channel.
The encoder runs the very same function as the decoder (:func:`_code_level`), only with a
residual source that quantises the true pixels instead of reading the stream, so both sides see
identical predictions. q = 1 is lossless; q = 2d + 1 bounds every sub-pixel error by d
(JPEG-LS style); generative mode stores no residuals (the reference's behaviour).
Predictors always run on the CPU in float32 with ONE intra-op thread: their outputs must be
bit-identical on both sides, and convolutions round differently with another thread count (this
was measured: a file encoded with 2 threads failed to decode with 1). The stored image checksum
turns any remaining mismatch (e.g. another CPU's or torch build's float rounding) into a clear
error instead of a silently wrong picture. Before decoding, the size the header claims and an
estimate of the decoder's working memory are checked against :mod:`hyreslib.core.limits`.
"""

from __future__ import annotations

import zlib
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from functools import lru_cache

import numpy as np
import torch

from ..codecs import ans
from ..codecs.container import CorruptStreamError, ModelMismatchError
from ..core.checkpoint import fingerprint
from ..core.images import check_image
from ..core.limits import check_memory, check_size
from . import bitstream, entropy
from .bitstream import Header
from .colour import ColourSpace, to_pixels
from .predictors import REVISION, FixedPredictor, Predictor
from .split import level_shapes, merge_once, orient, split, split_axis

DEFAULT_LEVELS = 8
# Decoder working memory, bytes = FIXED + pixels * (PER_PIXEL + PER_PIXEL_CHANNEL * predictor width);
# fitted to peak RSS measured on CPU (bench/decoder_memory.py), rounded up.
MEMORY_FIXED = 128 << 20
MEMORY_PER_PIXEL = 256
MEMORY_PER_PIXEL_CHANNEL = 16

ResidualSource = Callable[[int, torch.Tensor, torch.Tensor], torch.Tensor]


def predictor_fingerprint(predictor: Predictor) -> bytes:
    return fingerprint(predictor.config(), predictor.state_dict())


def image_checksum(rgb: torch.Tensor) -> int:
    """CRC-32 of a (3, H, W) tensor of 8-bit RGB values, over its bytes in (H, W, 3) order."""
    return zlib.crc32(rgb.permute(1, 2, 0).to(torch.uint8).contiguous().numpy().tobytes())


# --- base: vertical DPCM (first row horizontal), one Laplace scale per channel ---------------------

def _dpcm(base: torch.Tensor) -> torch.Tensor:
    d = base.clone()
    d[..., 1:, :] = base[..., 1:, :] - base[..., :-1, :]
    d[..., 0, 1:] = base[..., 0, 1:] - base[..., 0, :-1]
    d[..., 0, 0] = base[..., 0, 0] - 128
    return d


def _base_indexes(scale_idx: list[int], shape: tuple[int, ...]) -> np.ndarray:
    idx = np.asarray(scale_idx, dtype=np.int64) * entropy.N_OFFSETS + entropy.N_OFFSETS // 2
    return np.broadcast_to(idx.reshape(-1, 1, 1), shape).copy()


def encode_base(base: torch.Tensor) -> bytes:
    """(1, 3, h, w) integers -> 3 scale-index bytes + one rANS stream of DPCM residuals."""
    d = _dpcm(base[0])
    scales = d.abs().flatten(1).mean(1).clamp_min(entropy.SCALE_MIN)
    scale_idx = [int(i) // entropy.N_OFFSETS for i in entropy.table_index(scales, torch.zeros(3))]
    return bytes(scale_idx) + ans.encode(d.long().numpy(), _base_indexes(scale_idx, tuple(d.shape)),
                                         entropy.cdf_table())


def decode_base(chunk: bytes, height: int, width: int, space: ColourSpace) -> torch.Tensor:
    if len(chunk) < 3 or max(chunk[:3]) >= entropy.N_SCALES:
        raise CorruptStreamError("hideNet base chunk is damaged (bad scale indexes)")
    shape = (3, height, width)
    d = torch.from_numpy(ans.decode(chunk[3:], _base_indexes(list(chunk[:3]), shape), entropy.cdf_table(),
                                    "hideNet base chunk")).float()
    d[..., 0, 0] += 128
    x = d[..., 0:1, :].cumsum(-1)
    x = torch.cat([x, d[..., 1:, :]], -2).cumsum(-2).unsqueeze(0)
    return x.clamp(*space.bounds(x))


# --- levels ------------------------------------------------------------------------------------------

def _code_level(predictor: Predictor, even: torch.Tensor, level: int, odd_shape: tuple[int, int], step: int,
                residuals: ResidualSource | None) -> torch.Tensor:
    """Reconstruct one level's odd set from the decoded even set (shared by encoder and decoder).

    ``residuals(c, pred_int, table_index) -> k`` supplies channel ``c``'s quantised residual: the
    encoder computes and records it, the decoder reads it. ``None`` predicts only (generative).
    """
    ev = orient(even, level)
    h, w_odd = odd_shape if split_axis(level) == -1 else odd_shape[::-1]
    ctx = predictor.context(ev, level, w_odd)
    lo, hi = predictor.space.lo, predictor.space.hi
    channels: list[torch.Tensor] = []
    for c in range(3):
        prev = torch.cat(channels, 1) if channels else ev.new_zeros(1, 0, h, w_odd)
        mean, scale = predictor.channel(ctx, c, prev)
        pred = mean.round().clamp(lo[c], hi[c])
        if residuals is None:
            channels.append(pred)
            continue
        index = entropy.table_index(scale / step, (mean - pred) / step)
        k = residuals(c, pred, index)
        channels.append((pred + step * k).clamp(lo[c], hi[c]))
    return orient(torch.cat(channels, 1), level)


def _quantize(error: torch.Tensor, step: int) -> torch.Tensor:
    """Residual index with |error - step * k| <= (step - 1) / 2."""
    return torch.sign(error) * torch.div(error.abs() + (step - 1) // 2, step, rounding_mode="floor")


def _recorder(truth: torch.Tensor, step: int, enc: ans.Encoder) -> ResidualSource:
    """Encoder side: quantise the true residual of each channel and add it to the stream."""

    def record(c: int, pred: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
        k = _quantize(truth[:, c:c + 1] - pred, step)
        enc.add(k.long().numpy(), index.numpy(), entropy.cdf_table())
        return k

    return record


def _reader(dec: ans.Decoder) -> ResidualSource:
    """Decoder side: read each channel's residual indexes from the stream."""
    return lambda c, pred, index: torch.from_numpy(dec.take(index.numpy(), entropy.cdf_table())).float()


@contextmanager
def _one_thread() -> Iterator[None]:
    """Run the predictor single-threaded (see the module docstring), restoring the caller's setting."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(threads)


@lru_cache(maxsize=None)
def _fixed(colour: str, conditional: bool, revision: int) -> tuple[Predictor, bytes]:
    """The fixed predictor of one option set (a file's header names it) and its fingerprint."""
    predictor = FixedPredictor(colour, conditional, revision).eval()
    return predictor, predictor_fingerprint(predictor)


@dataclass
class Decoded:
    image: torch.Tensor        # (3, h, w) RGB in [0, 1], on the 8-bit grid
    header: Header
    levels: int                # levels reconstructed from stored residuals
    predicted_levels: int      # further levels filled in by prediction alone
    verified: bool             # full reconstruction matched the encoder's checksum


class HidenetCodec:
    """Encode images to ``.hdn`` bytes and back with one predictor and one set of coding options.

    ``predictor=None`` is the fixed predictor: it encodes with ``FixedPredictor()`` and decodes a
    file of any fixed predictor, with the options its header names. A given predictor decodes only
    its own files (its fingerprint, computed once here, is checked against the file's); its weights
    must not change while the codec is in use. ``mode``, ``step`` and ``levels`` are the encoder's
    options (``levels`` default: the predictor's, else :data:`DEFAULT_LEVELS`).
    """

    def __init__(self, predictor: Predictor | None = None, mode: str = "lossless", step: int | None = None,
                 levels: int | None = None):
        self.any_fixed = predictor is None
        if predictor is None:
            self.predictor, self.fingerprint = _fixed("rgb", True, REVISION)
        else:
            self.predictor = predictor.cpu().float().eval()
            self.fingerprint = predictor_fingerprint(self.predictor)
        if mode not in bitstream.MODES:
            raise ValueError(f"mode must be one of {list(bitstream.MODES)}, got {mode!r}")
        self.mode, self.step = mode, bitstream.mode_step(mode, step)
        if self.step < 0 or (mode == "lossless" and step not in (None, 1)):
            raise ValueError(f"invalid step {step} for {mode}: lossless uses 1, near-lossless an odd step 3..255 "
                             "(max error (step-1)/2), generative none")
        self.levels = (self.predictor.levels or DEFAULT_LEVELS) if levels is None else levels
        if not 0 <= self.levels <= bitstream.MAX_LEVELS:
            raise ValueError(f"levels must be in 0..{bitstream.MAX_LEVELS}, got {self.levels}")
        if self.predictor.levels is not None and self.levels > self.predictor.levels:
            raise ValueError(f"the predictor was built for at most {self.predictor.levels} levels, "
                             f"{self.levels} requested")
        if mode == "near-lossless" and not self.predictor.space.bounds_rgb_errors:
            raise ValueError(f"near-lossless coding needs colour space rgb (an error bound on "
                             f"{self.predictor.colour} values does not bound RGB errors)")

    # -- encoding -------------------------------------------------------------------------------
    @torch.inference_mode()
    def encode(self, image: torch.Tensor, max_pixels: int | None = None) -> bytes:
        """A (3, H, W) image in [0, 1] -> the bytes of a ``.hdn`` file (lossless: of its 8-bit values)."""
        x = check_image(image)
        check_size(x.shape[-1], x.shape[-2], max_pixels)
        with _one_thread():
            return self._encode(to_pixels(x.unsqueeze(0), self.predictor.colour))

    def _encode(self, x: torch.Tensor) -> bytes:
        predictor, q = self.predictor, self.step
        height, width = x.shape[-2:]
        pyr = split(x, self.levels)
        shapes = level_shapes(height, width, self.levels)
        base, levels, decoded = encode_base(pyr.base), [], pyr.base
        for level in range(self.levels - 1, -1, -1):
            enc = ans.Encoder()
            source = None if self.mode == "generative" else _recorder(orient(pyr.odds[level], level), q, enc)
            odd = _code_level(predictor, decoded, level, shapes[level][1], q, source)
            decoded = merge_once(decoded, odd, split_axis(level))
            if source is not None:
                levels.append(enc.finish())
        header = Header(height, width, self.levels, self.mode, q, isinstance(predictor, FixedPredictor),
                        self.fingerprint, image_checksum(predictor.space.inverse(decoded[0])),
                        predictor.colour, predictor.conditional, predictor.revision)
        return bitstream.write(header, base, levels)

    # -- decoding -------------------------------------------------------------------------------
    def working_memory(self, height: int, width: int) -> int:
        """Estimated peak bytes of decoding a ``height`` x ``width`` image with this predictor."""
        width_channels = getattr(self.predictor, "width", 0)
        return MEMORY_FIXED + height * width * (MEMORY_PER_PIXEL + MEMORY_PER_PIXEL_CHANNEL * width_channels)

    def _predictor_for(self, header: Header) -> Predictor:
        """The predictor that wrote the file: this codec's, or (``predictor=None``) the fixed one it names."""
        if header.fixed and self.any_fixed:
            return _fixed(header.colour, header.conditional, header.revision)[0]
        if self.any_fixed:
            raise ModelMismatchError("this file was written with a learned predictor: give its checkpoint")
        predictor = self.predictor
        options = (predictor.colour, predictor.conditional, predictor.revision)
        if options != (header.colour, header.conditional, header.revision):
            raise ModelMismatchError(f"predictor mismatch: the file was coded with (colour, conditional, revision) = "
                                     f"{(header.colour, header.conditional, header.revision)}, the given predictor "
                                     f"has {options}")
        if self.fingerprint != header.fingerprint:
            raise ModelMismatchError(f"predictor mismatch: the file needs model {header.fingerprint.hex()}, "
                                     f"the given predictor is {self.fingerprint.hex()}")
        if predictor.levels is not None and header.levels > predictor.levels:
            raise CorruptStreamError(f"hideNet header: {header.levels} levels, but its predictor has "
                                     f"{predictor.levels}")
        return predictor

    @torch.no_grad()     # not inference_mode: the image goes back to callers as an ordinary tensor
    def decode_detailed(self, data: bytes, max_pixels: int | None = None, max_memory: int | None = None, *,
                        levels: int | None = None, fill: bool = False) -> Decoded:
        """Decode a ``.hdn`` file with the limits of :mod:`hyreslib.core.limits` (``None``: their defaults).

        ``levels`` (default all) is how many levels to reconstruct, coarsest first; without ``fill`` the
        result is that level's lower-resolution even set, with ``fill`` the remaining levels are
        predicted without residuals so the output is always full size (progressive preview).
        """
        header, chunks = bitstream.read(data)
        check_size(header.width, header.height, max_pixels, what="hideNet file's image")
        predictor = self._predictor_for(header)
        check_memory(self.working_memory(header.height, header.width), max_memory,
                     what=f"decoding this {header.width}x{header.height} hideNet file")
        total = header.levels
        levels = total if levels is None else levels
        if not 0 <= levels <= total:
            raise ValueError(f"levels must be in 0..{total}, got {levels}")
        with _one_thread():
            rgb = predictor.space.inverse(_decode_levels(header, chunks, predictor, levels, fill)[0])
        verified = levels == total and image_checksum(rgb) == header.checksum
        if levels == total and not verified:
            raise CorruptStreamError("hideNet stream decoded to an image that fails its checksum (damaged stream, "
                                     "or a predictor whose float results differ from the encoder's)")
        return Decoded(rgb.div(255.0), header, levels, (total - levels) if fill else 0, verified)

    def decode(self, data: bytes, max_pixels: int | None = None, max_memory: int | None = None, *,
               levels: int | None = None, fill: bool = False) -> torch.Tensor:
        """``.hdn`` bytes -> the (3, H, W) image in [0, 1] (see :meth:`decode_detailed`)."""
        return self.decode_detailed(data, max_pixels, max_memory, levels=levels, fill=fill).image


def _decode_levels(header: Header, chunks: list[bytes], predictor: Predictor, levels: int, fill: bool) -> torch.Tensor:
    """Base, then the ``levels`` coarsest levels with their residuals, then (``fill``) prediction only;
    returns the (1, 3, h, w) pixels in the predictor's colour space."""
    total = header.levels
    shapes = level_shapes(header.height, header.width, total)
    base_shape = shapes[-1][0] if total else (header.height, header.width)
    x = decode_base(chunks[0], *base_shape, predictor.space)
    stop = 0 if fill else total - levels
    for i, level in enumerate(range(total - 1, stop - 1, -1)):
        odd_shape = shapes[level][1]
        dec = None
        if i < levels and header.mode != "generative":
            dec = ans.Decoder(chunks[1 + i], f"hideNet level {level} chunk")
        odd = _code_level(predictor, x, level, odd_shape, header.step, None if dec is None else _reader(dec))
        if dec is not None:
            dec.finish()
        x = merge_once(x, odd, split_axis(level))
    return x
