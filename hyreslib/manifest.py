"""Run directories and manifests: how notebooks hand results to each other.

Each notebook owns ``<run_dir>/<notebook>/`` and finishes by writing ``manifest.json`` there::

    {"notebook", "profile", "seed", "params", "device", "git", "versions", "started", "finished",
     "metrics": {...}, "artifacts": {name: {"path", "sha256", "bytes"}}}

Later notebooks read manifests (:func:`load`), never another notebook's globals, and every
artifact is checked against its SHA-256 when it is opened, so a stale or edited file is caught.
"""

from __future__ import annotations

import json
import random
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from .fileio import atomic_write_json, sha256_file

MANIFEST = "manifest.json"


def git_revision(cwd: Path | None = None) -> str:
    """``<sha>`` or ``<sha>-dirty`` of the project checkout, ``unknown`` outside git."""
    cwd = cwd or Path(__file__).resolve().parent
    try:
        rev = subprocess.run(["git", "rev-parse", "--short=12", "HEAD"], cwd=cwd, capture_output=True,
                             text=True, timeout=10, check=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=cwd,
                               capture_output=True, text=True, timeout=10).stdout.strip()
        return rev + ("-dirty" if dirty else "")
    except (OSError, subprocess.SubprocessError):
        return "unknown"


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def _versions() -> dict[str, str]:
    import compressai
    import PIL

    from . import __version__

    return {"hyreslib": __version__, "torch": torch.__version__, "compressai": compressai.__version__,
            "pillow": PIL.__version__, "numpy": np.__version__}


@dataclass
class Run:
    """The record a notebook builds while it runs; :meth:`save` writes it as its manifest."""

    run_dir: Path
    notebook: str
    profile: str
    seed: int
    device: str
    params: dict[str, Any] = field(default_factory=dict)
    metrics: dict[str, Any] = field(default_factory=dict)
    artifacts: dict[str, dict[str, Any]] = field(default_factory=dict)
    started: str = field(default_factory=lambda: time.strftime("%Y-%m-%dT%H:%M:%S"))

    @property
    def dir(self) -> Path:
        return self.run_dir / self.notebook

    def path(self, name: str) -> Path:
        """A path inside this notebook's folder (parents created)."""
        p = self.dir / name
        p.parent.mkdir(parents=True, exist_ok=True)
        return p

    def add_artifact(self, name: str, path: str | Path) -> Path:
        """Record a file this notebook produced (hashed now, verified when read)."""
        path = Path(path).resolve()
        self.artifacts[name] = {"path": str(path.relative_to(self.run_dir.resolve())),
                                "sha256": sha256_file(path), "bytes": path.stat().st_size}
        return path

    def save(self) -> Path:
        record = {"notebook": self.notebook, "profile": self.profile, "seed": self.seed, "device": self.device,
                  "params": self.params, "git": git_revision(), "versions": _versions(),
                  "started": self.started, "finished": time.strftime("%Y-%m-%dT%H:%M:%S"),
                  "metrics": self.metrics, "artifacts": self.artifacts}
        return atomic_write_json(self.dir / MANIFEST, record)


def start(run_dir: str | Path, notebook: str, *, profile: str, seed: int, device: torch.device | str,
          params: dict[str, Any] | None = None) -> Run:
    """Begin a notebook's run: create its folder and seed every RNG."""
    run_dir = Path(run_dir).resolve()
    (run_dir / notebook).mkdir(parents=True, exist_ok=True)
    seed_everything(seed)
    return Run(run_dir, notebook, profile, seed, str(device), dict(params or {}))


@dataclass
class Manifest:
    """A finished notebook's manifest, read back by a later notebook."""

    run_dir: Path
    record: dict[str, Any]

    @property
    def metrics(self) -> dict[str, Any]:
        return self.record["metrics"]

    def artifact(self, name: str) -> Path:
        """Path of an artifact, after checking it still has the recorded SHA-256."""
        try:
            entry = self.record["artifacts"][name]
        except KeyError:
            raise KeyError(f"{self.record['notebook']} recorded no artifact {name!r} "
                           f"(it has {sorted(self.record['artifacts'])})") from None
        path = self.run_dir / entry["path"]
        if not path.is_file():
            raise FileNotFoundError(f"artifact {name!r} of {self.record['notebook']} is missing: {path}")
        if sha256_file(path) != entry["sha256"]:
            raise ValueError(f"artifact {name!r} of {self.record['notebook']} changed since it was recorded: {path}")
        return path


def load(run_dir: str | Path, notebook: str) -> Manifest:
    """Read the manifest of an earlier notebook in the same run."""
    run_dir = Path(run_dir).resolve()
    path = run_dir / notebook / MANIFEST
    if not path.is_file():
        raise FileNotFoundError(f"no manifest for {notebook} in {run_dir}: run that notebook first "
                                f"(`hyres run --only {notebook.split('_')[0]}`)")
    return Manifest(run_dir, json.loads(path.read_text()))


def available(run_dir: str | Path) -> list[str]:
    """Notebooks of this run that have written a manifest."""
    run_dir = Path(run_dir)
    return sorted(p.parent.name for p in run_dir.glob(f"*/{MANIFEST}"))
