"""End to end: every notebook of the pipeline, in order, through the runner, on the embedded images
with tiny settings; each leaves its metrics and artifacts in its manifest (checked here per
notebook, so the pipeline is also each notebook's smoke test); results flow through manifests into
the RD curves, the BD table and the comparison; re-rendering the RD notebook gives byte-identical
figures."""

from __future__ import annotations

import json

import pytest
import torch

from hyreslib.hyres import HyresCodec
from hyreslib.pipeline import models
from hyreslib.pipeline.runner import discover, run_pipeline
from hyreslib.results import manifest

TINY = [
    "00.max_images=2", "00.baseline_codecs=[jpeg, webp]", "00.baseline_qualities=[10, 40, 90]",
    "00.jpeg_qualities=[5, 50]",
    "01.steps=3", "01.width=4", "01.archs=[cnnp]", "01.levels=6", "01.crop=32", "01.batch=4", "01.val_images=1",
    "01.val_crop=64", "01.eval_images=2", "01.near_steps=[5]", "01.baseline_codecs=[png, webp-lossless]",
    "02.steps=4", "02.N=16", "02.M=24", "02.crop=64", "02.batch=2", "02.val_images=1", "02.test_images=2",
    "02.show_images=1", "02.base_qualities=[1]", "02.log_every=2", "02.workers=0",
    "03.lambdas=[0.045, 0.016]", "03.steps=3", "03.crop=64", "03.batch=2", "03.val_images=1", "03.test_images=2",
    "03.log_every=1", "03.workers=0",
    "04.steps=2", "04.width=8", "04.crop=64", "04.batch=2", "04.val_images=1", "04.test_images=2", "04.workers=0",
    "04.alpha=0",  # hermetic: no VGG download attempt
    "07.steps=2", "07.snapshots=1", "07.N=8", "07.M=8", "07.crop=64", "07.batch=2", "07.val_images=1",
    "07.study_val_images=1", "07.study_test_images=1", "07.workers=0", "07.lambdas=[0.045, 0.004]",
    "07.base_qualities=[30, 5]",
]


def _check_pixel_splitting(m: manifest.Manifest) -> None:
    bpsp = m.metrics["lossless_bpsp"]
    assert {"hidenet-fixed", "hidenet-cnnp", "png", "webp-lossless"} <= set(bpsp)
    assert 0 < bpsp["hidenet-cnnp"] < 8 and 0 < bpsp["hidenet-fixed"] < 8
    assert len(m.metrics["predictor_psnr_per_level"]["fixed"]) == 6
    curve = m.metrics["near_lossless_curves"]["cnnp"]
    assert any(r["mode"] == "near-lossless" and r["max_err"] <= 2 for r in curve)
    assert m.artifact("predictor_cnnp").is_file() and m.artifact("hidenet_results").is_file()


def _check_residual_training(m: manifest.Manifest) -> None:
    metrics = m.metrics
    assert metrics["latents_exact"] is True
    assert metrics["bpp"] == pytest.approx(metrics["bpp_jpeg"] + metrics["bpp_z"] + metrics["bpp_y"]
                                           + metrics["bpp_container"])
    assert metrics["psnr"] > 10 and 0 < metrics["ms_ssim"] <= 1
    assert metrics["train"]["steps"] == 4 and metrics["phases"][0]["lambda"] == 0.045
    codec = HyresCodec.load(m.artifact("codec"))
    name = json.loads(m.artifact("results").read_text())["per_image"][0]["image"]
    hyr = m.run_dir / "02_residual_training" / "files" / f"{name}.hyr"
    assert codec.decode(hyr.read_bytes()).shape[0] == 3
    assert any(k.startswith("recon:") for k in m.record["artifacts"])
    # resumable: the training state is kept (the engine's tests show running again resumes from it)
    states = list((m.run_dir / "02_residual_training").glob("train_state-*.pt"))
    assert len(states) == 1 and torch.load(states[0], weights_only=False)["step"] == 4


@pytest.mark.notebook
@pytest.mark.slow
def test_quick_pipeline_end_to_end(tmp_path):
    empty = tmp_path / "no_data"  # forces the embedded default, as on a fresh offline machine
    empty.mkdir()
    results = run_pipeline("quick", overrides=[f"data_root={empty}", *TINY], runs_root=tmp_path / "runs")
    run_dir = tmp_path / "runs" / "quick"
    assert [r.name for r in results] == [p.stem for p in discover()]
    assert set(manifest.available(run_dir)) == {p.stem for p in discover()}
    _check_pixel_splitting(manifest.load(run_dir, "01_pixel_splitting"))
    _check_residual_training(manifest.load(run_dir, "02_residual_training"))

    phases = manifest.load(run_dir, "03_lambda_phases").metrics["phases"]
    assert [p["lambda"] for p in phases] == [0.045, 0.016] and all(p["latents_exact"] for p in phases)
    assert all(p["bytes_unchanged"] for p in manifest.load(run_dir, "04_refinement").metrics["phases"])

    rd = manifest.load(run_dir, "05_rd_curves")
    assert {"jpeg", "webp", "HyRES", "HyRES + refine", "JPEG base", "hideNet near-lossless",
            "hideNet generative", models.curve()[0]} <= set(rd.metrics["curves"])
    rows = {(r["codec"], r["anchor"]): r for r in rd.metrics["bd_table"]}
    assert rows[("webp", "jpeg")]["bd_rate_pct"] < 0  # WebP beats JPEG on any photo set
    rendered = {name: rd.artifact(name).read_bytes() for name in rd.record["artifacts"]
                if name.endswith((".png", ".svg", ".md", ".csv"))}
    assert "fig05_rd_psnr_msssim.svg" in rendered and "bd_table.md" in rendered
    assert manifest.load(run_dir, "06_compare_reconstructions").artifact("compare_wipe.png").stat().st_size > 0
    study = manifest.load(run_dir, "07_budget_study").metrics["bd_by_step"]
    assert {t["variant"] for t in study["test"]} == {"residual", "conditional", "learned", "bmshj2018"}

    run_pipeline("quick", only=["05"], overrides=[f"data_root={empty}"], runs_root=tmp_path / "runs")
    again = manifest.load(run_dir, "05_rd_curves")
    for name, content in rendered.items():
        assert again.artifact(name).read_bytes() == content, f"{name} differs when rendered again"


@pytest.mark.notebook
@pytest.mark.slow
def test_full_profile_smoke_run_trains_the_paper_scale_models_through_every_notebook(tmp_path):
    """``hyres run --profile full --smoke``: the full profile's models and options with only budgets
    capped, on the embedded images. ``04.alpha=0`` keeps it hermetic (no VGG16 download)."""
    empty = tmp_path / "no_data"
    empty.mkdir()
    results = run_pipeline("full", overrides=[f"data_root={empty}", "04.alpha=0"], runs_root=tmp_path / "runs",
                           smoke=True)
    run_dir = tmp_path / "runs" / "full-smoke"
    assert [r.name for r in results] == [p.stem for p in discover()]
    assert set(manifest.available(run_dir)) == {p.stem for p in discover()}
    assert {manifest.load(run_dir, p.stem).record["profile"] for p in discover()} == {"full-smoke"}
    config = HyresCodec.load(manifest.load(run_dir, "02_residual_training").artifact("codec")).residual.config
    assert (config.N, config.M) == (128, 192)
    phases = manifest.load(run_dir, "03_lambda_phases").metrics["phases"]
    assert [p["lambda"] for p in phases] == [0.045, 0.032] and all(p["latents_exact"] for p in phases)
    assert phases[0]["origin"] == "the codec trained in 02_residual_training"
    refine = manifest.load(run_dir, "04_refinement")
    assert HyresCodec.load(refine.artifact("phase2_refined_codec")).refine.width == 64
    assert all(p["bytes_unchanged"] for p in refine.metrics["phases"])
    assert manifest.load(run_dir, "07_budget_study").record["params"]["N"] == 128
