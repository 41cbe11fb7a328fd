"""The equal-budget study: every variant trained on one budget, snapshots measured through real
files, BD-rate per (variant, step) against JPEG."""

from __future__ import annotations

import pytest

from hyreslib.datasets import data
from hyreslib.datasets.data import ImageSet
from hyreslib.hyres import study
from hyreslib.training.engine import TrainSetup


@pytest.fixture(scope="module")
def rows():
    setup = study.StudySetup(lambdas=(0.05, 0.005), base_qualities=(30, 5), N=8, M=8,
                             budget=TrainSetup(steps=4, crop=64, batch=2, lr=1e-3, workers=0, val_every=2,
                                               log_every=2))
    images = data.embedded("test").subset(1)
    return study.run(setup, data.embedded("train"), data.embedded("validation"), {"test": images})


def test_every_variant_lambda_and_snapshot_is_measured(rows):
    assert {r["set"] for r in rows} == {"test"}
    keys = {(r["variant"], r["lmbda"], r["step"]) for r in rows}
    assert keys == {(v, lam, s) for v in study.VARIANTS for lam in (0.05, 0.005) for s in (2, 4)}
    for r in rows:
        assert r["bpp"] > 0 and r["psnr"] > 0
        if r["variant"] in study.HYBRIDS:
            assert r["bpp_jpeg"] > 0 and r["base_quality"] in (30, 5)
            assert r["bpp"] == pytest.approx(r["bpp_jpeg"] + r["bpp_y"] + r["bpp_z"] + r["bpp_container"])
        elif r["variant"] == "learned":
            assert r["bpp_jpeg"] == 0 and r["base_quality"] == 0


def test_snapshots_differ_along_training(rows):
    by = {(r["variant"], r["lmbda"], r["step"]): r for r in rows}
    assert any(by[(v, 0.05, 2)]["psnr"] != by[(v, 0.05, 4)]["psnr"] for v in study.VARIANTS)


def test_bd_by_step_gives_a_value_or_a_reason(rows):
    jpeg = study.jpeg_anchor(data.embedded("test").subset(1), (5, 30, 60, 90))
    table = study.bd_by_step(rows, jpeg)
    assert {(t["variant"], t["step"]) for t in table} == {(v, s) for v in study.VARIANTS for s in (2, 4)}
    for t in table:
        assert (t["bd_rate_pct"] is None) == bool(t["reason"])


def test_bd_by_step_matches_bd_rate_on_a_known_shift():
    jpeg = [{"bpp": b, "psnr": p} for b, p in ((0.2, 24.0), (0.4, 27.0), (0.8, 30.0), (1.6, 33.0))]
    rows = [{"variant": "x", "step": 1, "bpp": j["bpp"] * 0.8, "psnr": j["psnr"]} for j in jpeg]
    [t] = study.bd_by_step(rows, jpeg)
    assert t["bd_rate_pct"] == pytest.approx(-20.0, abs=1e-6)


def test_setup_is_checked():
    b = TrainSetup(steps=1)
    with pytest.raises(ValueError, match="one base quality per"):
        study.StudySetup(lambdas=(0.1, 0.2), base_qualities=(5,), budget=b)
    with pytest.raises(ValueError, match="unknown study variants"):
        study.StudySetup(lambdas=(0.1,), base_qualities=(5,), budget=b, variants=("vtm",))
