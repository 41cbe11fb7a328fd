"""The one-shot device check runs every section on this machine (CPU scale when there is no GPU)."""

from __future__ import annotations

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
def test_large_photo_bench_measures_every_codec_whole_and_tiled():
    done = subprocess.run([sys.executable, str(ROOT / "bench" / "large_photo.py"), "--sizes", "0.05", "--N", "16",
                           "--M", "24", "--refine-width", "8", "--hidenet-width", "4", "--threads", "1"],
                          capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    assert "failed" not in done.stdout
    for kind in ("hyres whole", "hyres tiled", "hidenet"):
        for step in ("encode", "decode"):
            assert any(line.startswith(kind) and f" {step} " in line for line in done.stdout.splitlines()), (kind, step)
