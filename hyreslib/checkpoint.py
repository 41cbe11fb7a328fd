"""Checkpoints that carry their model configuration and load with ``weights_only=True``.

A checkpoint is a plain dict of tensors and JSON-like values::

    {"format": "hyres-checkpoint", "format_version": 1, "kind": "<model kind>",
     "config": {...constructor arguments...}, "state_dict": {...}, "extra": {...}}

so it can be opened safely (no pickled code) and the model rebuilt without guessing sizes.
Writes are atomic: an interrupted save never leaves a truncated checkpoint behind.
"""

from __future__ import annotations

import hashlib
import io
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import torch
from torch import nn
from torch._subclasses.fake_tensor import FakeTensorMode

from .fileio import atomic_write

FORMAT = "hyres-checkpoint"
FORMAT_VERSION = 1
Model = TypeVar("Model", bound=nn.Module)


def save_checkpoint(path: str | Path, kind: str, config: dict[str, Any], state_dict: dict[str, torch.Tensor],
                    extra: dict[str, Any] | None = None) -> Path:
    payload = {"format": FORMAT, "format_version": FORMAT_VERSION, "kind": kind, "config": dict(config),
               "state_dict": {k: v.detach().cpu() for k, v in state_dict.items()}, "extra": dict(extra or {})}
    return atomic_write(path, lambda f: torch.save(payload, f))


def load_checkpoint(path: str | Path, kind: str | None = None) -> dict[str, Any]:
    """Load and check a checkpoint; ``kind`` (if given) must match what was saved."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint not found: {path}")
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises many types for damaged files
        raise ValueError(f"{path} is not a readable checkpoint: {exc}") from exc
    if not isinstance(payload, dict) or payload.get("format") != FORMAT:
        raise ValueError(f"{path} is not a HyRES Kit checkpoint")
    if payload.get("format_version") != FORMAT_VERSION:
        raise ValueError(f"{path} has checkpoint format {payload.get('format_version')}; "
                         f"this build reads {FORMAT_VERSION}")
    if kind is not None and payload.get("kind") != kind:
        raise ValueError(f"{path} holds a {payload.get('kind')!r} model, expected {kind!r}")
    return payload


def build_model(build: Callable[[], Model], state: dict[str, torch.Tensor], what: str) -> Model:
    """``build()`` with ``state`` loaded, refusing a config or state that does not fit with one clear
    ``ValueError``. The config is first built with fake tensors (no memory), and every weight of
    ``state`` compared with it by name and shape, so a config that claims a huge model is refused
    before anything is allocated. Empty buffers of the fresh model (CompressAI's coding tables,
    sized by ``update``) are compared by name only."""
    try:
        with FakeTensorMode():
            expected = {k: tuple(v.shape) for k, v in build().state_dict().items()}
    except (TypeError, KeyError, ValueError, AttributeError, RuntimeError) as exc:
        raise ValueError(f"{what}: invalid model config ({type(exc).__name__}: {exc})") from None
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise ValueError(f"{what}: the state dict is not a mapping of tensors")
    missing, unexpected = sorted(set(expected) - set(state)), sorted(set(state) - set(expected))
    wrong = [k for k, shape in expected.items() if k in state and 0 not in shape and tuple(state[k].shape) != shape]
    if missing or unexpected or wrong:
        raise ValueError(f"{what}: weights do not match the config (missing {missing[:3]}, unexpected "
                         f"{unexpected[:3]}, wrong shape {wrong[:3]})")
    model = build()
    try:
        model.load_state_dict(state)
    except (RuntimeError, KeyError, ValueError) as exc:
        raise ValueError(f"{what}: weights do not load ({exc})") from None
    return model


def fingerprint(config: dict[str, Any], state_dict: dict[str, torch.Tensor], nbytes: int = 8) -> bytes:
    """A short hash of a model's config and weights, stored in bitstreams so a file is never
    decoded with a model other than the one that wrote it."""
    h = hashlib.sha256(json.dumps(config, sort_keys=True, default=str).encode())
    for name in sorted(state_dict):
        t = state_dict[name].detach().cpu().contiguous()
        h.update(name.encode())
        buf = io.BytesIO()
        buf.write(t.numpy().tobytes() if t.dtype != torch.bfloat16 else t.float().numpy().tobytes())
        h.update(str(t.dtype).encode() + str(tuple(t.shape)).encode() + buf.getvalue())
    return h.digest()[:nbytes]
