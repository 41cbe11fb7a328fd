"""Convolutional nets that code in exact integer arithmetic, for a parse path that no float can move.

A :class:`FixedPointSequential` of ``Conv2d`` / ``ConvTranspose2d`` / ``ReLU`` layers has two forwards:

- ``forward`` (training, estimation): float, with every weight, bias and activation rounded to the
  fixed-point grid the integer forward uses (straight-through gradients), so the model trains on
  what it will code with;
- :meth:`~FixedPointSequential.integer_forward` (coding): int64 convolutions on integers, the same
  numbers on every machine, thread count and library build, because integer addition does not
  depend on order and nothing can overflow (checked in :meth:`~FixedPointSequential.freeze`).

The fixed-point format (``a`` an int64, its value ``a / 2**FRAC_BITS``)::

    input      a0 = clamp(round_half_up(x * 2**FRAC_BITS), ±ACT_LIMIT)
    layer l    w_l = round(w * 2**s_l),  b_l = round(b * 2**(FRAC_BITS + s_l))   (s_l from max|w|)
               acc = conv(a, w_l) + b_l                                            (int64, exact)
               a'  = clamp((acc + 2**(s_l - 1)) >> s_l, ±ACT_LIMIT)                (round half up)
    ReLU       a'  = max(a, 0)

``s_l`` is the largest shift with ``max|w_l| < 2**WEIGHT_BITS``. Deriving the integers from the
float weights (a scaling by a power of two, then rounding) is exact in IEEE-754 arithmetic, so
every machine that loads the same weights derives the same integers.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

FRAC_BITS = 8            # activations are integers in units of 2**-8
ACT_LIMIT = 1 << 20      # |activation| <= 2**20 units (±4096)
WEIGHT_BITS = 14         # |integer weight| < 2**14
ACC_LIMIT = 1 << 62      # int64 accumulators must stay below this


def round_half_up(x: Tensor) -> Tensor:
    return torch.floor(x + 0.5)


def _ste(x: Tensor, q: Tensor) -> Tensor:
    """``q`` in the forward pass, the identity's gradient in the backward pass."""
    return x + (q - x).detach()


def quantize_activation(x: Tensor) -> Tensor:
    """The float stand-in of the activation format: nearest grid point (half up), clamped."""
    scale = float(1 << FRAC_BITS)
    return _ste(x, round_half_up(x * scale).clamp(-ACT_LIMIT, ACT_LIMIT) / scale)


def weight_shift(weight: Tensor) -> int:
    """The number of fractional bits of a layer's integer weights (see the module docstring)."""
    peak = float(weight.detach().abs().max())
    if not math.isfinite(peak):
        raise ValueError("a fixed-point layer has a non-finite weight")
    exponent = math.frexp(peak)[1] if peak > 0 else 0  # peak < 2**exponent
    shift = WEIGHT_BITS - exponent
    if shift < 1:
        raise ValueError(f"a fixed-point layer's weights are too large (max |w| = {peak})")
    return shift


def _conv(layer: nn.Module, x: Tensor, weight: Tensor, bias: Tensor | None) -> Tensor:
    if isinstance(layer, nn.ConvTranspose2d):
        return F.conv_transpose2d(x, weight, bias, layer.stride, layer.padding, layer.output_padding,
                                  layer.groups, layer.dilation)
    return F.conv2d(x, weight, bias, layer.stride, layer.padding, layer.dilation, layer.groups)


class FixedPointSequential(nn.Sequential):
    """A sequential net of Conv2d / ConvTranspose2d / ReLU trained in float and coded in integers."""

    def __init__(self, *layers: nn.Module):
        for layer in layers:
            if type(layer) not in (nn.Conv2d, nn.ConvTranspose2d, nn.ReLU):
                raise TypeError(f"a fixed-point net holds Conv2d, ConvTranspose2d and ReLU only, not {type(layer)}")
        super().__init__(*layers)
        self._frozen: list[tuple[Tensor, Tensor | None, int] | None] | None = None

    def forward(self, x: Tensor) -> Tensor:
        x = quantize_activation(x)
        for layer in self:
            if isinstance(layer, nn.ReLU):
                x = F.relu(x)
                continue
            s = weight_shift(layer.weight)
            w = _ste(layer.weight, torch.round(layer.weight * 2.0 ** s) / 2.0 ** s)
            b = None
            if layer.bias is not None:
                unit = 2.0 ** (FRAC_BITS + s)
                b = _ste(layer.bias, torch.round(layer.bias * unit) / unit)
            x = quantize_activation(_conv(layer, x, w, b))
        return x

    def freeze(self) -> None:
        """Derive the integer weights from the current float weights (on the CPU, in float64, where the
        scaling is exact) and check that no accumulator can overflow."""
        frozen: list[tuple[Tensor, Tensor | None, int] | None] = []
        for layer in self:
            if isinstance(layer, nn.ReLU):
                frozen.append(None)
                continue
            s = weight_shift(layer.weight)
            w = torch.round(layer.weight.detach().cpu().double() * 2.0 ** s).long()
            b = None
            if layer.bias is not None:
                b = torch.round(layer.bias.detach().cpu().double() * 2.0 ** (FRAC_BITS + s)).long()
            # worst case of one output: every input at the limit, every weight and the bias added up
            per_output = w.abs().transpose(0, 1) if isinstance(layer, nn.ConvTranspose2d) else w.abs()
            worst = int(per_output.flatten(1).sum(1).max()) * ACT_LIMIT + (int(b.abs().max()) if b is not None else 0)
            if worst >= ACC_LIMIT:
                raise ValueError(f"a fixed-point layer could overflow its int64 accumulator (bound {worst})")
            frozen.append((w, b, s))
        self._frozen = frozen

    @property
    def frozen(self) -> bool:
        return self._frozen is not None

    def integer_input(self, x: Tensor) -> Tensor:
        """Float values -> the input format (exact for values already on the grid)."""
        return round_half_up(x.detach().cpu().double() * (1 << FRAC_BITS)).clamp(-ACT_LIMIT, ACT_LIMIT).long()

    @torch.no_grad()
    def integer_forward(self, a: Tensor) -> Tensor:
        """int64 activations (units of 2**-FRAC_BITS, on the CPU) -> int64 outputs, exactly."""
        if self._frozen is None:
            raise ValueError("the fixed-point net has no integer weights: call freeze() (the codec's update()) first")
        a = a.cpu().long().clamp(-ACT_LIMIT, ACT_LIMIT)
        for layer, frozen in zip(self, self._frozen):
            if frozen is None:
                a = a.clamp_min(0)
                continue
            w, b, s = frozen
            acc = _conv(layer, a, w, b)
            a = ((acc + (1 << (s - 1))) >> s).clamp(-ACT_LIMIT, ACT_LIMIT)
        return a
