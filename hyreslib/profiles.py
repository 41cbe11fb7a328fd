"""Run profiles: the parameter values ``hyres run`` injects into each notebook.

Every notebook's ``parameters`` cell holds the **quick** profile (a 2-core CPU finishes the whole
pipeline in minutes), so ``quick`` injects nothing beyond the run location. ``full`` holds the
paper-scale settings, meant for a GPU kernel. Keys are notebook stems; each value maps parameter
names to values and is checked against the notebook's parameters cell before anything runs.
"""

from __future__ import annotations

from typing import Any

PROFILES: dict[str, dict[str, dict[str, Any]]] = {
    "quick": {},
    "full": {
        "00_data_and_jpeg": {"dataset": "auto", "max_images": 0,
                             "baseline_codecs": ["jpeg", "jpeg444", "webp", "avif", "jxl"],
                             "baseline_qualities": [5, 10, 20, 30, 40, 50, 60, 70, 80, 90, 95]},
        "01_pixel_splitting": {"threads": 0, "levels": 8, "archs": ["cnnp", "unet"], "width": 32, "shared": True,
                               "steps": 20000, "crop": 128, "batch": 32, "lr": 2e-3, "val_images": 0,
                               "val_crop": 256, "eval_images": 0, "near_steps": [3, 5, 9, 17, 25]},
        "02_residual_training": {"threads": 0, "N": 128, "M": 192, "depth": 4, "scale_levels": 128,
                                 "steps": 200000, "crop": 256, "batch": 16, "lr": 1e-4, "workers": 8,
                                 "val_images": 0, "val_every": 5000, "log_every": 200, "test_images": 0,
                                 "show_images": 4, "base_qualities": [1, 5, 10, 20],
                                 "sweep_qualities": [1, 5, 10], "sweep_steps": 50000},
    },
}

# Per-cell time limit (seconds) for papermill; None = unlimited (paper-scale training cells).
CELL_TIMEOUT: dict[str, int | None] = {"quick": 1800, "full": None}


def profile_params(profile: str, notebook: str) -> dict[str, Any]:
    if profile not in PROFILES:
        raise ValueError(f"unknown profile {profile!r}; choose one of {sorted(PROFILES)}")
    return dict(PROFILES[profile].get(notebook, {}))
