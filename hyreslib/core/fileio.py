"""Crash-safe file writing and hashing, used for downloads, checkpoints, manifests and figures.

A reader never sees a half-written file: data goes to a temporary file in the same folder, is
flushed to disk, optionally checked, and is renamed over the target in one step (``os.replace``
is atomic on POSIX). Temporary files end in :data:`PART_SUFFIX`; one can only survive a hard
kill, and :func:`remove_stale_parts` clears those.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import IO, Any

PART_SUFFIX = ".hyres-part"
CHUNK = 1 << 20


def _fsync_dir(folder: Path) -> None:
    """Make a rename durable (POSIX only: directories cannot be opened on Windows)."""
    if os.name != "posix":
        return
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def atomic_write(path: str | Path, write: Callable[[IO[bytes]], Any],
                 verify: Callable[[Path], None] | None = None) -> Path:
    """Call ``write(fileobj)`` on a temporary file, then ``verify(temp_path)`` (which raises to
    reject it), then move it to ``path`` atomically. On any failure the temporary file is removed
    and ``path`` is left as it was."""
    path = Path(path)
    if path.is_dir():
        raise IsADirectoryError(f"{path} is a directory; give a file name to write")
    path.parent.mkdir(parents=True, exist_ok=True)
    # Not mkstemp: its 0600 mode would survive the rename; open(..., "xb") honours the umask.
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex[:12]}{PART_SUFFIX}")
    try:
        with open(tmp, "xb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        if verify is not None:
            verify(tmp)
        os.replace(tmp, path)
        _fsync_dir(path.parent)
    finally:
        tmp.unlink(missing_ok=True)
    return path


def safe_name(label: str, fallback: str) -> str:
    """``label`` as one file or folder name (anything but letters, digits, ``.``, ``_`` and ``-``
    becomes ``_``); ``fallback`` when nothing is left."""
    return re.sub(r"[^A-Za-z0-9._-]+", "_", label).strip("_") or fallback


def read_input(path: str | Path) -> bytes:
    """The bytes of an input file, with a one-line error for a missing path or a directory."""
    p = Path(path)
    if p.is_dir():
        raise IsADirectoryError(f"{p} is a directory, not a file")
    if not p.is_file():
        raise FileNotFoundError(f"no such file: {p}")
    return p.read_bytes()


def atomic_write_bytes(path: str | Path, data: bytes) -> Path:
    return atomic_write(path, lambda f: f.write(data))


def atomic_write_json(path: str | Path, obj: Any) -> Path:
    text = json.dumps(obj, indent=2, sort_keys=True, default=str) + "\n"
    return atomic_write_bytes(path, text.encode())


def remove_stale_parts(folder: Path) -> int:
    """Delete temporary files left under ``folder`` by a killed writer; returns how many."""
    stale = list(folder.rglob(f"*{PART_SUFFIX}")) if folder.is_dir() else []
    for p in stale:
        p.unlink(missing_ok=True)
    return len(stale)


def sha256_file(path: str | Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(CHUNK):
            h.update(block)
    return h.hexdigest()
