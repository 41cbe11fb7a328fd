"""Smoke test: notebook 01 (hideNet pixel splitting) runs through the runner with tiny settings and
leaves its metrics, checkpoint and tables in the manifest."""

from __future__ import annotations

import pytest

from hyreslib import manifest
from hyreslib.runner import run_pipeline


@pytest.mark.notebook
def test_notebook_01_quick_smoke(tmp_path):
    empty = tmp_path / "no_data"          # forces the embedded images: fast and always available
    empty.mkdir()
    overrides = [f"data_root={empty}", "steps=3", "width=4", "archs=[cnnp]", "levels=6", "crop=32", "batch=4",
                 "val_images=1", "val_crop=64", "eval_images=1", "near_steps=[5]",
                 "baseline_codecs=[png, webp-lossless]"]
    run_pipeline(profile="quick", only=["01"], overrides=overrides, runs_root=tmp_path / "runs")
    m = manifest.load(tmp_path / "runs" / "quick", "01_pixel_splitting")
    bpsp = m.metrics["lossless_bpsp"]
    assert {"hidenet-fixed", "hidenet-cnnp", "png", "webp-lossless"} <= set(bpsp)
    assert 0 < bpsp["hidenet-cnnp"] < 8 and 0 < bpsp["hidenet-fixed"] < 8
    assert len(m.metrics["predictor_psnr_per_level"]["fixed"]) == 6
    curve = m.metrics["near_lossless_curves"]["cnnp"]
    assert any(r["mode"] == "near-lossless" and r["max_err"] <= 2 for r in curve)
    assert m.artifact("predictor_cnnp").is_file() and m.artifact("hidenet_results").is_file()
