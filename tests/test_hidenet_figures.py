"""hideNet's notebook figures (:mod:`hyreslib.hidenet.figures`) draw what they are given."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import pytest  # noqa: E402
from test_hidenet_predictors import perturbed  # noqa: E402

from hyreslib.core.images import from_uint8, to_uint8  # noqa: E402
from hyreslib.datasets.data import embedded  # noqa: E402
from hyreslib.hidenet import evaluate, figures, split  # noqa: E402
from hyreslib.hidenet.codec import HidenetCodec  # noqa: E402
from hyreslib.hidenet.predictors import CNNP, FixedPredictor  # noqa: E402


@pytest.fixture(scope="module")
def image():
    return embedded("test")[0][1][:, :40, :48]


def _texts(fig) -> str:
    return " ".join(t.get_text() for ax in fig.axes for t in (ax.title, *ax.texts)) + " " + (
        fig._suptitle.get_text() if fig._suptitle else "")


def test_image_figures(image):
    pyr = split.split(image.unsqueeze(0), 4)
    fig = figures.split_pieces(pyr)
    assert f"base {pyr.base.shape[-1]}x{pyr.base.shape[-2]}" in _texts(fig) and len(fig.axes) >= 5
    fixed, learned = FixedPredictor(), perturbed(CNNP(4, 4))
    fig = figures.predictions(image, fixed, learned, "cnnp", "level 0")
    assert "cnnp error (x4)" in _texts(fig) and "fixed prediction" in _texts(fig)
    with pytest.raises(ValueError, match="colour spaces"):
        figures.predictions(image, FixedPredictor("ycocg-r"), learned, "cnnp", "t")
    x = from_uint8(to_uint8(image))
    codec = HidenetCodec(fixed, levels=4)
    data = codec.encode(x)
    fig = figures.progressive(evaluate.progressive(x, data, codec, counts=[0, 4]))
    assert "(4 levels)" in _texts(fig)
    parts = evaluate.level_bytes(data)
    fig = figures.bits_per_part(parts, x.numel(), "bits")
    assert [round(p.get_height(), 6) for p in fig.axes[0].patches] == [round(8 * v / x.numel(), 6) for v in
                                                                       parts.values()]
    plt.close("all")


def test_rate_figures():
    quality = {"fixed": {f"psnr_l{k}": 30.0 - k for k in range(3)}, "cnnp": {f"psnr_l{k}": 31.0 - k for k in range(3)}}
    fig = figures.prediction_psnr(quality, 3)
    assert [list(line.get_ydata()) for line in fig.axes[0].lines] == [[30, 29, 28], [31, 30, 29]]
    curves = {"fixed": [{"mode": "near-lossless", "bound": 1, "bpp": 6.0, "psnr": 50.0},
                        {"mode": "near-lossless", "bound": 2, "bpp": 5.0, "psnr": 45.0},
                        {"mode": "generative", "bound": None, "bpp": 0.1, "psnr": 20.0}]}
    table = [{"bound": e, "hidenet-fixed": {"bpp": 0, "psnr": 0, "max_err": e},
              "jpeg-ls": {"bpp": 8.0 / e, "psnr": 52.0 - 5 * e, "max_err": e}} for e in (1, 2)]
    fig = figures.near_lossless(curves, table)
    lines = {line.get_label(): line for line in fig.axes[0].lines}
    assert set(lines) == {"hideNet-fixed near-lossless", "hideNet-fixed generative", "jpeg-ls"}
    assert list(lines["jpeg-ls"].get_xdata()) == [8.0, 4.0] and list(lines["jpeg-ls"].get_ydata()) == [47.0, 42.0]
    assert "δ=2" in _texts(fig)
    plt.close("all")
