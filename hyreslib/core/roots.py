"""Where the project and its data live. Imports nothing heavy, so that ``hyres run`` and the
runner find ``notebooks/`` without loading torch.

Resolution of the data root: an explicit argument, else ``$HYRES_DATA``, else ``data/`` in the
project.
"""

from __future__ import annotations

import os
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parents[2]


def data_root(root: str | Path | None = None) -> Path:
    """The data folder: ``root`` if given, else ``$HYRES_DATA``, else the project's ``data/``.

    A ``$HYRES_DATA`` that names no folder is an error, not a reason to fall back to the embedded
    photographs: a mistyped path would otherwise give hours of training on the wrong data."""
    if root:
        return Path(root).expanduser().resolve()
    env = os.environ.get("HYRES_DATA")
    if env:
        path = Path(env).expanduser().resolve()
        if not path.is_dir():
            raise NotADirectoryError(f"HYRES_DATA={env!r} names no folder (from {Path.cwd()}: {path}); point it at "
                                     "the folder holding kodak/ and train/cid22/, or unset it for the embedded images")
        return path
    return PROJECT_ROOT / "data"
