"""hideNet as a real progressive codec: a losslessly coded base plus, per level, the quantised
prediction residual of the odd set, rANS-coded with the predictor's (mean, scale).

Byte format (``hyreslib.container``, magic ``HDN1``, version 3), chunks in decoding order::

    header | base | level L-1 | ... | level 0          (generative files stop after the base)

header: ``<HHBBHBB8sI`` = height, width, levels, mode (0 lossless, 1 near-lossless, 2 generative),
step q, fixed-predictor flag, coding options (bit 0: colour space YCoCg-R instead of RGB, bit 1:
channel-conditional coding, bits 2-4: revision of the fixed constants; see :mod:`.colour` and
:mod:`.predictors`), predictor fingerprint (8 B), CRC-32 of the decoded RGB image. Version 2 had
no options byte (RGB, conditional, revision 1: still read). The base and each level are strings
of the bounds-checked coder of :mod:`hyreslib.ans` (version 1 used CompressAI's rANS, whose
decoder a crafted string can crash; such files are refused). The CRCs catch accidental damage
and decoder desync, they do not authenticate a file (anyone can recompute them). Before decoding, the size the header claims and an estimate of the decoder's
working memory are checked against :mod:`hyreslib.limits`.

Data flow (closed loop, integer domain, the predictor's colour space in coding order, e.g. G, R, B)::

    x = colour(rgb) --split--> base, o_0..o_{L-1}
    decoded = base
    for level L-1 .. 0:   mean, scale = predictor(decoded even set)   # per channel, in order
                          k = Q_q(o - round(mean))   -> rANS with table index(scale/q, frac(mean)/q)
                          o^ = clip(round(mean) + q k) ; decoded = merge(decoded, o^)

The encoder runs the very same function as the decoder (:func:`_code_level`), only with a
residual source that quantises the true pixels instead of reading the stream, so both sides see
identical predictions. q = 1 is lossless; q = 2d + 1 bounds every sub-pixel error by d
(JPEG-LS style); generative mode stores no residuals (the reference's behaviour).
Predictors always run on the CPU in float32 with ONE intra-op thread: their outputs must be
bit-identical on both sides, and convolutions round differently with another thread count (this
was measured: a file encoded with 2 threads failed to decode with 1). The stored image checksum
turns any remaining mismatch (e.g. another CPU's or torch build's float rounding) into a clear
error instead of a silently wrong picture.
"""

from __future__ import annotations

import struct
import zlib
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import numpy as np
import torch

from .. import ans
from ..checkpoint import fingerprint
from ..container import CorruptStreamError, pack, unpack
from ..images import to_uint8
from ..limits import check_memory, check_size
from . import entropy
from .colour import BY_CODE, ColourSpace, colour_space
from .predictors import FIXED_CONSTANTS, REVISION, FixedPredictor, Predictor
from .split import level_shapes, merge_once, orient, split, split_axis

MAGIC = b"HDN1"
VERSION = 3
READABLE_VERSIONS = (2, 3)
MODES = {"lossless": 0, "near-lossless": 1, "generative": 2}
MODE_NAMES = {v: k for k, v in MODES.items()}
DEFAULT_LEVELS = 8
MAX_LEVELS = 24
# Decoder working memory, bytes = FIXED + pixels * (PER_PIXEL + PER_PIXEL_CHANNEL * predictor width);
# fitted to peak RSS measured on CPU (bench/decoder_memory.py), rounded up.
MEMORY_FIXED = 128 << 20
MEMORY_PER_PIXEL = 256
MEMORY_PER_PIXEL_CHANNEL = 16
HEADER_FORMAT = "<HHBBHBB8sI"     # version 3; version 2 lacked the options byte
_HEADERS = {2: struct.Struct("<HHBBHB8sI"), 3: struct.Struct(HEADER_FORMAT)}
OPTION_YCOCG, OPTION_CONDITIONAL, REVISION_SHIFT = 1, 2, 2

ResidualSource = Callable[[int, torch.Tensor, torch.Tensor], torch.Tensor]


@dataclass(frozen=True)
class Header:
    height: int
    width: int
    levels: int
    mode: str
    step: int
    fixed: bool
    fingerprint: bytes
    checksum: int
    colour: str = "rgb"
    conditional: bool = True
    revision: int = REVISION

    def pack(self) -> bytes:
        options = (OPTION_YCOCG * colour_space(self.colour).code + OPTION_CONDITIONAL * int(self.conditional)
                   + (self.revision << REVISION_SHIFT))
        return _HEADERS[VERSION].pack(self.height, self.width, self.levels, MODES[self.mode], self.step,
                                      int(self.fixed), options, self.fingerprint, self.checksum)

    @classmethod
    def unpack(cls, raw: bytes, version: int = VERSION) -> Header:
        layout = _HEADERS[version]
        if len(raw) != layout.size:
            raise CorruptStreamError(f"hideNet header has {len(raw)} bytes, expected {layout.size}")
        if version == 2:
            h, w, levels, mode, step, fixed, fp, crc = layout.unpack(raw)
            options = OPTION_CONDITIONAL + (1 << REVISION_SHIFT)
        else:
            h, w, levels, mode, step, fixed, options, fp, crc = layout.unpack(raw)
        if not (1 <= h and 1 <= w):
            raise CorruptStreamError(f"hideNet header: invalid image size {w}x{h}")
        space = BY_CODE[options & OPTION_YCOCG]
        conditional, revision = bool(options & OPTION_CONDITIONAL), options >> REVISION_SHIFT
        if (levels > MAX_LEVELS or mode not in MODE_NAMES or fixed > 1
                or (space.name, conditional, revision) not in FIXED_CONSTANTS):
            raise CorruptStreamError(f"hideNet header: invalid levels {levels}, mode {mode}, predictor flag {fixed} "
                                     f"or options {options}")
        header = cls(h, w, levels, MODE_NAMES[mode], step, bool(fixed), fp, crc, space.name, conditional, revision)
        if step != _expected_step(header.mode, step):
            raise CorruptStreamError(f"hideNet header: step {step} is invalid for mode {header.mode}")
        if header.mode == "near-lossless" and not space.bounds_rgb_errors:
            raise CorruptStreamError(f"hideNet header: near-lossless coding in {space.name} is not a valid combination")
        return header


def _expected_step(mode: str, step: int | None) -> int:
    """The step a mode uses: 1 lossless, odd q >= 3 near-lossless, 0 generative (``step`` if valid)."""
    if mode == "lossless":
        return 1
    if mode == "generative":
        return 0
    if step is None or step < 3 or step % 2 == 0 or step > 255:
        return -1
    return step


def predictor_fingerprint(predictor: Predictor) -> bytes:
    return fingerprint(predictor.config(), predictor.state_dict())


def image_checksum(rgb: np.ndarray) -> int:
    return zlib.crc32(np.ascontiguousarray(rgb, dtype=np.uint8).tobytes())


def _as_uint8(image: np.ndarray | torch.Tensor) -> np.ndarray:
    """(H, W, 3) uint8 from an array, or from a (3, H, W) float tensor in [0, 1]."""
    if isinstance(image, torch.Tensor):
        return to_uint8(image)
    arr = np.asarray(image)
    if arr.dtype != np.uint8 or arr.ndim != 3 or arr.shape[2] != 3:
        raise ValueError(f"expected an (H, W, 3) uint8 image, got {arr.dtype} {arr.shape}")
    return arr


def _to_pixels(rgb: np.ndarray, space: ColourSpace) -> torch.Tensor:
    """(H, W, 3) uint8 -> (1, 3, H, W) float32 integers in ``space``, coding order."""
    return space.forward(torch.from_numpy(np.array(rgb, dtype=np.uint8)).permute(2, 0, 1).float()).unsqueeze(0)


def _to_rgb(x: torch.Tensor, space: ColourSpace) -> np.ndarray:
    return space.inverse(x[0]).permute(1, 2, 0).to(torch.uint8).contiguous().numpy()


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


def _check_predictor(predictor: Predictor, levels: int) -> None:
    if predictor.levels is not None and levels > predictor.levels:
        raise ValueError(f"the predictor was built for at most {predictor.levels} levels, {levels} requested")


@torch.inference_mode()
def encode(image: np.ndarray | torch.Tensor, predictor: Predictor, mode: str = "lossless",
           step: int | None = None, levels: int | None = None, max_pixels: int | None = None) -> bytes:
    """Compress an 8-bit RGB image; returns the file bytes."""
    if mode not in MODES:
        raise ValueError(f"mode must be one of {list(MODES)}, got {mode!r}")
    q = _expected_step(mode, step)
    if q < 0 or (mode == "lossless" and step not in (None, 1)):
        raise ValueError(f"invalid step {step} for {mode}: lossless uses 1, near-lossless an odd step 3..255 "
                         "(max error (step-1)/2), generative none")
    levels = (predictor.levels or DEFAULT_LEVELS) if levels is None else levels
    if not 0 <= levels <= MAX_LEVELS:
        raise ValueError(f"levels must be in 0..{MAX_LEVELS}, got {levels}")
    _check_predictor(predictor, levels)
    if mode == "near-lossless" and not predictor.space.bounds_rgb_errors:
        raise ValueError(f"near-lossless coding needs colour space rgb (an error bound on {predictor.colour} values "
                         "does not bound RGB errors)")
    rgb = _as_uint8(image)
    check_size(rgb.shape[1], rgb.shape[0], max_pixels)
    predictor = predictor.cpu().float().eval()
    with _one_thread():
        return _encode(rgb, predictor, mode, q, levels)


def _encode(rgb: np.ndarray, predictor: Predictor, mode: str, q: int, levels: int) -> bytes:
    x = _to_pixels(rgb, predictor.space)
    pyr = split(x, levels)
    shapes = level_shapes(rgb.shape[0], rgb.shape[1], levels)
    chunks, decoded = [encode_base(pyr.base)], pyr.base
    for level in range(levels - 1, -1, -1):
        enc = ans.Encoder()
        source = None if mode == "generative" else _recorder(orient(pyr.odds[level], level), q, enc)
        odd = _code_level(predictor, decoded, level, shapes[level][1], q, source)
        decoded = merge_once(decoded, odd, split_axis(level))
        if source is not None:
            chunks.append(enc.finish())
    header = Header(rgb.shape[0], rgb.shape[1], levels, mode, q, isinstance(predictor, FixedPredictor),
                    predictor_fingerprint(predictor), image_checksum(_to_rgb(decoded, predictor.space)),
                    predictor.colour, predictor.conditional, predictor.revision)
    return pack(MAGIC, VERSION, [header.pack(), *chunks])


@dataclass
class Decoded:
    image: np.ndarray          # (h, w, 3) uint8 RGB
    header: Header
    levels: int                # levels reconstructed from stored residuals
    predicted_levels: int      # further levels filled in by prediction alone
    verified: bool             # full reconstruction matched the encoder's checksum


def read(data: bytes) -> tuple[Header, list[bytes]]:
    """Check the container and header; returns (header, [base, level L-1, ..., level 0])."""
    if bytes(data[:4]) == MAGIC and len(data) > 4 and data[4] < min(READABLE_VERSIONS):
        raise CorruptStreamError(f"hideNet stream of format version {data[4]} (an older build's rANS coder); this "
                                 f"build reads versions {list(READABLE_VERSIONS)}: re-encode the image")
    version, chunks = unpack(data, MAGIC, READABLE_VERSIONS, what="hideNet stream")
    if not chunks:
        raise CorruptStreamError("hideNet stream has no header")
    header = Header.unpack(chunks[0], version)
    expected = 2 + (0 if header.mode == "generative" else header.levels)
    if len(chunks) != expected:
        raise CorruptStreamError(f"hideNet stream has {len(chunks)} chunks, its header implies {expected}")
    return header, chunks[1:]


def _resolve_predictor(header: Header, predictor: Predictor | None) -> Predictor:
    if header.fixed and predictor is None:
        predictor = FixedPredictor(header.colour, header.conditional, header.revision)
    if predictor is None:
        raise ValueError("this file was written with a learned predictor: give its checkpoint")
    options = (predictor.colour, predictor.conditional, predictor.revision)
    if options != (header.colour, header.conditional, header.revision):
        raise ValueError(f"predictor mismatch: the file was coded with (colour, conditional, revision) = "
                         f"{(header.colour, header.conditional, header.revision)}, the given predictor has {options}")
    predictor = predictor.cpu().float().eval()
    got = predictor_fingerprint(predictor)
    if got != header.fingerprint:
        raise ValueError(f"predictor mismatch: the file needs model {header.fingerprint.hex()}, "
                         f"the given predictor is {got.hex()}")
    _check_predictor(predictor, header.levels)
    return predictor


def working_memory(height: int, width: int, predictor: Predictor) -> int:
    """Estimated peak bytes of decoding a ``height`` x ``width`` image with ``predictor``."""
    width_channels = getattr(predictor, "width", 0)
    return MEMORY_FIXED + height * width * (MEMORY_PER_PIXEL + MEMORY_PER_PIXEL_CHANNEL * width_channels)


@torch.inference_mode()
def decode(data: bytes, predictor: Predictor | None = None, levels: int | None = None,
           fill: bool = False, max_pixels: int | None = None, max_memory: int | None = None) -> Decoded:
    """Decode a hideNet file.

    ``levels`` (default all) is how many levels to reconstruct, coarsest first; without ``fill`` the
    result is that level's lower-resolution even set, with ``fill`` the remaining levels are
    predicted without residuals so the output is always full size (progressive preview).
    ``max_pixels`` and ``max_memory`` are the limits of :mod:`hyreslib.limits` (``None``: defaults).
    """
    header, chunks = read(data)
    check_size(header.width, header.height, max_pixels, what="hideNet file's image")
    predictor = _resolve_predictor(header, predictor)
    check_memory(working_memory(header.height, header.width, predictor), max_memory,
                 what=f"decoding this {header.width}x{header.height} hideNet file")
    total = header.levels
    levels = total if levels is None else levels
    if not 0 <= levels <= total:
        raise ValueError(f"levels must be in 0..{total}, got {levels}")
    with _one_thread():
        rgb = _decode_levels(header, chunks, predictor, levels, fill)
    verified = levels == total and image_checksum(rgb) == header.checksum
    if levels == total and not verified:
        raise CorruptStreamError("hideNet stream decoded to an image that fails its checksum (damaged stream, "
                                 "or a predictor whose float results differ from the encoder's)")
    return Decoded(rgb, header, levels, (total - levels) if fill else 0, verified)


def _decode_levels(header: Header, chunks: list[bytes], predictor: Predictor, levels: int, fill: bool) -> np.ndarray:
    """Base, then the ``levels`` coarsest levels with their residuals, then (``fill``) prediction only."""
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
    return _to_rgb(x, predictor.space)
