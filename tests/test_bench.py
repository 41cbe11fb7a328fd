"""The benches run end to end: the one-shot device check (CPU scale when there is no GPU), the RD cost of the
integer parse, large photos whole and tiled."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.slow
def test_device_check_runs_every_section():
    done = subprocess.run([sys.executable, str(ROOT / "bench" / "device_check.py"), "--budget-s", "600",
                           "--threads", "2"], capture_output=True, text=True, timeout=900)
    out = done.stdout
    assert done.returncode == 0, out[-2000:] + done.stderr[-2000:]
    for title in ("JPEG base layer", "training images/s, fp32", "encode / decode latency"):
        assert f"=== {title}" in out
    for row in ("HyRES residual codec N128 M192, kit engine", "Cheng2020 checkerboard N192, plain loop",
                "Cheng2020 checkerboard N192", "bmshj2018-hyperprior q3", "mbt2018 q3"):
        assert row in out, row
    assert "every section finished" in out


@pytest.mark.slow
def test_parse_rd_trains_both_parses_and_reuses_them(tmp_path):
    """``bench/parse_rd.py`` end to end at a toy budget: both curves (chosen and forced latent) on two
    bases, a BD-rate entry, and a second run that reuses the trained phases instead of training."""
    args = [sys.executable, str(ROOT / "bench" / "parse_rd.py"), "--out", str(tmp_path / "phases"), "--lambdas", "0.1",
            "--first-steps", "2", "--crop", "64", "--batch", "2", "--N", "16", "--M", "24", "--val-crops", "1",
            "--images", "1", "--test-crop", "64", "--test-qualities", "8", "30", "--json", str(tmp_path / "rd.json")]
    first = subprocess.run(args, capture_output=True, text=True, timeout=600)
    assert first.returncode == 0, first.stdout[-2000:] + first.stderr[-2000:]
    result = json.loads((tmp_path / "rd.json").read_text())
    for parse in ("float", "integer"):
        for mode in ("chosen", "latent"):
            assert [p["quality"] for p in result["curves"][parse][mode]] == [8, 30]
        assert all(p["y_bpp"] > 0 for p in result["curves"][parse]["latent"])  # forced: y is coded
    assert set(result["bd_rate_latent_percent"]) == {"lmbda=0.1"}
    again = subprocess.run(args, capture_output=True, text=True, timeout=600)
    assert again.returncode == 0 and again.stdout.count('"origin": "reused') == 8


@pytest.mark.slow
def test_large_photo_bench_measures_every_codec_whole_and_tiled():
    done = subprocess.run([sys.executable, str(ROOT / "bench" / "large_photo.py"), "--sizes", "0.05", "--N", "16",
                           "--M", "24", "--refine-width", "8", "--hidenet-width", "4", "--threads", "1"],
                          capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    assert "failed" not in done.stdout
    for kind in ("hyres whole", "hyres tiled", "hidenet"):
        for step in ("encode", "decode"):
            assert any(line.startswith(kind) and f" {step} " in line for line in done.stdout.splitlines()), (kind, step)


@pytest.mark.slow
@pytest.mark.parametrize("script", sorted(p.name for p in (ROOT / "bench").glob("*.py")))
def test_every_bench_script_imports_and_parses_its_options(script):
    """A bench that no test runs end to end still imports what it names (a module or name that moved or
    went away fails here, not in a user's hands)."""
    done = subprocess.run([sys.executable, str(ROOT / "bench" / script), "--help"], capture_output=True, text=True,
                          timeout=300)
    assert done.returncode == 0 and "usage" in done.stdout, done.stderr[-2000:]


@pytest.mark.slow
def test_embedded_gap_bench_trains_and_reports():
    done = subprocess.run([sys.executable, str(ROOT / "bench" / "embedded_gap.py"), "--steps", "2"],
                          capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert result["split"] == "new" and result["test_bpp"] > 0 and 10 < result["test_psnr"] < 60


@pytest.mark.slow
def test_refiner_stride_bench_trains_both_refiners_and_reports():
    done = subprocess.run([sys.executable, str(ROOT / "bench" / "refiner_stride.py"), "--steps", "1", "--val-images",
                           "1", "--width", "4"], capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    rows = [json.loads(line) for line in done.stdout.splitlines() if line.startswith("{")]
    assert [r.get("stride") for r in rows] == [None, 1, 2] and all("gain_db" in r for r in rows[1:])
