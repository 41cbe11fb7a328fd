"""Decode anywhere: with ``parse="integer"`` every coding-table index is computed in integer
arithmetic, so a decoder whose float path differs (thread count, float64, weights a few ULPs off)
reads exactly the symbols the encoder wrote; with the float parse such a difference can move an
index and the decode fails."""

from __future__ import annotations

import copy

import pytest
import torch
import torch.nn.functional as F
from compressai.entropy_models import EntropyModel
from torch import nn

from hyreslib.codecs.container import CorruptStreamError, ModelMismatchError
from hyreslib.core.checkpoint import load_checkpoint
from hyreslib.hyres import HyresCodec, JpegSettings, ResidualCodec, ResidualConfig, bitstream
from hyreslib.hyres.fixed_point import ACT_LIMIT, FRAC_BITS, FixedPointSequential
from hyreslib.pipeline import models

M = 24
SIZE = 128


def _model(parse: str, seed: int = 0) -> ResidualCodec:
    """An untrained model made non-trivial: neither y nor z rounds to zero, and the scale indexes
    spread over the table (so a moved scale would show)."""
    torch.manual_seed(seed)
    model = ResidualCodec(ResidualConfig(N=16, M=M, depth=4, scale_levels=128, parse=parse))
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        model.g_a[-2].weight.mul_(30.0)
        model.latent_codec.hyper.h_a[-1].weight.mul_(10.0)
        scales = model.latent_codec.hyper.h_s[-1] if parse == "integer" else model.checkerboard.entropy_parameters[-1]
        scales.weight[:M].mul_(20.0)
        scales.bias[:M] = torch.rand(M, generator=g) * (100.0 if parse == "integer" else 10.0)
    model.eval().update(force=True)
    return model


def _residual() -> torch.Tensor:
    g = torch.Generator().manual_seed(1)
    return F.avg_pool2d(torch.randn(1, 3, SIZE, SIZE, generator=g), 3, 1, 1) * 0.3


def _ulps(model: nn.Module, k: int, seed: int = 0) -> nn.Module:
    """A copy with every float parameter moved ``k`` ULPs up or down (random per element): a float
    path that computes differently. The copy keeps what ``update()`` derived from the stored
    weights (coding tables, integer weights), as a decoder loading the same checkpoint does."""
    model = copy.deepcopy(model)
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in model.parameters():
            up = torch.rand(p.shape, generator=g) < 0.5
            ulp = torch.nextafter(p.abs(), torch.full_like(p, float("inf"))) - p.abs()
            p.add_(torch.where(up, ulp, -ulp) * k)
    return model


@pytest.fixture(scope="module")
def integer_model() -> ResidualCodec:
    return _model("integer")


@pytest.fixture(scope="module")
def coded(integer_model):
    return integer_model.compress(_residual())


def test_integer_parse_round_trip_is_bit_exact(integer_model, coded):
    out = integer_model.decompress(coded["strings"], SIZE, SIZE)
    assert torch.equal(out["symbols"], coded["symbols"]) and torch.equal(out["z_symbols"], coded["z_symbols"])
    assert torch.equal(out["y_hat"], coded["y_hat"])
    assert (coded["symbols"] != 0).float().mean() > 0.05  # the test codes real content


def _decoders(model: ResidualCodec):
    yield "1 ULP", _ulps(model, 1), 1e-4
    yield "1 ULP, other signs", _ulps(model, 1, seed=1), 1e-4
    yield "4096 ULPs", _ulps(model, 4096), 0.2
    yield "float64", copy.deepcopy(model).double(), 1e-4


@pytest.mark.parametrize("threads", [1, 3])
def test_integer_parse_reads_the_same_symbols_whatever_the_float_path(integer_model, coded, threads):
    reference = integer_model.synthesise(coded["y_hat"])
    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        for name, decoder, tolerance in _decoders(integer_model):
            out = decoder.decompress(coded["strings"], SIZE, SIZE)
            assert torch.equal(out["symbols"], coded["symbols"]), name
            assert torch.equal(out["z_symbols"], coded["z_symbols"]), name
            # only the means (y_hat = symbol + mean) and the synthesis move, and only a little
            assert (out["y_hat"].float() - coded["y_hat"]).abs().max() < tolerance, name
            assert (out["r_hat"].float() - reference).abs().max() < 100 * tolerance, name
    finally:
        torch.set_num_threads(before)


def test_float_parse_loses_the_parse_when_a_scale_moves():
    """The same kind of perturbation, aimed (every parameter a few ULPs along the gradient of
    the scale nearest a table boundary), moves an index of the float parse: the decode fails."""
    model = _model("float")
    coded = model.compress(_residual())
    cb, hyper = model.checkerboard, model.latent_codec.hyper
    gc = cb.y.gaussian_conditional
    z_hat = hyper.entropy_bottleneck.dequantize(coded["z_symbols"], hyper.entropy_bottleneck._get_medians().detach())

    def anchor_scales(m: ResidualCodec) -> torch.Tensor:
        side = cb.unembed(m.latent_codec.hyper.h_s(z_hat))[0]
        ctx = side.new_zeros(side.shape[0], 2 * M, *side.shape[2:])
        return gc.lower_bound_scale(m.checkerboard.entropy_parameters(torch.cat([ctx, side], 1))[:, :M]).flatten()

    with torch.no_grad():
        scales = anchor_scales(model)
    log_mid = torch.sqrt(gc.scale_table[:-1] * gc.scale_table[1:]).log()
    gap = scales.log()[:, None] - log_mid[None]
    k = int(gap.abs().min(1).values.argmin())          # the scale nearest a boundary
    toward = -float(gap[k, gap[k].abs().argmin()].sign())
    grads = torch.autograd.grad(anchor_scales(model)[k], list(model.parameters()), allow_unused=True)
    for ulps in (1, 4, 16, 64, 256):
        moved = copy.deepcopy(model)
        with torch.no_grad():
            for p, g in zip(moved.parameters(), grads):
                if g is not None:
                    ulp = torch.nextafter(p.abs(), torch.full_like(p, 1e30)) - p.abs()
                    p.add_(torch.sign(g) * toward * ulp * ulps)
            if not torch.equal(gc.build_indexes(anchor_scales(moved)), gc.build_indexes(scales)):
                break
    else:
        pytest.fail("no perturbation of up to 256 ULPs moved a scale index")
    with pytest.raises(CorruptStreamError):
        out = moved.decompress(coded["strings"], SIZE, SIZE)
        if not torch.equal(out["symbols"], coded["symbols"]):
            raise CorruptStreamError("other symbols")  # what the file's content CRC reports
    # the integer parse, perturbed the same way on every float parameter (and more), keeps its symbols
    integer_model = _model("integer")
    int_coded = integer_model.compress(_residual())
    out = _ulps(integer_model, ulps).decompress(int_coded["strings"], SIZE, SIZE)
    assert torch.equal(out["symbols"], int_coded["symbols"])


class _WrongScales(nn.Module):
    """Entropy parameters whose float scales are noise."""

    def __init__(self, inner: nn.Module):
        super().__init__()
        self.inner = inner

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        params = self.inner(x)
        return torch.cat([torch.rand_like(params[:, :M]) * 50, params[:, M:]], dim=1)


def test_scale_indexes_come_from_z_alone(integer_model, coded):
    """Whatever the float nets say, the indexes stay those the integer path computes from z: a
    decoder whose float scales, mean net and context are wrong altogether still parses (it just
    reconstructs a different picture)."""
    broken = copy.deepcopy(integer_model)
    with torch.no_grad():
        for p in broken.checkerboard.entropy_parameters.parameters():
            p.normal_()
        for p in broken.checkerboard.context_prediction.parameters():
            p.normal_()
    broken.checkerboard.entropy_parameters = _WrongScales(broken.checkerboard.entropy_parameters)
    out = broken.decompress(coded["strings"], SIZE, SIZE)
    assert torch.equal(out["symbols"], coded["symbols"])
    assert not torch.equal(out["y_hat"], coded["y_hat"])


def test_training_stand_in_matches_the_integer_scale_path(integer_model, coded):
    """The float forward the model trains with (fake-quantised h_s) picks the indexes the integer
    path codes with, but for positions within float error of a rounding boundary."""
    hyper = integer_model.latent_codec.hyper
    z_hat = hyper.entropy_bottleneck.dequantize(coded["z_symbols"], hyper.entropy_bottleneck._get_medians().detach())
    with torch.no_grad():
        float_index = (hyper.h_s(z_hat)[:, :M].clamp(0, 127) + 0.5).floor()
    _, indexes = integer_model._hyper_side(z_hat, coded["z_symbols"])
    assert indexes.unique().numel() > 10  # spread over the table
    assert (float_index == indexes).float().mean() > 0.99


def test_fixed_point_net_is_exact_integer_arithmetic():
    torch.manual_seed(0)
    net = FixedPointSequential(nn.ConvTranspose2d(4, 6, 5, stride=2, padding=2, output_padding=1), nn.ReLU(),
                               nn.Conv2d(6, 3, 3, padding=1))
    net.freeze()
    x = torch.randn(2, 4, 5, 7) * 3
    a = net.integer_forward(net.integer_input(x))
    assert a.dtype == torch.int64
    # the same formula evaluated independently, in float64 (exact at these sizes)
    h = net.integer_input(x).double()
    (w0, b0, s0), _, (w1, b1, s1) = net._frozen
    h = torch.floor((F.conv_transpose2d(h, w0.double(), b0.double(), 2, 2, 1) + 2 ** (s0 - 1)) / 2 ** s0).clamp(min=0)
    h = torch.floor((F.conv2d(h, w1.double(), b1.double(), padding=1) + 2 ** (s1 - 1)) / 2 ** s1)
    assert torch.equal(a, h.long())
    # and the float stand-in agrees to within rounding of the last unit
    assert (net(x) * 2 ** FRAC_BITS - a).abs().max() <= 2
    # inputs out of range are clamped, on both paths
    big = net.integer_forward(torch.full((1, 4, 2, 2), 1 << 40))
    assert torch.equal(big, net.integer_forward(torch.full((1, 4, 2, 2), ACT_LIMIT)))


def test_fixed_point_net_refuses_what_it_cannot_compute_exactly():
    with pytest.raises(TypeError, match="Conv2d, ConvTranspose2d and ReLU"):
        FixedPointSequential(nn.Conv2d(2, 2, 1), nn.LeakyReLU())
    net = FixedPointSequential(nn.Conv2d(2, 2, 1))
    with pytest.raises(ValueError, match="freeze"):
        net.integer_forward(torch.zeros(1, 2, 1, 1, dtype=torch.long))
    with torch.no_grad():
        net[0].weight.fill_(1e6)
    with pytest.raises(ValueError, match="too large"):
        net.freeze()


def test_stored_tables_are_kept_while_their_weights_are(integer_model):
    """A loaded model codes with the tables it was saved with (rebuilding them from floats could
    differ on another machine); new bottleneck weights rebuild them."""
    loaded = ResidualCodec(integer_model.config)
    loaded.load_state_dict(integer_model.state_dict())
    eb = loaded.latent_codec.hyper.entropy_bottleneck
    stored = eb._quantized_cdf.clone()
    eb._quantized_cdf[0, 1] += 1  # a table this machine would not compute
    loaded.update(force=True)
    assert torch.equal(eb._quantized_cdf[0, 1], stored[0, 1] + 1)
    with torch.no_grad():
        eb.quantiles[0, 0, 1] += 0.25
    loaded.update(force=True)
    assert not torch.equal(loaded.table_source, integer_model.table_source)
    assert eb._quantized_cdf[0, 1] != stored[0, 1] + 1


def test_float_parse_keeps_its_config_and_fingerprint():
    """Models made before the integer parse existed keep their configs (and so their files'
    fingerprints); the integer parse is recorded."""
    assert "parse" not in ResidualConfig().to_dict()
    config = ResidualConfig(N=16, M=24, parse="integer")
    assert ResidualConfig.from_dict(config.to_dict()) == config
    with pytest.raises(ValueError, match="parse"):
        ResidualConfig(parse="fixed")


def test_codec_files_of_the_integer_parse(integer_model, photo, tmp_path):
    codec = HyresCodec(copy.deepcopy(integer_model), JpegSettings(quality=5))
    enc = codec.encode_detailed(photo)
    assert enc.data[4] == bitstream.VERSIONS["integer"]
    assert bitstream.read(enc.data)[0].parse == "integer"
    # a decoder whose float path computes differently passes the content CRC (same symbols, same base)
    other = HyresCodec(copy.deepcopy(integer_model), JpegSettings(quality=5))
    other.residual = _ulps(other.residual, 1)  # after update(): the same stored model, computed differently
    image = other.decode(enc.data)
    assert (image - codec.decode(enc.data)).abs().max() < 1e-3
    # the checkpoint round trip keeps the model (and its tables) exactly
    codec.save(tmp_path / "int.ckpt")
    loaded = HyresCodec.load(tmp_path / "int.ckpt")
    assert loaded.fingerprint == codec.fingerprint and torch.equal(loaded.decode(enc.data), codec.decode(enc.data))
    # a float-parse model refuses the file by its version, not by a desync
    float_codec = HyresCodec(_model("float"), JpegSettings(quality=5))
    with pytest.raises(ModelMismatchError, match="integer parse"):
        float_codec.decode(enc.data)
    assert float_codec.encode(photo)[4] == bitstream.VERSION == 2


def _other_table_rounding(monkeypatch) -> None:
    """A machine whose float coding tables come out differently (its pmfs off by ~1e-3 relative)."""
    real = EntropyModel._pmf_to_cdf

    def other(self, pmf, tail_mass, pmf_length, max_length):
        wobble = 1 + 1e-3 * torch.cos(torch.arange(pmf.shape[-1], dtype=pmf.dtype))
        return real(self, pmf * wobble, tail_mass, pmf_length, max_length)

    monkeypatch.setattr(EntropyModel, "_pmf_to_cdf", other)


def test_a_shipped_integer_model_decodes_anywhere(integer_model, photo, tmp_path, monkeypatch):
    """``models.ship`` keeps the tables built from the shipped weights, with their digest: a machine
    whose tables would come out differently, with every float weight one ULP off, reads the same symbols."""
    ckpt = HyresCodec(copy.deepcopy(integer_model), JpegSettings(quality=5), lmbda=0.01).save(tmp_path / "int.ckpt")
    entry = models.ship(ckpt, "int", source="a test", commit="0" * 40, path=tmp_path / "registry.json")
    shipped = HyresCodec.load(tmp_path / entry.file)
    assert shipped.fingerprint.hex() == entry.fingerprint
    enc = shipped.encode_detailed(photo, mode="latent")
    stored = {k[len("residual."):]: v for k, v in load_checkpoint(tmp_path / entry.file)["state_dict"].items()
              if k.rsplit(".", 1)[-1] in (*models.CODING_TABLES, "table_source")}
    assert len(stored) == 7 and all(v.numel() for v in stored.values())

    _other_table_rounding(monkeypatch)
    other = HyresCodec.load(tmp_path / entry.file)
    assert all(torch.equal(other.residual.state_dict()[k], v) for k, v in stored.items())  # used as stored
    other.residual = _ulps(other.residual, 1)
    out = other.decode_detailed(enc.data)  # passes the content CRC: the same z and y symbols, the same base
    assert (out.y_hat - enc.y_hat).abs().max() < 1e-3 and bool((enc.y_hat != 0).any())
    # the same machine with tables rebuilt from the floats (what a shipped file without them does) loses the parse
    other.residual.table_source.zero_()
    other.residual.update()
    rebuilt = other.residual.state_dict()
    assert all(not torch.equal(rebuilt[k], v) for k, v in stored.items() if k.endswith("_quantized_cdf"))
    with pytest.raises(CorruptStreamError):
        other.decode(enc.data)
