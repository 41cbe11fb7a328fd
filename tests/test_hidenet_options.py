"""hideNet coding options (colour space, channel-conditional coding, revision of the fixed
constants): the transform, bit-exact
round trips of every option through real files, what the header and fingerprint carry, old and
hostile files, the CLI switches and the ablation table."""

from __future__ import annotations

import random

import numpy as np
import pytest
import torch
from PIL import Image
from test_hidenet_codec import _recrc
from test_hidenet_predictors import perturbed

from hyreslib.cli import main
from hyreslib.codecs.container import CorruptStreamError, ModelMismatchError, pack, unpack
from hyreslib.core.images import save_image
from hyreslib.datasets.data import embedded
from hyreslib.hidenet import bitstream, evaluate
from hyreslib.hidenet.codec import HidenetCodec, predictor_fingerprint
from hyreslib.hidenet.colour import colour_space
from hyreslib.hidenet.predictors import CNNP, FixedPredictor, build_predictor
from hyreslib.hidenet.split import evens
from hyreslib.hidenet.training import load_predictor, save_predictor

OPTIONS = [("rgb", True), ("rgb", False), ("ycocg-r", True), ("ycocg-r", False)]
# A 17x12 crop of embedded("test")[0] coded with 3 levels by the build that wrote version 2 (RGB, conditional).
V2_FILE = bytes.fromhex(
    "48444e310205150c0011000300010001a8fdfca9144c114776c83b073b1c1c1fa067d332c03576ba8d355844edda56a103f07be2d0"
    "cfe6df93fd5d95410a5024e0c4610fdcb2cdff608c878c57e9436ab6590dee1000000018db40bad8d9142f1c5e7b667b0d95629a"
    "abc2305d1e04000028c2aa17ab0c1cbbebd62a0a827fc232dc1c408d9a948c820dee1575830babdf962fbcb7113c43d50d3451d1"
    "e9722b9bd5423d49e5c4c1011777243bc3e124d286b4746a690897609c7efe56839d6d716cd6c4e27cf9a1df794caa280300134131be")


@pytest.fixture(scope="module")
def photo() -> torch.Tensor:
    return embedded("test")[0][1][:, :45, :61]


def test_ycocg_r_is_exactly_invertible_and_in_range():
    v = torch.cat([torch.arange(0, 256, 3), torch.tensor([1, 254, 255])]).float()
    rgb = torch.stack(torch.meshgrid(v, v, v, indexing="ij")).reshape(3, 1, -1)
    space = colour_space("ycocg-r")
    x = space.forward(rgb)
    assert torch.equal(space.inverse(x), rgb) and torch.equal(x, x.round())
    lo, hi = space.bounds(x)
    assert (x >= lo).all() and (x <= hi).all() and x[1].min() == -255 and x[2].max() == 255
    assert torch.equal(colour_space("rgb").inverse(colour_space("rgb").forward(rgb)), rgb)


@pytest.mark.parametrize("colour,conditional", OPTIONS)
def test_every_option_round_trips_through_a_file(tmp_path, photo, colour, conditional):
    learned = perturbed(CNNP(6, 5, colour=colour, conditional=conditional), scale=0.02)
    for pred in (FixedPredictor(colour, conditional), learned):
        path = tmp_path / f"{pred.kind}.hdn"
        path.write_bytes(HidenetCodec(pred, levels=5).encode(photo))
        data = path.read_bytes()
        decoder = HidenetCodec(None if pred.kind == "fixed" else pred)
        out = decoder.decode_detailed(data)
        assert out.verified and torch.equal(out.image, photo)
        assert (out.header.colour, out.header.conditional) == (colour, conditional)
        assert data[4] == bitstream.VERSION == 3
        # Progressive: k levels decode to the exact even set of the original (the transform is per pixel).
        sets = evens(photo, 5)
        for k in (1, 3):
            assert torch.equal(decoder.decode(data, levels=k), sets[5 - k])


@pytest.mark.parametrize("colour", ["rgb", "ycocg-r"])
def test_independent_channels_ignore_the_decoded_ones_and_conditional_ones_do_not(colour):
    even, odd = torch.randint(0, 256, (1, 3, 6, 9)).float(), torch.randint(0, 256, (1, 3, 6, 8)).float()
    other = odd.flip(-1)
    for conditional in (False, True):
        for pred in (FixedPredictor(colour, conditional), perturbed(CNNP(6, 3, colour=colour, conditional=conditional))):
            with torch.no_grad():
                ctx = pred.context(even, 1, odd.shape[-1])
                a, b = pred.channel(ctx, 2, odd[:, :2]), pred.channel(ctx, 2, other[:, :2])
            same = torch.equal(a[0], b[0]) and torch.equal(a[1], b[1])
            assert same != conditional, (pred.kind, conditional)


def test_options_change_the_rate_the_header_and_the_fingerprint(photo):
    sizes, prints, option_bytes = {}, set(), set()
    for colour, conditional, revision in [(c, k, 2) for c, k in OPTIONS] + [("rgb", True, 1)]:
        pred = FixedPredictor(colour, conditional, revision)
        data = HidenetCodec(pred, levels=5).encode(photo)
        sizes[(colour, conditional, revision)] = len(data)
        prints.add(bitstream.read(data)[0].fingerprint)
        option_bytes.add(unpack(data, bitstream.MAGIC, [3])[1][0][9])
        prints.add(predictor_fingerprint(CNNP(4, 3, colour=colour, conditional=conditional, revision=revision)))
        assert torch.equal(HidenetCodec().decode(data), photo)      # the header alone rebuilds the fixed predictor
    assert len(prints) == 10 and option_bytes == {8, 9, 10, 11, 6}
    independent = sizes[("rgb", False, 2)]
    assert sizes[("rgb", True, 2)] < independent and sizes[("ycocg-r", False, 2)] < independent
    # The options of the version-2 codec add nothing to a config (old checkpoints and files keep their fingerprints).
    assert FixedPredictor("rgb", True, 1).options() == {} and "colour" not in CNNP(4, 3, revision=1).config()
    old = build_predictor({"arch": "cnnp", "width": 4, "levels": 3, "shared": True})
    assert (old.colour, old.conditional, old.revision) == ("rgb", True, 1)
    config = CNNP(4, 3).config()
    config["constants"]["base"] = (0.5, 0.5, 0.5)
    with pytest.raises(ValueError, match="fixed constants"):
        build_predictor(config)


def test_checkpoints_keep_the_options(tmp_path, photo):
    pred = perturbed(CNNP(6, 4, colour="ycocg-r", conditional=False), scale=0.02)
    back = load_predictor(save_predictor(tmp_path / "p.pt", pred))
    assert (back.colour, back.conditional) == ("ycocg-r", False)
    assert predictor_fingerprint(back) == predictor_fingerprint(pred)
    data = HidenetCodec(pred, levels=4).encode(photo)
    assert torch.equal(HidenetCodec(back).decode(data), photo)
    with pytest.raises(ModelMismatchError, match=r"predictor mismatch: the file was coded with .*ycocg-r"):
        HidenetCodec(perturbed(CNNP(6, 4), scale=0.02)).decode(data)


def test_version_2_files_still_decode_and_older_or_newer_ones_are_refused():
    out = HidenetCodec().decode_detailed(V2_FILE)
    assert out.verified and torch.equal(out.image, embedded("test")[0][1][:, :12, :17]) and out.header.conditional
    _, chunks = unpack(V2_FILE, bitstream.MAGIC, [2])
    for version, match in ((1, "older build's rANS coder"), (4, "format version 4")):
        with pytest.raises(CorruptStreamError, match=match):
            HidenetCodec().decode(pack(bitstream.MAGIC, version, chunks))


def test_hostile_option_bytes_are_refused(photo):
    data = HidenetCodec(FixedPredictor("ycocg-r"), levels=3).encode(photo[:, :20, :24])
    _, chunks = unpack(data, bitstream.MAGIC, [3])
    for pos, value, match in ((9, 4, "options 4"), (9, 255, "options 255"), (9, 2 + (7 << 2), "options 30"),
                              (5, 1, "not a valid combination")):
        header = bytearray(chunks[0])      # <HHBBHBB8sI: mode at byte 5, step at 6, options at 9
        header[pos] = value
        if pos == 5:
            header[6] = 3           # near-lossless with step 3, in YCoCg-R
        with pytest.raises(CorruptStreamError, match=match):
            HidenetCodec().decode(pack(bitstream.MAGIC, 3, [bytes(header), *chunks[1:]]))
    with pytest.raises(ValueError, match="near-lossless coding needs colour space rgb"):
        HidenetCodec(FixedPredictor("ycocg-r"), "near-lossless", 3)


def test_damaged_ycocg_files_raise_clean_errors(photo):
    crop = photo[:, :16, :22]
    data = HidenetCodec(FixedPredictor("ycocg-r"), levels=4).encode(crop)
    rng = random.Random(1)
    for _ in range(60):
        b = bytearray(data)
        b[rng.randrange(len(b))] ^= 1 << rng.randrange(8)
        try:
            out = HidenetCodec().decode_detailed(_recrc(bytes(b)))
        except (CorruptStreamError, ValueError):
            continue
        assert torch.equal(out.image, crop) or not out.verified


def test_cli_switches(tmp_path, capsys):
    img = embedded("test")[1][1][:, :24, :40]
    src = save_image(img, tmp_path / "in.png")
    rgb = np.asarray(Image.open(src).convert("RGB"))
    out = tmp_path / "a.hdn"
    args = ["hidenet", "encode", str(src), str(out), "--predictor", "fixed", "--levels", "3"]
    assert main([*args, "--colour", "ycocg-r", "--independent"]) == 0
    header = bitstream.read(out.read_bytes())[0]
    assert (header.colour, header.conditional) == ("ycocg-r", False)
    assert main(["hidenet", "decode", str(out), str(tmp_path / "a.png")]) == 0
    assert np.array_equal(np.asarray(Image.open(tmp_path / "a.png")), rgb)
    capsys.readouterr()
    assert main([*args, "--colour", "ycocg-r", "--mode", "near-lossless", "--step", "3"]) == 2
    ckpt = save_predictor(tmp_path / "p.pt", CNNP(4, 3))
    assert main(["hidenet", "encode", str(src), str(out), "--checkpoint", str(ckpt), "--colour", "ycocg-r"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 2 and "colour space rgb" in err and "brings its own options" in err


def test_ablation_table_is_measured_from_real_files(photo):
    images = [("a", photo[:, :32, :40]), ("b", photo[:, 8:40, 10:50])]
    learned = {"cnnp": perturbed(CNNP(4, 4, colour="ycocg-r"), scale=0.02)}
    rows = evaluate.ablation_table(images, 4, learned)
    assert [r["predictor"] for r in rows] == [s[0] for s in evaluate.ABLATION_STEPS] + ["cnnp"]
    options = [(r["colour"], r["conditional"], r["revision"]) for r in rows[:-1]]
    assert options == [s[1:] for s in evaluate.ABLATION_STEPS]
    ref = next(r for r in rows if r["predictor"] == evaluate.REFERENCE_STEP)
    assert ref["delta"] == 0 and ref["saving"] == 0
    sizes = [len(HidenetCodec(learned["cnnp"], levels=4).encode(img)) for _, img in images]
    expected = np.mean([8 * n / (3 * 32 * 40) for n in sizes])
    assert rows[-1]["bpsp"] == pytest.approx(expected) and rows[-1]["images"] == 2
