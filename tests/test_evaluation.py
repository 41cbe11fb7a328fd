"""``hyres eval``: every codec kind through real files, CompressAI's results layout (read by
``compressai.utils.plot`` itself), per-image records, and one-line errors."""

from __future__ import annotations

import json
import math
import re

import matplotlib
import numpy as np
import pytest
import torch
from PIL import Image

from hyreslib.cli import main
from hyreslib.codecs import standard
from hyreslib.core.images import from_uint8, load_image, to_uint8
from hyreslib.datasets import data
from hyreslib.hyres import HyresCodec, JpegSettings, ResidualCodec, ResidualConfig
from hyreslib.pipeline import baselines
from hyreslib.pipeline.evaluation import checkpoint_labels
from hyreslib.results import metrics
from hyreslib.results.records import ImageRecord

matplotlib.use("Agg")
LAYOUT_KEYS = {"bpp", "psnr-rgb", "ms-ssim-rgb", "encoding_time", "decoding_time"}


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    """Two tiny photographs, one with sides that are not multiples of 8."""
    root = tmp_path_factory.mktemp("images")
    images = data.embedded("test")
    for i, (h, w) in enumerate([(48, 64), (41, 57)]):
        Image.fromarray(to_uint8(images[i][1])[40:40 + h, 60:60 + w]).save(root / f"im{i}.png")
    return root


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    torch.manual_seed(0)
    residual = ResidualCodec(ResidualConfig(N=16, M=24, depth=4, scale_levels=64))
    with torch.no_grad():
        residual.g_a[-2].weight.mul_(30.0)  # a latent worth coding, so the file has z and y parts
    return HyresCodec(residual, JpegSettings(quality=3)).save(tmp_path_factory.mktemp("ckpt") / "codec.ckpt")


def _eval(tmp_path, *args) -> tuple[dict, list[ImageRecord]]:
    out = tmp_path / "r.json"
    assert main(["eval", *args, "--out", str(out)]) == 0
    doc = json.loads(out.read_text())
    records = [ImageRecord.from_dict(r) for r in json.loads((tmp_path / "r.records.json").read_text())["records"]]
    return doc, records


def _check_layout(doc: dict, points: int) -> None:
    assert set(doc) >= {"name", "description", "results"} and doc["name"] and doc["description"]
    assert set(doc["results"]) == LAYOUT_KEYS
    assert all(len(v) == points for v in doc["results"].values())
    assert doc["results"]["bpp"] == sorted(doc["results"]["bpp"])


def _plot(tmp_path, *files, metric="psnr") -> list[dict]:
    """What compressai.utils.plot reads from our files, and its own plot written from them."""
    from compressai.utils.plot.__main__ import main as plot_main, parse_json_file

    png = tmp_path / f"plot-{metric}.png"
    plot_main(["-f", *map(str, files), "-m", metric, "-o", str(png)])
    assert png.stat().st_size > 0
    return [parse_json_file(f, metric) for f in files]


def test_classical_codec_through_files(tmp_path, folder):
    doc, records = _eval(tmp_path, "--codec", "jpeg", "--quality", "60", "20", "--dataset", str(folder))
    _check_layout(doc, 2)
    assert doc["settings"] == ["q20", "q60"] and len(records) == 4
    codec = standard.get_codec("jpeg")
    for q, i in (("q20", 0), ("q60", 1)):
        mine = [r for r in records if r.setting == q]
        for r in mine:  # every number from the bytes and the decoded pixels of a real file
            arr = np.asarray(Image.open(folder / f"{r.image}.png").convert("RGB"))
            stream = codec.encode(arr, int(q[1:]))
            assert r.bytes == len(stream) and r.bpp == metrics.bpp(len(stream), *arr.shape[:2])
            assert r.psnr == pytest.approx(metrics.psnr(from_uint8(codec.decode(stream)), from_uint8(arr)))
        # CompressAI's eval_model: plain means over images
        assert doc["results"]["psnr-rgb"][i] == pytest.approx(np.mean([r.psnr for r in mine]))
        assert doc["results"]["bpp"][i] == pytest.approx(np.mean([r.bpp for r in mine]))
        assert doc["results"]["encoding_time"][i] == pytest.approx(np.mean([r.encode_s for r in mine]))
    psnr, msssim = _plot(tmp_path, tmp_path / "r.json"), _plot(tmp_path, tmp_path / "r.json", metric="ms-ssim")
    assert psnr[0]["name"] == "jpeg" and psnr[0]["xs"] == doc["results"]["bpp"]
    assert list(psnr[0]["ys"]) == doc["results"]["psnr-rgb"]
    assert msssim[0]["ys"][1] == pytest.approx(-10 * math.log10(1 - doc["results"]["ms-ssim-rgb"][1]))


def test_hyres_checkpoint_through_files(tmp_path, folder, checkpoint):
    files = tmp_path / "files"
    doc, records = _eval(tmp_path, "--codec", "hyres", "-c", str(checkpoint), "--dataset", str(folder),
                         "--files", str(files))
    _check_layout(doc, 1)
    codec = HyresCodec.load(checkpoint)
    for r in records:
        stream = (files / "codec" / f"{r.image}.hyr").read_bytes()
        x = load_image(folder / f"{r.image}.png")
        assert r.bytes == len(stream) and r.bpp == metrics.bpp(len(stream), *x.shape[-2:])
        assert r.psnr == pytest.approx(metrics.psnr(codec.decode(stream), x))
        assert set(r.parts) == {"jpeg", "z", "y", "container"} and r.parts["y"] > 0
        assert sum(r.parts.values()) == pytest.approx(r.bpp)
    assert _plot(tmp_path, tmp_path / "r.json")[0]["name"] == "HyRES"


def test_checkpoints_of_one_name_stay_apart(tmp_path, folder, checkpoint):
    """A λ schedule keeps each phase as phaseN/codec.ckpt: each is its own RD point."""
    for phase in ("phase1", "phase2"):
        (tmp_path / phase).mkdir()
        (tmp_path / phase / "codec.ckpt").write_bytes(checkpoint.read_bytes())
    doc, records = _eval(tmp_path, "--codec", "hyres", "-c", str(tmp_path / "phase1" / "codec.ckpt"),
                         "-c", str(tmp_path / "phase2" / "codec.ckpt"), "--dataset", str(folder))
    assert sorted(doc["settings"]) == ["phase1/codec", "phase2/codec"] and len(records) == 4
    assert checkpoint_labels(["a/x.ckpt", "b/y.ckpt"]) == ["x", "y"]
    with pytest.raises(ValueError, match="named twice"):
        checkpoint_labels(["a/x.ckpt", "a/x.ckpt"])


def test_shipped_model_by_name(tmp_path, folder):
    from hyreslib.pipeline import models

    if not models.registry():
        pytest.skip("no registered model")
    name = models.default_name()
    doc, records = _eval(tmp_path, "--codec", "hyres", "--model", name, "--dataset", str(folder), "--limit", "1")
    assert doc["settings"] == [name] and len(records) == 1 and records[0].setting == name
    assert records[0].psnr > 20


def test_hidenet_fixed_lossless_and_near_lossless(tmp_path, folder):
    doc, records = _eval(tmp_path, "--codec", "hidenet", "-c", "fixed", "--step", "5", "--dataset", str(folder))
    _check_layout(doc, 2)
    assert doc["settings"] == ["step5", "lossless"]  # ascending bpp
    lossless = [r for r in records if r.setting == "lossless"]
    assert all(r.psnr == math.inf and r.ms_ssim == 1.0 for r in lossless)
    assert all(r.psnr < math.inf for r in records if r.setting == "step5")
    assert _plot(tmp_path, tmp_path / "r.json")[0]["xs"] == doc["results"]["bpp"]


def test_hidenet_learned_predictor_checkpoint(tmp_path, folder):
    from hyreslib.hidenet.predictors import CNNP
    from hyreslib.hidenet.training import save_predictor

    torch.manual_seed(0)
    ckpt = save_predictor(tmp_path / "p.ckpt", CNNP(6, 5))
    doc, records = _eval(tmp_path, "--codec", "hidenet", "-c", str(ckpt), "--dataset", str(folder))
    assert doc["settings"] == ["lossless"] and "p.ckpt" in doc["description"]
    assert all(r.psnr == math.inf for r in records) and len(records) == 2


def test_hidenet_defaults_to_the_shipped_predictor(tmp_path, folder):
    from hyreslib.pipeline import models

    name = models.default_name(kind=models.PREDICTOR)
    doc, records = _eval(tmp_path, "--codec", "hidenet", "--dataset", str(folder), "--limit", "1")
    assert name in doc["description"] and len(records) == 1 and records[0].psnr == math.inf


def test_published_curves_beside_the_results(tmp_path, folder):
    assert main(["eval", "--codec", "png", "--dataset", str(folder), "--out", str(tmp_path / "r.json"),
                 "--published"]) == 0
    refs = sorted(tmp_path.glob("r.published-*.json"))
    published = baselines.load_published()["curves"]
    assert len(refs) == len(published)
    parsed = _plot(tmp_path, tmp_path / "r.json", *refs)
    assert {p["name"] for p in parsed[1:]} == {f"{n} (published)" for n in published}
    jpeg = json.loads((tmp_path / "r.published-jpeg.json").read_text())
    assert jpeg["results"]["bpp"] == published["jpeg"]["bpp"]


@pytest.mark.parametrize("args, match", [
    (["--codec", "hyres"], "needs a checkpoint"),
    (["--codec", "jpeg", "--model", "x"], "--model names a kit model"),
    (["--codec", "jpeg", "-c", "x.ckpt"], "takes --quality, not a checkpoint"),
    (["--codec", "jpeg", "--quality", "0"], "quality must be an integer in 1..100"),
    (["--codec", "hidenet", "-c", "a", "-c", "b"], "one predictor"),
    (["--codec", "hidenet", "-c", "fixed", "--model", "b"], "one predictor"),
    (["--codec", "hyres", "--model", "nope"], "unknown model 'nope'"),
    (["--codec", "hyres", "-c", "/nonexistent.ckpt"], "nonexistent"),
    (["--codec", "jpeg", "--dataset", "/nonexistent-folder"], "unknown dataset"),
    (["--codec", "jpeg", "--records", "x.json"], "give --out"),
    (["--codec", "hyres", "--model", "x", "--quality", "50"], "--quality is for classical codecs"),
    (["--codec", "webp", "--step", "3"], "--step is for --codec hidenet"),
])
def test_bad_input_is_one_line(capsys, folder, args, match):
    argv = ["eval", *args] + ([] if "--dataset" in args else ["--dataset", str(folder)])
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err and err.count("\n") == 1 and re.search(match, err), err


def test_dataset_names():
    from hyreslib.pipeline.evaluation import open_dataset

    assert open_dataset("embedded-validation").split == "validation"
    assert open_dataset("embedded").split == "test"
    with pytest.raises(ValueError, match="no 'test' split"):
        open_dataset("cid22-test")


def test_record_reads_older_shapes():
    new = ImageRecord("kodim01", "jpeg", "q30", 0.5, 30.0, 0.95, 100, 40, 40, 0.1, 0.2, {"jpeg": 0.5}, {"mode": "x"})
    assert ImageRecord.from_dict(new.to_dict()) == new
    old = ImageRecord.from_dict({"name": "kodim01", "curve": "HyRES", "point": "HyRES λ=0.01", "bpp": 0.3,
                                 "psnr": 29.0, "ms_ssim": None, "bpp_header": 0.01})
    assert (old.image, old.codec, old.setting, old.parts) == ("kodim01", "HyRES", "HyRES λ=0.01", {"container": 0.01})
    sweep = ImageRecord.from_dict({"image": "a", "codec": "png", "quality": None, "bpp": 9.0, "psnr": math.inf})
    assert sweep.setting == "lossless" and sweep.extra == {"quality": None}
    with pytest.raises(ValueError, match="not an image record: no psnr"):
        ImageRecord.from_dict({"image": "a", "codec": "png", "setting": "x", "bpp": 1.0})


def test_classical_default_is_the_published_grid():
    from hyreslib.cli import build_parser
    from hyreslib.pipeline.evaluation import subject_from_args

    subject = subject_from_args(build_parser().parse_args(["eval", "--codec", "webp"]))
    assert [p.setting for p in subject.points] == [f"q{q}" for q in range(5, 100, 5)]
    lossless = subject_from_args(build_parser().parse_args(["eval", "--codec", "png", "--quality", "10", "20"]))
    assert [p.setting for p in lossless.points] == ["lossless"]
