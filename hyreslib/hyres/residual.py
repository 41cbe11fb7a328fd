"""The learned residual codec: hyperprior + checkerboard context model over a GDN/attention
autoencoder, composed from CompressAI latent codecs.

Data flow (``r = x - jpeg(x)``, a signed residual)::

    r --g_a--> y --HyperpriorLatentCodec--------------------------------> y_hat --g_s--> r_hat
                   hyper: y --h_a--> z --EntropyBottleneck--> z_hat --h_s--> side params
                   y:     CheckerboardLatentCodec
                            anchors     (i+j even): params from side params and a zero context
                            non-anchors (i+j odd) : params from side params and the masked-conv
                                                    context of the *decoded* anchors
                            each pass: GaussianConditional over its own half of y only

In training the rate at every position is the likelihood under the parameters of the pass that
codes that position (CompressAI's two-pass forward builds one parameter tensor from the anchor
pass at anchor positions and the non-anchor pass elsewhere). ``compress`` runs the same two
passes explicitly (the same symbols and tables as CompressAI's ``CheckerboardLatentCodec.compress``,
coded with the bounds-checked coder of :mod:`hyreslib.codecs.ans`) and writes one string per pass, each
over its own half of the latent; it also returns the integer symbols of y and z, which the file
format checksums. ``decompress`` returns the residual unclamped.

With ``parse="integer"`` (files of version 3, see :mod:`.bitstream`) nothing that decides which
symbols are read depends on floating point: ``h_s`` is a :class:`.fixed_point.FixedPointSequential`
whose first M output channels are positions in the scale table, computed in int64 from the integer
z symbols (the same indexes on every device), and the checkerboard context predicts means only::

    z symbols --h_s in int64--> [positions (M), side (2M)] --round, clamp--> scale indexes of BOTH passes
    [context, side, base features] --float net--> means (anchors: zero context)

A float difference on another device (thread count, GPU, float64) can move a mean, so the
reconstruction ``symbol + mean`` may differ slightly, but never a table index, so the strings
parse identically and the symbols (and the file's content CRC) are bit-identical. The coding
tables themselves are built from floats (CompressAI's ``update``: the bottleneck's density net,
``erfc``), so the integer parse keeps them as stored in the checkpoint (with a digest of the
weights they were built from, see :meth:`ResidualCodec.update`) instead of rebuilding them on
every machine.

With ``conditioning="base"`` the decoded JPEG base and its quality (``cond``, made by
:func:`.conditioning.side_input`) also feed g_a, the entropy parameters and g_s (see
:mod:`.conditioning`); every method then takes ``cond`` beside the residual or the strings.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any

import torch
from compressai.entropy_models import EntropyBottleneck
from compressai.latent_codecs import (CheckerboardLatentCodec, GaussianConditionalLatentCodec,
                                      HyperLatentCodec, HyperpriorLatentCodec)
from compressai.layers import CheckerboardMaskedConv2d, conv1x1
from compressai.models import CompressionModel
from torch import Tensor, nn

from ..codecs import ans
from .conditioning import SIDE_CHANNELS, BasePyramid, ConditionalSynthesis
from .entropy import NearestScaleGaussianConditional, position_scales
from .entropy import scale_table as make_scale_table
from .fixed_point import FRAC_BITS, round_half_up
from .transforms import analysis, hyper_analysis, hyper_synthesis, integer_hyper_synthesis, pad_multiple, synthesis

QUANTIZERS = ("ste", "noise")
CONDITIONINGS = ("none", "base")
PARSES = ("float", "integer")


@dataclass(frozen=True)
class ResidualConfig:
    """Everything that shapes the bitstream; stored in checkpoints and hashed into file fingerprints."""

    N: int = 128            # channels of the transforms and of z
    M: int = 192            # channels of the latent y
    depth: int = 4          # stride-2 stages of g_a (y at 1/2^depth)
    scale_levels: int = 128  # Gaussian scale table size (CompressAI uses 64)
    # The residual is multiplied by this before g_a (and r_hat divided by it after g_s). A JPEG
    # residual is small (std ~0.06 at quality 1); unscaled, the initial latent is far below the
    # quantisation step, rounds to nothing, and training can settle on an unused latent.
    residual_gain: float = 8.0
    # "none": the seed's residual coding; "base": the decoded JPEG base and its quality also feed
    # g_a, the entropy parameters and g_s (conditional residual coding, see .conditioning).
    conditioning: str = "none"
    # "float": scales and means from float nets (decode on the encoder's device type); "integer":
    # scale indexes from z in exact integer arithmetic, context for means only (decode anywhere).
    parse: str = "float"

    def __post_init__(self) -> None:
        if self.conditioning not in CONDITIONINGS:
            raise ValueError(f"conditioning must be one of {CONDITIONINGS}, got {self.conditioning!r}")
        if self.parse not in PARSES:
            raise ValueError(f"parse must be one of {PARSES}, got {self.parse!r}")

    @property
    def conditional(self) -> bool:
        return self.conditioning == "base"

    @property
    def integer_parse(self) -> bool:
        return self.parse == "integer"

    def to_dict(self) -> dict[str, Any]:
        """The settings; ``parse`` only when not the default, so that models made before it existed
        keep their checkpoints' configs and their files' fingerprints."""
        d = asdict(self)
        if not self.integer_parse:
            del d["parse"]
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> ResidualConfig:
        unknown = set(d) - set(cls.__dataclass_fields__)
        if unknown:
            raise ValueError(f"unknown residual-codec settings {sorted(unknown)}")
        return cls(**d)


def _entropy_parameters(M: int, extra: int = 0, out: int | None = None) -> nn.Sequential:
    """Pointwise (1x1) net from [context (2M), side params (2M), base features (``extra``)] to
    (scales, means) (``out`` channels, 2M by default); pointwise is what lets the checkerboard
    codec evaluate it on each half of the latent separately."""
    return nn.Sequential(conv1x1(4 * M + extra, 10 * M // 3), nn.LeakyReLU(inplace=True),
                         conv1x1(10 * M // 3, 8 * M // 3), nn.LeakyReLU(inplace=True),
                         conv1x1(8 * M // 3, 2 * M if out is None else out))


class MeansFromContext(nn.Module):
    """Entropy parameters of the integer parse, on [context (2M), positions (M), side (2M), base
    features]: the scales are the table positions of the integer h_s alone (the same for both
    checkerboard passes), the means come from everything else through the float net."""

    def __init__(self, M: int, extra: int, levels: int):
        super().__init__()
        self.M, self.levels = M, levels
        self.means = _entropy_parameters(M, extra, out=M)

    def forward(self, x: Tensor) -> Tensor:
        M = self.M
        # positions past the table's end are coded with its last scale
        scales = position_scales(x[:, 2 * M:3 * M].clamp(max=self.levels - 1), self.levels)
        return torch.cat([scales, self.means(torch.cat([x[:, :2 * M], x[:, 3 * M:]], dim=1))], dim=1)


class ResidualCodec(CompressionModel):
    """Residual autoencoder with a hyperprior and a checkerboard context model."""

    def __init__(self, config: ResidualConfig = ResidualConfig()):
        super().__init__()
        self.config = config
        N, M, depth = config.N, config.M, config.depth
        self.g_a = analysis(N, M, depth, in_channels=3 + (SIDE_CHANNELS if config.conditional else 0))
        self.g_s = ConditionalSynthesis(N, M, depth) if config.conditional else synthesis(N, M, depth)
        self.base_pyramid = BasePyramid(N, depth) if config.conditional else None
        extra = N if config.conditional else 0
        integer = config.integer_parse
        self.latent_codec = HyperpriorLatentCodec(latent_codec={
            "y": CheckerboardLatentCodec(
                latent_codec={"y": GaussianConditionalLatentCodec(
                    gaussian_conditional=NearestScaleGaussianConditional(), quantizer="ste")},
                entropy_parameters=(MeansFromContext(M, extra, config.scale_levels) if integer
                                    else _entropy_parameters(M, extra)),
                context_prediction=CheckerboardMaskedConv2d(M, 2 * M, kernel_size=5, stride=1, padding=2),
                anchor_parity="even", forward_method="twopass"),
            "hyper": HyperLatentCodec(entropy_bottleneck=EntropyBottleneck(N), h_a=hyper_analysis(N, M),
                                      h_s=integer_hyper_synthesis(N, M) if integer else hyper_synthesis(N, M),
                                      quantizer="ste"),
        })
        if integer:
            # SHA-256 of what the stored coding tables were built from (zeros: none built yet)
            self.register_buffer("table_source", torch.zeros(32, dtype=torch.uint8))
        self._z_medians: Tensor | None = None  # the integer parse's bottleneck medians, fixed by update()
        self.quantizer = "ste"

    @property
    def downsampling_factor(self) -> int:
        return pad_multiple(self.config.depth)

    @property
    def checkerboard(self) -> CheckerboardLatentCodec:
        return self.latent_codec.y

    def set_quantizer(self, mode: str) -> None:
        """Training-time stand-in for rounding: ``ste`` (y_hat and z_hat rounded with a
        straight-through gradient, rate from noisy likelihoods) or ``noise`` (additive uniform
        noise everywhere). Evaluation always rounds, as the coder does."""
        if mode not in QUANTIZERS:
            raise ValueError(f"quantizer must be one of {QUANTIZERS}, got {mode!r}")
        self.quantizer = mode
        self.checkerboard.y.quantizer = mode
        self.latent_codec.hyper.quantizer = mode

    def _check_size(self, r: Tensor) -> None:
        k = self.downsampling_factor
        if r.dim() != 4 or r.shape[1] != 3 or r.shape[-2] % k or r.shape[-1] % k:
            raise ValueError(f"expected a (B, 3, H, W) residual with H and W multiples of {k}, got {tuple(r.shape)}")

    def features(self, cond: Tensor | None) -> list[Tensor] | None:
        """The base pyramid of a conditional model (None for residual coding)."""
        if not self.config.conditional:
            return None
        if cond is None or cond.dim() != 4 or cond.shape[1] != SIDE_CHANNELS:
            raise ValueError("a base-conditioned residual codec needs cond = side_input(base, quality), "
                             f"(B, {SIDE_CHANNELS}, H, W); got {None if cond is None else tuple(cond.shape)}")
        return self.base_pyramid(cond)

    def analyse(self, r: Tensor, cond: Tensor | None = None) -> Tensor:
        """Residual (and, when conditional, the side input) -> latent y."""
        self._check_size(r)
        r = r * self.config.residual_gain
        return self.g_a(torch.cat([r, cond], dim=1) if self.config.conditional else r)

    def synthesise(self, y_hat: Tensor, feats: list[Tensor] | None = None) -> Tensor:
        """Quantised latent (and base features) -> residual (signed, unclamped)."""
        r = self.g_s(y_hat, feats) if self.config.conditional else self.g_s(y_hat)
        return r / self.config.residual_gain

    def _side(self, params: Tensor, feats: list[Tensor] | None) -> Tensor:
        """Side parameters of the entropy model: h_s(z_hat), joined by the base's coarsest features."""
        return params if feats is None else torch.cat([params, feats[-1]], dim=1)

    def forward(self, r: Tensor, cond: Tensor | None = None, skip: Tensor | None = None) -> dict[str, Any]:
        """Training / estimation pass: ``{"r_hat", "y_hat", "likelihoods": {"y", "z"}}``.

        ``skip`` (B booleans) trains the codec's latent-free mode on those items: y_hat is zero and
        nothing is coded (likelihood 1), so g_s learns what the base alone implies (a conditional
        model: JPEG artifact removal at no rate); the encoder picks that mode when it is cheaper.
        """
        # The one-pass method is the noise model; rounding (eval, or STE training) needs two passes
        # so that anchors are quantised around their own means before they become context.
        self.checkerboard.forward_method = "onepass" if self.training and self.quantizer == "noise" else "twopass"
        feats = self.features(cond)
        y = self.analyse(r, cond)
        hyper = self.latent_codec.hyper(y)
        out = self.checkerboard(y, self._side(hyper["params"], feats))
        y_hat, lik = out["y_hat"], {"y": out["likelihoods"]["y"], "z": hyper["likelihoods"]["z"]}
        if skip is not None:
            keep = (~skip).to(y_hat.dtype).reshape(-1, 1, 1, 1)
            y_hat = y_hat * keep
            lik = {k: v * keep + (1.0 - keep) for k, v in lik.items()}
        return {"r_hat": self.synthesise(y_hat, feats), "y_hat": y_hat, "likelihoods": lik}

    def update(self, scale_table=None, force: bool = False, update_quantiles: bool = False) -> bool:
        """Build the coding tables (our finer scale table unless one is given).

        With the integer parse, also derive h_s's integer weights and the bottleneck's integer
        medians (exact, see :mod:`.fixed_point`), and build the tables only when the stored ones
        were not built from these very weights (``table_source``): tables loaded from a checkpoint
        are used as stored, even with ``force``, because rebuilding them from floats on another
        machine could change a CDF entry and with it the parse. Training on, or loading other
        weights, changes the digest and so rebuilds them.
        """
        table = scale_table if scale_table is not None else make_scale_table(self.config.scale_levels)
        # The masked convolution zeroes its hidden taps in place on its first call; do it now so the
        # weights (and the fingerprint hashed from them) are final before anything is coded.
        ctx = self.checkerboard.context_prediction
        with torch.no_grad():
            ctx.weight.mul_(ctx.mask)
        if not self.config.integer_parse:
            return super().update(scale_table=table, force=force, update_quantiles=update_quantiles)
        source = self._table_source(scale_table)
        stored = self.latent_codec.hyper.entropy_bottleneck._offset.numel() > 0 \
            and self.checkerboard.y.gaussian_conditional._offset.numel() > 0
        updated = False
        if update_quantiles or not stored or not torch.equal(self.table_source.cpu(), source):
            updated = super().update(scale_table=table, force=True, update_quantiles=update_quantiles)
            self.table_source.copy_(self._table_source(scale_table))  # the quantiles may have moved
        hyper = self.latent_codec.hyper
        hyper.h_s.freeze()
        medians = hyper.entropy_bottleneck.quantiles[:, 0, 1].detach().cpu().double()
        self._z_medians = round_half_up(medians * (1 << FRAC_BITS)).long().view(1, -1, 1, 1)
        return updated

    def _table_source(self, scale_table) -> Tensor:
        """Digest of the inputs of the coding tables: the bottleneck's parameters and the scale table
        (its setting, not its float values, which a machine's ``exp`` could change)."""
        h = hashlib.sha256(repr((self.config.scale_levels, scale_table)).encode())
        for name, p in sorted(self.latent_codec.hyper.entropy_bottleneck.named_parameters()):
            h.update(name.encode() + p.detach().cpu().float().contiguous().numpy().tobytes())
        return torch.frombuffer(bytearray(h.digest()), dtype=torch.uint8)

    def _hyper_side(self, z_hat: Tensor, z_symbols: Tensor) -> tuple[Tensor, Tensor | None]:
        """h_s's side parameters, and with the integer parse the scale indexes of y, computed in
        int64 from the z symbols (float parse: None, the indexes come from the float scales)."""
        h_s = self.latent_codec.hyper.h_s
        if not self.config.integer_parse:
            return h_s(z_hat), None
        if self._z_medians is None:
            raise ValueError("the integer parse has no integer weights: call update() first")
        a = h_s.integer_forward(z_symbols.cpu().long() * (1 << FRAC_BITS) + self._z_medians)
        M = self.config.M
        indexes = ((a[:, :M] + (1 << (FRAC_BITS - 1))) >> FRAC_BITS).clamp(0, self.config.scale_levels - 1)
        params = a.double() / (1 << FRAC_BITS)  # exact: |a| <= 2**20
        return params.to(device=z_hat.device, dtype=z_hat.dtype), indexes.int().to(z_hat.device)

    def _two_passes(self, side: Tensor, code_pass: Callable[[int, Tensor, Tensor], Tensor],
                    indexes: Tensor | None = None) -> tuple[Tensor, Tensor]:
        """The checkerboard coding order, shared by encoder and decoder.

        Works on the two half-width tensors of the latent (CompressAI's ``unembed``), so each pass
        touches only its own positions. Pass 0 (anchors) sees a zero context; pass 1 sees the
        masked-conv context of the decoded anchors. ``code_pass(i, indexes, means)`` returns the
        integer symbols of half ``i`` (the encoder quantises and writes, the decoder reads).
        The table ``indexes`` of the whole latent, when given (integer parse), replace those of
        the float scales. Returns ``(y_hat, symbols)`` in the full layout.
        """
        cb = self.checkerboard
        gc = cb.y.gaussian_conditional
        side_halves = cb.unembed(side)
        index_halves = None if indexes is None else cb.unembed(indexes)
        n, _, h, half_w = side_halves.shape[1:]
        M = self.config.M
        y_hat_halves = side.new_zeros((2, n, M, h, half_w))
        symbols = []
        for i in range(2):
            if i == 0:
                ctx = side.new_zeros((n, 2 * M, h, half_w))  # the context has 2M channels
            else:
                ctx = cb.unembed(cb.context_prediction(cb.embed(y_hat_halves)))[1]
            scales, means = cb.y._chunk(cb.entropy_parameters(cb.merge(ctx, side_halves[i])))
            sym = code_pass(i, gc.build_indexes(scales) if index_halves is None else index_halves[i], means).int()
            y_hat_halves[i] = gc.dequantize(sym, means)
            symbols.append(sym)
        return cb.embed(y_hat_halves), cb.embed(torch.stack(symbols))

    @torch.no_grad()
    def compress_latent(self, y: Tensor, feats: list[Tensor] | None = None) -> dict[str, Any]:
        """Entropy-code a latent: strings ``{"z", "y_anchor", "y_non_anchor"}`` (one bytes object
        per batch item each), the quantised latent ``y_hat`` the decoder rebuilds, and the integer
        ``symbols`` of y and ``z_symbols`` of z."""
        hyper = self.latent_codec.hyper
        z_strings, z_hat, z_symbols = ans.encode_bottleneck(hyper.entropy_bottleneck, hyper.h_a(y))
        gc = self.checkerboard.y.gaussian_conditional
        y_halves = self.checkerboard.unembed(y)
        strings: list[list[bytes]] = []

        def encode(i: int, indexes: Tensor, means: Tensor) -> Tensor:
            symbols = gc.quantize(y_halves[i], "symbols", means)
            strings.append(ans.encode_tensor(gc, symbols, indexes))
            return symbols

        params, indexes = self._hyper_side(z_hat, z_symbols)
        y_hat, symbols = self._two_passes(self._side(params, feats), encode, indexes)
        return {"strings": {"z": z_strings, "y_anchor": strings[0], "y_non_anchor": strings[1]},
                "y_hat": y_hat, "symbols": symbols, "z_symbols": z_symbols}

    def compress(self, r: Tensor, cond: Tensor | None = None) -> dict[str, Any]:
        """Entropy-code a residual (see :meth:`compress_latent`)."""
        with torch.no_grad():
            return self.compress_latent(self.analyse(r, cond), self.features(cond))

    def latent_shapes(self, height: int, width: int) -> dict[str, tuple[int, ...]]:
        """Shapes of y (C, H, W) and z (H, W) for a padded input of ``height`` x ``width``."""
        k = 2 ** self.config.depth
        if height % self.downsampling_factor or width % self.downsampling_factor:
            raise ValueError(f"padded size {height}x{width} is not a multiple of {self.downsampling_factor}")
        return {"y": (self.config.M, height // k, width // k), "hyper": (height // (4 * k), width // (4 * k))}

    @torch.no_grad()
    def decompress_latent(self, strings: dict[str, list[bytes]], height: int, width: int,
                          feats: list[Tensor] | None = None) -> dict[str, Tensor]:
        """Decode ``{"y_hat", "symbols", "z_symbols"}`` of a padded ``height`` x ``width`` residual."""
        hyper = self.latent_codec.hyper
        z_hat, z_symbols = ans.decode_bottleneck(hyper.entropy_bottleneck, strings["z"],
                                                 self.latent_shapes(height, width)["hyper"])
        gc = self.checkerboard.y.gaussian_conditional
        passes = [strings[k] for k in ("y_anchor", "y_non_anchor")]

        def decode(i: int, indexes: Tensor, means: Tensor) -> Tensor:
            return ans.decode_tensor(gc, passes[i], indexes, ("y_anchor", "y_non_anchor")[i] + " string")

        params, indexes = self._hyper_side(z_hat, z_symbols)
        y_hat, symbols = self._two_passes(self._side(params, feats), decode, indexes)
        return {"y_hat": y_hat, "symbols": symbols, "z_symbols": z_symbols}

    def decompress(self, strings: dict[str, list[bytes]], height: int, width: int,
                   cond: Tensor | None = None) -> dict[str, Tensor]:
        """Decode a residual. It is signed and is returned as decoded, never clamped (only the
        final image is)."""
        with torch.no_grad():
            feats = self.features(cond)
            out = self.decompress_latent(strings, height, width, feats)
            return {"r_hat": self.synthesise(out["y_hat"], feats), **out}


def likelihood_bits(likelihoods: Tensor) -> Tensor:
    """Total information content, in bits, of a likelihood tensor."""
    return -torch.log2(likelihoods).sum()
