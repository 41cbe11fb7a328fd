"""Conditional residual coding: the decoded JPEG base, which the decoder has anyway, guides every
learned part of the residual codec while the residual ``r = x - base`` is still what is coded.

Residual coding alone must spend bits on what the base already says (where its blocks and ringing
are, how strong its quantisation was). Given the base, the synthesis can remove JPEG artifacts for
free and the entropy model can predict where the residual is large (Brand, Seiler, Kaup 2023:
conditional residual coding; Lee & Hang 2020: a learned layer over a VVC base)::

    base, quality --side_input--> b (4, H, W) = [base - 0.5, quality / 100]
    b --BasePyramid--> f1 (1/2), ..., fd (1/2^d); f0 = b space-to-depth (1/2)
    g_a:  [r * gain, b]                    --> y                  (the encoder sees the base too)
    entropy parameters: [context, h_s(z_hat), fd]  --> means, scales
    g_s:  y_hat --(join fd)--up--(join f_{d-1})-- ... --up--> h (1/2) --head([h, f1, f0])--> r_hat

Only decoded data feed the pyramid, so the decoder rebuilds the same features.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from compressai.layers import GDN, conv1x1, conv3x3, subpel_conv3x3
from torch import Tensor, nn

from .transforms import attention

SIDE_CHANNELS = 4     # base RGB (centred) + a constant map of the JPEG quality


def side_input(base: Tensor, quality: float | Tensor) -> Tensor:
    """The decoder-side input ``[base - 0.5, quality / 100]`` of a (B, 3, H, W) base."""
    q = torch.as_tensor(quality, dtype=base.dtype, device=base.device).reshape(-1, 1, 1, 1) / 100.0
    return torch.cat([base - 0.5, q.expand(base.shape[0], 1, *base.shape[-2:])], dim=1)


class BasePyramid(nn.Module):
    """Features of the base at each of the ``depth`` stride-2 scales: ``feats[k]`` is at 1/2^k
    for k >= 1; ``feats[0]`` is the side input itself, space-to-depth to 1/2 (lossless, and
    convolutions at half resolution cost a quarter of full-resolution ones on a CPU)."""

    def __init__(self, N: int, depth: int):
        super().__init__()
        self.down = nn.ModuleList(
            nn.Sequential(conv3x3(4 * SIDE_CHANNELS if i == 0 else N, N, stride=1 if i == 0 else 2),
                          nn.LeakyReLU(inplace=True))
            for i in range(depth))

    def forward(self, side: Tensor) -> list[Tensor]:
        feats = [F.pixel_unshuffle(side, 2)]
        for down in self.down:
            feats.append(down(feats[-1]))
        return feats


class ConditionalSynthesis(nn.Module):
    """g_s with the base pyramid joined (concatenated, then mixed by a 1x1 conv) at every scale.
    Upsampling is sub-pixel convolution (as in Cheng et al. 2020), and the last stage works at
    half resolution on ``[h, feats[1], feats[0]]`` and shuffles 12 channels to the full-size
    residual, so the network sees every base pixel (JPEG's block edges) at a quarter of the cost."""

    def __init__(self, N: int, M: int, depth: int):
        super().__init__()
        self.depth = depth
        self.entry = attention(M)
        self.joins = nn.ModuleList()
        self.stages = nn.ModuleList()
        ch = M
        for i in range(depth - 1):
            self.joins.append(conv1x1(ch + N, ch))
            layers: list[nn.Module] = [subpel_conv3x3(ch, N, 2), GDN(N, inverse=True)]
            if i == depth // 2 - 1:
                layers.append(attention(N))
            self.stages.append(nn.Sequential(*layers))
            ch = N
        self.head = nn.Sequential(conv3x3(2 * N + 4 * SIDE_CHANNELS, N), nn.LeakyReLU(inplace=True),
                                  conv3x3(N, 12), nn.PixelShuffle(2))

    def forward(self, y_hat: Tensor, feats: list[Tensor]) -> Tensor:
        h = self.entry(y_hat)
        for i, (join, stage) in enumerate(zip(self.joins, self.stages)):
            h = stage(join(torch.cat([h, feats[self.depth - i]], dim=1)))
        return self.head(torch.cat([h, feats[1], feats[0]], dim=1))
