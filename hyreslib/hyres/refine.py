"""MultiScaleRefine: a decoder-side post-filter applied to ``jpeg + r_hat``.

It sees only decoded data, so it can never change the bitstream; it is trained separately (rate
fixed, distortion only). Structure::

    x0 --stem (3x3 conv, PReLU, squeeze-excitation)--> f
    f --branch at 1, 1/2, 1/4 resolution (3x3 conv, dilated 3x3 conv)--> upsample --> concat
      --spatial attention--> fuse (1x1, 3x3) --> delta ;  output = x0 + delta

The last convolution starts at zero, so an untrained refiner is exactly the identity: a codec
that loads weights without trained refinement weights decodes as if it had none.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

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

    def __init__(self, width: int = 64):
        super().__init__()
        self.width = width
        self.stem = nn.Sequential(nn.Conv2d(3, width, 3, padding=1), nn.PReLU(width), SqueezeExcitation(width))
        self.branches = nn.ModuleList(_branch(width) for _ in SCALES)
        self.attention = SpatialAttention()
        self.fuse = nn.Sequential(nn.Conv2d(len(SCALES) * width, width, 1), nn.PReLU(width),
                                  nn.Conv2d(width, 3, 3, padding=1))
        nn.init.zeros_(self.fuse[-1].weight)
        nn.init.zeros_(self.fuse[-1].bias)

    def forward(self, x: Tensor) -> Tensor:
        f = self.stem(x)
        size = f.shape[-2:]
        outs = []
        for scale, branch in zip(SCALES, self.branches):
            g = F.avg_pool2d(f, scale, ceil_mode=True) if scale > 1 else f
            g = branch(g)
            outs.append(F.interpolate(g, size=size, mode="bilinear", align_corners=False) if scale > 1 else g)
        return x + self.fuse(self.attention(torch.cat(outs, dim=1)))

