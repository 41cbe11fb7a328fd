"""``hyres hidenet encode|decode`` end to end on files."""

from __future__ import annotations

import numpy as np
from PIL import Image
from test_hidenet_predictors import perturbed

from hyreslib.cli import main
from hyreslib.core.images import save_image
from hyreslib.datasets.data import embedded
from hyreslib.hidenet.predictors import CNNP
from hyreslib.hidenet.training import save_predictor


def _image(tmp_path):
    img = embedded("test")[1][1][:, :40, :56]
    return save_image(img, tmp_path / "in.png"), np.asarray(Image.open(tmp_path / "in.png").convert("RGB"))


def test_fixed_lossless_and_progressive(tmp_path, capsys):
    src, rgb = _image(tmp_path)
    assert main(["hidenet", "encode", str(src), str(tmp_path / "a.hdn"), "--predictor", "fixed", "--levels", "4"]) == 0
    assert "bits/sub-pixel" in capsys.readouterr().out
    assert main(["hidenet", "decode", str(tmp_path / "a.hdn"), str(tmp_path / "a.png")]) == 0
    assert np.array_equal(np.asarray(Image.open(tmp_path / "a.png")), rgb)
    assert main(["hidenet", "decode", str(tmp_path / "a.hdn"), str(tmp_path / "b.png"), "--levels", "2"]) == 0
    assert Image.open(tmp_path / "b.png").size == (28, 20)
    assert main(["hidenet", "decode", str(tmp_path / "a.hdn"), str(tmp_path / "c.png"), "--levels", "2", "--fill"]) == 0
    assert Image.open(tmp_path / "c.png").size == (56, 40)


def test_checkpoint_near_lossless_and_errors(tmp_path, capsys):
    src, rgb = _image(tmp_path)
    ckpt = save_predictor(tmp_path / "p.pt", perturbed(CNNP(6, 5), scale=0.02))
    assert main(["hidenet", "encode", str(src), str(tmp_path / "n.hdn"), "--checkpoint", str(ckpt),
                 "--mode", "near-lossless", "--step", "5"]) == 0
    assert main(["hidenet", "decode", str(tmp_path / "n.hdn"), str(tmp_path / "n.png"), "--checkpoint", str(ckpt)]) == 0
    out = np.asarray(Image.open(tmp_path / "n.png")).astype(int)
    assert np.abs(out - rgb).max() <= 2
    capsys.readouterr()
    # No checkpoint for a learned file, a missing step, a damaged file: exit 2 with a message.
    assert main(["hidenet", "decode", str(tmp_path / "n.hdn"), str(tmp_path / "x.png")]) == 2
    assert main(["hidenet", "encode", str(src), str(tmp_path / "y.hdn"), "--predictor", "fixed",
                 "--mode", "near-lossless"]) == 2
    data = (tmp_path / "n.hdn").read_bytes()
    (tmp_path / "bad.hdn").write_bytes(data[: len(data) // 2])
    assert main(["hidenet", "decode", str(tmp_path / "bad.hdn"), str(tmp_path / "z.png"), "--checkpoint", str(ckpt)]) == 2
    err = capsys.readouterr().err
    assert "checkpoint" in err and "--step" in err and "truncated" in err


def test_bad_inputs_give_one_line_and_write_nothing(tmp_path, capsys):
    src, _ = _image(tmp_path)
    assert main(["hidenet", "encode", str(src), str(tmp_path / "a.hdn"), "--predictor", "fixed", "--levels", "3"]) == 0
    capsys.readouterr()
    (tmp_path / "d.png").mkdir()
    cases = [(["decode", str(tmp_path), str(tmp_path / "o.png")], "is a directory"),
             (["decode", str(tmp_path / "a.hdn"), str(tmp_path / "d.png")], "is a directory"),
             (["decode", str(tmp_path / "a.hdn"), str(tmp_path / "o.xyz")], "unknown image file suffix"),
             (["decode", str(tmp_path / "a.hdn"), str(tmp_path / "o.png"), "--max-pixels", "100"], "above the limit"),
             (["decode", str(tmp_path / "a.hdn"), str(tmp_path / "o.png"), "--max-memory", "0.01"], "GiB of memory"),
             (["encode", str(src), str(tmp_path / "b.hdn"), "--predictor", "fixed", "--levels", "-1"], "levels"),
             (["encode", str(src), str(tmp_path / "b.hdn"), "--predictor", "fixed", "--max-pixels", "10"], "limit")]
    for args, match in cases:
        assert main(["hidenet", *args]) == 2
        err = capsys.readouterr().err
        assert "Traceback" not in err and err.count("\n") == 1 and match in err, err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.hdn", "d.png", "in.png"]


def test_the_shipped_predictor_is_the_default(tmp_path, capsys):
    """No predictor named: the registry's default predictor encodes (its fingerprint is in the header)
    and the decoder finds it from that fingerprint; the file round-trips bit-exactly.
    ``--predictor fixed`` still gives the fixed predictor, ``--max-error e`` the step 2e+1."""
    from hyreslib.pipeline import models
    from hyreslib.hidenet import bitstream

    src, rgb = _image(tmp_path)
    assert main(["hidenet", "encode", str(src), str(tmp_path / "d.hdn"), "--levels", "4"]) == 0
    header = bitstream.read((tmp_path / "d.hdn").read_bytes())[0]
    default = models.registry(kind=models.PREDICTOR)[models.default_name(kind=models.PREDICTOR)]
    assert not header.fixed and header.fingerprint.hex() == default.fingerprint
    assert main(["hidenet", "decode", str(tmp_path / "d.hdn"), str(tmp_path / "d.png")]) == 0
    assert np.array_equal(np.asarray(Image.open(tmp_path / "d.png")), rgb)
    assert main(["hidenet", "encode", str(src), str(tmp_path / "f.hdn"), "--predictor", "fixed", "--levels", "4"]) == 0
    assert bitstream.read((tmp_path / "f.hdn").read_bytes())[0].fixed
    assert main(["hidenet", "encode", str(src), str(tmp_path / "n.hdn"), "--mode", "near-lossless",
                 "--max-error", "2"]) == 0
    assert bitstream.read((tmp_path / "n.hdn").read_bytes())[0].step == 5
    assert main(["hidenet", "decode", str(tmp_path / "n.hdn"), str(tmp_path / "n.png")]) == 0
    assert np.abs(np.asarray(Image.open(tmp_path / "n.png")).astype(int) - rgb).max() <= 2
    capsys.readouterr()
    for args, match in ((["--colour", "ycocg-r"], "--predictor fixed"), (["--predictor", "nope"], "unknown model"),
                        (["--mode", "near-lossless", "--max-error", "0"], "at least 1")):
        assert main(["hidenet", "encode", str(src), str(tmp_path / "x.hdn"), *args]) == 2
        assert match in capsys.readouterr().err
