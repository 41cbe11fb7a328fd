"""The pretrained-model registry: shipped compact checkpoints checked by SHA-256, downloadable
entries fetched by the checksum-verified downloader, and the CLI's default and by-fingerprint picks."""

from __future__ import annotations

import json

import pytest
import torch

from hyreslib.core.checkpoint import load_checkpoint
from hyreslib.core.images import from_uint8, to_uint8
from hyreslib.datasets import data
from hyreslib.hyres import HyresCodec, JpegSettings, ResidualCodec, ResidualConfig
from hyreslib.pipeline import models


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


def test_ship_writes_a_compact_checkpoint_and_registers_it(shipped, tmp_path):
    registry, entry = shipped
    file = registry.parent / entry.file
    assert file.read_bytes()[:6] == b"\xfd7zXZ\x00" and entry.size < (tmp_path / "trained.ckpt").stat().st_size / 4
    original = load_checkpoint(tmp_path / "trained.ckpt")["state_dict"]
    loaded = load_checkpoint(file)["state_dict"]
    kernel = max((k for k, v in original.items() if v.is_floating_point()), key=lambda k: original[k].numel())
    step = original[kernel].flatten(1).abs().amax(1) / 127
    error = (loaded[kernel] - original[kernel]).flatten(1).abs().amax(1)
    assert loaded[kernel].dtype == torch.float32 and bool((error <= step / 2 + 1e-7).all()) and error.max() > 0
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


def test_the_kits_models_are_pruned_as_their_validation_measurement_says():
    """What the README says of the shipped cpu models (latent-free mode only, a refiner only at phase 6) is
    what notebook 04's prune measured on validation images and stored with each model, not an edit."""
    from hyreslib.hyres.evaluate import PRUNE_TOLERANCE

    for name in models.registry():
        codec = models.load(name)
        pruned = load_checkpoint(models.model_path(name))["extra"]["pruned"]
        assert list(codec.modes) == pruned["modes"] and pruned["mode_cost"] <= PRUNE_TOLERANCE, name
        assert (codec.refine is not None) == pruned["refiner_kept"] == (pruned["refiner_gain"] >= PRUNE_TOLERANCE)
    assert [models.load(f"hyres-cpu-phase{k}").refine is not None for k in range(1, 7)] == [False] * 5 + [True]
    assert all(models.load(f"hyres-cpu-phase{k}").modes == ("latent-free",) for k in range(1, 7))


def test_cli_encodes_and_decodes_with_the_shipped_model_and_no_checkpoint(tmp_path, capsys):
    from hyreslib.cli import main
    from hyreslib.core.images import load_image, save_image, to_uint8

    photo = data.embedded("test")[1][1][:, :96, :128].contiguous()
    save_image(photo, tmp_path / "photo.png")
    assert main(["encode", str(tmp_path / "photo.png"), str(tmp_path / "photo.hyr")]) == 0
    assert main(["decode", str(tmp_path / "photo.hyr"), str(tmp_path / "back.png")]) == 0
    library = models.load().decode((tmp_path / "photo.hyr").read_bytes())
    assert (to_uint8(load_image(tmp_path / "back.png")) == to_uint8(library)).all()
    assert main(["models", "list"]) == 0
    assert models.default_name() in capsys.readouterr().out


def test_a_runs_phases_ship_as_one_curve(tmp_path):
    """``ship_run``: every phase of a run becomes a model of one group, drawn as one curve."""
    from hyreslib.results import manifest

    run = manifest.start(tmp_path / "runs" / "cpu", "03_lambda_phases", profile="cpu", seed=0, device="cpu")
    phases = []
    for phase, (lmbda, q) in enumerate([(0.032, 35), (0.004, 7)], start=1):
        torch.manual_seed(phase)
        codec = HyresCodec(ResidualCodec(ResidualConfig(N=16, M=24, scale_levels=64)), JpegSettings(quality=q),
                           lmbda=lmbda)
        run.add_artifact(f"phase{phase}_codec", codec.save(run.path(f"phase{phase}/codec.ckpt")))
        phases.append({"phase": phase, "lambda": lmbda})
    run.metrics.update({"phases": phases, "test_set": "kodak/test (24 images)"})
    run.save()
    registry = tmp_path / "models" / "registry.json"
    registry.parent.mkdir()
    entries = models.ship_run(tmp_path / "runs" / "cpu", "cpu profile", "hyres-cpu", default_phase=2, path=registry)
    assert [(e.name, e.base_quality, e.group) for e in entries] == [("hyres-cpu-phase1", 35, "cpu profile"),
                                                                    ("hyres-cpu-phase2", 7, "cpu profile")]
    assert models.default_name(registry) == "hyres-cpu-phase2"
    label, members = models.curve(path=registry)
    assert label == "shipped (cpu profile)" and [m.lmbda for m in members] == [0.032, 0.004]
    made = manifest.load(run.run_dir, run.notebook).record
    assert "phase 1" in entries[0].source and entries[0].commit == made["git"]


@pytest.fixture
def shipped_predictor(tmp_path):
    """A perturbed CNNP shipped into a registry that already holds a HyRES default."""
    from test_hidenet_predictors import perturbed

    from hyreslib.hidenet.predictors import CNNP
    from hyreslib.hidenet.training import save_predictor

    registry = tmp_path / "models" / "registry.json"
    registry.parent.mkdir()
    registry.write_text(json.dumps({"default": "some-hyres", "models": []}))
    ckpt = save_predictor(tmp_path / "predictor.pt", perturbed(CNNP(8, 4), scale=0.05))
    entry = models.ship_predictor(ckpt, "tiny-cnnp", source="a test", commit="0" * 40, path=registry)
    return registry, entry, ckpt


def test_a_predictor_ships_compact_as_its_kinds_default(shipped_predictor):
    """fp16 weights, xz; the fingerprint registered is the shipped (rounded) predictor's, which is
    what encodes and decodes: a real file round-trips bit-exactly with the loaded model."""
    from hyreslib.hidenet import bitstream
    from hyreslib.hidenet.codec import HidenetCodec, predictor_fingerprint
    from hyreslib.hidenet.training import load_predictor

    registry, entry, ckpt = shipped_predictor
    file = registry.parent / entry.file
    assert file.read_bytes()[:6] == b"\xfd7zXZ\x00" and entry.size < ckpt.stat().st_size / 1.5
    assert entry.kind == models.PREDICTOR and entry.lmbda is None
    assert models.default_name(registry, models.PREDICTOR) == "tiny-cnnp"
    assert models.default_name(registry) == "some-hyres" and models.registry(registry) == {}
    predictor = models.load_predictor(path=registry)
    assert predictor_fingerprint(predictor).hex() == entry.fingerprint
    assert entry.fingerprint != predictor_fingerprint(load_predictor(ckpt)).hex()   # rounded weights
    photo = from_uint8(to_uint8(data.embedded("test")[0][1][:, :48, :64]))
    encoded = HidenetCodec(predictor, levels=4).encode(photo)
    assert bitstream.read(encoded)[0].fingerprint.hex() == entry.fingerprint
    assert torch.equal(HidenetCodec(models.load_predictor("tiny-cnnp", path=registry)).decode(encoded), photo)
    assert models.by_fingerprint(bytes.fromhex(entry.fingerprint), registry, models.PREDICTOR) == "tiny-cnnp"
    assert models.by_fingerprint(bytes.fromhex(entry.fingerprint), registry) is None      # not a HyRES model


def test_a_shipped_predictor_is_checked_against_its_registration(shipped_predictor):
    registry, entry, _ = shipped_predictor
    file = registry.parent / entry.file
    original = file.read_bytes()
    file.write_bytes(original[:-1] + bytes([original[-1] ^ 1]))
    with pytest.raises(ValueError, match="SHA-256"):
        models.load_predictor(path=registry)
    file.write_bytes(original)
    doc = json.loads(registry.read_text())
    doc["models"][0]["fingerprint"] = "0" * 16
    registry.write_text(json.dumps(doc))
    with pytest.raises(ValueError, match="registered 0000"):
        models.load_predictor(path=registry)
    doc["models"].append({**doc["models"][0], "name": "hyres-like", "kind": models.HYRES})
    registry.write_text(json.dumps(doc))
    with pytest.raises(ValueError, match="not a hideNet predictor"):
        models.load_predictor("hyres-like", path=registry)


def test_the_kit_ships_the_cpu_profile_predictor_as_the_default():
    """The registered default predictor loads (hash and fingerprint checked) and is the cpu profile's CNNP."""
    name = models.default_name(kind=models.PREDICTOR)
    entry = models.registry(kind=models.PREDICTOR)[name]
    predictor = models.load_predictor()
    assert predictor.kind == "cnnp" and "--profile cpu" in entry.source and entry.size < 100_000


def test_a_runs_kept_predictor_ships(tmp_path):
    """``ship_predictor_run``: notebook 01's kept predictor of a run becomes the default predictor."""
    from hyreslib.results import manifest
    from hyreslib.hidenet.predictors import CNNP, UNetLikeLite
    from hyreslib.hidenet.training import save_predictor

    run = manifest.start(tmp_path / "runs" / "cpu", "01_pixel_splitting", profile="cpu", seed=0, device="cpu",
                         params={"steps": 7})
    for arch, model in (("cnnp", CNNP(4, 3)), ("unet", UNetLikeLite(4, 3))):
        run.add_artifact(f"predictor_{arch}", save_predictor(run.path(f"predictor_{arch}.pt"), model))
    run.metrics["kept_predictor"] = "unet"
    run.save()
    registry = tmp_path / "models" / "registry.json"
    registry.parent.mkdir()
    entry = models.ship_predictor_run(tmp_path / "runs" / "cpu", "p", path=registry)
    assert models.load_predictor(path=registry).kind == "unet" and "7 steps" in entry.description
    assert entry.commit == manifest.load(run.run_dir, run.notebook).record["git"]
