"""Run profiles: the parameter values ``hyres run`` injects into each notebook.

Every notebook's ``parameters`` cell holds the **quick** profile (a 2-core CPU finishes the whole
pipeline in minutes), so ``quick`` injects nothing beyond the run location. ``cpu`` is the best a
2-core CPU can do in about two hours with Kodak + CID22 (its models ship with the kit); ``full``
holds the paper-scale settings, meant for a GPU kernel. Keys are notebook stems; each value maps parameter
names to values and is checked against the notebook's parameters cell before anything runs.
"""

from __future__ import annotations

from typing import Any

# The CPU budget's hybrid: conditional residual coding at N 48 / M 64, each λ paired with a JPEG base
# quality so the six phases spread over 0.15-1 bpp on Kodak (see notebook 07 and the README).
CPU_LAMBDAS = [0.045, 0.032, 0.016, 0.008, 0.004, 0.002]
CPU_BASE_QUALITIES = [50, 35, 20, 12, 7, 4]
CPU_MODEL = {"N": 48, "M": 64, "depth": 4, "conditioning": "base"}

# The full profile's engine options: bf16 autocast and channels_last on CUDA (tensor cores), neither on a CPU.
GPU_OPTIONS = {"amp": "auto", "channels_last": "auto"}

PROFILES: dict[str, dict[str, dict[str, Any]]] = {
    "quick": {},
    "cpu": {
        "00_data_and_jpeg": {"dataset": "auto", "max_images": 0,
                             "baseline_codecs": ["jpeg", "jpeg444", "webp", "avif", "jxl"],
                             "baseline_qualities": [5, 10, 20, 30, 40, 50, 60, 75, 90]},
        "01_pixel_splitting": {"threads": 2, "archs": ["cnnp"], "ablation_colours": [], "width": 16, "steps": 1000,
                               "crop": 64, "batch": 16, "val_images": 8, "eval_images": 0, "near_steps": [3, 5, 9, 17]},
        "02_residual_training": {"threads": 2, **CPU_MODEL, "jpeg_quality": CPU_BASE_QUALITIES[0],
                                 "lmbda": CPU_LAMBDAS[0], "steps": 1000, "crop": 128, "batch": 8, "lr": 2e-3,
                                 "rate_warmup": 0.1, "latent_dropout": 0.5, "val_images": 8, "val_every": 500,
                                 "test_images": 0,
                                 "base_qualities": [12, 50], "sweep_qualities": [], "sweep_steps": 0},
        "03_lambda_phases": {"threads": 2, **CPU_MODEL, "lambdas": CPU_LAMBDAS, "base_qualities": CPU_BASE_QUALITIES,
                             "first_steps": 1000, "steps": 400, "crop": 128, "batch": 8, "lr": 1e-3,
                             "latent_dropout": 0.5,
                             "val_images": 8, "val_every": 200, "test_images": 0},
        "04_refinement": {"threads": 2, "alpha": 0.0, "width": 32, "steps": 120, "batch": 8, "lr": 1e-3,
                          "val_images": 8, "test_images": 0},
        "07_budget_study": {"threads": 2, "N": CPU_MODEL["N"], "M": CPU_MODEL["M"], "lambdas": [0.032, 0.008, 0.002],
                            "base_qualities": [35, 12, 4], "steps": 300, "snapshots": 2, "crop": 128, "batch": 8,
                            "lr": 2e-3, "latent_dropout": 0.5, "val_images": 4, "study_val_images": 6,
                            "study_test_images": 8},
    },
    "full": {
        "00_data_and_jpeg": {"dataset": "auto", "max_images": 0,
                             "baseline_codecs": ["jpeg", "jpeg444", "webp", "avif", "jxl"],
                             "baseline_qualities": [5, 10, 20, 30, 40, 50, 60, 70, 80, 90, 95]},
        "01_pixel_splitting": {"threads": 0, "levels": 8, "archs": ["cnnp", "unet"], "width": 32, "shared": True,
                               "steps": 20000, "crop": 128, "batch": 32, "lr": 2e-3, "val_images": 0,
                               "val_crop": 256, "eval_images": 0, "near_steps": [3, 5, 9, 17, 25], **GPU_OPTIONS},
        "02_residual_training": {"threads": 0, "N": 128, "M": 192, "depth": 4, "scale_levels": 128,
                                 "steps": 200000, "crop": 256, "batch": 16, "lr": 1e-4, "workers": 8,
                                 "val_images": 0, "val_every": 5000, "log_every": 200, "test_images": 0,
                                 "show_images": 4, "base_qualities": [1, 5, 10, 20],
                                 "sweep_qualities": [1, 5, 10], "sweep_steps": 50000, **GPU_OPTIONS},
        "03_lambda_phases": {"threads": 0, "N": 128, "M": 192, "depth": 4, "first_steps": 200000, "steps": 100000,
                             "crop": 256, "batch": 16, "lr": 1e-4, "workers": 8, "val_images": 0, "val_every": 5000,
                             "log_every": 200, "test_images": 0, **GPU_OPTIONS},
        "04_refinement": {"threads": 0, "alpha": 0.005, "width": 64, "steps": 50000, "crop": 256, "batch": 16,
                          "lr": 1e-4, "workers": 8, "val_images": 0, "log_every": 200, "test_images": 0, **GPU_OPTIONS},
        "07_budget_study": {"threads": 0, "N": 128, "M": 192, "lambdas": [0.032, 0.008, 0.002],
                            "base_qualities": [35, 12, 4], "steps": 100000, "snapshots": 5, "crop": 256, "batch": 16,
                            "lr": 1e-4, "workers": 8, "val_images": 0, "study_val_images": 0, "study_test_images": 0,
                            **GPU_OPTIONS},
    },
}

# Parameters that set a notebook's budget (training length, model size, images measured): every
# profile but ``quick`` (the notebooks' own defaults) must give each of them a value.
BUDGET_PARAMS: dict[str, tuple[str, ...]] = {
    "00_data_and_jpeg": ("max_images",),
    "01_pixel_splitting": ("steps", "width", "eval_images", "val_images"),
    "02_residual_training": ("steps", "sweep_steps", "N", "M", "test_images", "val_images"),
    "03_lambda_phases": ("steps", "first_steps", "N", "M", "test_images", "val_images"),
    "04_refinement": ("steps", "width", "test_images", "val_images"),
    "07_budget_study": ("steps", "N", "M", "study_test_images", "study_val_images", "val_images"),
}

# Parameters that give a model its shape: a smoke run never changes them.
SHAPE_PARAMS = ("N", "M", "depth", "scale_levels", "conditioning", "width", "stride", "levels", "shared", "archs")

# ``hyres run --smoke``: a profile's code path (its models, options and data) with every budget capped —
# steps, images, crops, batches, measured qualities, and the number of λ phases and sweeps (two of each
# exercise the chaining) — so that a CPU runs the whole pipeline in minutes. Every budget parameter of
# BUDGET_PARAMS that is not a model shape is capped here (tested).
SMOKE: dict[str, dict[str, Any]] = {
    "00_data_and_jpeg": {"max_images": 1, "baseline_qualities": [10, 50]},
    "01_pixel_splitting": {"steps": 2, "crop": 64, "batch": 2, "val_images": 1, "val_crop": 128, "eval_images": 1,
                           "near_steps": [5]},
    "02_residual_training": {"steps": 2, "crop": 64, "batch": 2, "workers": 0, "val_images": 1, "log_every": 1,
                             "test_images": 1, "show_images": 1, "sweep_qualities": [5], "sweep_steps": 1},
    "03_lambda_phases": {"lambdas": [0.045, 0.032], "steps": 1, "first_steps": 2, "crop": 64, "batch": 2,
                         "workers": 0, "val_images": 1, "log_every": 1, "test_images": 1},
    "04_refinement": {"steps": 1, "crop": 64, "batch": 2, "workers": 0, "val_images": 1, "log_every": 1,
                      "test_images": 1},
    "07_budget_study": {"lambdas": [0.032, 0.002], "base_qualities": [35, 4], "steps": 2, "snapshots": 1,
                        "crop": 64, "batch": 2, "workers": 0, "val_images": 1, "study_val_images": 1,
                        "study_test_images": 1},
}

# Per-cell time limit (seconds) for papermill; None = unlimited (paper-scale training cells).
CELL_TIMEOUT: dict[str, int | None] = {"quick": 1800, "cpu": 7200, "full": None}


def profile_params(profile: str, notebook: str, smoke: bool = False) -> dict[str, Any]:
    """The values ``profile`` gives ``notebook``; with ``smoke``, its budgets capped by :data:`SMOKE`."""
    if profile not in PROFILES:
        raise ValueError(f"unknown profile {profile!r}; choose one of {sorted(PROFILES)}")
    return {**PROFILES[profile].get(notebook, {}), **(SMOKE.get(notebook, {}) if smoke else {})}
