"""The kit's pretrained models: one registry (``models/registry.json``) of HyRES codec checkpoints,
each either shipped in the repository (fp16 weights, small) or fetched on first use by the kit's
checksum-verified downloader, each with its SHA-256, the λ and base quality it codes at, its model
fingerprint, and the run and commit that made it::

    registry.json --entry--> models/<file> (shipped)   --sha256 checked--> HyresCodec.load
                        \\--> url --download.download--> data/cache/models/<name>/<file>

``hyres models list`` prints it; ``hyres encode`` uses the registry's default model when no
checkpoint is named, and ``hyres decode`` finds the model a file needs from the fingerprint in its
header.
"""

from __future__ import annotations

import argparse
import hashlib
import json
from dataclasses import asdict, dataclass
from pathlib import Path

import torch

from .data import PROJECT_ROOT
from .fileio import atomic_write_json

MODELS_DIR = PROJECT_ROOT / "models"
REGISTRY_PATH = MODELS_DIR / "registry.json"
CODING_TABLES = ("_quantized_cdf", "_offset", "_cdf_length")


@dataclass(frozen=True)
class ModelEntry:
    name: str
    file: str                  # under models/ when shipped; the downloaded file's name otherwise
    sha256: str
    size: int
    fingerprint: str           # hex model fingerprint, as written in every file the model encodes
    lmbda: float
    base_quality: int
    source: str                # the command / run that trained it
    commit: str                # the kit's commit at training time
    description: str = ""
    url: str = ""              # download location (empty: shipped in the repository)


def registry(path: Path = REGISTRY_PATH) -> dict[str, ModelEntry]:
    """Every registered model by name (an empty registry when the file is absent)."""
    if not path.is_file():
        return {}
    raw = json.loads(path.read_text(encoding="utf-8"))
    return {m["name"]: ModelEntry(**m) for m in raw["models"]}


def default_name(path: Path = REGISTRY_PATH) -> str:
    if not path.is_file():
        raise FileNotFoundError(f"no model registry at {path}: name a checkpoint with -c")
    return json.loads(path.read_text(encoding="utf-8"))["default"]


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def model_path(name: str, root: str | Path | None = None, path: Path = REGISTRY_PATH) -> Path:
    """The verified checkpoint file of a registered model (downloaded first when not shipped)."""
    models = registry(path)
    if name not in models:
        raise ValueError(f"unknown model {name!r}; registered: {', '.join(sorted(models)) or 'none'}")
    entry = models[name]
    if entry.url:
        from . import download

        manifest = download.Manifest(name=f"model-{name}", folder=f"cache/models/{name}", kind="http", url=entry.url,
                                     files=(download.FileEntry(entry.file, entry.size, entry.sha256),))
        return download.download(manifest, root) / entry.file
    file = path.parent / entry.file
    if not file.is_file():
        raise FileNotFoundError(f"model {name!r}: {file} is missing")
    if _sha256(file) != entry.sha256:
        raise ValueError(f"model {name!r}: {file} does not match its registered SHA-256 (damaged or replaced)")
    return file


def load(name: str | None = None, device: str = "cpu", use_refine: bool = True):
    """A registered model as a ready :class:`~hyreslib.hyres.HyresCodec` (the default when None)."""
    from .hyres.codec import HyresCodec

    name = name or default_name()
    codec = HyresCodec.load(model_path(name), device=device, use_refine=use_refine)
    expected = registry()[name].fingerprint
    if codec.fingerprint.hex() != expected:
        raise ValueError(f"model {name!r} loads with fingerprint {codec.fingerprint.hex()}, registered {expected}")
    return codec


def by_fingerprint(fingerprint: bytes, path: Path = REGISTRY_PATH) -> str | None:
    """The registered model that writes files with this fingerprint, if any."""
    return next((m.name for m in registry(path).values() if m.fingerprint == fingerprint.hex()), None)


def ship(checkpoint: str | Path, name: str, source: str, commit: str, description: str = "",
         path: Path = REGISTRY_PATH, default: bool = False) -> ModelEntry:
    """Copy a trained codec checkpoint into ``models/`` with fp16 weights and no coding tables (the
    fingerprint is that of the shipped model, which is what encodes) and register it."""
    from .checkpoint import load_checkpoint, save_checkpoint
    from .hyres.codec import CHECKPOINT_KIND, HyresCodec

    payload = load_checkpoint(checkpoint, kind=CHECKPOINT_KIND)
    state = {k: _shipped(k, v) for k, v in payload["state_dict"].items()}
    target = path.parent / f"{name}.ckpt"
    save_checkpoint(target, CHECKPOINT_KIND, payload["config"], state, payload["extra"])
    codec = HyresCodec.load(target)
    entry = ModelEntry(name=name, file=target.name, sha256=_sha256(target), size=target.stat().st_size,
                       fingerprint=codec.fingerprint.hex(), lmbda=codec.lmbda, base_quality=codec.jpeg.quality,
                       source=source, commit=commit, description=description)
    models = {**registry(path), name: entry}
    current = json.loads(path.read_text(encoding="utf-8"))["default"] if path.is_file() else name
    atomic_write_json(path, {"default": name if default else current, "models": [asdict(m) for m in models.values()]})
    return entry


def _shipped(name: str, value: torch.Tensor) -> torch.Tensor:
    """A weight as shipped: fp16; CompressAI's coding tables empty (loading rebuilds them from the
    weights with ``update``, a third of the file otherwise)."""
    if name.rsplit(".", 1)[-1] in CODING_TABLES:
        return value.new_empty(0)
    return value.half() if value.is_floating_point() else value


def _cmd_list(args: argparse.Namespace) -> int:
    models = registry()
    if not models:
        print("no models registered")
        return 0
    default = default_name()
    for m in models.values():
        where = m.url or f"models/{m.file}"
        mark = " (default)" if m.name == default else ""
        print(f"{m.name}{mark}: λ={m.lmbda}, JPEG base q{m.base_quality}, {m.size / 1e6:.2f} MB, {where}\n"
              f"    {m.description}\n    made by: {m.source} (commit {m.commit[:12]}), sha256 {m.sha256[:16]}…")
    return 0


def add_commands(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("models", help="the kit's pretrained models")
    msub = p.add_subparsers(dest="models_command", required=True)
    q = msub.add_parser("list", help="list registered models (name, λ, base quality, size, origin)")
    q.set_defaults(func=_cmd_list)
