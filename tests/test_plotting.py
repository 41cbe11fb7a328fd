"""Figures that must not mislead: coinciding curves stay visible, axes fit what is shown, and published
reference curves can never be mistaken for curves the kit measured."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from hyreslib.results.plotting import rd_figure  # noqa: E402


def test_coinciding_curves_are_drawn_distinguishably():
    same = {"bpp": [0.2, 0.4], "psnr": [24.0, 26.0], "ms_ssim": [0.9, 0.95]}
    fig = rd_figure({"HyRES": same, "HyRES + refine": dict(same)})
    first, second = fig.axes[0].get_lines()
    assert first.get_marker() != second.get_marker() and first.get_linestyle() != second.get_linestyle()
    # the one below shows around the one on top
    assert first.get_markersize() > second.get_markersize() and first.get_linewidth() > second.get_linewidth()
    assert first.get_markerfacecolor() == "none"
    assert "−10·log10(1 − MS-SSIM)" in fig.axes[1].get_ylabel()
    plt.close(fig)


def test_y_axis_fits_the_points_inside_the_x_limit():
    curves = {"low rate": {"bpp": [0.1, 0.3], "psnr": [22.0, 25.0]},
              "near-lossless": {"bpp": [0.5, 6.0], "psnr": [30.0, 50.0]}}
    fig = rd_figure(curves, xmax=3.0)
    lo, hi = fig.axes[0].get_ylim()
    assert fig.axes[0].get_xlim()[1] == 3.0 and 21 < lo < 22 and 30 < hi < 32
    plt.close(fig)


def test_live_training_plot_replaces_its_figure_without_clearing_the_cell(monkeypatch):
    """Clearing the output would also erase the progress bar (and its ETA) above the plot."""
    import IPython.display as display_mod

    from hyreslib.hyres.figures import live_training_plot

    shown, updated = [], []

    class Handle:
        def update(self, fig):
            updated.append(fig)

    def display(fig, display_id=False):
        shown.append(fig)
        return Handle()

    def clear_output(*args, **kwargs):
        raise AssertionError("clear_output erases the progress bar")

    monkeypatch.setattr(display_mod, "display", display)
    monkeypatch.setattr(display_mod, "clear_output", clear_output)
    on_log = live_training_plot()

    class Hist:
        rows = [{"step": 1, "rd_loss": 2.0, "psnr": 20.0, "bpp_y": 0.1, "bpp_z": 0.01}]

    on_log(Hist)
    on_log(Hist)
    assert len(shown) == 1 and len(updated) == 1


MEASURED = {"jpeg": {"bpp": [0.2, 0.5, 1.0], "psnr": [24.0, 28.0, 31.0], "ms_ssim": [0.9, 0.95, 0.98]}}
PUBLISHED = {"jpeg": {"bpp": [0.22, 0.51, 1.04], "psnr": [23.8, 29.0, 32.8]}}


def test_published_curves_are_dashed_labelled_and_psnr_only():
    fig = rd_figure(MEASURED, PUBLISHED)
    psnr_ax, msssim_ax = fig.axes
    lines = {line.get_label(): line for line in psnr_ax.lines}
    assert set(lines) == {"jpeg", "jpeg (published)"}
    published, measured = lines["jpeg (published)"], lines["jpeg"]
    assert published.get_linestyle() == "--" and measured.get_linestyle() != "--"
    assert list(published.get_xdata()) == PUBLISHED["jpeg"]["bpp"]
    assert [line.get_label() for line in msssim_ax.lines] == ["jpeg"]  # not on the MS-SSIM basis
    assert "jpeg (published)" in [t.get_text() for t in psnr_ax.get_legend().get_texts()]
