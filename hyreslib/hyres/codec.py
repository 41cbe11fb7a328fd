"""The HyRES codec: a standard JPEG base layer plus a learned, entropy-coded residual.

Encoding (``x`` is the original image, H x W, any size)::

    x --JPEG--> jpeg bytes --canonical CPU decode--> base
    r = x - base --zero-pad to a multiple of the downsampling factor (64 at depth 4)--> ResidualCodec.compress
                  --> z / anchor / non-anchor strings
                  (a base-conditioned model also gets side_input(base, quality))
    file = container(header, jpeg bytes, strings)                      (see :mod:`.bitstream`)

A codec that knows its λ writes each image in the coding mode (latent, latent-free or base-only)
with the lowest rate-distortion cost on real bytes (the picture before the decoder-side refiner,
which never changes a file). It searches only its ``modes``: a mode that hardly ever pays on a model's
validation images (:func:`.evaluate.prune`) no longer costs its analysis, entropy coding and synthesis.

Decoding rebuilds ``base`` from the JPEG bytes with the same CPU decoder, decodes the residual
(unclamped), crops the padding away, optionally applies a decoder-side refiner, and clamps only
the final image: ``clamp(refine(base + r_hat), 0, 1)``.

The encoder and the decoder run the same code on the same padded shapes, so on one device the
decoder rebuilds bit-for-bit the latent the encoder coded. A model with the integer parse
(``ResidualConfig(parse="integer")``, files of version 3) computes every coding-table index in
integer arithmetic, so its files parse to the same symbols on any device; only the float
synthesis (and the means) may then differ slightly. The file stores a CRC of everything
that shapes the picture (z and y symbols, JPEG base pixels; see :mod:`.bitstream` for what it
promises and what it does not), which the decoder checks: decoding that lost sync (entropy
parameters computed differently on another device) or an altered string fails loudly instead of
showing a wrong image. Before decoding anything large the decoder checks the size the header
claims and its own working-memory estimate against :mod:`hyreslib.core.limits`.

Images larger than ``HyresCodec.tiling.threshold`` pixels run the transforms, the base pyramid and
the refiner in overlapping tiles (:mod:`.tiling`), so their working memory grows with the pixel
count only through a few whole-image planes; the latent is entropy-coded whole, as for any image.
"""

from __future__ import annotations

import copy
import numbers
import zlib
from collections.abc import Callable
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..codecs import jpeg as jpeg_io
from ..codecs.container import CorruptStreamError, ModelMismatchError
from ..core.checkpoint import build_model, fingerprint, load_checkpoint, save_checkpoint
from ..core.images import check_image, from_uint8, to_uint8
from ..core.limits import check_memory, check_size
from ..results.metrics import bpp
from . import bitstream
from .bitstream import STRINGS, Header
from .conditioning import side_input
from .refine import MultiScaleRefine
from .residual import ResidualCodec, ResidualConfig, likelihood_bits
from .tiling import Tiling, run_tiled

CHECKPOINT_KIND = "hyres-codec"
# Decoder working memory, bytes = FIXED + padded pixels * (PER_PIXEL + PER_PIXEL_CHANNEL * N), the channel term
# doubled for a base-conditioned model (its pyramid and half-resolution head); fitted
# to peak RSS measured on CPU (bench/decoder_memory.py), rounded up.
MEMORY_FIXED = 256 << 20
MEMORY_PER_PIXEL = 128
MEMORY_PER_PIXEL_CHANNEL = 4
# Tiled: the whole-image planes (image, base, residual, reconstruction, padded copies) per pixel; and the
# refiner's activations per pixel (of the image, or of a tile) and channel of its width. Upper bounds of the
# peak RSS bench/large_photo.py measured (quick model at 1 and 4 MP whole and tiled, paper scale at 8 MP tiled).
MEMORY_TILED_PER_PIXEL = 160
MEMORY_REFINE_PER_PIXEL_CHANNEL = 48


class LatentMismatchError(CorruptStreamError):
    """The decoder rebuilt symbols or base pixels different from the ones the encoder coded."""


NO_BASE = 0  # JPEG "quality" of a codec without a base layer: the residual is x - 0.5 (a pure learned codec)


@dataclass(frozen=True)
class JpegSettings:
    """How the base layer is written. 4:2:0 with optimised Huffman tables costs 0.086 bpp on Kodak
    at quality 1, against 0.20 bpp for the same pixels with 4:2:2 and default tables.

    ``quality=NO_BASE`` (0) writes no JPEG: the same residual codec then codes ``x - 0.5`` alone,
    the equal-architecture pure learned codec that the hybrid is compared with."""

    quality: int = 1
    subsampling: str = "4:2:0"
    optimize: bool = True

    @property
    def has_base(self) -> bool:
        return self.quality != NO_BASE


@dataclass
class Encoded:
    data: bytes          # the complete .hyr file
    base: Tensor         # decoded JPEG base, (3, H, W)
    y_hat: Tensor        # the quantised latent as coded, (1, M, h, w)
    mode: str = "latent"  # the coding mode (see .bitstream)
    cost: float | None = None  # λ·255²·MSE + bpp, when the encoder compared modes (see encode_modes)


@dataclass
class Decoded:
    image: Tensor        # final reconstruction in [0, 1], (3, H, W)
    base: Tensor
    y_hat: Tensor


NO_SYMBOLS = torch.zeros(0, dtype=torch.int32)  # the symbols of the latent-free mode


def content_crc(z_symbols: Tensor, symbols: Tensor, base: Tensor) -> int:
    """CRC-32 of what shapes one picture: the integer symbols of z and y (int32, in array order)
    and the 8-bit pixels of the decoded JPEG base."""
    crc = 0
    for t in (z_symbols, symbols):
        crc = zlib.crc32(t.detach().to(torch.int32).cpu().contiguous().numpy().astype("<i4").tobytes(), crc)
    return zlib.crc32(to_uint8(base.cpu()).tobytes(), crc)


def compose(base: Tensor, r_hat: Tensor, refine: nn.Module | None = None, clamp: bool = True,
            tiling: Tiling | None = None) -> Tensor:
    """The reconstruction ``base + r_hat``, refined when a refiner is given (in tiles with ``tiling``);
    only this final image is clamped (training uses ``clamp=False`` to keep gradients everywhere)."""
    x = base + r_hat
    if refine is not None:
        batch = x[None] if x.dim() == 3 else x
        # in tiles when asked and the refiner has a tiled pass (MultiScaleRefine), else on the whole image
        tiled = tiling is not None and hasattr(refine, "tiled")
        batch = refine.tiled(batch, tiling) if tiled else refine(batch)
        x = batch[0] if x.dim() == 3 else batch
    return x.clamp(0, 1) if clamp else x


class HyresCodec:
    """Encode images to ``.hyr`` bytes and back with one trained residual model."""

    def __init__(self, residual: ResidualCodec, jpeg: JpegSettings = JpegSettings(),
                 refine: nn.Module | None = None, device: torch.device | str = "cpu", lmbda: float | None = None,
                 tiling: Tiling = Tiling(), modes: tuple[str, ...] = bitstream.MODES):
        """``lmbda``: the λ the model was trained for; with it the encoder chooses, per image, among
        the coding ``modes`` by rate-distortion cost (without it, it codes the latent). ``tiling``:
        above which size, and how, the per-pixel networks run in tiles. Both are settable attributes."""
        self.device = torch.device(device)
        self.tiling = tiling
        self.modes = modes
        self.jpeg = jpeg
        self.lmbda = lmbda
        # Coding tables are always built on the CPU so that every device codes with the same CDFs.
        residual = residual.cpu().eval()
        residual.update(force=True)
        self.residual = residual.to(self.device)
        self.refine = refine.to(self.device).eval() if refine is not None else None
        self.fingerprint = fingerprint(residual.config.to_dict(), residual.state_dict(),
                                       nbytes=bitstream.FINGERPRINT_BYTES)

    @property
    def modes(self) -> tuple[str, ...]:
        """The coding modes the encoder searches (in :data:`.bitstream.MODES` order)."""
        return self._modes

    @modes.setter
    def modes(self, modes: tuple[str, ...] | list[str]) -> None:
        if not modes or not set(modes) <= set(bitstream.MODES):
            raise ValueError(f"coding modes must be a non-empty subset of {bitstream.MODES}, got {modes!r}")
        self._modes = tuple(m for m in bitstream.MODES if m in modes)

    def with_modes(self, modes: tuple[str, ...] | list[str]) -> HyresCodec:
        """The same networks and settings, searching ``modes``."""
        codec = copy.copy(self)
        codec.modes = modes
        return codec

    def rd_cost(self, picture: Tensor, image: Tensor, data: bytes) -> float:
        """The training loss of a real file: ``λ·255²·MSE(picture, image)`` plus the bpp of ``data``."""
        if self.lmbda is None:
            raise ValueError("a codec without λ has no rate-distortion cost to compare modes by")
        return self.lmbda * 255.0 ** 2 * float(F.mse_loss(picture, image)) + bpp(len(data), *image.shape[-2:])

    # -- encoding -------------------------------------------------------------------------------
    def _padded(self, h: int, w: int) -> tuple[int, int]:
        k = self.residual.downsampling_factor
        return -(-h // k) * k, -(-w // k) * k

    def _quality(self, quality: int | None) -> int:
        """The base-layer quality to use: ``quality`` (1..100), or the model's when None; a codec
        without a base layer (quality 0) has none to change, and one with a base cannot drop it."""
        if quality is None:
            return self.jpeg.quality
        if isinstance(quality, bool) or not isinstance(quality, numbers.Integral) or not 1 <= quality <= 100:
            if quality == NO_BASE and not self.jpeg.has_base:
                return NO_BASE
            raise ValueError(f"JPEG quality must be an integer in 1..100, got {quality!r}")
        if not self.jpeg.has_base:
            raise ValueError(f"JPEG quality {quality} is not available for this model: it has no base layer")
        return int(quality)

    def base_layer(self, x: Tensor, quality: int | None = None) -> tuple[bytes, Tensor]:
        """JPEG bytes of ``x`` and their canonical (CPU) decode (no bytes and a mid-grey base
        for a codec without a base layer)."""
        quality = self._quality(quality)
        if quality == NO_BASE:
            return b"", torch.full_like(x, 0.5)
        data = jpeg_io.encode_array(to_uint8(x), quality, self.jpeg.subsampling, self.jpeg.optimize)
        return data, from_uint8(jpeg_io.decode_array(data, max_pixels=x.shape[-1] * x.shape[-2]))

    def working_memory(self, height: int, width: int) -> int:
        """Estimated peak bytes of decoding a ``height`` x ``width`` image (measured: see
        ``bench/decoder_memory.py`` and ``bench/large_photo.py``): the activations of the synthesis
        transform and the refiner dominate, over the whole image or, tiled, over one tile."""
        hp, wp = self._padded(height, width)
        per_channel = MEMORY_PER_PIXEL_CHANNEL * (2 if self.residual.config.conditional else 1)
        per_pixel = MEMORY_PER_PIXEL + per_channel * self.residual.config.N
        # a MultiScaleRefine's activations, at its own resolution (1/stride)
        refine = MEMORY_REFINE_PER_PIXEL_CHANNEL * getattr(self.refine, "width", 0)
        s = getattr(self.refine, "stride", 1)
        if not self.tiling.applies(height, width):
            return MEMORY_FIXED + hp * wp * per_pixel + -(-hp // s) * -(-wp // s) * refine
        side = self.tiling.extent(self.residual.downsampling_factor)
        return (MEMORY_FIXED + hp * wp * MEMORY_TILED_PER_PIXEL + min(side, hp) * min(side, wp) * per_pixel
                + min(side, -(-hp // s)) * min(side, -(-wp // s)) * refine)

    def _pad(self, x: Tensor) -> Tensor:
        h, w = x.shape[-2:]
        hp, wp = self._padded(h, w)
        return F.pad(x.unsqueeze(0), (0, wp - w, 0, hp - h)).to(self.device)

    def _cond(self, base: Tensor, quality: int) -> Tensor | None:
        """The decoder-side input of a base-conditioned model (padded like the residual)."""
        return side_input(self._pad(base), quality) if self.residual.config.conditional else None

    def _residual_input(self, x: Tensor, base: Tensor) -> Tensor:
        return self._pad(x - base)

    def _tiled(self, fn: Callable[..., Tensor], inputs: list[tuple[Tensor, int]], size: tuple[int, int],
               out_stride: int) -> Tensor:
        return run_tiled(fn, inputs, size, out_stride, self.tiling, self.residual.downsampling_factor)

    def _features(self, base: Tensor, quality: int) -> list[Tensor] | None:
        """The base pyramid of a conditional model (None otherwise); tiled, only its coarsest
        level, the one the entropy model takes (the synthesis rebuilds the rest tile by tile)."""
        if not self.residual.config.conditional:
            return None
        if not self.tiling.applies(*base.shape[-2:]):
            return self.residual.features(self._cond(base, quality))
        b = self._pad(base)
        return [self._tiled(lambda t, piece: self.residual.features(side_input(piece, quality))[-1], [(b, 1)],
                            b.shape[-2:], 2 ** self.residual.config.depth)]

    def _analyse(self, x: Tensor, base: Tensor, quality: int) -> Tensor:
        """The latent y of the padded residual ``x - base`` (in tiles for a large image)."""
        r = self._residual_input(x, base)
        if not self.tiling.applies(*x.shape[-2:]):
            return self.residual.analyse(r, self._cond(base, quality))
        stride = 2 ** self.residual.config.depth
        if not self.residual.config.conditional:
            return self._tiled(lambda t, piece: self.residual.analyse(piece), [(r, 1)], r.shape[-2:], stride)
        return self._tiled(lambda t, piece, b: self.residual.analyse(piece, side_input(b, quality)),
                           [(r, 1), (self._pad(base), 1)], r.shape[-2:], stride)

    def _synthesise(self, y_hat: Tensor, base: Tensor, quality: int, feats: list[Tensor] | None) -> Tensor:
        """The residual ``g_s(y_hat)`` of the whole padded image (in tiles for a large image)."""
        if not self.tiling.applies(*base.shape[-2:]):
            return self.residual.synthesise(y_hat, feats)
        stride = 2 ** self.residual.config.depth
        size = (y_hat.shape[-2] * stride, y_hat.shape[-1] * stride)
        if not self.residual.config.conditional:
            return self._tiled(lambda t, piece: self.residual.synthesise(piece), [(y_hat, stride)], size, 1)
        return self._tiled(lambda t, piece, b: self.residual.synthesise(piece, self.residual.features(
            side_input(b, quality))), [(y_hat, stride), (self._pad(base), 1)], size, 1)

    def encode_detailed(self, image: Tensor, quality: int | None = None, max_pixels: int | None = None,
                        mode: str | None = None) -> Encoded:
        """Encode in coding ``mode`` (see :mod:`.bitstream`); when None, a codec that knows its λ
        tries each of its :attr:`modes` and keeps the one with the lowest rate-distortion cost
        (see :meth:`encode_modes`; one without λ always codes the latent)."""
        if mode is not None and mode not in bitstream.MODES:
            raise ValueError(f"coding mode must be one of {bitstream.MODES}, got {mode!r}")
        modes = (mode,) if mode is not None else self.modes if self.lmbda is not None else ("latent",)
        options = self.encode_modes(image, modes, quality, max_pixels, costs=len(modes) > 1)
        return min(options, key=lambda e: e.cost) if len(options) > 1 else options[0]

    @torch.inference_mode()
    def encode_modes(self, image: Tensor, modes: tuple[str, ...] = bitstream.MODES, quality: int | None = None,
                     max_pixels: int | None = None, costs: bool = True) -> list[Encoded]:
        """``image`` encoded in each of ``modes``; with ``costs`` (a codec that knows its λ), each file
        with its rate-distortion cost ``λ·255²·MSE + bpp``: its real size, and the picture before the
        refiner (decoder-side only, it never changes a file). Only the latent mode analyses and
        entropy-codes; every mode but base-only costs a synthesis."""
        x = check_image(image)
        check_size(x.shape[-1], x.shape[-2], max_pixels)
        quality = self._quality(quality)
        jpeg_bytes, base = self.base_layer(x, quality)
        # the base pyramid feeds the latent's coding and every synthesis; a lone latent-free file needs neither
        feats = self._features(base, quality) if costs or "latent" in modes else None
        header = Header(width=x.shape[-1], height=x.shape[-2], jpeg_quality=quality,
                        subsampling=self.jpeg.subsampling, fingerprint=self.fingerprint,
                        parse=self.residual.config.parse, content_crc=content_crc(NO_SYMBOLS, NO_SYMBOLS, base))
        no_strings = {k: b"" for k in STRINGS}
        zero = torch.zeros((1, *self.residual.latent_shapes(*self._padded(*x.shape[-2:]))["y"]), device=self.device)
        options = []
        for m in modes:
            if m != "latent":
                options.append(Encoded(bitstream.write(replace(header, mode=m), jpeg_bytes, no_strings), base, zero, m))
                continue
            out = self.residual.compress_latent(self._analyse(x, base, quality), feats)
            coded = replace(header, mode=m, content_crc=content_crc(out["z_symbols"][0], out["symbols"][0], base))
            options.append(Encoded(bitstream.write(coded, jpeg_bytes, {k: out["strings"][k][0] for k in STRINGS}),
                                   base, out["y_hat"], m))
        if costs:
            for e in options:
                e.cost = self.rd_cost(self._picture(e.mode, e.base, e.y_hat, feats, quality), x, e.data)
        return options

    def _picture(self, mode: str, base: Tensor, y_hat: Tensor, feats: list[Tensor] | None, quality: int,
                 refine: nn.Module | None = None) -> Tensor:
        """What a file decodes to: ``clamp(refine(base + r_hat))`` with ``r_hat = g_s(y_hat)``, or
        zero in the base-only mode (the JPEG itself, refined when the decoder has a refiner)."""
        h, w = base.shape[-2:]
        base = base.to(self.device)
        r_hat = (torch.zeros_like(base) if mode == "base-only"
                 else self._synthesise(y_hat, base, quality, feats)[0, :, :h, :w])
        return compose(base, r_hat, refine, tiling=self.tiling if self.tiling.applies(h, w) else None).cpu()

    def encode(self, image: Tensor, quality: int | None = None, max_pixels: int | None = None) -> bytes:
        """A (3, H, W) image in [0, 1] -> the bytes of a ``.hyr`` file."""
        return self.encode_detailed(image, quality, max_pixels).data

    @torch.no_grad()
    def estimate_bits(self, image: Tensor, quality: int | None = None) -> dict[str, float]:
        """The rate the model itself predicts for ``image`` (its likelihoods on the same padded
        residual the encoder codes), in bits, for comparison with the real strings."""
        x = check_image(image)
        quality = self._quality(quality)
        _, base = self.base_layer(x, quality)
        out = self.residual(self._residual_input(x, base), self._cond(base, quality))
        return {k: float(likelihood_bits(v)) for k, v in out["likelihoods"].items()}

    # -- decoding -------------------------------------------------------------------------------
    @torch.inference_mode()
    def decode_detailed(self, data: bytes, max_pixels: int | None = None, max_memory: int | None = None) -> Decoded:
        """Decode with the limits of :mod:`hyreslib.core.limits` (``None``: their defaults)."""
        header, parts = bitstream.read(data)
        if header.parse != self.residual.config.parse:
            raise ModelMismatchError(f"this file was written with the {header.parse} parse; the loaded model "
                                     f"codes with the {self.residual.config.parse} parse")
        if header.fingerprint != self.fingerprint:
            raise ModelMismatchError(f"this file was made with another model (fingerprint {header.fingerprint.hex()}; "
                                     f"the loaded model is {self.fingerprint.hex()})")
        check_size(header.width, header.height, max_pixels, what="HyRES file's image")
        check_memory(self.working_memory(header.height, header.width), max_memory,
                     what=f"decoding this {header.width}x{header.height} HyRES file")
        base = self._decode_base(header, parts["jpeg"])
        if tuple(base.shape[-2:]) != (header.height, header.width):
            raise CorruptStreamError(f"HyRES file: JPEG base is {base.shape[-1]}x{base.shape[-2]}, "
                                     f"header says {header.width}x{header.height}")
        feats = self._features(base, header.jpeg_quality)
        y_hat, z_symbols, symbols = self._decode_latent(header, parts, feats)
        if content_crc(z_symbols, symbols, base) != header.content_crc:
            cause = ("the file was altered" if self.residual.config.integer_parse else
                     "the file was altered, or this device computes the entropy parameters differently from the "
                     f"encoder's ({self.device}); decode on the device type that encoded it")
            raise LatentMismatchError(f"decoded symbols or base pixels differ from the encoder's (content CRC "
                                      f"mismatch): {cause}")
        return Decoded(self._picture(header.mode, base, y_hat, feats, header.jpeg_quality, self.refine), base, y_hat)

    def _decode_base(self, header: Header, jpeg_bytes: bytes) -> Tensor:
        if header.jpeg_quality == NO_BASE:
            return torch.full((3, header.height, header.width), 0.5)
        try:
            return from_uint8(jpeg_io.decode_array(jpeg_bytes, max_pixels=header.width * header.height))
        except ValueError as exc:
            raise CorruptStreamError(f"HyRES file: bad JPEG base layer ({exc})") from None

    def _decode_latent(self, header: Header, parts: dict[str, bytes], feats: list[Tensor] | None
                       ) -> tuple[Tensor, Tensor, Tensor]:
        """(y_hat, z symbols, y symbols); a zero latent and no symbols in the latent-free mode."""
        hp, wp = self._padded(header.height, header.width)
        if header.mode != "latent":
            zeros = torch.zeros((1, *self.residual.latent_shapes(hp, wp)["y"]), device=self.device)
            return zeros, NO_SYMBOLS, NO_SYMBOLS
        latent = self.residual.decompress_latent({k: [parts[k]] for k in STRINGS}, hp, wp, feats)
        return latent["y_hat"], latent["z_symbols"][0], latent["symbols"][0]

    def decode(self, data: bytes, max_pixels: int | None = None, max_memory: int | None = None) -> Tensor:
        """``.hyr`` bytes -> the (3, H, W) reconstruction in [0, 1]."""
        return self.decode_detailed(data, max_pixels, max_memory).image

    # -- checkpoints ----------------------------------------------------------------------------
    def config(self) -> dict[str, Any]:
        """The settings a checkpoint stores (``modes`` only when not all: checkpoints made before it existed)."""
        return {"residual": self.residual.config.to_dict(), "jpeg": asdict(self.jpeg), "lmbda": self.lmbda,
                "refine": self.refine.config() if self.refine is not None else None,
                **({"modes": list(self.modes)} if self.modes != bitstream.MODES else {})}

    def save(self, path: str | Path, extra: dict[str, Any] | None = None) -> Path:
        """Write a self-describing checkpoint (coding tables included, so it codes at once)."""
        state = {f"residual.{k}": v for k, v in self.residual.state_dict().items()}
        if self.refine is not None:
            state.update({f"refine.{k}": v for k, v in self.refine.state_dict().items()})
        return save_checkpoint(path, CHECKPOINT_KIND, self.config(), state, extra)

    @classmethod
    def load(cls, path: str | Path, device: torch.device | str = "cpu", use_refine: bool = True) -> HyresCodec:
        """Rebuild a codec from :meth:`save`'s checkpoint (``weights_only`` loading, sizes from the
        stored config, coding tables rebuilt with ``update(force=True)``)."""
        payload = load_checkpoint(path, kind=CHECKPOINT_KIND)
        cfg, state = payload["config"], payload["state_dict"]
        try:
            jpeg = JpegSettings(**cfg["jpeg"])
            if not 0 <= jpeg.quality <= 100 or jpeg.subsampling not in jpeg_io.SUBSAMPLING:
                raise ValueError(f"quality {jpeg.quality}, subsampling {jpeg.subsampling}")
        except (TypeError, KeyError, ValueError) as exc:
            raise ValueError(f"{path}: invalid JPEG settings in the checkpoint ({type(exc).__name__}: {exc})") from None
        residual = build_model(lambda: ResidualCodec(ResidualConfig.from_dict(cfg["residual"])),
                               _with_prefix(state, "residual."), f"{path} (residual codec)")
        refine = None
        if use_refine and cfg.get("refine"):
            refine = build_model(lambda: MultiScaleRefine(**cfg["refine"]), _with_prefix(state, "refine."),
                                 f"{path} (refiner)")
        codec = cls(residual, jpeg, refine, device, lmbda=cfg.get("lmbda"))
        try:
            codec.modes = cfg.get("modes") or bitstream.MODES
        except ValueError as exc:
            raise ValueError(f"{path}: invalid settings in the checkpoint ({exc})") from None
        return codec


def _with_prefix(state: dict[str, Tensor], prefix: str) -> dict[str, Tensor]:
    return {k[len(prefix):]: v for k, v in state.items() if k.startswith(prefix)}
