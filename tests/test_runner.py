"""The papermill runner: parameter checking, failure reporting, and manifests between notebooks."""

from __future__ import annotations

import json
from pathlib import Path

import nbformat
import pytest
from nbformat.v4 import new_code_cell, new_notebook

from hyreslib.pipeline import profiles, runner
from hyreslib.pipeline.runner import PipelineError
from hyreslib.results import manifest

KERNEL = {"kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"}}
PARAMS = 'profile: str = "quick"\nrun_dir: str = "../runs/quick"\nseed: int = 0\nsteps: int = 3\n'


def write_nb(folder: Path, name: str, *cells: str) -> Path:
    nb = new_notebook(cells=[new_code_cell(PARAMS, metadata={"tags": ["parameters"]}),
                             *(new_code_cell(c) for c in cells)], metadata=KERNEL)
    path = folder / f"{name}.ipynb"
    nbformat.write(nb, path)
    return path


@pytest.fixture
def nbdir(tmp_path):
    d = tmp_path / "notebooks"
    d.mkdir()
    return d


WRITE = ("from hyreslib.results import manifest\n"
         "run = manifest.start(run_dir, '00_a', profile=profile, seed=seed, device='cpu', params={'steps': steps})\n"
         "p = run.path('out.txt'); p.write_text(str(steps * 2)); run.add_artifact('out', p)\n"
         "run.metrics['double'] = steps * 2\nrun.save()")
READ = ("from hyreslib.results import manifest\n"
        "m = manifest.load(run_dir, '00_a')\nassert m.metrics['double'] == int(m.artifact('out').read_text())\n"
        "run = manifest.start(run_dir, '01_b', profile=profile, seed=seed, device='cpu')\n"
        "run.metrics['seen'] = m.metrics['double']\nrun.save()")


def test_pipeline_runs_in_order_and_hands_results_through_manifests(nbdir, tmp_path):
    write_nb(nbdir, "00_a", WRITE)
    write_nb(nbdir, "01_b", READ)
    results = runner.run_pipeline("quick", overrides=["steps=5"], runs_root=tmp_path / "runs", notebooks_dir=nbdir)
    assert [r.name for r in results] == ["00_a", "01_b"]
    run_dir = tmp_path / "runs" / "quick"
    assert manifest.load(run_dir, "01_b").metrics["seen"] == 10
    record = manifest.load(run_dir, "00_a").record
    assert record["params"] == {"steps": 5} and record["git"] and record["versions"]["torch"]
    assert set(json.loads((run_dir / "timings.json").read_text())) == {"00_a", "01_b"}
    assert (run_dir / "notebooks" / "01_b.ipynb").is_file()


def test_unknown_parameter_is_refused_before_anything_runs(nbdir, tmp_path):
    write_nb(nbdir, "00_a", "open('ran', 'w').write('yes')")
    with pytest.raises(PipelineError, match="lambd"):
        runner.run_pipeline("quick", overrides=["lambd=0.1"], runs_root=tmp_path / "runs", notebooks_dir=nbdir)
    with pytest.raises(PipelineError, match="unknown parameter"):
        runner.run_pipeline("quick", overrides=["00.lambd=0.1"], runs_root=tmp_path / "runs", notebooks_dir=nbdir)
    assert not (nbdir / "ran").exists()


def test_failing_cell_is_named_and_the_run_stops(nbdir, tmp_path):
    write_nb(nbdir, "00_a", "x = 1", "raise ValueError('broken on purpose')")
    write_nb(nbdir, "01_b", "open('ran', 'w').write('yes')")
    with pytest.raises(PipelineError, match=r"00_a.ipynb failed in cell .*ValueError: broken on purpose"):
        runner.run_pipeline("quick", runs_root=tmp_path / "runs", notebooks_dir=nbdir)
    assert not (nbdir / "ran").exists()


def test_cell_timeout_is_reported(nbdir, tmp_path):
    write_nb(nbdir, "00_a", "import time; time.sleep(30)")
    with pytest.raises(PipelineError, match="limit"):
        runner.run_pipeline("quick", runs_root=tmp_path / "runs", notebooks_dir=nbdir, timeout=3)


def test_dead_kernel_is_reported(nbdir, tmp_path):
    write_nb(nbdir, "00_a", "import os; os._exit(9)")
    with pytest.raises(PipelineError, match="00_a.ipynb: the kernel died"):
        runner.run_pipeline("quick", runs_root=tmp_path / "runs", notebooks_dir=nbdir)


def test_profile_values_reach_the_notebook_and_set_overrides_take_precedence(nbdir, tmp_path, monkeypatch):
    monkeypatch.setitem(profiles.PROFILES, "full", {"00_a": {"steps": 7, "seed": 3}})
    write_nb(nbdir, "00_a", WRITE)
    runner.run_pipeline("full", runs_root=tmp_path / "runs", notebooks_dir=nbdir)
    record = manifest.load(tmp_path / "runs" / "full", "00_a").record
    assert record["params"] == {"steps": 7} and record["seed"] == 3
    path = nbdir / "00_a.ipynb"
    build = runner.build_parameters
    assert build(path, "full", tmp_path, runner.parse_overrides(["steps=9"]))["steps"] == 9  # --set beats profile
    assert build(path, "full", tmp_path, runner.parse_overrides(["steps=9", "00.steps=11"]))["steps"] == 11
    assert build(path, "full", tmp_path, runner.parse_overrides(["00_a.steps=12", "steps=9"]))["steps"] == 12
    assert "steps" not in build(path, "quick", tmp_path, {})  # quick: the notebook's own values


def test_smoke_run_caps_the_profile_and_goes_to_its_own_folder(nbdir, tmp_path, monkeypatch):
    monkeypatch.setitem(profiles.PROFILES, "full", {"00_a": {"steps": 7, "seed": 3}})
    monkeypatch.setitem(profiles.SMOKE, "00_a", {"steps": 2})
    write_nb(nbdir, "00_a", WRITE)
    runner.run_pipeline("full", runs_root=tmp_path / "runs", notebooks_dir=nbdir, smoke=True)
    record = manifest.load(tmp_path / "runs" / "full-smoke", "00_a").record
    assert record["params"] == {"steps": 2} and record["seed"] == 3 and record["profile"] == "full-smoke"
    assert not (tmp_path / "runs" / "full").exists()  # never where the profile's own run (and figures) go
    path = nbdir / "00_a.ipynb"
    assert runner.build_parameters(path, "full", tmp_path, runner.parse_overrides(["steps=5"]), smoke=True)["steps"] == 5


def test_cli_exit_code_is_nonzero_on_bad_parameter(capsys):
    from hyreslib.cli import main

    assert main(["run", "--only", "00", "--set", "no_such_parameter=1"]) == 1
    assert "no_such_parameter" in capsys.readouterr().err


def test_selection_and_override_parsing(nbdir):
    paths = [write_nb(nbdir, n) for n in ("00_a", "01_b", "02_c")]
    assert [p.stem for p in runner.select(paths, ["02", "00_a"])] == ["00_a", "02_c"]
    with pytest.raises(ValueError, match="no notebook matches"):
        runner.select(paths, ["07"])
    parsed = runner.parse_overrides(["steps=5", "01.lambdas=[0.045, 0.032]", "device=cuda"])
    assert parsed == {None: {"steps": 5, "device": "cuda"}, "01": {"lambdas": [0.045, 0.032]}}
    with pytest.raises(ValueError):
        runner.parse_overrides(["steps"])


def test_manifest_detects_a_changed_artifact(tmp_path):
    run = manifest.start(tmp_path, "00_a", profile="quick", seed=1, device="cpu")
    p = run.path("x.bin")
    p.write_bytes(b"abc")
    run.add_artifact("x", p)
    run.save()
    m = manifest.load(tmp_path, "00_a")
    assert m.artifact("x") == p.resolve()
    p.write_bytes(b"abd")
    with pytest.raises(ValueError, match="changed"):
        m.artifact("x")
    with pytest.raises(FileNotFoundError, match="run that notebook first"):
        manifest.load(tmp_path, "03_missing")


def test_summary_gives_bd_rates_or_why_not_hidenet_rate_and_figure_folder(tmp_path):
    run_dir = tmp_path / "quick"
    rd_run = manifest.start(run_dir, "05_rd_curves", profile="quick", seed=0, device="cpu")
    fig = rd_run.path("figures/fig05_rd_psnr_msssim.png")
    fig.write_bytes(b"png")
    rd_run.add_artifact(fig.name, fig)
    rd_run.metrics.update({"images": ["a", "b"], "bd_table": [
        {"codec": "HyRES", "anchor": "jpeg", "bd_rate_pct": 52.04, "bd_psnr_db": -1.234, "note": ""},
        {"codec": "hideNet generative", "anchor": "jpeg", "bd_rate_pct": None, "bd_psnr_db": None,
         "note": "1 point: a BD value needs two"},
        {"codec": "HyRES", "anchor": "avif", "bd_rate_pct": 99.0, "note": ""}]})
    rd_run.save()
    hd = manifest.start(run_dir, "01_pixel_splitting", profile="quick", seed=0, device="cpu")
    hd.metrics["lossless_bpsp"] = {"hidenet-cnnp": 3.284, "png": 4.4}
    hd.save()
    text = "\n".join(runner.summary(run_dir))
    assert "on 2 test images" in text and "99.0" not in text
    assert "  HyRES                 +52.0 %   -1.23 dB\n" in text
    assert "  hideNet generative        n/a        n/a  (1 point: a BD value needs two)" in text
    assert f"RD figures and BD table: {fig.parent.resolve()}" in text
    assert "hidenet-cnnp 3.28, png 4.40" in text
    assert runner.summary(tmp_path / "empty") == []


def test_batch_runs_are_quiet(nbdir, tmp_path, capfd):
    """No kernel transport warning on the terminal, no torch.jit FutureWarning from compressai's
    imports in the executed notebook."""
    write_nb(nbdir, "00_a", "import hyreslib\nimport compressai")
    runner.run_pipeline("quick", runs_root=tmp_path / "runs", notebooks_dir=nbdir)
    assert "without encryption" not in capfd.readouterr().err
    executed = nbformat.read(tmp_path / "runs" / "quick" / "notebooks" / "00_a.ipynb", as_version=4)
    outputs = [o.get("text", "") for c in executed.cells if c.cell_type == "code" for o in c.outputs]
    assert not [t for t in outputs if "Warning" in t], outputs
