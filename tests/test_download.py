"""Dataset download and verification, all offline: sources are local folders (file://) or an HTTP
server on 127.0.0.1 run in a thread, so every failure mode (corrupt source, cut connection, no
network) can be produced on demand."""

from __future__ import annotations

import argparse
import dataclasses
import hashlib
import random
import socket
import threading
import time
import urllib.parse
from collections import Counter
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from hyreslib.core.fileio import PART_SUFFIX
from hyreslib.datasets import download as dl
from hyreslib.datasets.data import LAYOUT
from hyreslib.datasets.download import DownloadError, FileEntry, Manifest, SourceUnreachable

# A subfolder and a name with a space, as in CID22, so URL quoting is exercised.
TOY_SIZES = {"a.png": 3000, "sub/b c.png": 200_000, "sub/d.bin": 10}


def toy_files() -> dict[str, bytes]:
    rng = random.Random(0)
    return {path: rng.randbytes(size) for path, size in TOY_SIZES.items()}


def toy_manifest(url: str = "http://nonexistent.invalid/{path}", kind: str = "http",
                 ids: bool = False) -> Manifest:
    entries = tuple(FileEntry(path, len(data), hashlib.sha256(data).hexdigest(),
                              id=f"id{i}" if ids else "")
                    for i, (path, data) in enumerate(toy_files().items()))
    return Manifest(name="toy", folder="toy", kind=kind, url=url, files=entries)


def write_tree(folder: Path, files: dict[str, bytes]) -> Path:
    for path, data in files.items():
        (folder / path).parent.mkdir(parents=True, exist_ok=True)
        (folder / path).write_bytes(data)
    return folder


def assert_no_leftovers(root: Path) -> None:
    assert not list(root.rglob(f"*{PART_SUFFIX}")), "a temp file was left behind"


@pytest.fixture
def source(tmp_path) -> Path:
    return write_tree(tmp_path / "mirror", toy_files())


class ToyServer:
    """Serves ``files`` by URL path; ``cut[path] = n`` sends only half the body of the next n
    responses for ``path``, then closes the connection."""

    def __init__(self, files: dict[str, bytes]):
        self.files, self.requests, self.cut = files, Counter(), Counter()
        self.url = ""


@pytest.fixture
def server():
    state = ToyServer(toy_files())

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self):
            path = urllib.parse.unquote(urllib.parse.urlsplit(self.path).path).lstrip("/")
            state.requests[path] += 1
            if path not in state.files:
                self.send_error(404)
                return
            body = state.files[path]
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            if state.cut[path] > 0:
                state.cut[path] -= 1
                body = body[:len(body) // 2]
                self.close_connection = True
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    state.url = f"http://127.0.0.1:{httpd.server_address[1]}/"
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    yield state
    httpd.shutdown()
    httpd.server_close()
    thread.join(timeout=5)


def assert_complete(root: Path) -> None:
    for path, data in toy_files().items():
        assert (root / "toy" / path).read_bytes() == data
    assert dl.verify(toy_manifest(), root).passed
    assert_no_leftovers(root)


# --- fetching ---------------------------------------------------------------------------------

def test_download_from_file_url_and_plain_folder(tmp_path, source):
    for root, src in ((tmp_path / "r1", source.as_uri()), (tmp_path / "r2", str(source))):
        assert dl.download(toy_manifest(), root, src) == root / "toy"
        assert_complete(root)


def test_download_over_http(tmp_path, server):
    dl.download(toy_manifest(), tmp_path, server.url)
    assert_complete(tmp_path)
    assert server.requests == Counter({path: 1 for path in TOY_SIZES})


def test_manifest_origin_with_gdown(tmp_path, server):
    """A "gdrive" manifest goes through gdown, with the entry's id in the URL template."""
    server.files = {f"files/id{i}": data for i, data in enumerate(toy_files().values())}
    dl.download(toy_manifest(server.url + "files/{id}", kind="gdrive", ids=True), tmp_path)
    assert_complete(tmp_path)
    assert sorted(server.requests) == ["files/id0", "files/id1", "files/id2"]


def test_verified_files_are_not_fetched_again(tmp_path, server):
    dl.download(toy_manifest(), tmp_path, server.url)
    (tmp_path / "toy/a.png").unlink()
    (tmp_path / "toy/sub/d.bin").write_bytes(b"x" * 10)  # right size, wrong content
    server.requests.clear()
    dl.download(toy_manifest(), tmp_path, server.url)
    assert_complete(tmp_path)
    assert server.requests == Counter({"a.png": 1, "sub/d.bin": 1})


def test_corrupt_source_file_is_refused_and_not_kept(tmp_path, source):
    bad = source / "sub/b c.png"
    data = bytearray(bad.read_bytes())
    data[1000] ^= 0xFF
    bad.write_bytes(bytes(data))
    root = tmp_path / "root"
    with pytest.raises(DownloadError, match="sub/b c.png: downloaded file rejected: SHA-256"):
        dl.download(toy_manifest(), root, str(source))
    assert not (root / "toy/sub/b c.png").exists()
    assert (root / "toy/a.png").read_bytes() == toy_files()["a.png"]
    assert_no_leftovers(root)


def test_cut_connection_leaves_nothing_and_a_later_run_succeeds(tmp_path, server):
    server.cut["sub/b c.png"] = 2  # the first try and its retry both break off
    with pytest.raises(DownloadError, match=r"sub/b c.png: downloaded file rejected: size 100,000"):
        dl.download(toy_manifest(), tmp_path, server.url)
    assert server.requests["sub/b c.png"] == 2
    assert not (tmp_path / "toy/sub/b c.png").exists()
    assert_no_leftovers(tmp_path)

    server.requests.clear()
    dl.download(toy_manifest(), tmp_path, server.url)
    assert_complete(tmp_path)
    assert server.requests == Counter({"sub/b c.png": 1})


def test_one_cut_connection_is_retried(tmp_path, server):
    server.cut["a.png"] = 1
    dl.download(toy_manifest(), tmp_path, server.url)
    assert_complete(tmp_path)
    assert server.requests["a.png"] == 2


def test_missing_source_file_is_reported(tmp_path, source):
    (source / "sub/d.bin").unlink()
    with pytest.raises(DownloadError, match="1 file.* failed twice.*\n  sub/d.bin: "):
        dl.download(toy_manifest(), tmp_path, str(source))


def test_stale_temp_files_are_removed(tmp_path, source):
    stale = tmp_path / "toy/sub" / f".d.bin.123{PART_SUFFIX}"
    write_tree(tmp_path, {f"toy/sub/{stale.name}": b"partial"})
    dl.download(toy_manifest(), tmp_path, str(source))
    assert not stale.exists()


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.parametrize("origin", ["dns", "refused", "gdrive-dns"])
def test_no_network_fails_fast_with_by_hand_instructions(tmp_path, origin):
    if origin == "refused":
        manifest = toy_manifest(f"http://127.0.0.1:{closed_port()}/{{path}}")
    else:
        manifest = toy_manifest(kind="gdrive" if origin == "gdrive-dns" else "http")
    start = time.monotonic()
    with pytest.raises(SourceUnreachable) as info:
        dl.download(manifest, tmp_path)
    assert time.monotonic() - start < 5
    message = str(info.value)
    assert "put them by hand in" in message
    assert f"{tmp_path / 'toy'}/" in message
    assert f"hyres data verify toy --root {tmp_path}" in message
    assert not (tmp_path / "toy").exists() or not any((tmp_path / "toy").rglob("*.*"))


def test_source_override_reaches_unreachable_mirror_too(tmp_path):
    with pytest.raises(SourceUnreachable, match="nonexistent.invalid"):
        dl.download(toy_manifest(), tmp_path, "http://nonexistent.invalid/mirror/")


def test_bad_source_scheme_is_rejected(tmp_path):
    with pytest.raises(ValueError, match="--source"):
        dl.download(toy_manifest(), tmp_path, "ftp://example.org/kodak")


def test_unsafe_manifest_path_is_rejected():
    with pytest.raises(ValueError, match="unsafe"):
        dataclasses.replace(toy_manifest(), files=(FileEntry("../escape.png", 1, "0" * 64),))


def test_unknown_dataset_name():
    with pytest.raises(ValueError, match="known: .*kodak"):
        dl.verify("nope")


# --- verification -----------------------------------------------------------------------------

def test_verify_reports_missing_and_corrupt(tmp_path, source):
    dl.download(toy_manifest(), tmp_path, str(source))
    (tmp_path / "toy/a.png").unlink()
    (tmp_path / "toy/sub/d.bin").write_bytes(b"y" * 10)  # same size, other bytes
    (tmp_path / "toy/sub/extra.txt").write_text("not in the manifest: ignored")

    report = dl.verify(toy_manifest(), tmp_path)
    assert not report.passed
    assert report.ok == ["sub/b c.png"]
    assert report.missing == ["a.png"]
    assert report.corrupt == ["sub/d.bin"]
    assert "1 of 3 files verified, 1 missing, 1 corrupt" in report.summary()

    quick = dl.verify(toy_manifest(), tmp_path, quick=True)  # sizes only: blind to same-size edits
    assert quick.missing == ["a.png"] and quick.corrupt == []


# --- command line -----------------------------------------------------------------------------

def run_cli(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="hyres")
    dl.add_commands(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(argv)
    return args.func(args)


def test_cli_download_verify_list(tmp_path, source, monkeypatch, capsys):
    monkeypatch.setitem(dl.DATASETS, "toy", toy_manifest())
    root = str(tmp_path / "root")
    assert run_cli(["data", "download", "toy", "--root", root, "--source", source.as_uri()]) == 0
    assert run_cli(["data", "verify", "toy", "--root", root]) == 0
    assert "toy: all 3 files verified" in capsys.readouterr().out

    (tmp_path / "root/toy/sub/d.bin").write_bytes(b"z" * 9)
    assert run_cli(["data", "verify", "toy", "--root", root]) == 1
    out = capsys.readouterr().out
    assert "CORRUPT  sub/d.bin  (size 9 bytes, expected 10)" in out

    assert run_cli(["data", "list", "--root", root, "--verify"]) == 0
    listing = {line.split()[0]: line for line in capsys.readouterr().out.splitlines()}
    assert "incomplete (0 missing, 1 corrupt)" in listing["toy"]
    assert "absent" in listing["kodak"]


# --- the real manifests -----------------------------------------------------------------------

def test_manifests_match_the_data_layout():
    """The download folders are the ones hyreslib.datasets.data reads, and every split gets files."""
    assert set(dl.DATASETS) >= {"kodak", "cid22"}
    for name, splits in LAYOUT.items():
        manifest = dl.DATASETS[name]
        for folder in splits.values():
            inner = Path(folder).relative_to(manifest.folder).as_posix()
            assert any(f.path.startswith("" if inner == "." else inner + "/") for f in manifest.files)
    assert len(dl.DATASETS["kodak"].files) == 24
    assert len(dl.DATASETS["cid22"].files) == 250
    assert dl.DATASETS["kodak"].url_for(dl.DATASETS["kodak"].files[0]) == \
        "http://r0k.us/graphics/kodak/kodak/kodim01.png"
    spaced = next(f for f in dl.DATASETS["cid22"].files if " " in f.path)
    assert "%20" in dl.DATASETS["cid22"].url_for(spaced)


@pytest.mark.parametrize("name", ["kodak", "cid22"])
def test_real_manifests_match_local_data(name):
    folder = dl.DATASETS[name].dest()
    if not folder.is_dir():
        pytest.skip(f"{name} not present in {folder} (set HYRES_DATA)")
    report = dl.verify(name)
    assert report.passed, report.problems


def test_real_files_download_from_local_mirror(tmp_path):
    """Real manifest entries (one name has spaces) fetched from the local copy of CID22."""
    manifest = dl.DATASETS["cid22"]
    mirror = manifest.dest()
    if not mirror.is_dir():
        pytest.skip(f"cid22 not present in {mirror} (set HYRES_DATA)")
    files = tuple(f for f in manifest.files if " " in f.path or f.path.startswith("validation/"))[:5]
    subset = dataclasses.replace(manifest, files=files)
    dest = dl.download(subset, tmp_path, mirror.as_uri())
    assert dest == tmp_path / "train/cid22"
    assert dl.verify(subset, tmp_path).passed
    assert any(" " in f.path for f in files)
