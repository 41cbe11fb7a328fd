"""Analysis/synthesis and hyper transforms of the residual codec, built from CompressAI layers.

Shapes for an input of H x W (both multiples of :func:`pad_multiple`)::

    r (3, H, W) --g_a--> y (M, H/2^d, W/2^d) --h_a--> z (N, H/2^(d+2), W/2^(d+2))
    z_hat --h_s--> side params (2M, H/2^d, W/2^d)          y_hat --g_s--> r_hat (3, H, W)
    (integer parse: h_s gives 3M channels, M scale-table positions before the 2M side params)

``d`` is the depth (number of stride-2 stages, 4 at paper scale: y at 1/16, z at 1/64). Attention
sits where Cheng et al. (2020) put it, after the middle stage and at the latent, and each
attention site applies CompressAI's channel-mixing :class:`~compressai.layers.AttentionBlock`
followed by a spatial attention map.
"""

from __future__ import annotations

import torch
from compressai.layers import GDN, AttentionBlock, conv3x3
from compressai.models.utils import conv, deconv
from torch import Tensor, nn

from .fixed_point import FixedPointSequential


class SpatialAttention(nn.Module):
    """Reweights positions by a map computed from the channel-wise mean and max (CBAM style).

    The channel attention of :class:`AttentionBlock` cannot say *where* the residual carries
    information (edges, JPEG block boundaries); this cheap map can.
    """

    def __init__(self, kernel_size: int = 7):
        super().__init__()
        self.conv = nn.Conv2d(2, 1, kernel_size, padding=kernel_size // 2, bias=False)

    def forward(self, x: Tensor) -> Tensor:
        stats = torch.cat([x.mean(dim=1, keepdim=True), x.amax(dim=1, keepdim=True)], dim=1)
        return x * torch.sigmoid(self.conv(stats))


def attention(channels: int) -> nn.Sequential:
    """Channel attention (Cheng 2020) then spatial attention."""
    return nn.Sequential(AttentionBlock(channels), SpatialAttention())


def _check(N: int, M: int, depth: int) -> None:
    if depth < 2:
        raise ValueError(f"depth must be at least 2 stride-2 stages, got {depth}")
    if N < 2 or M < 2 or N % 2 or M % 2:
        raise ValueError(f"N and M must be even and >= 2 (attention halves them), got N={N}, M={M}")


def analysis(N: int, M: int, depth: int, in_channels: int = 3) -> nn.Sequential:
    """g_a: residual (with any side input stacked on its channels) -> latent y, ``depth`` stride-2
    convolutions with GDN between them."""
    _check(N, M, depth)
    layers: list[nn.Module] = []
    ch = in_channels
    for i in range(depth):
        last = i == depth - 1
        out = M if last else N
        layers.append(conv(ch, out, kernel_size=5, stride=2))
        if not last:
            layers.append(GDN(out))
        if last or i == depth // 2 - 1:
            layers.append(attention(out))
        ch = out
    return nn.Sequential(*layers)


def synthesis(N: int, M: int, depth: int) -> nn.Sequential:
    """g_s: y_hat -> signed residual (no output activation: the residual is not in [0, 1])."""
    _check(N, M, depth)
    layers: list[nn.Module] = [attention(M)]
    ch = M
    for i in range(depth):
        last = i == depth - 1
        out = 3 if last else N
        layers.append(deconv(ch, out, kernel_size=5, stride=2))
        if not last:
            layers.append(GDN(out, inverse=True))
        if i == depth // 2 - 1 and not last:
            layers.append(attention(out))
        ch = out
    return nn.Sequential(*layers)


def hyper_analysis(N: int, M: int) -> nn.Sequential:
    """h_a: y -> z at a quarter of y's resolution."""
    return nn.Sequential(conv3x3(M, N), nn.LeakyReLU(inplace=True),
                         conv(N, N, kernel_size=5, stride=2), nn.LeakyReLU(inplace=True),
                         conv(N, N, kernel_size=5, stride=2))


def hyper_synthesis(N: int, M: int) -> nn.Sequential:
    """h_s: z_hat -> 2M side parameters at y's resolution (fed to the entropy-parameter net)."""
    mid = N * 3 // 2
    return nn.Sequential(deconv(N, N, kernel_size=5, stride=2), nn.LeakyReLU(inplace=True),
                         deconv(N, mid, kernel_size=5, stride=2), nn.LeakyReLU(inplace=True),
                         conv3x3(mid, 2 * M))


def integer_hyper_synthesis(N: int, M: int) -> FixedPointSequential:
    """h_s of the integer parse: z_hat -> 3M channels, M scale-table positions then 2M side
    parameters, evaluated in exact integer arithmetic when coding (ReLU, not LeakyReLU: an
    integer max is exact and needs no rounding)."""
    mid = N * 3 // 2
    return FixedPointSequential(deconv(N, N, kernel_size=5, stride=2), nn.ReLU(),
                                deconv(N, mid, kernel_size=5, stride=2), nn.ReLU(),
                                conv3x3(mid, 3 * M))


def pad_multiple(depth: int) -> int:
    """Input sides must be multiples of this: y is 1/2^depth, z a further 1/4, and the
    checkerboard splits y's width in two."""
    return 2 ** (depth + 2)
