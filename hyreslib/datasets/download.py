"""Fetch the kit's datasets and check them against SHA-256 manifests.

Each dataset has a tracked manifest, ``data/manifests/<name>.json``: where its files come from
(a URL template), its licence, and every file's relative path, size and SHA-256. Data flow for
:func:`download`::

    manifest -> files missing or wrong under data_root()/<folder>/
             -> fetch each into a temp file beside its target (urllib, or gdown for Drive)
             -> fsync, check size + SHA-256 -> os.replace onto the target

so a file with the final name is always complete and verified; anything else is deleted. Files
that fail are retried once, then reported together. An unreachable origin (DNS failure, refused
or timed-out connection) stops at once with instructions for placing the files by hand.
"""

from __future__ import annotations

import errno
import http.client
import json
import shutil
import socket
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO

from tqdm import tqdm

from ..core.fileio import CHUNK, atomic_write, remove_stale_parts, sha256_file
from ..core.roots import PROJECT_ROOT, data_root

MANIFEST_DIR = PROJECT_ROOT / "data" / "manifests"
TIMEOUT_S = 10.0  # to connect, and for any silent gap while reading
KINDS = ("http", "gdrive")  # "http" also serves https:// and file:// URLs


class DownloadError(RuntimeError):
    """Some files could not be fetched intact (after one retry)."""


class SourceUnreachable(ConnectionError):
    """The origin cannot be reached at all (no network, DNS failure, nothing listening)."""


class _BadFile(Exception):
    """One file failed (HTTP error, truncated, wrong hash); worth a retry."""


@dataclass(frozen=True)
class FileEntry:
    path: str  # relative to the dataset folder, '/'-separated
    size: int
    sha256: str
    id: str = ""  # Google Drive file id, for "gdrive" manifests whose URL template uses {id}


@dataclass(frozen=True)
class Manifest:
    """What a dataset is, where it comes from, and what its files must hash to."""

    name: str
    folder: str  # relative to data_root()
    kind: str  # one of KINDS
    url: str  # template: {path} becomes the URL-quoted path, {id} the entry's id
    files: tuple[FileEntry, ...]
    description: str = ""
    homepage: str = ""
    licence: str = ""

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"manifest {self.name}: kind must be one of {KINDS}, not {self.kind!r}")
        for entry in self.files:
            parts = Path(entry.path).parts
            if Path(entry.path).is_absolute() or ".." in parts or not parts:
                raise ValueError(f"manifest {self.name}: unsafe file path {entry.path!r}")

    @classmethod
    def load(cls, path: Path) -> Manifest:
        raw = json.loads(Path(path).read_text(encoding="utf-8"))
        raw["files"] = tuple(FileEntry(**f) for f in raw["files"])
        return cls(**raw)

    @property
    def total_bytes(self) -> int:
        return sum(f.size for f in self.files)

    def dest(self, root: str | Path | None = None) -> Path:
        return data_root(root) / self.folder

    def url_for(self, entry: FileEntry, source: str | None = None) -> str:
        """The entry's URL: from the manifest template, or under ``source`` (a mirror laid
        out like the destination folder)."""
        quoted = urllib.parse.quote(entry.path)
        if source:
            return _source_base(source) + quoted
        return self.url.format(path=quoted, id=entry.id)


def _load_registry() -> dict[str, Manifest]:
    manifests = (Manifest.load(p) for p in sorted(MANIFEST_DIR.glob("*.json")))
    return {m.name: m for m in manifests}


DATASETS: dict[str, Manifest] = _load_registry()


def get_manifest(name: str | Manifest) -> Manifest:
    if isinstance(name, Manifest):
        return name
    if name not in DATASETS:
        raise ValueError(f"unknown dataset {name!r}; known: {', '.join(sorted(DATASETS)) or 'none'} "
                         f"(manifests are read from {MANIFEST_DIR})")
    return DATASETS[name]


def _source_base(source: str) -> str:
    """``source`` as a base URL ending in '/'; a plain folder path becomes a file:// URL."""
    if "://" not in source:
        source = Path(source).expanduser().resolve().as_uri()
    scheme = urllib.parse.urlsplit(source).scheme
    if scheme not in ("http", "https", "file"):
        raise ValueError(f"--source must be a folder or an http(s):// or file:// URL, not {source!r}")
    return source.rstrip("/") + "/"


def _problem(path: Path, entry: FileEntry, quick: bool = False) -> str | None:
    """Why ``path`` is not a verified copy of ``entry`` (None when it is). ``quick`` checks the
    size only."""
    if not path.is_file():
        return "missing"
    size = path.stat().st_size
    if size != entry.size:
        return f"size {size:,} bytes, expected {entry.size:,}"
    if not quick and sha256_file(path) != entry.sha256:
        return "SHA-256 differs from the manifest"
    return None


# --- verification ---------------------------------------------------------------------------

@dataclass
class VerifyReport:
    """The state of a local copy. Files on disk but not in the manifest are ignored."""

    name: str
    folder: Path
    ok: list[str] = field(default_factory=list)
    problems: dict[str, str] = field(default_factory=dict)  # path -> "missing" or what is wrong
    quick: bool = False  # sizes only, no hashing

    @property
    def missing(self) -> list[str]:
        return [p for p, why in self.problems.items() if why == "missing"]

    @property
    def corrupt(self) -> list[str]:
        return [p for p, why in self.problems.items() if why != "missing"]

    @property
    def passed(self) -> bool:
        return not self.problems

    def summary(self) -> str:
        total = len(self.ok) + len(self.problems)
        check = "size-checked" if self.quick else "verified"
        if self.passed:
            return f"{self.name}: all {total} files {check} in {self.folder}"
        return (f"{self.name}: {len(self.ok)} of {total} files {check}, {len(self.missing)} missing, "
                f"{len(self.corrupt)} corrupt in {self.folder}")


def verify(name: str | Manifest, root: str | Path | None = None, quick: bool = False) -> VerifyReport:
    """Check every manifest file under the dataset folder (``quick``: sizes only)."""
    manifest = get_manifest(name)
    report = VerifyReport(manifest.name, manifest.dest(root), quick=quick)
    for entry in manifest.files:
        why = _problem(report.folder / entry.path, entry, quick)
        if why is None:
            report.ok.append(entry.path)
        else:
            report.problems[entry.path] = why
    return report


# --- fetching --------------------------------------------------------------------------------

def _is_unreachable(reason: object) -> bool:
    if isinstance(reason, (socket.gaierror, ConnectionRefusedError, TimeoutError)):
        return True
    return isinstance(reason, OSError) and reason.errno in (errno.ENETUNREACH, errno.EHOSTUNREACH)


def _fetch_urllib(url: str, out: BinaryIO) -> None:
    try:
        with urllib.request.urlopen(url, timeout=TIMEOUT_S) as response:
            shutil.copyfileobj(response, out, CHUNK)
    except urllib.error.HTTPError as exc:
        raise _BadFile(f"HTTP {exc.code} {exc.reason}") from exc
    except urllib.error.URLError as exc:
        if _is_unreachable(exc.reason):
            raise SourceUnreachable(f"{url}: {exc.reason}") from exc
        raise _BadFile(str(exc.reason)) from exc
    except (OSError, http.client.HTTPException) as exc:  # reset, stalled or cut mid-body
        raise _BadFile(f"transfer failed: {exc}") from exc


def _fetch_gdown(url: str, out: BinaryIO) -> None:
    import gdown
    import requests

    try:
        gdown.download(url, output=out, quiet=True, timeout=(TIMEOUT_S, TIMEOUT_S))
    except requests.ConnectionError as exc:
        if out.tell() == 0:  # nothing arrived: the host itself is out of reach
            raise SourceUnreachable(f"{url}: {exc}") from exc
        raise _BadFile(f"transfer failed: {exc}") from exc
    except (gdown.exceptions.DownloadError, requests.RequestException) as exc:
        raise _BadFile(str(exc)) from exc


def _fetch_file(url: str, kind: str, entry: FileEntry, target: Path) -> None:
    """Fetch into a temp file beside ``target``; only a verified file is renamed into place."""

    def check(tmp: Path) -> None:
        why = _problem(tmp, entry)
        if why is not None:
            raise _BadFile(f"downloaded file rejected: {why}")

    atomic_write(target, lambda out: (_fetch_gdown if kind == "gdrive" else _fetch_urllib)(url, out), verify=check)


def _fetch_all(manifest: Manifest, entries: list[FileEntry], dest: Path, source: str | None,
               desc: str) -> dict[str, str]:
    """Fetch ``entries``; return path -> reason for those that failed."""
    kind = "http" if source else manifest.kind
    failed: dict[str, str] = {}
    for entry in tqdm(entries, desc=desc, unit="file"):
        try:
            _fetch_file(manifest.url_for(entry, source), kind, entry, dest / entry.path)
        except _BadFile as exc:
            failed[entry.path] = str(exc)
    return failed


def _by_hand_message(manifest: Manifest, dest: Path, root: str | Path | None, cause: str) -> str:
    example = manifest.files[0].path if manifest.files else "..."
    return (
        f"cannot reach the source of {manifest.name} ({cause}).\n"
        f"Without network, get its {len(manifest.files)} files elsewhere (origin: {manifest.url}) "
        f"and put them by hand in\n    {dest}/\nkeeping the manifest's relative paths "
        f"(e.g. {example}), then check them with\n"
        f"    hyres data verify {manifest.name} --root {data_root(root)}\n"
        f"or point --source at a mirror with the same layout (a folder, file:// or http:// URL).")


def _format_failures(failed: dict[str, str], limit: int = 10) -> str:
    lines = [f"  {path}: {why}" for path, why in list(failed.items())[:limit]]
    if len(failed) > limit:
        lines.append(f"  ... and {len(failed) - limit} more")
    return "\n".join(lines)


def _files_to_fetch(manifest: Manifest, dest: Path) -> list[FileEntry]:
    """Entries not yet verified under ``dest``, after clearing what must not be used: temp files
    left by a killed run and local files that fail their check."""
    remove_stale_parts(dest)
    todo = []
    for entry in manifest.files:
        why = _problem(dest / entry.path, entry)
        if why is not None:
            if why != "missing":
                print(f"{manifest.name}: replacing {entry.path} ({why})")
                (dest / entry.path).unlink()
            todo.append(entry)
    return todo


def download(name: str | Manifest, root: str | Path | None = None, source: str | None = None) -> Path:
    """Make ``data_root(root)/<folder>`` hold every manifest file, verified; return that folder.

    Files already present and verified are not fetched again; a local file that does not verify
    is deleted and fetched anew. ``source`` replaces the origin with a mirror (folder, file:// or
    http(s):// URL) holding the files at the same relative paths.
    """
    manifest = get_manifest(name)
    dest = manifest.dest(root)
    if source:
        _source_base(source)  # reject a bad --source before touching anything
    todo = _files_to_fetch(manifest, dest)
    failed: dict[str, str] = {}
    for attempt in ("fetching", "retrying"):
        if not todo:
            break
        desc = f"{manifest.name}: {attempt} {len(todo)} of {len(manifest.files)}"
        try:
            failed = _fetch_all(manifest, todo, dest, source, desc)
        except SourceUnreachable as exc:
            raise SourceUnreachable(_by_hand_message(manifest, dest, root, str(exc))) from exc
        todo = [e for e in todo if e.path in failed]
    if todo:
        raise DownloadError(f"{len(failed)} file(s) of {manifest.name} failed twice and were not kept "
                            f"(source: {source or manifest.url}):\n{_format_failures(failed)}")
    return dest


# --- command line ----------------------------------------------------------------------------

def _cmd_download(args) -> int:
    download(args.name, args.root, args.source)
    report = verify(args.name, args.root)  # an independent re-read of what is now on disk
    print(report.summary())
    print(f"licence: {DATASETS[args.name].licence}")
    return 0 if report.passed else 1


def _cmd_verify(args) -> int:
    report = verify(args.name, args.root)
    for path, why in report.problems.items():
        print(f"MISSING  {path}" if why == "missing" else f"CORRUPT  {path}  ({why})")
    print(report.summary())
    return 0 if report.passed else 1


def _cmd_list(args) -> int:
    for name, manifest in sorted(DATASETS.items()):
        report = verify(name, args.root, quick=not args.verify)
        if report.passed:
            state = "verified" if args.verify else "present (sizes match; --verify to hash)"
        elif len(report.missing) == len(manifest.files):
            state = "absent"
        else:
            state = f"incomplete ({len(report.missing)} missing, {len(report.corrupt)} corrupt)"
        print(f"{name:8s} {len(manifest.files):4d} files {manifest.total_bytes / 1e6:7.1f} MB  "
              f"{state}  [{report.folder}]")
    return 0


def add_commands(subparsers) -> None:
    data = subparsers.add_parser("data", help="download and verify datasets",
                                 description="Fetch datasets (checked against SHA-256 manifests in "
                                             f"{MANIFEST_DIR}) and check local copies.")
    actions = data.add_subparsers(dest="action", required=True, metavar="ACTION")
    root_help = "data folder (default: $HYRES_DATA, else the project's data/)"

    p = actions.add_parser("download", help="fetch a dataset, verifying every file")
    p.add_argument("name", choices=sorted(DATASETS))
    p.add_argument("--root", help=root_help)
    p.add_argument("--source", help="mirror to fetch from instead of the origin: a folder, file:// "
                                    "or http(s):// URL laid out like the dataset folder")
    p.set_defaults(func=_cmd_download)

    p = actions.add_parser("verify", help="check a local copy against its manifest")
    p.add_argument("name", choices=sorted(DATASETS))
    p.add_argument("--root", help=root_help)
    p.set_defaults(func=_cmd_verify)

    p = actions.add_parser("list", help="known datasets and whether each is present")
    p.add_argument("--root", help=root_help)
    p.add_argument("--verify", action="store_true", help="hash every file (default: sizes only)")
    p.set_defaults(func=_cmd_list)
