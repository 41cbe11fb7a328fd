"""Static checks of the committed notebooks: clean, parameterised, and parsable by papermill."""

from __future__ import annotations

import ast
import json
import re
import shlex
import subprocess
import sys
from pathlib import Path

import nbformat
import papermill as pm
import pytest

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb"))
REQUIRED = {"profile", "run_dir", "data_root", "device", "seed"}


def committed_text(path: Path) -> str:
    """What git holds for ``path`` (its staged version: what the next commit would contain), so a
    notebook saved with outputs in JupyterLab does not fail the suite; the file itself outside git."""
    rel = path.relative_to(ROOT).as_posix()
    done = subprocess.run(["git", "show", f":{rel}"], cwd=ROOT, capture_output=True, text=True)
    return done.stdout if done.returncode == 0 else path.read_text()


def assert_clean(nb: nbformat.NotebookNode, name: str) -> None:
    assert nb.metadata.kernelspec.name == "python3"
    for cell in nb.cells:
        if cell.cell_type == "code":
            assert not cell.outputs and cell.execution_count is None, f"{name} has outputs"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_notebook_is_committed_clean(path):
    assert_clean(nbformat.reads(committed_text(path), as_version=4), path.name)


def _git_filter_command() -> list[str]:
    """The nbstripout command `make` installs as the git clean filter (from the Makefile)."""
    line = re.search(r"^NBSTRIP := (.+)$", (ROOT / "Makefile").read_text(), re.M).group(1)
    return [sys.executable, *shlex.split(line)]


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_git_filter_turns_a_lab_saved_notebook_back_into_the_committed_one(path):
    """What JupyterLab saves after a run (outputs, counts, widget state, language_info) and what
    papermill adds is stripped by the filter, leaving exactly the committed file (no diff)."""
    assert "filter=nbstripout" in (ROOT / ".gitattributes").read_text()
    committed = committed_text(path)
    nb = nbformat.reads(committed, as_version=4)
    for i, cell in enumerate(c for c in nb.cells if c.cell_type == "code"):
        cell.outputs = [nbformat.v4.new_output("stream", text=f"out {i}\n")]
        cell.execution_count = i + 1
        cell.metadata.update({"execution": {"iopub.status.busy": "2026-01-01"}, "papermill": {"duration": 1.0}})
    nb.metadata.update({"language_info": {"name": "python", "version": "3.11.2", "mimetype": "text/x-python"},
                        "widgets": {"application/vnd.jupyter.widget-state+json": {"state": {}}},
                        "papermill": {"duration": 3.0}})
    saved = json.dumps(nb, indent=1, ensure_ascii=False) + "\n"
    stripped = subprocess.run(_git_filter_command(), input=saved, capture_output=True, text=True, check=True).stdout
    assert stripped == committed


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_every_parameter_is_visible_to_papermill(path):
    """papermill silently skips parameter lines it cannot parse (e.g. a comment holding '='),
    which would make the runner refuse valid names and ignore profile values."""
    nb = nbformat.read(path, as_version=4)
    cells = [c for c in nb.cells if "parameters" in c.metadata.get("tags", [])]
    assert len(cells) == 1, f"{path.name} needs exactly one cell tagged 'parameters'"
    assigned = {node.target.id for node in ast.parse(cells[0].source).body if isinstance(node, ast.AnnAssign)}
    assert not [n for n in ast.parse(cells[0].source).body if not isinstance(n, ast.AnnAssign)], \
        "parameters must be annotated assignments (name: type = value  # help)"
    inspected = set(pm.inspect_notebook(str(path)))
    assert inspected == assigned, f"papermill cannot parse {sorted(assigned - inspected)}"
    assert REQUIRED <= inspected
    defaults = {n.target.id: ast.literal_eval(n.value) for n in ast.parse(cells[0].source).body}
    assert defaults["profile"] == "quick" and defaults["device"] == "auto"


@pytest.mark.parametrize("profile", ["cpu", "full"])
def test_profile_names_are_declared(profile):
    from hyreslib.pipeline.profiles import PROFILES

    by_stem = {p.stem: p for p in NOTEBOOKS}
    for stem, values in PROFILES[profile].items():
        assert stem in by_stem, f"profile {profile!r} configures unknown notebook {stem}"
        missing = set(values) - set(pm.inspect_notebook(str(by_stem[stem])))
        assert not missing, f"profile {profile!r} sets {sorted(missing)} that {stem} does not declare"


@pytest.mark.parametrize("profile", ["cpu", "full"])
def test_every_profile_sets_every_budget(profile):
    """A budget parameter (steps, model size, images measured) left at its quick default in a
    longer profile would silently run the quick budget there."""
    from hyreslib.pipeline.profiles import BUDGET_PARAMS, PROFILES

    by_stem = {p.stem: p for p in NOTEBOOKS}
    for stem, names in BUDGET_PARAMS.items():
        declared = pm.inspect_notebook(str(by_stem[stem]))
        assert set(names) <= set(declared), f"{stem} does not declare {sorted(set(names) - set(declared))}"
        values = PROFILES[profile].get(stem, {})
        missing = [n for n in names if n not in values]
        assert not missing, f"profile {profile!r} gives no value for {stem}'s budget {missing}"
        if profile == "full":
            same = [n for n in names if values[n] == ast.literal_eval(declared[n]["default"])]
            assert not same, f"profile 'full' keeps the quick default of {stem}'s {same}"


def test_smoke_caps_every_budget_of_the_full_profile_but_never_a_model_shape():
    """``hyres run --smoke`` must run the profile's models (so it checks the paper-scale code path) and
    no paper-scale budget (so it ends in minutes): each cap is declared, below the full value, and
    every budget parameter that is not a shape is capped."""
    from hyreslib.pipeline.profiles import BUDGET_PARAMS, PROFILES, SHAPE_PARAMS, SMOKE

    by_stem = {p.stem: p for p in NOTEBOOKS}
    for stem, caps in SMOKE.items():
        declared = pm.inspect_notebook(str(by_stem[stem]))
        assert set(caps) <= set(declared), f"SMOKE caps {sorted(set(caps) - set(declared))} that {stem} lacks"
        assert not set(caps) & set(SHAPE_PARAMS), f"SMOKE changes {stem}'s model shape"
        for name, cap in caps.items():
            full = PROFILES["full"].get(stem, {}).get(name, ast.literal_eval(declared[name]["default"]))
            if isinstance(cap, list):
                assert len(cap) <= len(full), f"{stem}.{name}: {cap} is longer than the full {full}"
            else:
                counts = name.endswith("images")  # 0 images means all of them
                assert (cap > 0 if counts else cap >= 0) and (full == 0 or cap <= full), \
                    f"{stem}.{name}: {cap} does not cap {full}"
    for stem, names in BUDGET_PARAMS.items():
        uncapped = [n for n in names if n not in SHAPE_PARAMS and n not in SMOKE.get(stem, {})]
        assert not uncapped, f"a smoke run would keep {stem}'s budget {uncapped}"


def test_budget_params_cover_every_training_notebook():
    from hyreslib.pipeline.profiles import BUDGET_PARAMS

    for path in NOTEBOOKS:
        declared = set(pm.inspect_notebook(str(path)))
        if declared & {"steps", "test_images", "eval_images", "max_images"}:
            assert path.stem in BUDGET_PARAMS, f"{path.stem} has a budget but no BUDGET_PARAMS entry"


TRAINING_OPTIONS = ("amp", "channels_last", "checkpoint_every_s")


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_training_options_reach_every_train_setup(path):
    """A notebook that trains declares the engine options (mixed precision, channels_last) and hands
    each option it declares to every ``TrainSetup`` it builds, so a profile's value is not lost."""
    nb = nbformat.read(path, as_version=4)
    declared = set(pm.inspect_notebook(str(path)))
    calls = [node for cell in nb.cells if cell.cell_type == "code" and "parameters" not in cell.metadata.get("tags", [])
             for node in ast.walk(ast.parse(cell.source))
             if isinstance(node, ast.Call) and getattr(node.func, "id", None) == "TrainSetup"]
    if not calls:
        return
    assert {"amp", "channels_last"} <= declared, f"{path.stem} trains but does not declare amp / channels_last"
    for call in calls:
        passed = {k.arg: getattr(k.value, "id", None) for k in call.keywords}
        for name in declared & set(TRAINING_OPTIONS):
            assert passed.get(name) == name, f"{path.stem}: TrainSetup(...) at line {call.lineno} drops {name}"


def _code(path: Path) -> str:
    return "\n".join(c.source for c in nbformat.read(path, as_version=4).cells if c.cell_type == "code")


@pytest.mark.parametrize("path", [p for p in NOTEBOOKS if not p.stem.startswith("01_")], ids=lambda p: p.stem)
def test_notebooks_start_with_the_shared_setup(path):
    """One call records every parameter (notebook 01 has its own owner and setup)."""
    code = _code(path)
    assert f'notebook.start("{path.stem}", globals())' in code and "manifest.start(" not in code


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_notebooks_read_other_notebooks_only_through_manifests(path):
    """No path into another notebook's folder, no glob over a run, no warning category hidden wholesale."""
    code = _code(path)
    for pattern in (r"\.glob\(", r"run_dir\s*/", r"\.run_dir\b", r"PROJECT_ROOT", r"kodak_published",
                    r"filterwarnings\(\s*\"ignore\",\s*category="):
        assert not re.search(pattern, code), f"{path.name}: {pattern}"
