"""The comparison viewer, driven headless through its controls."""

from __future__ import annotations

import io

import numpy as np
import pytest
import torch
from PIL import Image

from hyreslib.results import manifest, recons
from hyreslib.results.widgets import ORIGINAL, ReconstructionComparer

PNG = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(autouse=True)
def _close_widgets():
    yield
    import ipywidgets

    ipywidgets.Widget.close_all()


@pytest.fixture
def comparer(tmp_path):
    torch.manual_seed(0)
    originals = {"a": torch.rand(3, 40, 60), "b": torch.rand(3, 30, 30)}
    run = manifest.start(tmp_path, "02_x", profile="quick", seed=0, device="cpu")
    recons.save(run, "codec A", [("a", torch.zeros(3, 40, 60), 0.5, 20.0, 0.9)])
    recons.save(run, "codec B", [("a", torch.ones(3, 40, 60), 1.5, 30.0, None), ("b", torch.ones(3, 30, 30), 2.0, 25.0, None)])
    run.save()
    return ReconstructionComparer(originals, recons.collect(tmp_path), display_px=120)


def _decode(png: bytes) -> np.ndarray:
    assert png[:8] == PNG
    return np.asarray(Image.open(io.BytesIO(png)))


def test_collect_reads_what_notebooks_saved(tmp_path, comparer):
    found = recons.collect(tmp_path)
    assert {(r.label, r.image) for r in found} == {("codec A", "a"), ("codec B", "a"), ("codec B", "b")}
    assert all(r.notebook == "02_x" for r in found)


def test_initial_render_and_caption(comparer):
    assert comparer.left.options == (ORIGINAL, "codec A", "codec B")
    assert comparer.view_a.value[:8] == PNG and comparer.view_b.value[:8] == PNG
    assert "codec B: 1.500 bpp, 30.00 dB" in comparer.caption.value


def test_wipe_puts_a_left_of_the_cut_and_b_right(comparer):
    comparer.left.value, comparer.right.value = "codec A", "codec B"  # black vs white
    comparer.mode.value = "wipe"
    comparer.wipe.value = 0.25
    img = _decode(comparer.view_a.value)
    cut = round(0.25 * img.shape[1])
    assert (img[:, :cut] == 0).all() and (img[:, cut:] == 255).all()
    assert comparer.view_b.layout.display == "none"


def test_difference_and_zoom(comparer):
    comparer.left.value, comparer.right.value = "codec A", "codec B"
    comparer.mode.value = "difference ×4"
    assert (_decode(comparer.view_b.value) == 255).all()
    full = _decode(comparer.view_a.value).shape
    comparer.zoom.value = 4
    zoomed = _decode(comparer.view_a.value)
    assert zoomed.shape[0] >= full[0] // 2  # enlarged back towards the display size, nearest neighbour
    assert len(np.unique(zoomed.reshape(-1, 3), axis=0)) == 1  # all-black crop of codec A


def test_changing_image_keeps_valid_choices(comparer):
    comparer.left.value = "codec A"
    comparer.image.value = "b"  # codec A has no reconstruction of b
    assert comparer.left.value == ORIGINAL and comparer.right.value in comparer.right.options
    assert comparer.left.options == (ORIGINAL, "codec B")


def test_static_figure_is_deterministic(comparer, tmp_path):
    comparer.mode.value = "difference ×4"
    p1 = tmp_path / "one.png"
    p2 = tmp_path / "two.png"
    comparer.static_figure(p1)
    comparer.static_figure(p2)
    assert p1.read_bytes() == p2.read_bytes()


def test_changing_image_keeps_a_and_b_when_the_new_image_has_them(tmp_path):
    run = manifest.start(tmp_path, "03_x", profile="quick", seed=0, device="cpu")
    for label, value in (("codec A", 0.0), ("codec B", 1.0)):
        recons.save(run, label, [(n, torch.full((3, 20, 20), value), 1.0, 20.0, None) for n in ("a", "b")])
    run.save()
    viewer = ReconstructionComparer({"a": torch.rand(3, 20, 20), "b": torch.rand(3, 20, 20)},
                                    recons.collect(tmp_path), display_px=40)
    viewer.left.value, viewer.right.value = "codec A", "codec B"
    viewer.image.value = "b"
    assert (viewer.left.value, viewer.right.value) == ("codec A", "codec B")
    assert "<b>b</b>" in viewer.caption.value and "codec B" in viewer.caption.value


def test_default_pair_is_jpeg_base_against_best_hyres(tmp_path):
    run = manifest.start(tmp_path, "03_x", profile="quick", seed=0, device="cpu")
    x = torch.rand(3, 20, 20)
    recons.save(run, "JPEG base q1", [("a", x, 0.1, 20.0, None)], curve="JPEG base")
    recons.save(run, "HyRES λ=0.045", [("a", x, 0.4, 26.0, None)], curve="HyRES")
    recons.save(run, "HyRES+refine λ=0.045", [("a", x, 0.4, 26.5, None)], curve="HyRES + refine")
    recons.save(run, "hideNet near-lossless q3", [("a", x, 6.0, 45.0, None)], curve="hideNet near-lossless")
    run.save()
    viewer = ReconstructionComparer({"a": x}, recons.collect(tmp_path), display_px=40)
    viewer.select()
    assert (viewer.left.value, viewer.right.value) == ("JPEG base q1", "HyRES+refine λ=0.045")


def test_static_figure_leaves_the_live_controls_alone(comparer):
    comparer.left.value, comparer.right.value = "codec A", "codec B"
    before = comparer.view_a.value
    comparer.static_figure(zoom=3, mode="wipe")
    assert (comparer.mode.value, comparer.zoom.value) == ("side by side", 1)
    assert comparer.view_a.value == before


def test_the_shipped_pair_is_the_nearest_shipped_point_against_the_runs_best(tmp_path):
    run = manifest.start(tmp_path, "05_x", profile="quick", seed=0, device="cpu")
    x = torch.rand(3, 20, 20)
    recons.save(run, "HyRES λ=0.016", [("a", x, 0.40, 26.0, None)], curve="HyRES")
    recons.save(run, "HyRES λ=0.002", [("a", x, 0.20, 24.0, None)], curve="HyRES")
    for label, bpp in (("shipped (cpu profile) λ=0.004 q7", 0.2), ("shipped (cpu profile) λ=0.016 q20", 0.45)):
        recons.save(run, label, [("a", x, bpp, 27.0, None)], curve="shipped (cpu profile)")
    run.save()
    viewer = ReconstructionComparer({"a": x}, recons.collect(tmp_path), display_px=40)
    assert viewer.shipped_pair("a") == ("shipped (cpu profile) λ=0.016 q20", "HyRES λ=0.016")
    run2 = manifest.start(tmp_path / "other", "05_x", profile="quick", seed=0, device="cpu")
    recons.save(run2, "HyRES λ=0.016", [("a", x, 0.40, 26.0, None)], curve="HyRES")
    run2.save()
    assert ReconstructionComparer({"a": x}, recons.collect(tmp_path / "other"), display_px=40).shipped_pair("a") is None
