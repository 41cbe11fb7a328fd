"""Device selection: one rule for notebooks, CLI and training (``auto`` = CUDA when present)."""

from __future__ import annotations

import torch


def resolve_device(name: str = "auto") -> torch.device:
    """``auto`` picks CUDA when available, else CPU; an explicit ``cuda`` without a GPU is an error."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    dev = torch.device(name)
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise RuntimeError("device 'cuda' requested but no CUDA GPU is visible (set device='auto' or 'cpu')")
    return dev


def describe_device(dev: torch.device) -> str:
    if dev.type == "cuda":
        return f"cuda:{dev.index or 0} ({torch.cuda.get_device_name(dev)})"
    return f"cpu ({torch.get_num_threads()} threads)"
