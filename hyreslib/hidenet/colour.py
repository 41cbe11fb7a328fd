"""The colour spaces hideNet codes in: integer, exactly invertible maps of 8-bit RGB.

* ``rgb``: the channels reordered to G, R, B (green first: the other two are then predicted with
  the help of its decoded residual). Every stored value is an RGB sub-pixel, so a near-lossless
  bound on the coded values bounds every RGB error.
* ``ycocg-r``: the lifting transform YCoCg-R (Malvar & Sullivan 2003)::

      Co = R - B;  t = B + (Co >> 1);  Cg = G - t;  Y = t + (Cg >> 1)

  undone exactly by running the lifting steps backwards. Y is in 0..255, Co and Cg in -255..255.
  It decorrelates the channels before the split, so every level's residuals are already
  decorrelated. Lossless and generative only: a bound on Y, Co, Cg errors does not bound RGB ones.

Tensors hold integer values in float32 with the channels on axis -3 (the codec's pixel domain).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

GRB = (1, 0, 2)       # RGB -> G, R, B (the permutation is its own inverse)


def _half(x: torch.Tensor) -> torch.Tensor:
    """``x >> 1`` on integer-valued floats (floor division, also for negative values)."""
    return torch.div(x, 2, rounding_mode="floor")


@dataclass(frozen=True)
class ColourSpace:
    name: str
    code: int                        # stored in the file header
    channels: tuple[str, str, str]   # in coding order
    lo: tuple[int, int, int]         # smallest value of each channel
    hi: tuple[int, int, int]         # largest value of each channel
    bounds_rgb_errors: bool          # near-lossless allowed (an error bound here is one on RGB)

    def bounds(self, like: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(lo, hi) as (1, 3, 1, 1) tensors on ``like``'s device and dtype, for per-channel clamping."""
        return (torch.tensor(self.lo, dtype=like.dtype, device=like.device).view(1, 3, 1, 1),
                torch.tensor(self.hi, dtype=like.dtype, device=like.device).view(1, 3, 1, 1))

    def forward(self, rgb: torch.Tensor) -> torch.Tensor:
        """RGB pixels 0..255 -> this space's channels, in coding order."""
        if self.name == "rgb":
            return rgb[..., GRB, :, :]
        r, g, b = rgb[..., 0:1, :, :], rgb[..., 1:2, :, :], rgb[..., 2:3, :, :]
        co = r - b
        t = b + _half(co)
        cg = g - t
        return torch.cat([t + _half(cg), co, cg], -3)

    def inverse(self, x: torch.Tensor) -> torch.Tensor:
        """This space -> RGB 0..255 (clamped: a damaged file may hold values no image maps to)."""
        if self.name == "rgb":
            return x[..., GRB, :, :].clamp(0, 255)
        y, co, cg = x[..., 0:1, :, :], x[..., 1:2, :, :], x[..., 2:3, :, :]
        t = y - _half(cg)
        g = cg + t
        b = t - _half(co)
        return torch.cat([b + co, g, b], -3).clamp(0, 255)


SPACES = {s.name: s for s in (ColourSpace("rgb", 0, ("G", "R", "B"), (0, 0, 0), (255, 255, 255), True),
                              ColourSpace("ycocg-r", 1, ("Y", "Co", "Cg"), (0, -255, -255), (255, 255, 255), False))}
BY_CODE = {s.code: s for s in SPACES.values()}


def colour_space(name: str) -> ColourSpace:
    if name not in SPACES:
        raise ValueError(f"unknown colour space {name!r}; known: {sorted(SPACES)}")
    return SPACES[name]


def to_pixels(x: torch.Tensor, colour: str = "rgb") -> torch.Tensor:
    """[0, 1] RGB batch -> integer-valued float pixels in the colour space ``colour``, coding order
    (rounded to the 8-bit grid as :func:`hyreslib.core.images.to_uint8` rounds)."""
    return colour_space(colour).forward(x.clamp(0, 1).mul(255).round())
