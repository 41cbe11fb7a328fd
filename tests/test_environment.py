"""environment.yml (conda users) and pyproject.toml must list the same dependencies and bounds."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
CONDA_NAMES = {"torch": "pytorch"}  # names normalised to lower case with "-"


def _parse(spec: str) -> tuple[str, str]:
    m = re.match(r"^\s*([A-Za-z0-9_.\-]+)\s*(.*)$", spec)
    assert m, spec
    name = m.group(1).lower().replace("_", "-")
    return name, m.group(2).replace(" ", "")


def _pyproject() -> dict[str, str]:
    meta = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    specs = list(meta["dependencies"])
    for extra in meta.get("optional-dependencies", {}).values():
        specs += extra
    return dict(_parse(s) for s in specs)


def _environment() -> tuple[dict[str, str], list[str]]:
    env = yaml.safe_load((ROOT / "environment.yml").read_text())
    conda, pip = {}, []
    for dep in env["dependencies"]:
        if isinstance(dep, dict):
            pip += dep["pip"]
        else:
            name, spec = _parse(dep.replace("=", "==", 1) if re.match(r"^[\w.\-]+=[^=<>]", dep) else dep)
            conda[name] = spec
    return conda, pip


def test_every_pyproject_dependency_is_in_environment_yml_with_the_same_bounds():
    conda, pip = _environment()
    pip_specs = dict(_parse(s) for s in pip if not s.startswith("-"))
    for name, spec in _pyproject().items():
        conda_name = CONDA_NAMES.get(name, name)
        found = conda.get(conda_name, pip_specs.get(name))
        assert found is not None, f"{name} is in pyproject.toml but not in environment.yml"
        assert found == spec, f"{name}: pyproject says {spec!r}, environment.yml says {found!r}"


def test_environment_installs_the_kit_itself_and_nothing_unknown():
    conda, pip = _environment()
    assert "-e ." in pip
    known = {CONDA_NAMES.get(n, n) for n in _pyproject()} | {"python", "pip"}
    assert set(conda) <= known, f"environment.yml lists packages pyproject.toml lacks: {set(conda) - known}"
    assert conda["python"].startswith("==3.11")
