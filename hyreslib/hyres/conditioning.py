"""Conditional residual coding: the decoded JPEG base, which the decoder has anyway, guides every
learned part of the residual codec while the residual ``r = x - base`` is still what is coded.

Residual coding alone must spend bits on what the base already says (where its blocks and ringing
are, how strong its quantisation was). Given the base, the synthesis can remove JPEG artifacts for
free and the entropy model can predict where the residual is large (Brand, Seiler, Kaup 2023:
conditional residual coding; Lee & Hang 2020: a learned layer over a VVC base)::

    base, quality --side_input--> b (4, H, W) = [base - 0.5, quality / 100]
    b --BasePyramid--> f0 (1), f1 (1/2), ..., fd (1/2^d)          one feature map per scale
    g_a:  [r * gain, b]                    --> y                  (the encoder sees the base too)
    entropy parameters: [context, h_s(z_hat), fd]  --> means, scales
    g_s:  y_hat --(join fd)--deconv--(join f_{d-1})-- ... --deconv--> h --head([h, f0])--> r_hat

Only decoded data feed the pyramid, so the decoder rebuilds the same features.
"""

from __future__ import annotations

import torch
from compressai.layers import GDN, conv1x1, conv3x3
from compressai.models.utils import deconv
from torch import Tensor, nn

from .transforms import attention

SIDE_CHANNELS = 4     # base RGB (centred) + a constant map of the JPEG quality
HEAD_CHANNELS = 16    # full-resolution feature width (kept small: it runs at every pixel)


def side_input(base: Tensor, quality: float | Tensor) -> Tensor:
    """The decoder-side input ``[base - 0.5, quality / 100]`` of a (B, 3, H, W) base."""
    q = torch.as_tensor(quality, dtype=base.dtype, device=base.device).reshape(-1, 1, 1, 1) / 100.0
    return torch.cat([base - 0.5, q.expand(base.shape[0], 1, *base.shape[-2:])], dim=1)


class BasePyramid(nn.Module):
    """Features of the base at full resolution and at each of the ``depth`` stride-2 scales."""

    def __init__(self, N: int, depth: int):
        super().__init__()
        self.stem = nn.Sequential(conv3x3(SIDE_CHANNELS, HEAD_CHANNELS), nn.LeakyReLU(inplace=True))
        chans = [HEAD_CHANNELS] + [N] * depth
        self.down = nn.ModuleList(
            nn.Sequential(conv3x3(chans[i], chans[i + 1], stride=2), nn.LeakyReLU(inplace=True))
            for i in range(depth))

    def forward(self, side: Tensor) -> list[Tensor]:
        feats = [self.stem(side)]
        for down in self.down:
            feats.append(down(feats[-1]))
        return feats


class ConditionalSynthesis(nn.Module):
    """g_s with the base pyramid joined (concatenated, then mixed by a 1x1 conv) at every scale,
    and a full-resolution head that sees the base itself, where JPEG's block edges live."""

    def __init__(self, N: int, M: int, depth: int):
        super().__init__()
        self.depth = depth
        self.entry = attention(M)
        self.joins = nn.ModuleList()
        self.stages = nn.ModuleList()
        ch = M
        for i in range(depth):
            last = i == depth - 1
            out = HEAD_CHANNELS if last else N
            self.joins.append(conv1x1(ch + N, ch))
            layers: list[nn.Module] = [deconv(ch, out, kernel_size=5, stride=2)]
            if not last:
                layers.append(GDN(out, inverse=True))
            if i == depth // 2 - 1 and not last:
                layers.append(attention(out))
            self.stages.append(nn.Sequential(*layers))
            ch = out
        self.head = nn.Sequential(conv3x3(2 * HEAD_CHANNELS, HEAD_CHANNELS), nn.LeakyReLU(inplace=True),
                                  conv3x3(HEAD_CHANNELS, 3))

    def forward(self, y_hat: Tensor, feats: list[Tensor]) -> Tensor:
        h = self.entry(y_hat)
        for i, (join, stage) in enumerate(zip(self.joins, self.stages)):
            h = stage(join(torch.cat([h, feats[self.depth - i]], dim=1)))
        return self.head(torch.cat([h, feats[0]], dim=1))
