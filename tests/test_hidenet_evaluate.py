"""hideNet's comparison tables: the near-lossless anchors (JPEG-LS at the same maximum error, JPEG XL
at the matched PSNR) measured from real files, beside hideNet's own curve."""

from __future__ import annotations

import pytest

from hyreslib.datasets.data import embedded
from hyreslib.hidenet import evaluate
from hyreslib.hidenet.predictors import FixedPredictor


@pytest.fixture(scope="module")
def images():
    test = embedded("test")
    return [(name, img[:, :48, :64]) for name, img in (test[0], test[1])]


def test_near_lossless_anchors_and_the_comparison_table(images):
    anchors = evaluate.near_lossless_anchors(images, [1, 4])
    assert [(r["image"], r["codec"], r["bound"]) for r in anchors[:4]] == [
        (images[0][0], "jpeg-ls", 1), (images[0][0], "jxl (matched PSNR)", 1),
        (images[0][0], "jpeg-ls", 4), (images[0][0], "jxl (matched PSNR)", 4)]
    for ls, jxl in zip(anchors[::2], anchors[1::2]):
        assert ls["max_err"] == ls["bound"] and jxl["psnr"] >= ls["psnr"] and jxl["distance"] > 0
        assert ls["bpp"] == pytest.approx(8 * ls["bytes"] / (48 * 64))
    curve = evaluate.curve_means(evaluate.near_lossless_curve(images, FixedPredictor(), [3, 9], 4))
    table = evaluate.near_lossless_table({"fixed": curve}, anchors)
    assert [r["bound"] for r in table] == [1, 4]
    for row, step in zip(table, (3, 9)):
        ours = next(r for r in curve if r["step"] == step)
        assert row["hidenet-fixed"] == {"bpp": ours["bpp"], "psnr": ours["psnr"], "max_err": ours["max_err"]}
        at = [r for r in anchors if r["codec"] == "jpeg-ls" and r["bound"] == row["bound"]]
        assert row["jpeg-ls"]["bpp"] == pytest.approx(sum(r["bpp"] for r in at) / len(images))
        assert row["jxl (matched PSNR)"]["max_err"] >= row["jpeg-ls"]["max_err"]
