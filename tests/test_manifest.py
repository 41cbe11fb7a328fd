"""Run folders: an interactive run never writes into a batch run, and a manifest never outlives its files."""

from __future__ import annotations

import pytest

from hyreslib.results import manifest, recons


def _finished(run_dir, notebook, text="batch"):
    run = manifest.start(run_dir, notebook, profile="quick", seed=0, device="cpu")
    path = run.path("out.txt")
    path.write_text(text)
    run.add_artifact("out", path)
    run.save()
    return path


def test_starting_a_notebook_again_withdraws_its_manifest_until_it_finishes(tmp_path):
    _finished(tmp_path / "quick", "02_x")
    manifest.start(tmp_path / "quick", "02_x", profile="quick", seed=0, device="cpu")  # then interrupted
    with pytest.raises(FileNotFoundError, match="run that notebook first"):
        manifest.load(tmp_path / "quick", "02_x")


def test_interactive_run_reads_through_to_the_batch_run_and_writes_only_its_own_folder(tmp_path):
    runs = tmp_path / "runs"
    batch_file = _finished(runs / "quick", "02_x")
    before = {p: p.read_bytes() for p in (runs / "quick").rglob("*") if p.is_file()}
    interactive = runs / manifest.INTERACTIVE
    m = manifest.load(interactive, "02_x")  # not run by hand yet: the batch run's result
    assert m.run_dir == (runs / "quick").resolve() and m.artifact("out") == batch_file.resolve()

    run = manifest.start(interactive, "03_y", profile="quick", seed=0, device="cpu")
    run.add_artifact("reused", m.artifact("out"))  # a batch file recorded by the interactive run
    mine = run.path("x.txt")
    mine.write_text("mine")
    run.add_artifact("mine", mine)
    run.save()
    _finished(interactive, "02_x", text="by hand")  # now run by hand: its own result wins
    assert manifest.load(interactive, "02_x").artifact("out").read_text() == "by hand"
    assert manifest.load(interactive, "03_y").artifact("reused").read_text() == "batch"
    assert manifest.available(interactive) == ["02_x", "03_y"]
    assert {p: p.read_bytes() for p in (runs / "quick").rglob("*") if p.is_file()} == before


def test_interactive_run_prefers_a_full_batch_run(tmp_path):
    runs = tmp_path / "runs"
    _finished(runs / "quick", "02_x", "quick")
    assert manifest.load(runs / manifest.INTERACTIVE, "02_x").artifact("out").read_text() == "quick"
    _finished(runs / "full", "02_x", "full")
    assert manifest.load(runs / manifest.INTERACTIVE, "02_x").artifact("out").read_text() == "full"
    assert recons.collect(runs / manifest.INTERACTIVE) == []


def test_batch_runs_read_only_themselves(tmp_path):
    _finished(tmp_path / "full", "02_x")
    with pytest.raises(FileNotFoundError):
        manifest.load(tmp_path / "quick", "02_x")


def test_resume_path_depends_on_what_is_trained(tmp_path):
    run = manifest.start(tmp_path, "02_x", profile="quick", seed=0, device="cpu")
    one = run.resume_path("train_state", {"lmbda": 0.045, "steps": 300})
    assert one == run.resume_path("train_state", {"steps": 300, "lmbda": 0.045})
    assert one != run.resume_path("train_state", {"lmbda": 0.032, "steps": 300})
    assert one.parent == run.dir
