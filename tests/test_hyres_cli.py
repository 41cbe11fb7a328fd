"""``hyres encode`` / ``decode`` / ``extract-jpeg`` on files, including non-RGB inputs and bad files."""

from __future__ import annotations

import io
import re

import numpy as np
import pytest
import torch
from PIL import Image

from test_hostile_files import png_claiming

from hyreslib.cli import main
from hyreslib.core.images import to_uint8
from hyreslib.hyres import HyresCodec, JpegSettings, MultiScaleRefine, ResidualCodec, ResidualConfig
from hyreslib.hyres import bitstream


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    torch.manual_seed(0)
    residual = ResidualCodec(ResidualConfig(N=16, M=24, depth=4, scale_levels=64))
    refine = MultiScaleRefine(width=8)
    with torch.no_grad():
        residual.g_a[-2].weight.mul_(30.0)
        refine.fuse[-1].weight.normal_(std=0.05)  # not the identity, so skipping it shows
    return HyresCodec(residual, JpegSettings(quality=3), refine).save(tmp_path_factory.mktemp("ckpt") / "codec.ckpt")


def _image(mode: str) -> Image.Image:
    rng = np.random.default_rng(0)
    rgb = Image.fromarray(rng.integers(0, 256, (37, 53, 3), dtype=np.uint8), "RGB")
    if mode == "P":
        return rgb.convert("P", palette=Image.Palette.ADAPTIVE)
    return rgb.convert(mode)


@pytest.mark.parametrize("mode", ["RGB", "L", "RGBA", "P"])
def test_encode_decode_extract(tmp_path, checkpoint, capsys, mode):
    src = tmp_path / "in.png"
    _image(mode).save(src)
    hyr, png, jpg = tmp_path / "x.hyr", tmp_path / "x.png", tmp_path / "x.jpg"
    assert main(["encode", str(src), str(hyr), "-c", str(checkpoint)]) == 0
    out = capsys.readouterr()
    assert "bpp" in out.out and "jpeg" in out.out
    assert ("notice" in out.err) == (mode != "RGB")
    assert main(["decode", str(hyr), str(png), "-c", str(checkpoint)]) == 0
    with Image.open(png) as img:  # pixel for pixel what the library decodes
        assert img.size == (53, 37) and img.mode == "RGB"
        expected = to_uint8(HyresCodec.load(checkpoint).decode(hyr.read_bytes()))
        assert np.array_equal(np.asarray(img), expected)
    assert main(["extract-jpeg", str(hyr), str(jpg)]) == 0
    assert jpg.read_bytes() == bitstream.read(hyr.read_bytes())[1]["jpeg"]  # the embedded base layer itself
    with Image.open(jpg) as img:  # a standard JPEG any viewer opens
        assert img.format == "JPEG" and img.size == (53, 37)


def test_decode_without_the_refiner(tmp_path, checkpoint):
    src, hyr, png = tmp_path / "in.png", tmp_path / "x.hyr", tmp_path / "x.png"
    _image("RGB").save(src)
    assert main(["encode", str(src), str(hyr), "-c", str(checkpoint)]) == 0
    assert main(["decode", str(hyr), str(png), "-c", str(checkpoint), "--no-refine"]) == 0
    plain = to_uint8(HyresCodec.load(checkpoint, use_refine=False).decode(hyr.read_bytes()))
    refined = to_uint8(HyresCodec.load(checkpoint).decode(hyr.read_bytes()))
    with Image.open(png) as img:
        assert np.array_equal(np.asarray(img), plain) and not np.array_equal(plain, refined)


def test_quality_option(tmp_path, checkpoint, capsys):
    src = tmp_path / "in.png"
    _image("RGB").save(src)
    assert main(["encode", str(src), str(tmp_path / "a.hyr"), "-c", str(checkpoint), "-q", "40"]) == 0
    assert main(["extract-jpeg", str(tmp_path / "a.hyr"), str(tmp_path / "a.jpg")]) == 0
    assert "quality 40" in capsys.readouterr().out


def test_bad_files_give_clear_errors(tmp_path, checkpoint, capsys):
    bad = tmp_path / "bad.hyr"
    bad.write_bytes(b"HYR1 this is not a real file")
    assert main(["decode", str(bad), str(tmp_path / "o.png"), "-c", str(checkpoint)]) == 2
    assert "error" in capsys.readouterr().err
    assert main(["extract-jpeg", str(tmp_path / "missing.hyr"), str(tmp_path / "o.jpg")]) == 2
    assert "no such file" in capsys.readouterr().err
    png = io.BytesIO()
    _image("RGB").save(png, format="PNG")
    bad.write_bytes(png.getvalue())
    assert main(["extract-jpeg", str(bad), str(tmp_path / "o.jpg")]) == 2
    assert "not a HyRES file" in capsys.readouterr().err
    assert not (tmp_path / "o.jpg").exists() and not (tmp_path / "o.png").exists()


def _one_line_error(capsys, match: str) -> None:
    err = capsys.readouterr().err
    assert "Traceback" not in err and err.count("\n") == 1 and re.search(match, err), err


@pytest.mark.parametrize("case, match", [
    ("output is a directory", "is a directory"),
    ("quality 0", "quality must be an integer in 1..100"),
    ("quality 101", "quality must be an integer in 1..100"),
    ("65536 wide", "sides must be 1..65535"),
    ("20000 square", "above the limit|decompression bomb"),
    ("max pixels", "above the limit of 0.0 MP"),
    ("unknown config key", "invalid model config"),
    ("target and quality", "either --target-bpp or --jpeg-quality"),
    ("target 0", "target rate must be a positive number"),
])
def test_bad_encode_inputs_give_one_line(tmp_path, checkpoint, capsys, case, match):
    src, out, ckpt = tmp_path / "in.png", tmp_path / "x.hyr", str(checkpoint)
    _image("RGB").save(src)
    extra: list[str] = []
    if case == "output is a directory":
        out.mkdir()
    elif case.startswith("quality"):
        extra = ["-q", case.split()[1]]
    elif case == "max pixels":
        extra = ["--max-pixels", "100"]
    elif case.startswith("target"):
        extra = ["--target-bpp", "0" if case == "target 0" else "1", *(["-q", "5"] if "quality" in case else [])]
    elif case == "unknown config key":
        payload = torch.load(checkpoint, weights_only=True)
        payload["config"]["residual"]["surprise"] = 1
        ckpt = str(tmp_path / "bad.ckpt")
        torch.save(payload, ckpt)
    else:
        w, h = (65536, 1) if case == "65536 wide" else (20000, 20000)
        src.write_bytes(png_claiming(w, h))
    assert main(["encode", str(src), str(out), "-c", ckpt, *extra]) == 2
    _one_line_error(capsys, match)
    assert not out.is_file()


def test_bad_decode_inputs_give_one_line(tmp_path, checkpoint, capsys):
    src, hyr = tmp_path / "in.png", tmp_path / "x.hyr"
    _image("RGB").save(src)
    assert main(["encode", str(src), str(hyr), "-c", str(checkpoint)]) == 0
    capsys.readouterr()
    (tmp_path / "dir.png").mkdir()
    for args, match in [([str(hyr), str(tmp_path / "dir.png")], "is a directory"),
                        ([str(tmp_path), str(tmp_path / "o.png")], "is a directory"),
                        ([str(hyr), str(tmp_path / "o.png"), "--max-pixels", "1000"], "above the limit"),
                        ([str(hyr), str(tmp_path / "o.png"), "--max-memory", "0.01"], "GiB of memory")]:
        assert main(["decode", *args, "-c", str(checkpoint)]) == 2
        _one_line_error(capsys, match)
    assert not (tmp_path / "o.png").exists()
