"""Run directories and manifests: how notebooks hand results to each other.

Each notebook owns ``<run_dir>/<notebook>/`` and finishes by writing ``manifest.json`` there::

    {"notebook", "profile", "seed", "params", "device", "git", "versions", "started", "finished",
     "metrics": {...}, "artifacts": {name: {"path", "sha256", "bytes"}}}

Later notebooks read manifests (:func:`load`), never another notebook's globals, and every
artifact is checked against its SHA-256 when it is opened, so a stale or edited file is caught.
:func:`start` removes the notebook's previous manifest, so a run that is interrupted leaves no
manifest whose checksums describe files it has since rewritten.

Batch runs (``hyres run``) live in ``runs/<profile>/``. A notebook run by hand (JupyterLab) uses
its default ``run_dir``, ``runs/interactive/``: it writes only there and reads the notebooks it
has not run itself from the batch run beside it (:func:`sources`), so experimenting in the lab
never touches a batch run's files.
"""

from __future__ import annotations

import hashlib
import json
import os
import random
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..core.fileio import atomic_write_json, sha256_file

if TYPE_CHECKING:
    import torch

MANIFEST = "manifest.json"
INTERACTIVE = "interactive"       # run folder of notebooks run by hand
BATCH_PREFERENCE = ("full", "quick")  # the batch run an interactive run reads through to: full when there is one


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
    import numpy as np  # here, not at the top: the runner reads manifests without loading torch
    import torch

    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def _versions() -> dict[str, str]:
    import compressai
    import numpy as np
    import PIL
    import torch

    from .. import __version__

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

    def resume_path(self, name: str, signature: Any) -> Path:
        """Where a resumable training state lives, named by a hash of what it trains
        (``signature``): running the notebook again after an interruption resumes it, while
        changed settings start afresh instead of resuming a state trained for others."""
        return self.path(f"{name}-{digest(signature)}.pt")

    def add_artifact(self, name: str, path: str | Path) -> Path:
        """Record a file this notebook produced (hashed now, verified when read)."""
        path = Path(path).resolve()
        # relative, so a run folder can move; '../quick/...' for a batch-run file an interactive run reuses
        self.artifacts[name] = {"path": os.path.relpath(path, self.run_dir.resolve()),
                                "sha256": sha256_file(path), "bytes": path.stat().st_size}
        return path

    def save(self) -> Path:
        record = {"notebook": self.notebook, "profile": self.profile, "seed": self.seed, "device": self.device,
                  "params": self.params, "git": git_revision(), "versions": _versions(),
                  "started": self.started, "finished": time.strftime("%Y-%m-%dT%H:%M:%S"),
                  "metrics": self.metrics, "artifacts": self.artifacts}
        return atomic_write_json(self.dir / MANIFEST, record)


def digest(signature: Any) -> str:
    """A short hash of a JSON-able description of some work: the name of files that belong to it."""
    return hashlib.sha256(json.dumps(signature, sort_keys=True, default=str).encode()).hexdigest()[:12]


def start(run_dir: str | Path, notebook: str, *, profile: str, seed: int, device: torch.device | str,
          params: dict[str, Any] | None = None) -> Run:
    """Begin a notebook's run: create its folder and seed every RNG."""
    run_dir = Path(run_dir).resolve()
    (run_dir / notebook).mkdir(parents=True, exist_ok=True)
    (run_dir / notebook / MANIFEST).unlink(missing_ok=True)  # rewritten, with fresh checksums, when it ends
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


def _finished(run_dir: Path) -> list[str]:
    return sorted(p.parent.name for p in run_dir.glob(f"*/{MANIFEST}"))


def sources(run_dir: str | Path) -> list[Path]:
    """The run folders a run reads manifests from, its own first. An interactive run also reads
    from the batch run beside it (``runs/full`` when it has results, else ``runs/quick``)."""
    run_dir = Path(run_dir).resolve()
    if run_dir.name != INTERACTIVE:
        return [run_dir]
    batch = [run_dir.parent / name for name in BATCH_PREFERENCE if _finished(run_dir.parent / name)]
    return [run_dir, *batch[:1]]


def load(run_dir: str | Path, notebook: str) -> Manifest:
    """Read the manifest of an earlier notebook of the run (see :func:`sources`)."""
    for folder in sources(run_dir):
        path = folder / notebook / MANIFEST
        if path.is_file():
            return Manifest(folder, json.loads(path.read_text()))
    raise FileNotFoundError(f"no manifest for {notebook} in {Path(run_dir).resolve()}: run that notebook first "
                            f"(`hyres run --only {notebook.split('_')[0]}`)")


def available(run_dir: str | Path) -> list[str]:
    """Notebooks of this run that have written a manifest (see :func:`sources`)."""
    return sorted(set().union(*(_finished(folder) for folder in sources(run_dir))))
