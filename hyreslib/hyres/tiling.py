"""Overlapping tiles: the codec's per-pixel networks on a large image, piece by piece, in bounded memory.

Every network that runs at pixel resolution (the analysis and synthesis transforms with the base
pyramid, the refiner) is local: an output pixel depends on its neighbourhood only. So each tile is
computed with ``overlap`` pixels of real context on every side and only its core is kept; the cores
tile the output exactly, and with enough overlap the seams are invisible (the tests compare a tiled
pass against the whole-image pass). Tile edges sit on multiples of ``align`` so that every strided
layer, pooling and sub-pixel shuffle sees the same grid as in the whole image::

    reference grid (padded pixels)   |<-- overlap --|====== core ======|-- overlap -->|
    an input with stride s           the same span / s
    the output with stride s         core / s, written into the whole output

The entropy-coded latent is never tiled (it is small: 1/256 of the pixels at depth 4), so files do
not depend on tiling except through floating-point rounding of the networks that feed the entropy
model; a codec therefore decides to tile from the image size alone, the same way when encoding and
decoding (:attr:`Tiling.threshold`).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass

from torch import Tensor


@dataclass(frozen=True)
class Tiling:
    """When the codec tiles (images of more than ``threshold`` pixels; 0: always) and how: tiles of
    ``tile`` x ``tile`` pixels, each computed with ``overlap`` pixels of context on every side.

    Changing ``threshold`` between encoding and decoding an image is like decoding on another
    device type: a float-parse, base-conditioned model may then refuse the file (the content CRC
    catches it); integer-parse and unconditioned models decode it either way."""

    threshold: int = 1 << 21   # 2 MP: Full HD (2.07 MP) stays whole, a 12-MP photo is tiled
    tile: int = 512
    overlap: int = 64

    def __post_init__(self) -> None:
        if self.threshold < 0 or self.tile < 1 or self.overlap < 0:
            raise ValueError(f"tiling needs threshold >= 0, tile >= 1, overlap >= 0; got {self}")

    def applies(self, height: int, width: int) -> bool:
        return height * width > self.threshold

    def extent(self, align: int) -> int:
        """The largest side of a tile with its context, in reference pixels."""
        return _round_up(self.tile, align) + 2 * _round_up(self.overlap, align)


@dataclass(frozen=True)
class Tile:
    """One tile: the span computed (``top:bottom``, ``left:right``) and the core kept."""

    top: int
    bottom: int
    left: int
    right: int
    core_top: int
    core_bottom: int
    core_left: int
    core_right: int


def _round_up(n: int, k: int) -> int:
    return -(-n // k) * k


def _spans(size: int, tiling: Tiling, align: int) -> list[tuple[int, int, int, int]]:
    step, margin = _round_up(tiling.tile, align), _round_up(tiling.overlap, align)
    return [(max(0, lo - margin), min(size, lo + step + margin), lo, min(size, lo + step))
            for lo in range(0, size, step)]


def tiles(height: int, width: int, tiling: Tiling, align: int = 1) -> Iterator[Tile]:
    """The tiles of a ``height`` x ``width`` grid, row by row; spans start on multiples of ``align``."""
    for top, bottom, ct, cb in _spans(height, tiling, align):
        for left, right, cl, cr in _spans(width, tiling, align):
            yield Tile(top, bottom, left, right, ct, cb, cl, cr)


def run_tiled(fn: Callable[..., Tensor], inputs: Sequence[tuple[Tensor, int]], size: tuple[int, int],
              out_stride: int, tiling: Tiling, align: int) -> Tensor:
    """``fn(tile, *pieces)`` over the tiles of a ``size`` reference grid, stitched from the cores.

    ``inputs`` are ``(tensor, stride)``: a (B, C, H/stride, W/stride) tensor over the grid; ``fn``
    returns the output of its span at ``1/out_stride`` of the grid. ``align`` must be a multiple of
    every stride, so each piece starts on a whole sample.
    """
    out = None
    for t in tiles(*size, tiling, align):
        pieces = [x[..., t.top // s:-(-t.bottom // s), t.left // s:-(-t.right // s)] for x, s in inputs]
        y = fn(t, *pieces)
        k = out_stride
        if out is None:
            out = y.new_empty((*y.shape[:-2], -(-size[0] // k), -(-size[1] // k)))
        out[..., t.core_top // k:-(-t.core_bottom // k), t.core_left // k:-(-t.core_right // k)] = \
            y[..., (t.core_top - t.top) // k:-(-(t.core_bottom - t.top) // k),
              (t.core_left - t.left) // k:-(-(t.core_right - t.left) // k)]
    assert out is not None
    return out
