"""Hierarchical odd/even pixel splitting: a lossless partition of an image into a coarse base and
one "odd" set per level.

Level ``k`` splits along the columns (last axis) when ``k`` is even and along the rows (second to
last axis) when ``k`` is odd. The *even* set keeps indices 0, 2, 4, ... (``ceil(n/2)`` of them),
the *odd* set indices 1, 3, 5, ... (``floor(n/2)``); level ``k + 1`` splits the even set of level
``k`` again. After ``L`` levels::

    x = e_{-1} --split--> (e_0, o_0) ; e_0 --split--> (e_1, o_1) ; ... ; base = e_{L-1}

so every pixel is in exactly one of ``base, o_0, ..., o_{L-1}`` and two levels halve both sides.
Unlike the reference (which kept two of the four phases of each 2x2 block and dropped the rest),
nothing is discarded, odd sizes and 1-pixel sides are fine (an odd set may simply be empty), and
:func:`merge` is the exact inverse on any tensor shape, dtype and device.

Progressive decoding goes the other way: starting from the base, merging ``o_{L-1}``, then
``o_{L-2}``, ... gives the even sets ``e_{L-2}``, ``e_{L-3}``, ..., i.e. ever finer images.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import torch


def split_axis(level: int) -> int:
    """The tensor axis level ``level`` splits: columns (-1) on even levels, rows (-2) on odd ones."""
    if level < 0:
        raise ValueError(f"level must be >= 0, got {level}")
    return -1 if level % 2 == 0 else -2


def split_once(x: torch.Tensor, axis: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(even, odd) along ``axis``: indices 0,2,4,... and 1,3,5,..."""
    return _take(x, axis, 0), _take(x, axis, 1)


def _take(x: torch.Tensor, axis: int, start: int) -> torch.Tensor:
    index = [slice(None)] * x.dim()
    index[axis] = slice(start, None, 2)
    return x[tuple(index)]


def merge_once(even: torch.Tensor, odd: torch.Tensor, axis: int) -> torch.Tensor:
    """Interleave ``even`` and ``odd`` along ``axis`` (inverse of :func:`split_once`)."""
    ne, no = even.shape[axis], odd.shape[axis]
    other_e = [s for i, s in enumerate(even.shape) if i != axis % even.dim()]
    other_o = [s for i, s in enumerate(odd.shape) if i != axis % odd.dim()]
    if even.dim() != odd.dim() or other_e != other_o or no not in (ne, ne - 1):
        raise ValueError(f"cannot merge even {tuple(even.shape)} and odd {tuple(odd.shape)} along axis {axis}: "
                         "odd must match even except for being equal or one shorter along the axis")
    shape = list(even.shape)
    shape[axis] = ne + no
    out = even.new_empty(shape)
    idx = [slice(None)] * even.dim()
    idx[axis] = slice(0, None, 2)
    out[tuple(idx)] = even
    idx[axis] = slice(1, None, 2)
    out[tuple(idx)] = odd.to(even.dtype)
    return out


@dataclass
class Pyramid:
    """A split image: the coarsest even set and the odd sets, finest (level 0) first."""

    base: torch.Tensor
    odds: list[torch.Tensor]

    @property
    def levels(self) -> int:
        return len(self.odds)


def split(x: torch.Tensor, levels: int) -> Pyramid:
    """Split ``x`` (any shape with at least two axes; the last two are H, W) ``levels`` times."""
    if x.dim() < 2:
        raise ValueError(f"need at least a 2-D tensor (..., H, W), got shape {tuple(x.shape)}")
    if levels < 0:
        raise ValueError(f"levels must be >= 0, got {levels}")
    odds = []
    for level in range(levels):
        x, odd = split_once(x, split_axis(level))
        odds.append(odd)
    return Pyramid(x, odds)


def evens(x: torch.Tensor, levels: int) -> list[torch.Tensor]:
    """The input of every level, ``[e_{-1}=x, e_0, ..., e_{L-2}]`` (what each level splits)."""
    out = [x]
    for level in range(levels - 1):
        out.append(split_once(out[-1], split_axis(level))[0])
    return out


def merge(base: torch.Tensor, odds: list[torch.Tensor], upto: int | None = None) -> torch.Tensor:
    """Inverse of :func:`split`. With ``upto = k`` only the ``k`` coarsest levels are merged, which
    gives the lower-resolution even set ``e_{L-1-k}`` (progressive decoding)."""
    levels = len(odds)
    upto = levels if upto is None else upto
    if not 0 <= upto <= levels:
        raise ValueError(f"upto must be in 0..{levels}, got {upto}")
    x = base
    for level in range(levels - 1, levels - 1 - upto, -1):
        x = merge_once(x, odds[level], split_axis(level))
    return x


def level_shapes(height: int, width: int, levels: int) -> list[tuple[tuple[int, int], tuple[int, int]]]:
    """``[(even (h, w), odd (h, w)) per level]`` for an H x W image, level 0 first (no tensors needed:
    the decoder derives every shape from the header)."""
    if height < 1 or width < 1:
        raise ValueError(f"image size must be positive, got {height}x{width}")
    shapes = []
    h, w = height, width
    for level in range(levels):
        if split_axis(level) == -1:
            even, odd = (h, (w + 1) // 2), (h, w // 2)
        else:
            even, odd = ((h + 1) // 2, w), (h // 2, w)
        shapes.append((even, odd))
        h, w = even
    return shapes


def orient(x: torch.Tensor, level: int) -> torch.Tensor:
    """View ``x`` so that ``level``'s split axis is the last one (rows become columns on odd
    levels); one predictor then serves both directions. Its own inverse."""
    return x if split_axis(level) == -1 else x.transpose(-1, -2)


def level_pairs(pixels: torch.Tensor, levels: int) -> Iterator[tuple[int, torch.Tensor, torch.Tensor]]:
    """``(level, even, odd)`` for each level, oriented so the split axis is last; the even set is
    the true one (what lossless decoding reproduces)."""
    x = pixels
    for level in range(levels):
        even, odd = split_once(x, split_axis(level))
        yield level, orient(even, level), orient(odd, level)
        x = even
