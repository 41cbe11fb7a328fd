"""MultiScaleRefine: a decoder-side post-filter applied to ``jpeg + r_hat``.

It sees only decoded data, so it can never change the bitstream; it is trained separately (rate
fixed, distortion only). Structure::

    x0 --space-to-depth by ``stride`` (3·stride² channels)--> s
    s --stem (3x3 conv, PReLU, squeeze-excitation)--> f
    f --branch at 1, 1/2, 1/4 of s's resolution (3x3 conv, dilated 3x3 conv)--> upsample --> concat
      --spatial attention--> fuse (1x1, 3x3) --depth-to-space--> delta ;  output = x0 + delta

With ``stride`` 2 every convolution runs at half resolution on the four phases of each 2x2 block
(no pixel is dropped, as in the conditional synthesis's head), so the refiner costs about a quarter
of the full-resolution one of the same width.

The last convolution starts at zero, so an untrained refiner is exactly the identity: a codec
that loads weights without trained refinement weights decodes as if it had none.

Everything is local except the squeeze-excitation's global average, so :meth:`MultiScaleRefine.tiled`
takes that average over the whole image first, then refines overlapping tiles with it, upsampling
the coarse branches on the whole image's sampling grid (which, for a side that is not a multiple of
4, is not a tile's own).
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .tiling import Tile, Tiling, run_tiled, tiles
from .transforms import SpatialAttention

SCALES = (1, 2, 4)


class SqueezeExcitation(nn.Module):
    """Channel gates from globally pooled features."""

    def __init__(self, channels: int, reduction: int = 16):
        super().__init__()
        hidden = max(1, channels // reduction)
        self.gate = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Conv2d(channels, hidden, 1), nn.ReLU(inplace=True),
                                  nn.Conv2d(hidden, channels, 1), nn.Sigmoid())

    def forward(self, x: Tensor) -> Tensor:
        return x * self.gate(x)


def _branch(width: int) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(width, width, 3, padding=1), nn.PReLU(width),
                         nn.Conv2d(width, width, 3, padding=2, dilation=2), nn.PReLU(width))


class MultiScaleRefine(nn.Module):
    """Residual multi-resolution refinement of a decoded image (any size)."""

    def __init__(self, width: int = 64, stride: int = 1):
        super().__init__()
        if stride < 1:
            raise ValueError(f"refiner stride must be >= 1, got {stride}")
        self.width, self.stride = width, stride
        channels = 3 * stride ** 2
        self.stem = nn.Sequential(nn.Conv2d(channels, width, 3, padding=1), nn.PReLU(width), SqueezeExcitation(width))
        self.branches = nn.ModuleList(_branch(width) for _ in SCALES)
        self.attention = SpatialAttention()
        self.fuse = nn.Sequential(nn.Conv2d(len(SCALES) * width, width, 1), nn.PReLU(width),
                                  nn.Conv2d(width, channels, 3, padding=1))
        nn.init.zeros_(self.fuse[-1].weight)
        nn.init.zeros_(self.fuse[-1].bias)

    def config(self) -> dict[str, int]:
        """The constructor's settings (``stride`` only when not 1: checkpoints made before it existed)."""
        return {"width": self.width, **({"stride": self.stride} if self.stride != 1 else {})}

    def forward(self, x: Tensor) -> Tensor:
        return self._strided(x, self._refine)

    def _strided(self, x: Tensor, refine: Callable[[Tensor], Tensor]) -> Tensor:
        """``refine`` applied to ``x`` space-to-depth by the stride (edge-padded to a multiple of it)."""
        s = self.stride
        if s == 1:
            return refine(x)
        h, w = x.shape[-2:]
        padded = F.pad(x, (0, -w % s, 0, -h % s), mode="replicate") if h % s or w % s else x
        return F.pixel_shuffle(refine(F.pixel_unshuffle(padded, s)), s)[..., :h, :w]

    def _refine(self, x: Tensor, gate: Tensor | None = None, tile: Tile | None = None,
                full: tuple[int, int] | None = None) -> Tensor:
        """The refined ``x``; a tile of a ``full``-size image takes the whole image's excitation ``gate``."""
        conv, act, excite = self.stem
        f = act(conv(x))
        f = f * (excite.gate(f) if gate is None else gate)
        size = f.shape[-2:]
        outs = []
        for scale, branch in zip(SCALES, self.branches):
            if scale == 1:
                outs.append(branch(f))
                continue
            g = branch(F.avg_pool2d(f, scale, ceil_mode=True))
            outs.append(F.interpolate(g, size=size, mode="bilinear", align_corners=False) if tile is None
                        else _upsample(g, scale, tile, full))
        return x + self.fuse(self.attention(torch.cat(outs, dim=1)))

    def tiled(self, x: Tensor, tiling: Tiling) -> Tensor:
        """:meth:`forward` of a (B, 3, H, W) image in overlapping tiles (see :mod:`.tiling`; the tiles are
        counted at the refiner's own resolution, 1/stride)."""
        return self._strided(x, lambda s: self._tiled(s, tiling))

    def _tiled(self, x: Tensor, tiling: Tiling) -> Tensor:
        conv, act, excite = self.stem
        h, w = x.shape[-2:]
        total = x.new_zeros((x.shape[0], self.width, 1, 1))
        for t in tiles(h, w, Tiling(tile=tiling.tile, overlap=1)):
            f = act(conv(x[..., t.top:t.bottom, t.left:t.right]))
            core = f[..., t.core_top - t.top:t.core_bottom - t.top, t.core_left - t.left:t.core_right - t.left]
            total += core.sum(dim=(-2, -1), keepdim=True)
        gate = excite.gate[1:](total / (h * w))  # the pooled mean through the rest of the gate
        return run_tiled(lambda t, piece: self._refine(piece, gate, t, (h, w)), [(x, 1)], (h, w), 1, tiling,
                         max(SCALES))


def _upsample(g: Tensor, scale: int, tile: Tile, full: tuple[int, int]) -> Tensor:
    """Bilinear upsampling (``align_corners=False``) of a tile's pooled features ``g``, sampled where
    upsampling the whole ``full``-size image's pooled features would sample them."""
    for dim, start, stop, size in ((-2, tile.top, tile.bottom, full[0]), (-1, tile.left, tile.right, full[1])):
        coarse = -(-size // scale)
        src = ((torch.arange(start, stop, dtype=torch.float32) + 0.5) * (coarse / size) - 0.5).clamp(min=0)
        lo = src.floor().long()
        hi = torch.where(lo < coarse - 1, lo + 1, lo)
        frac = (src - lo).to(g.dtype).view(-1, *([1] * (-dim - 1)))
        # indexes into the tile's piece; they stay inside it unless the tile has too little overlap
        lo, hi = ((i - start // scale).clamp(0, g.shape[dim] - 1) for i in (lo, hi))
        first = g.index_select(dim, lo)
        g = first + (g.index_select(dim, hi) - first) * frac
    return g
