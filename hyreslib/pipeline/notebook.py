"""The first code cell of every pipeline notebook, as one call, so that the notebooks read as the
experiment they run and all record their parameters the same way::

    parameters cell --globals()--> start(notebook, globals()) --> (manifest.Run, device)
                                         records every parameter the cell declares (papermill's view)

The parameters recorded are exactly those the notebook's ``parameters`` cell declares (as
papermill reads them, the same names ``hyres run --set`` accepts), with their values in the
kernel, so no notebook can forget one (``data_root`` was once missing from three of them).
``profile``, ``run_dir``, ``seed`` and ``device`` have their own fields in the manifest.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch

from ..core.device import describe_device, resolve_device
from ..datasets import data
from ..results import manifest
from .runner import NOTEBOOKS_DIR

OWN_FIELDS = ("profile", "run_dir", "seed", "device")  # manifest fields of their own, not params


def declared_parameters(notebook: str) -> list[str]:
    """The names the notebook's ``parameters`` cell declares, in order (papermill's reading)."""
    import papermill as pm

    return list(pm.inspect_notebook(str(NOTEBOOKS_DIR / f"{notebook}.ipynb")))


def recorded_parameters(notebook: str, namespace: Mapping[str, Any]) -> dict[str, Any]:
    """Every declared parameter but :data:`OWN_FIELDS`, with its value in ``namespace``."""
    names = [n for n in declared_parameters(notebook) if n not in OWN_FIELDS]
    missing = [n for n in names if n not in namespace]
    if missing:
        raise NameError(f"{notebook}: parameters {missing} are declared but not defined; run the parameters cell")
    return {n: namespace[n] for n in names}


def start(notebook: str, namespace: Mapping[str, Any]) -> tuple[manifest.Run, torch.device]:
    """Begin the notebook's run from its parameters (``globals()``): set torch's CPU threads when
    the notebook has a ``threads`` parameter, resolve the device, start the manifest with every
    parameter recorded, and say which device runs it. (No warning is hidden here: the one known
    harmless warning, CompressAI's use of ``torch.jit.script``, is hidden by ``hyreslib`` itself.)"""
    if namespace.get("threads"):
        torch.set_num_threads(int(namespace["threads"]))
    device = resolve_device(namespace["device"])
    run = manifest.start(namespace["run_dir"], notebook, profile=namespace["profile"], seed=namespace["seed"],
                         device=device, params=recorded_parameters(notebook, namespace))
    print("device:", describe_device(device))
    return run, device


def training_data(data_root: str, val_images: int, test_images: int) -> tuple[data.ImageSet, ...]:
    """The training, validation and test sets of a training notebook (``0``: all images), each said."""
    root = data_root or None
    sets = (data.train_set(root=root), data.train_set(split="validation", root=root).subset(val_images or None),
            data.test_set(root=root).subset(test_images or None))
    for s in sets:
        print(s.describe())
    return sets
