"""Smoke test: notebook 02 runs through the runner with tiny settings and records real-file results."""

from __future__ import annotations

import json

import pytest
import torch

from hyreslib import manifest
from hyreslib.hyres import HyresCodec
from hyreslib.runner import run_pipeline

TINY = ["02.steps=4", "02.N=16", "02.M=24", "02.crop=64", "02.batch=2", "02.val_images=1", "02.test_images=1",
        "02.show_images=1", "02.base_qualities=[1]", "02.log_every=2", "02.workers=0"]


@pytest.mark.notebook
def test_notebook_02_smoke(tmp_path):
    run_pipeline(profile="quick", only=["02"], overrides=TINY, runs_root=tmp_path)
    m = manifest.load(tmp_path / "quick", "02_residual_training")
    metrics = m.metrics
    assert metrics["latents_exact"] is True
    assert metrics["bpp"] == pytest.approx(metrics["bpp_jpeg"] + metrics["bpp_z"] + metrics["bpp_y"]
                                           + metrics["bpp_container"])
    assert metrics["psnr"] > 10 and 0 < metrics["ms_ssim"] <= 1
    assert metrics["train"]["steps"] == 4 and metrics["phases"][0]["lambda"] == 0.045
    codec = HyresCodec.load(m.artifact("codec"))
    results = json.loads(m.artifact("results").read_text())
    name = results["per_image"][0]["name"]
    hyr = m.run_dir / "02_residual_training" / "files" / f"{name}.hyr"
    assert codec.decode(hyr.read_bytes()).shape[0] == 3
    assert any(k.startswith("recon:") for k in m.record["artifacts"])
    # resumable: the training state is kept (the engine's tests show running again resumes from it)
    states = list((m.run_dir / "02_residual_training").glob("train_state-*.pt"))
    assert len(states) == 1 and torch.load(states[0], weights_only=False)["step"] == 4
