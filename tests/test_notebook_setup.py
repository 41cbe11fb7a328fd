"""hyreslib.pipeline.notebook: the first cell of the notebooks records exactly the declared parameters."""

from __future__ import annotations

import ast
import json

import nbformat
import pytest

from hyreslib.pipeline import notebook
from hyreslib.results import manifest


def _defaults(name: str) -> dict:
    nb = nbformat.read(notebook.NOTEBOOKS_DIR / f"{name}.ipynb", as_version=4)
    cell = next(c for c in nb.cells if "parameters" in c.metadata.get("tags", []))
    return {n.target.id: ast.literal_eval(n.value) for n in ast.parse(cell.source).body}


def test_start_records_every_declared_parameter(tmp_path, capsys):
    namespace = {**_defaults("05_rd_curves"), "run_dir": str(tmp_path), "device": "cpu", "xmax": 2.5,
                 "unrelated": 1, "json": json}
    run, dev = notebook.start("05_rd_curves", namespace)
    declared = set(notebook.declared_parameters("05_rd_curves"))
    assert set(run.params) == declared - set(notebook.OWN_FIELDS) and "data_root" in run.params
    assert run.params["xmax"] == 2.5 and "unrelated" not in run.params
    assert (run.profile, run.seed, str(dev)) == ("quick", namespace["seed"], "cpu")
    run.save()
    assert manifest.load(tmp_path, "05_rd_curves").record["params"] == run.params
    assert "device: cpu" in capsys.readouterr().out


def test_start_sets_threads_and_refuses_a_missing_parameter(tmp_path, monkeypatch):
    import torch

    namespace = {**_defaults("02_residual_training"), "run_dir": str(tmp_path), "device": "cpu", "threads": 1}
    monkeypatch.setattr(torch, "set_num_threads", lambda n: namespace.update(set_to=n))
    notebook.start("02_residual_training", namespace)
    assert namespace["set_to"] == 1
    del namespace["lmbda"]
    with pytest.raises(NameError, match=r"\['lmbda'\] are declared but not defined"):
        notebook.start("02_residual_training", namespace)
