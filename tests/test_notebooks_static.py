"""Static checks of the committed notebooks: clean, parameterised, and parsable by papermill."""

from __future__ import annotations

import ast
from pathlib import Path

import nbformat
import papermill as pm
import pytest

NOTEBOOKS = sorted((Path(__file__).resolve().parents[1] / "notebooks").glob("[0-9][0-9]_*.ipynb"))
REQUIRED = {"profile", "run_dir", "data_root", "device", "seed"}


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_notebook_is_committed_clean(path):
    nb = nbformat.read(path, as_version=4)
    assert nb.metadata.kernelspec.name == "python3"
    for cell in nb.cells:
        if cell.cell_type == "code":
            assert not cell.outputs and cell.execution_count is None, f"{path.name} has outputs"


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
    from hyreslib.profiles import PROFILES

    by_stem = {p.stem: p for p in NOTEBOOKS}
    for stem, values in PROFILES[profile].items():
        assert stem in by_stem, f"profile {profile!r} configures unknown notebook {stem}"
        missing = set(values) - set(pm.inspect_notebook(str(by_stem[stem])))
        assert not missing, f"profile {profile!r} sets {sorted(missing)} that {stem} does not declare"


@pytest.mark.parametrize("profile", ["cpu", "full"])
def test_every_profile_sets_every_budget(profile):
    """A budget parameter (steps, model size, images measured) left at its quick default in a
    longer profile would silently run the quick budget there."""
    from hyreslib.profiles import BUDGET_PARAMS, PROFILES

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


def test_budget_params_cover_every_training_notebook():
    from hyreslib.profiles import BUDGET_PARAMS

    for path in NOTEBOOKS:
        declared = set(pm.inspect_notebook(str(path)))
        if declared & {"steps", "test_images", "eval_images", "max_images"}:
            assert path.stem in BUDGET_PARAMS, f"{path.stem} has a budget but no BUDGET_PARAMS entry"
