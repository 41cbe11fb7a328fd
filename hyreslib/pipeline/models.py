"""The kit's pretrained models: one registry (``models/registry.json``) of HyRES codec checkpoints
and hideNet predictors, each either shipped in the repository (compact: int8 kernels, xz-compressed) or fetched on first
use by the kit's checksum-verified downloader, each with its SHA-256, the λ and base quality it
codes at, its model fingerprint, and the run and commit that made it::

    registry.json --entry--> models/<file> (shipped)   --sha256 checked--> HyresCodec.load
                        \\--> url --download.download--> data/cache/models/<name>/<file>

``hyres models list`` prints it; ``hyres encode`` (``hyres hidenet encode``) uses the registry's
default model (predictor) when no checkpoint is named, and the decoders find the model a file needs
from the fingerprint in its header. Each kind of model has its own default.
"""

from __future__ import annotations

import argparse
import json
from dataclasses import asdict, dataclass
from pathlib import Path

from ..core.fileio import atomic_write_json, sha256_file
from ..core.roots import PROJECT_ROOT

MODELS_DIR = PROJECT_ROOT / "models"
REGISTRY_PATH = MODELS_DIR / "registry.json"
CODING_TABLES = ("_quantized_cdf", "_offset", "_cdf_length")
HYRES, PREDICTOR = "hyres", "hidenet-predictor"     # the kinds of registered model
DEFAULT_KEYS = {HYRES: "default", PREDICTOR: "default_predictor"}   # where registry.json names each default


@dataclass(frozen=True)
class ModelEntry:
    name: str
    file: str                  # under models/ when shipped; the downloaded file's name otherwise
    sha256: str
    size: int
    fingerprint: str           # hex model fingerprint, as written in every file the model encodes
    source: str                # the command / run that trained it
    commit: str                # the kit's commit at training time
    lmbda: float | None = None          # HyRES only
    base_quality: int | None = None     # HyRES only
    description: str = ""
    url: str = ""              # download location (empty: shipped in the repository)
    group: str = ""            # the run whose λ phases these models are, drawn as one curve ("cpu profile")
    kind: str = HYRES          # HYRES (a HyresCodec checkpoint) or PREDICTOR (a hideNet predictor checkpoint)


def registry(path: Path = REGISTRY_PATH, kind: str | None = HYRES) -> dict[str, ModelEntry]:
    """The registered models of one kind (every kind: ``None``) by name (empty when the file is absent)."""
    if not path.is_file():
        return {}
    raw = json.loads(path.read_text(encoding="utf-8"))
    entries = (ModelEntry(**m) for m in raw["models"])
    return {m.name: m for m in entries if kind is None or m.kind == kind}


def default_name(path: Path = REGISTRY_PATH, kind: str = HYRES) -> str:
    name = json.loads(path.read_text(encoding="utf-8")).get(DEFAULT_KEYS[kind]) if path.is_file() else None
    if name is None:
        raise FileNotFoundError(f"no default {kind} model registered in {path}: name a checkpoint")
    return name


def model_path(name: str, root: str | Path | None = None, path: Path = REGISTRY_PATH) -> Path:
    """The verified checkpoint file of a registered model (downloaded first when not shipped)."""
    models = registry(path, kind=None)
    if name not in models:
        raise ValueError(f"unknown model {name!r}; registered: {', '.join(sorted(models)) or 'none'}")
    entry = models[name]
    if entry.url:
        from ..datasets import download

        manifest = download.Manifest(name=f"model-{name}", folder=f"cache/models/{name}", kind="http", url=entry.url,
                                     files=(download.FileEntry(entry.file, entry.size, entry.sha256),))
        return download.download(manifest, root) / entry.file
    file = path.parent / entry.file
    if not file.is_file():
        raise FileNotFoundError(f"model {name!r}: {file} is missing")
    if sha256_file(file) != entry.sha256:
        raise ValueError(f"model {name!r}: {file} does not match its registered SHA-256 (damaged or replaced)")
    return file


def load(name: str | None = None, device: str = "cpu", use_refine: bool = True):
    """A registered model as a ready :class:`~hyreslib.hyres.HyresCodec` (the default when None)."""
    from ..hyres.codec import HyresCodec

    name = name or default_name()
    codec = HyresCodec.load(model_path(name), device=device, use_refine=use_refine)
    expected = registry()[name].fingerprint
    if codec.fingerprint.hex() != expected:
        raise ValueError(f"model {name!r} loads with fingerprint {codec.fingerprint.hex()}, registered {expected}")
    return codec


def curve(name: str | None = None, path: Path = REGISTRY_PATH) -> tuple[str, list[ModelEntry]]:
    """The shipped curve a model belongs to (the default's unless named): its label,
    ``shipped (<group>)``, and every model of its group by falling λ (one model when ungrouped)."""
    models = registry(path)
    entry = models[name or default_name(path)]
    members = [m for m in models.values() if entry.group and m.group == entry.group] or [entry]
    return f"shipped ({entry.group or entry.name})", sorted(members, key=lambda m: -m.lmbda)


def by_fingerprint(fingerprint: bytes, path: Path = REGISTRY_PATH, kind: str = HYRES) -> str | None:
    """The registered model of ``kind`` that writes files with this fingerprint, if any."""
    return next((m.name for m in registry(path, kind).values() if m.fingerprint == fingerprint.hex()), None)


def load_predictor(name: str | None = None, path: Path = REGISTRY_PATH):
    """A registered hideNet predictor (the default predictor when None), checked against its
    registered fingerprint: the one every file it codes carries."""
    from ..hidenet.codec import predictor_fingerprint
    from ..hidenet.training import load_predictor as load_checkpoint_file

    name = name or default_name(path, PREDICTOR)
    entry = registry(path, kind=None).get(name)
    if entry is not None and entry.kind != PREDICTOR:
        raise ValueError(f"model {name!r} is a {entry.kind} model, not a hideNet predictor")
    predictor = load_checkpoint_file(model_path(name, path=path))
    if predictor_fingerprint(predictor).hex() != entry.fingerprint:
        raise ValueError(f"predictor {name!r} loads with fingerprint {predictor_fingerprint(predictor).hex()}, "
                         f"registered {entry.fingerprint}")
    return predictor


def _register(entry: ModelEntry, path: Path, default: bool) -> ModelEntry:
    """Add (or replace) ``entry`` in the registry; it becomes its kind's default when asked or when
    its kind has none."""
    doc = json.loads(path.read_text(encoding="utf-8")) if path.is_file() else {}
    models = {**registry(path, kind=None), entry.name: entry}
    key = DEFAULT_KEYS[entry.kind]
    defaults = {k: doc[k] for k in DEFAULT_KEYS.values() if k in doc}
    if default or key not in defaults:
        defaults[key] = entry.name
    atomic_write_json(path, {**defaults, "models": [asdict(m) for m in models.values()]})
    return entry


def ship(checkpoint: str | Path, name: str, source: str, commit: str, description: str = "",
         path: Path = REGISTRY_PATH, default: bool = False, group: str = "") -> ModelEntry:
    """Copy a trained codec checkpoint into ``models/`` as a compact checkpoint (int8 kernels, xz)
    and register it. The fingerprint is that of the shipped, dequantized model, which is what
    encodes and decodes. A float-parse model ships without coding tables (rebuilt on loading: a
    third of the file); an integer-parse model keeps the tables built from its dequantized
    weights, with their digest, so that no machine rebuilds them (which could change the parse)."""
    from ..core.checkpoint import load_checkpoint, save_checkpoint
    from ..hyres.codec import CHECKPOINT_KIND, HyresCodec

    payload = load_checkpoint(checkpoint, kind=CHECKPOINT_KIND)
    state = {k: v.new_empty(0) if k.rsplit(".", 1)[-1] in CODING_TABLES else v
             for k, v in payload["state_dict"].items()}
    target = path.parent / f"{name}.ckpt"
    save_checkpoint(target, CHECKPOINT_KIND, payload["config"], state, payload["extra"], compact=True)
    codec = HyresCodec.load(target)  # tables built from the weights as every loader dequantizes them
    if codec.residual.config.integer_parse:
        # the tables are integers, stored exactly; the floats quantize as before, so they still match the digest
        state.update({f"residual.{k}": v for k, v in codec.residual.state_dict().items()
                      if k.rsplit(".", 1)[-1] in (*CODING_TABLES, "table_source")})
        save_checkpoint(target, CHECKPOINT_KIND, payload["config"], state, payload["extra"], compact=True)
        codec = HyresCodec.load(target)
    entry = ModelEntry(name=name, file=target.name, sha256=sha256_file(target), size=target.stat().st_size,
                       fingerprint=codec.fingerprint.hex(), lmbda=codec.lmbda, base_quality=codec.jpeg.quality,
                       source=source, commit=commit, description=description, group=group)
    return _register(entry, path, default)


def ship_predictor(checkpoint: str | Path, name: str, source: str, commit: str, description: str = "",
                   path: Path = REGISTRY_PATH, default: bool = False) -> ModelEntry:
    """Copy a trained hideNet predictor into ``models/`` as a compact checkpoint (fp16 weights, int8
    for large kernels, xz) and register it. The fingerprint is that of the shipped, rounded
    predictor: lossless files are bit-exact because encoder and decoder both load this file."""
    from ..core.checkpoint import load_checkpoint, save_checkpoint
    from ..hidenet.codec import predictor_fingerprint
    from ..hidenet.training import CHECKPOINT_KIND, load_predictor as load_checkpoint_file

    payload = load_checkpoint(checkpoint, kind=CHECKPOINT_KIND)
    target = path.parent / f"{name}.ckpt"
    save_checkpoint(target, CHECKPOINT_KIND, payload["config"], payload["state_dict"], payload["extra"], compact=True)
    predictor = load_checkpoint_file(target)
    entry = ModelEntry(name=name, file=target.name, sha256=sha256_file(target), size=target.stat().st_size,
                       fingerprint=predictor_fingerprint(predictor).hex(), source=source, commit=commit,
                       description=description, kind=PREDICTOR)
    return _register(entry, path, default)


def ship_run(run_dir: str | Path, group: str, prefix: str, default_phase: int, path: Path = REGISTRY_PATH,
             ) -> list[ModelEntry]:
    """Ship every λ phase of a run (refined by notebook 04 when it ran, else notebook 03's codecs)
    as the models ``<prefix>-phase<k>`` of one group; ``default_phase`` becomes the default."""
    from ..results import manifest

    notebook, suffix = next((nb, s) for nb, s in (("04_refinement", "_refined_codec"), ("03_lambda_phases", "_codec"))
                            if nb in manifest.available(run_dir))
    record = manifest.load(run_dir, notebook)
    run = f"`hyres run --profile {record.record['profile']}` ({notebook}, {record.metrics['test_set']} test set)"
    phases = record.metrics["phases"]
    return [ship(record.artifact(f"phase{p['phase']}{suffix}"), f"{prefix}-phase{p['phase']}",
                 f"phase {p['phase']} of {run}, run finished {record.record['finished']}", record.record["git"],
                 path=path, group=group, default=p["phase"] == default_phase,
                 description=f"HyRES {group}, phase {p['phase']} of {len(phases)}")
            for p in phases]


def ship_predictor_run(run_dir: str | Path, name: str, path: Path = REGISTRY_PATH) -> ModelEntry:
    """Ship the predictor notebook 01 of a run kept (its lowest validation rate) as the default
    hideNet predictor ``name``."""
    from ..results import manifest

    record = manifest.load(run_dir, "01_pixel_splitting")
    kept = record.metrics["kept_predictor"]
    made, profile = record.record, record.record["profile"]
    source = f"`hyres run --profile {profile}` (01_pixel_splitting, {kept}), run finished {made['finished']}"
    description = f"hideNet {kept} predictor, {profile} profile ({made['params']['steps']} steps)"
    return ship_predictor(record.artifact(f"predictor_{kept}"), name, source, made["git"], description=description,
                          path=path, default=True)


def _cmd_list(args: argparse.Namespace) -> int:
    models = registry(kind=None)
    if not models:
        print("no models registered")
        return 0
    defaults = {default_name(kind=kind) for kind in {m.kind for m in models.values()}}
    for m in models.values():
        where = m.url or f"models/{m.file}"
        mark = " (default)" if m.name in defaults else ""
        what = f"λ={m.lmbda}, JPEG base q{m.base_quality}" if m.kind == HYRES else "hideNet predictor"
        print(f"{m.name}{mark}: {what}, {m.size / 1e6:.2f} MB, {where}\n"
              f"    {m.description}\n    made by: {m.source} (commit {m.commit[:12]}), sha256 {m.sha256[:16]}…")
    return 0


def _print_shipped(entries: list[ModelEntry]) -> int:
    for m in entries:
        print(f"{m.name}: {m.size / 1e6:.3f} MB, fingerprint {m.fingerprint}")
    return 0


def _cmd_ship(args: argparse.Namespace) -> int:
    return _print_shipped(ship_run(args.run_dir, args.group, args.prefix, args.default_phase))


def _cmd_ship_predictor(args: argparse.Namespace) -> int:
    return _print_shipped([ship_predictor_run(args.run_dir, args.name)])


def add_commands(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("models", help="the kit's pretrained models")
    msub = p.add_subparsers(dest="models_command", required=True)
    q = msub.add_parser("list", help="list registered models (name, λ, base quality, size, origin)")
    q.set_defaults(func=_cmd_list)
    q = msub.add_parser("ship", help="ship every λ phase of a run as the kit's models (compact, registered)")
    q.add_argument("run_dir", help="a batch run folder, e.g. runs/cpu")
    q.add_argument("--group", required=True, help='the curve the models form, e.g. "cpu profile"')
    q.add_argument("--prefix", required=True, help="model names are <prefix>-phase<k>")
    q.add_argument("--default-phase", type=int, required=True, help="the phase `hyres encode` uses by default")
    q.set_defaults(func=_cmd_ship)
    q = msub.add_parser("ship-predictor", help="ship a run's hideNet predictor (notebook 01's kept one) as the "
                                               "default of `hyres hidenet encode` (compact, registered)")
    q.add_argument("run_dir", help="a batch run folder, e.g. runs/cpu")
    q.add_argument("--name", required=True, help="the model's name, e.g. hidenet-cpu-cnnp")
    q.set_defaults(func=_cmd_ship_predictor)
