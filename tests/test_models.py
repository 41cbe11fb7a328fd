"""The pretrained-model registry: shipped fp16 checkpoints checked by SHA-256, downloadable
entries fetched by the checksum-verified downloader, and the CLI's default and by-fingerprint picks."""

from __future__ import annotations

import json

import pytest
import torch

from hyreslib import data, models
from hyreslib.hyres import HyresCodec, JpegSettings, ResidualCodec, ResidualConfig


@pytest.fixture
def shipped(tmp_path):
    torch.manual_seed(0)
    residual = ResidualCodec(ResidualConfig(N=16, M=24, depth=4, scale_levels=64, conditioning="base"))
    with torch.no_grad():
        residual.g_a[-2].weight.mul_(30.0)
    ckpt = HyresCodec(residual, JpegSettings(quality=10), lmbda=0.004).save(tmp_path / "trained.ckpt")
    registry = tmp_path / "models" / "registry.json"
    registry.parent.mkdir()
    entry = models.ship(ckpt, "tiny", source="a test", commit="0" * 40, description="tiny", path=registry)
    return registry, entry


def test_ship_writes_fp16_weights_and_registers_them(shipped):
    registry, entry = shipped
    file = registry.parent / entry.file
    state = torch.load(file, weights_only=True)["state_dict"]
    assert all(v.dtype == torch.float16 for v in state.values() if v.is_floating_point())
    assert (entry.lmbda, entry.base_quality) == (0.004, 10)
    assert models.registry(registry)["tiny"] == entry and models.default_name(registry) == "tiny"
    assert models.model_path("tiny", path=registry) == file


def test_a_replaced_file_is_refused(shipped):
    registry, entry = shipped
    (registry.parent / entry.file).write_bytes(b"not the model")
    with pytest.raises(ValueError, match="SHA-256"):
        models.model_path("tiny", path=registry)


def test_unknown_names_are_refused(shipped):
    with pytest.raises(ValueError, match="unknown model"):
        models.model_path("nope", path=shipped[0])


def test_a_downloadable_entry_is_fetched_and_verified(shipped, tmp_path):
    registry, entry = shipped
    doc = json.loads(registry.read_text())
    doc["models"][0]["url"] = (registry.parent.as_uri() + "/{path}")
    registry.write_text(json.dumps(doc))
    path = models.model_path("tiny", root=tmp_path / "data", path=registry)
    assert path.read_bytes() == (registry.parent / entry.file).read_bytes()
    assert path.is_relative_to(tmp_path / "data")


def test_the_fingerprint_finds_the_model_that_wrote_a_file(shipped):
    registry, entry = shipped
    codec = HyresCodec.load(registry.parent / entry.file)
    photo = data.embedded("test")[0][1][:, :64, :96]
    from hyreslib.hyres import bitstream

    header = bitstream.read(codec.encode(photo))[0]
    assert models.by_fingerprint(header.fingerprint, registry) == "tiny"
    assert models.by_fingerprint(b"\0" * 8, registry) is None


def test_every_registered_model_of_the_kit_loads_and_round_trips():
    """The models shipped in the repository: hash, fingerprint and a bit-exact real-file decode."""
    photo = data.embedded("test")[0][1][:, :96, :128]
    for name in models.registry():
        codec = models.load(name)
        enc = codec.encode_detailed(photo)
        assert torch.equal(codec.decode_detailed(enc.data).y_hat, enc.y_hat), name


def test_cli_encodes_and_decodes_with_the_shipped_model_and_no_checkpoint(tmp_path, capsys):
    from hyreslib.cli import main
    from hyreslib.images import load_image, save_image, to_uint8

    photo = data.embedded("test")[1][1][:, :96, :128].contiguous()
    save_image(photo, tmp_path / "photo.png")
    assert main(["encode", str(tmp_path / "photo.png"), str(tmp_path / "photo.hyr")]) == 0
    assert main(["decode", str(tmp_path / "photo.hyr"), str(tmp_path / "back.png")]) == 0
    library = models.load().decode((tmp_path / "photo.hyr").read_bytes())
    assert (to_uint8(load_image(tmp_path / "back.png")) == to_uint8(library)).all()
    assert main(["models", "list"]) == 0
    assert models.default_name() in capsys.readouterr().out
