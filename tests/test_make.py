"""The Makefile's promises, read from what make would run (`make -n`: nothing is installed)."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.skipif(shutil.which("make") is None, reason="needs make")


def dry_run(*args: str) -> str:
    # -B: as if nothing were installed yet, so every step of the target is printed
    return subprocess.run(["make", "-n", "-B", *args], cwd=ROOT, capture_output=True, text=True, check=True).stdout


def test_lab_serves_the_project_root_with_the_users_arguments_and_as_root():
    out = dry_run("lab", "LAB_ARGS=--port 8890 --ip 0.0.0.0 --no-browser --IdentityProvider.token=t")
    line = next(l for l in out.splitlines() if "jupyter lab" in l)
    assert "--ServerApp.root_dir=." in line
    assert line.endswith("--port 8890 --ip 0.0.0.0 --no-browser --IdentityProvider.token=t")
    assert ("--allow-root" in line) == (os.getuid() == 0)


def test_install_sets_up_the_notebook_filter_and_can_use_cpu_wheels():
    out = dry_run("install", "TORCH_INDEX=https://download.pytorch.org/whl/cpu")
    cpu = out.index("torch torchvision --index-url https://download.pytorch.org/whl/cpu")
    assert cpu < out.index("-e '.[dev]'")  # torch first, so the kit's install keeps the CPU build
    assert "git config filter.nbstripout.clean" in out and "nbstripout --keep-id" in out
    assert "--index-url" not in dry_run("install")
