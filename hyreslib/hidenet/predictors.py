"""Predictors of a level's odd set from its even set: a fixed interpolator and two small CNNs.

Conventions shared by the codec and training:

* Pixels are integers (float tensors) in a :mod:`hyreslib.hidenet.colour` space, channels in its
  coding order: ``rgb`` (G, R, B; 0..255) or ``ycocg-r`` (Y, Co, Cg; Co and Cg in -255..255).
  The colour space is an option of the predictor (:attr:`Predictor.colour`).
* Channel-conditional coding (:attr:`Predictor.conditional`, on by default): channel ``c`` is
  predicted after channels ``< c`` have been decoded at the same positions, and its mean and scale
  use their residuals (inter-colour prediction). For RGB this removes much of the correlation a
  colour transform would, and unlike a transform keeps near-lossless errors bounded per RGB
  sub-pixel; the two combine (YCoCg-R removes the linear part before the split, conditioning what
  is left per position). Off, every channel is predicted from the even set alone.
* Tensors are *oriented* (:func:`hyreslib.hidenet.split.orient`): the split axis is the last one,
  so the odd pixel ``j`` lies between even pixels ``j`` and ``j + 1``. One network serves row and
  column levels; a learned level embedding tells it which level (hence direction) it is on.
* Prediction runs on the even grid and is cropped to the odd grid, which may be one shorter.
* A predictor returns, per odd sub-pixel, a Laplace location (the mean, clamped to the channel's
  range) and scale, both in pixel units; :mod:`hyreslib.hidenet.entropy` turns them into code lengths.

Channels are predicted one after another (:meth:`Predictor.context` once per level, then
:meth:`Predictor.channel` for c = 0, 1, 2 with the decoded odd channels ``< c``); the codec uses
exactly this sequence, and :meth:`Predictor.forward` is its teacher-forced version for training.
The learned predictors refine the fixed one (mean offset and log-scale correction, zero at
initialisation), so they start from a sensible codec and a short CPU budget already helps.
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from .colour import ColourSpace, colour_space
from .entropy import SCALE_MAX, SCALE_MIN

RESIDUAL_NORM = 32.0              # pixel residuals are divided by this before entering a network
# What files and checkpoints written before the options existed used (configs list only the options that differ).
LEGACY_OPTIONS = {"colour": "rgb", "conditional": True, "revision": 1}
REVISION = 2                      # the fixed constants new predictors use


@dataclass(frozen=True)
class FixedConstants:
    """The fixed predictor of one (colour space, conditional, revision) option set. For channel slot c::

        mean  = interp_c + sum_j coupling[c][j] * r_j                  (r_j: decoded residual, j < c)
        scale = base[c] + slope[c] * activity_c + prev[c] * |sum_j coupling[c][j] * r_j|
                + spread[c] * mean_j |r_j|

    where activity_c is measured on ``x_c - sum_j coupling[c][j] x_j`` (the signal whose
    interpolation error that mean makes); ``spread`` lets a large residual of an earlier channel
    widen the distribution even where the means are nearly uncorrelated (YCoCg-R).
    Revision 1 (the only one of the version-2 codec, RGB conditional) was picked by a grid search of
    the lossless rate on twenty 256x256 CID22 training crops; revision 2 minimises the same rate
    (gradient descent on the ideal code length, teacher-forced, 8 levels) on eight 256x256 CID22
    validation crops, rounded to two decimals; never on test images.
    """

    coupling: tuple[tuple[float, ...], ...]
    base: tuple[float, float, float]
    slope: tuple[float, float, float]
    prev: tuple[float, float, float]
    spread: tuple[float, float, float] = (0.0, 0.0, 0.0)


_NO_COUPLING = ((), (0.0,), (0.0, 0.0))
_ZERO = (0.0, 0.0, 0.0)
FIXED_CONSTANTS: dict[tuple[str, bool, int], FixedConstants] = {
    ("rgb", True, 1): FixedConstants(((), (1.0,), (0.5, 0.5)), (0.3, 0.2, 0.2), (0.4, 0.2, 0.2), (0.0, 0.15, 0.15)),
    ("rgb", True, 2): FixedConstants(((), (0.93,), (1.0, -0.05)), (0.28, 0.27, 0.26), (0.35, 0.14, 0.11),
                                     (0.0, 0.0, 0.1), (0.0, 0.13, 0.08)),
    ("rgb", False, 2): FixedConstants(_NO_COUPLING, (0.28, 0.28, 0.23), (0.35, 0.35, 0.35), _ZERO),
    ("ycocg-r", True, 2): FixedConstants(((), (0.0,), (0.0, -0.03)), (0.27, 0.32, 0.28), (0.34, 0.13, 0.13),
                                         (0.0, 0.0, 1.0), (0.0, 0.26, 0.09)),
    ("ycocg-r", False, 2): FixedConstants(_NO_COUPLING, (0.27, 0.47, 0.41), (0.34, 0.29, 0.27), _ZERO),
}


def fixed_constants(colour: str, conditional: bool, revision: int) -> FixedConstants:
    key = (colour, bool(conditional), int(revision))
    if key not in FIXED_CONSTANTS:
        raise ValueError(f"no fixed-predictor constants for colour {colour!r}, conditional={conditional}, "
                         f"revision {revision}; known: {sorted(FIXED_CONSTANTS)}")
    return FIXED_CONSTANTS[key]


def half_sample_cubic(even: torch.Tensor, lo: float | torch.Tensor = 0, hi: float | torch.Tensor = 255) -> torch.Tensor:
    """Cubic (Keys, a = -1/2) interpolation halfway between even pixels ``j`` and ``j + 1`` along
    the last axis: (-e[j-1] + 9 e[j] + 9 e[j+1] - e[j+2]) / 16, edges replicated, clamped to lo..hi."""
    p = F.pad(even.flatten(0, -2).unsqueeze(1), (1, 2), mode="replicate").squeeze(1)
    out = (-p[:, :-3] + 9 * p[:, 1:-2] + 9 * p[:, 2:-1] - p[:, 3:]) / 16
    return out.reshape(even.shape).clamp(lo, hi)


def _pad_edges(d: torch.Tensor, dim: int) -> torch.Tensor:
    """Differences of length n-1 along ``dim`` -> n+1 by repeating the first and last."""
    return torch.cat([d.narrow(dim, 0, 1), d, d.narrow(dim, d.shape[dim] - 1, 1)], dim)


def decorrelate(even: torch.Tensor, coupling: tuple[tuple[float, ...], ...]) -> torch.Tensor:
    """``x_c - sum_j coupling[c][j] x_j``: the signals whose interpolation error the inter-colour
    prediction of channel c actually makes (its mean is the interpolated difference plus the
    coupled residuals of the earlier channels); e.g. (G, R - G, B - (G + R) / 2) for RGB."""
    out = [even[:, c:c + 1] - sum(a * even[:, j:j + 1] for j, a in enumerate(coupling[c]) if a)
           for c in range(3)]
    return torch.cat(out, 1)


def local_activity(even: torch.Tensor) -> torch.Tensor:
    """How busy the neighbourhood of each odd pixel is (even grid): the step between the two even
    pixels it lies between, plus half the mean step across the split axis at those two pixels."""
    along = torch.zeros_like(even)
    if even.shape[-1] > 1:
        along[..., :-1] = (even[..., 1:] - even[..., :-1]).abs()
    if even.shape[-2] < 2:
        return along
    across = _pad_edges((even[..., 1:, :] - even[..., :-1, :]).abs(), -2)
    across = 0.5 * (across[..., 1:, :] + across[..., :-1, :])
    across = 0.5 * (across + torch.cat([across[..., 1:], across[..., -1:]], -1))
    return along + 0.5 * across


def _crop(x: torch.Tensor, width: int) -> torch.Tensor:
    return x[..., :width]


def _pad_to(x: torch.Tensor, width: int) -> torch.Tensor:
    """Odd-grid tensor to the even grid (replicate the last column when it is one short)."""
    if x.shape[-1] == width:
        return x
    if x.shape[-1] == 0:
        return torch.zeros(*x.shape[:-1], width, dtype=x.dtype, device=x.device)
    return torch.cat([x, x[..., -1:].expand(*x.shape[:-1], width - x.shape[-1])], -1)


@dataclass
class Context:
    """What a predictor computed once for a level (shared by the three channel predictions)."""

    level: int
    odd_width: int
    interp: torch.Tensor            # (B, 3, h, w_odd) cubic interpolation, pixel units
    activity: torch.Tensor          # (B, 3, h, w_odd) of the decorrelated even set
    features: torch.Tensor | None = None   # (B, width, h, w_even) for learned predictors


class Predictor(nn.Module):
    """Base class: predicts (mean, scale) of each odd sub-pixel from the even set, in the colour
    space ``colour``, channels conditioned on the earlier ones when ``conditional``."""

    kind = "predictor"
    levels: int | None = None       # largest number of levels it was trained for (None: any)

    def __init__(self, colour: str = "rgb", conditional: bool = True, revision: int = REVISION):
        super().__init__()
        self.space: ColourSpace = colour_space(colour)
        self.conditional, self.revision = bool(conditional), int(revision)
        self.constants = fixed_constants(colour, self.conditional, self.revision)

    @property
    def colour(self) -> str:
        return self.space.name

    def options(self) -> dict[str, Any]:
        """The coding options that differ from :data:`LEGACY_OPTIONS`, with the fixed constants
        they select (so configs, fingerprints and checkpoints written before the options existed
        stay valid, and a change of the constants changes the fingerprint)."""
        current = {"colour": self.colour, "conditional": self.conditional, "revision": self.revision}
        options = {k: v for k, v in current.items() if v != LEGACY_OPTIONS[k]}
        return {**options, "constants": asdict(self.constants)} if options else {}

    def config(self) -> dict[str, Any]:
        raise NotImplementedError

    def context(self, even: torch.Tensor, level: int, odd_width: int) -> Context:
        if not 0 <= odd_width - (even.shape[-1] - 1) <= 1:
            raise ValueError(f"odd width {odd_width} does not fit even width {even.shape[-1]}")
        interp = _crop(half_sample_cubic(even, *self.space.bounds(even)), odd_width)
        activity = local_activity(decorrelate(even, self.constants.coupling))
        return Context(level, odd_width, interp, _crop(activity, odd_width))

    def fixed_channel(self, ctx: Context, c: int, prev: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Interpolation plus the coupled residuals of the channels already decoded (inter-colour)."""
        k = self.constants
        mean = ctx.interp[:, c:c + 1]
        scale = k.base[c] + k.slope[c] * ctx.activity[:, c:c + 1]
        weights = [(j, a) for j, a in enumerate(k.coupling[c]) if a]
        if weights:
            known = sum(a * (prev[:, j:j + 1] - ctx.interp[:, j:j + 1]) for j, a in weights)
            mean = mean + known
            scale = scale + k.prev[c] * known.abs()
        if c and k.spread[c]:
            scale = scale + k.spread[c] * (prev - ctx.interp[:, :c]).abs().mean(dim=1, keepdim=True)
        return mean.clamp(self.space.lo[c], self.space.hi[c]), scale

    def channel(self, ctx: Context, c: int, prev: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(mean, scale) of channel ``c`` given the decoded odd channels ``prev`` = ``[:c]``."""
        raise NotImplementedError

    def forward(self, even: torch.Tensor, odd: torch.Tensor, level: int) -> tuple[torch.Tensor, torch.Tensor]:
        """Teacher-forced prediction of all channels (the true odd channels act as decoded ones)."""
        ctx = self.context(even, level, odd.shape[-1])
        outs = [self.channel(ctx, c, odd[:, :c]) for c in range(3)]
        return torch.cat([m for m, _ in outs], 1), torch.cat([s for _, s in outs], 1)


class FixedPredictor(Predictor):
    """Cubic interpolation along the split axis, inter-colour correction, activity-based scale."""

    kind = "fixed"

    def config(self) -> dict[str, Any]:
        k, options = self.constants, self.options()
        if options:
            return {"arch": "fixed", **options}
        return {"arch": "fixed", "scale_base": k.base, "scale_slope": k.slope, "scale_prev": k.prev}

    def channel(self, ctx: Context, c: int, prev: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self.fixed_channel(ctx, c, prev)


def _conv(cin: int, cout: int, k: int = 3, stride: int = 1) -> nn.Conv2d:
    return nn.Conv2d(cin, cout, k, stride=stride, padding=k // 2)


def _act() -> nn.Module:
    return nn.LeakyReLU(0.1)


class ResBlock(nn.Module):
    def __init__(self, width: int):
        super().__init__()
        self.body = nn.Sequential(_conv(width, width), _act(), _conv(width, width))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.body(x)


class Head(nn.Module):
    """Channel ``c``: features + the ``c`` known odd residuals -> (mean offset, log-scale offset).
    The output layer starts at zero, i.e. at the fixed predictor."""

    def __init__(self, width: int, c: int):
        super().__init__()
        self.net = nn.Sequential(_conv(width + c, width), _act(), _conv(width, width, 1), _act(), _conv(width, 2, 1))
        nn.init.zeros_(self.net[-1].weight)
        nn.init.zeros_(self.net[-1].bias)

    def forward(self, features: torch.Tensor, known: torch.Tensor) -> torch.Tensor:
        return self.net(torch.cat([features, known], 1))


class LearnedPredictor(Predictor):
    """Trunk (per architecture) + three channel heads; one set shared by all levels, or one per level."""

    def __init__(self, width: int = 16, levels: int = 8, shared: bool = True, colour: str = "rgb",
                 conditional: bool = True, revision: int = REVISION):
        super().__init__(colour, conditional, revision)
        if width < 1 or levels < 1:
            raise ValueError("width and levels must be positive")
        self.width, self.levels, self.shared = width, levels, shared
        n = 1 if shared else levels
        self.trunks = nn.ModuleList(self.make_trunk(width, levels) for _ in range(n))
        self.heads = nn.ModuleList(nn.ModuleList(Head(width, c if self.conditional else 0) for c in range(3))
                                   for _ in range(n))

    def make_trunk(self, width: int, levels: int) -> nn.Module:
        raise NotImplementedError

    def config(self) -> dict[str, Any]:
        return {"arch": self.kind, "width": self.width, "levels": self.levels, "shared": self.shared,
                **self.options()}

    def _slot(self, level: int) -> int:
        if not 0 <= level < self.levels:
            raise ValueError(f"this {self.kind} predictor was built for levels 0..{self.levels - 1}, got level {level}")
        return 0 if self.shared else level

    def context(self, even: torch.Tensor, level: int, odd_width: int) -> Context:
        ctx = super().context(even, level, odd_width)
        lo, hi = self.space.bounds(even)
        ctx.features = self.trunks[self._slot(level)]((even - lo) / (hi - lo) - 0.5, level)
        return ctx

    def channel(self, ctx: Context, c: int, prev: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        base_mean, base_scale = self.fixed_channel(ctx, c, prev)
        w_even = ctx.features.shape[-1]
        seen = c if self.conditional else 0
        known = _pad_to((prev[:, :seen] - ctx.interp[:, :seen]) / RESIDUAL_NORM, w_even)
        out = _crop(self.heads[self._slot(ctx.level)][c](ctx.features, known), ctx.odd_width)
        mean = (base_mean + RESIDUAL_NORM * out[:, :1]).clamp(self.space.lo[c], self.space.hi[c])
        log_scale = (torch.log(base_scale) + out[:, 1:]).clamp(math.log(SCALE_MIN), math.log(SCALE_MAX))
        return mean, log_scale.exp()


class UNetTrunk(nn.Module):
    """A light U-Net: two stride-2 downsamplings, a residual bottleneck, bilinear upsampling and
    concatenated skip connections. Inputs are replicate-padded to a multiple of 4 and cropped back."""

    def __init__(self, width: int, levels: int):
        super().__init__()
        w = width
        self.inc = _conv(3, w)
        self.level_embedding = nn.Embedding(levels, w)
        self.enc1 = nn.Sequential(_act(), _conv(w, w), _act())
        self.down1 = nn.Sequential(_conv(w, 2 * w, stride=2), _act(), _conv(2 * w, 2 * w), _act())
        self.down2 = nn.Sequential(_conv(2 * w, 4 * w, stride=2), _act(), ResBlock(4 * w), _act())
        self.dec2 = nn.Sequential(_conv(6 * w, 2 * w), _act(), _conv(2 * w, 2 * w), _act())
        self.dec1 = nn.Sequential(_conv(3 * w, w), _act(), _conv(w, w), _act())

    def forward(self, x: torch.Tensor, level: int) -> torch.Tensor:
        h, w = x.shape[-2:]
        x = F.pad(x, (0, -w % 4, 0, -h % 4), mode="replicate")
        s1 = self.enc1(self.inc(x) + self.level_embedding.weight[level].view(1, -1, 1, 1))
        s2 = self.down1(s1)
        b = self.down2(s2)
        up2 = F.interpolate(b, size=s2.shape[-2:], mode="bilinear", align_corners=False)
        d2 = self.dec2(torch.cat([up2, s2], 1))
        up1 = F.interpolate(d2, size=s1.shape[-2:], mode="bilinear", align_corners=False)
        return self.dec1(torch.cat([up1, s1], 1))[..., :h, :w]


class CNNPTrunk(nn.Module):
    """Multi-head CNN: parallel branches with 1x1, 3x3 and 5x5 first kernels, summed, then
    residual blocks (full resolution throughout)."""

    def __init__(self, width: int, levels: int, kernels: tuple[int, ...] = (1, 3, 5), blocks: int = 3):
        super().__init__()
        self.branches = nn.ModuleList(nn.Sequential(_conv(3, width, k), _act(), _conv(width, width))
                                      for k in kernels)
        self.level_embedding = nn.Embedding(levels, width)
        self.blocks = nn.Sequential(*(nn.Sequential(ResBlock(width), _act()) for _ in range(blocks)))

    def forward(self, x: torch.Tensor, level: int) -> torch.Tensor:
        s = sum(branch(x) for branch in self.branches)
        return self.blocks(s + self.level_embedding.weight[level].view(1, -1, 1, 1))


class UNetLikeLite(LearnedPredictor):
    kind = "unet"

    def make_trunk(self, width: int, levels: int) -> nn.Module:
        return UNetTrunk(width, levels)


class CNNP(LearnedPredictor):
    kind = "cnnp"

    def make_trunk(self, width: int, levels: int) -> nn.Module:
        return CNNPTrunk(width, levels)


ARCHS: dict[str, type[Predictor]] = {"fixed": FixedPredictor, "unet": UNetLikeLite, "cnnp": CNNP}


def build_predictor(config: dict[str, Any]) -> Predictor:
    """Rebuild a predictor from its :meth:`Predictor.config`."""
    arch = config.get("arch")
    if arch not in ARCHS:
        raise ValueError(f"unknown predictor architecture {arch!r}; known: {sorted(ARCHS)}")
    options = {k: type(v)(config.get(k, v)) for k, v in LEGACY_OPTIONS.items()}
    if arch == "fixed":
        predictor = FixedPredictor(**options)
    else:
        predictor = ARCHS[arch](width=int(config["width"]), levels=int(config["levels"]),
                                shared=bool(config["shared"]), **options)
    stored = {k: v for k, v in config.items() if k in (*LEGACY_OPTIONS, "constants")}
    if json.dumps(predictor.options(), sort_keys=True) != json.dumps(stored, sort_keys=True):
        raise ValueError(f"this build's fixed constants for {options} differ from those the {arch} predictor was "
                         "made with")
    return predictor
