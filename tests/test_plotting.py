"""RD figures: published reference curves can never be mistaken for curves the kit measured."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

from hyreslib.plotting import rd_figure  # noqa: E402

MEASURED = {"jpeg": {"bpp": [0.2, 0.5, 1.0], "psnr": [24.0, 28.0, 31.0], "ms_ssim": [0.9, 0.95, 0.98]}}
PUBLISHED = {"jpeg": {"bpp": [0.22, 0.51, 1.04], "psnr": [23.8, 29.0, 32.8]}}


def test_published_curves_are_dashed_hollow_labelled_and_psnr_only():
    fig = rd_figure(MEASURED, PUBLISHED)
    psnr_ax, msssim_ax = fig.axes
    lines = {line.get_label(): line for line in psnr_ax.lines}
    assert set(lines) == {"jpeg", "jpeg (published)"}
    published, measured = lines["jpeg (published)"], lines["jpeg"]
    assert published.get_linestyle() == "--" and published.get_markerfacecolor() == "none"
    assert measured.get_linestyle() == "-" and measured.get_markerfacecolor() != "none"
    assert list(published.get_xdata()) == PUBLISHED["jpeg"]["bpp"]
    assert [line.get_label() for line in msssim_ax.lines] == ["jpeg"]  # not on the MS-SSIM basis
    assert "jpeg (published)" in [t.get_text() for t in psnr_ax.get_legend().get_texts()]
