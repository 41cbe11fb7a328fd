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


def test_full_profile_names_are_declared():
    from hyreslib.profiles import PROFILES

    by_stem = {p.stem: p for p in NOTEBOOKS}
    for stem, values in PROFILES["full"].items():
        assert stem in by_stem, f"profile 'full' configures unknown notebook {stem}"
        missing = set(values) - set(pm.inspect_notebook(str(by_stem[stem])))
        assert not missing, f"profile 'full' sets {sorted(missing)} that {stem} does not declare"
