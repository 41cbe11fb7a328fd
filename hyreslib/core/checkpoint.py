"""Checkpoints that carry their model configuration and load with ``weights_only=True``.

A checkpoint is a plain dict of tensors and JSON-like values::

    {"format": "hyres-checkpoint", "format_version": 1, "kind": "<model kind>",
     "config": {...constructor arguments...}, "state_dict": {...}, "extra": {...}}

so it can be opened safely (no pickled code) and the model rebuilt without guessing sizes.
Writes are atomic: an interrupted save never leaves a truncated checkpoint behind.

A *compact* checkpoint (``save_checkpoint(..., compact=True)``, format 2; what the kit ships) holds
every large kernel as int8 with one float scale per output channel (``"scales"``), the other
floats in fp16, and is xz-compressed: about a fifth of the fp32 file. Loading dequantizes, so
the model that encodes and the one that decodes are the same dequantized weights::

    fp32 kernel --per-channel int8 + scale--> payload --torch.save--> xz --> file
    file --xz (bounded)--> torch.load(weights_only) --q * scale--> fp32 state_dict
"""

from __future__ import annotations

import hashlib
import io
import json
import lzma
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import torch
from torch import nn
from torch._subclasses.fake_tensor import FakeTensorMode

from .fileio import atomic_write

FORMAT = "hyres-checkpoint"
FORMAT_VERSION = 1            # plain
COMPACT_VERSION = 2           # int8 kernels, xz
READS = (FORMAT_VERSION, COMPACT_VERSION)
XZ_MAGIC = b"\xfd7zXZ\x00"
MAX_UNPACKED_BYTES = 1 << 30  # a compact file may expand to at most this (a decompression bomb is refused)
INT8_MIN_ELEMENTS = 4096      # smaller tensors (biases, GDN, entropy-bottleneck factors) stay fp16
Model = TypeVar("Model", bound=nn.Module)


def save_checkpoint(path: str | Path, kind: str, config: dict[str, Any], state_dict: dict[str, torch.Tensor],
                    extra: dict[str, Any] | None = None, compact: bool = False) -> Path:
    state = {k: v.detach().cpu() for k, v in state_dict.items()}
    payload = {"format": FORMAT, "format_version": FORMAT_VERSION, "kind": kind, "config": dict(config),
               "state_dict": state, "extra": dict(extra or {})}
    if not compact:
        return atomic_write(path, lambda f: torch.save(payload, f))
    payload["state_dict"], payload["scales"] = _quantize(state)
    payload["format_version"] = COMPACT_VERSION
    buf = io.BytesIO()
    torch.save(payload, buf)
    packed = lzma.compress(buf.getvalue(), preset=9 | lzma.PRESET_EXTREME)
    return atomic_write(path, lambda f: f.write(packed))


def _quantize(state: dict[str, torch.Tensor]) -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor]]:
    """Kernels of at least ``INT8_MIN_ELEMENTS`` weights -> symmetric int8 per output channel (the
    scales returned beside); other floats -> fp16; integer tensors unchanged."""
    out, scales = {}, {}
    for name, v in state.items():
        if v.is_floating_point() and v.dim() >= 2 and v.numel() >= INT8_MIN_ELEMENTS:
            scale = v.float().flatten(1).abs().amax(1).clamp_min(1e-12) / 127
            out[name] = torch.round(v.float() / _per_row(scale, v.dim())).to(torch.int8)
            scales[name] = scale
        else:
            out[name] = v.half() if v.is_floating_point() else v
    return out, scales


def _per_row(scale: torch.Tensor, dim: int) -> torch.Tensor:
    return scale.view(-1, *[1] * (dim - 1))


def _dequantize(state: dict[str, torch.Tensor], scales: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    out = dict(state)
    for name, scale in scales.items():
        q = state.get(name)
        if not isinstance(q, torch.Tensor) or q.dtype != torch.int8 or not isinstance(scale, torch.Tensor) \
                or scale.shape != q.shape[:1]:
            raise ValueError(f"compact checkpoint: the scale of {name!r} does not fit its weights")
        out[name] = q.float() * _per_row(scale.float(), q.dim())
    return out


def _read(path: Path) -> bytes | Path:
    """The checkpoint's torch.save bytes (decompressed, bounded) for a compact file, else the path."""
    with open(path, "rb") as f:
        if f.read(len(XZ_MAGIC)) != XZ_MAGIC:
            return path
        f.seek(0)
        unpacker = lzma.LZMADecompressor()
        try:
            data = unpacker.decompress(f.read(), max_length=MAX_UNPACKED_BYTES)
        except lzma.LZMAError as exc:
            raise ValueError(f"{path} is not a readable compact checkpoint: {exc}") from None
    if len(data) >= MAX_UNPACKED_BYTES:
        raise ValueError(f"{path}: a compact checkpoint that expands beyond {MAX_UNPACKED_BYTES} bytes")
    if not unpacker.eof:
        raise ValueError(f"{path} is a truncated compact checkpoint")
    return data


def load_checkpoint(path: str | Path, kind: str | None = None) -> dict[str, Any]:
    """Load and check a checkpoint; ``kind`` (if given) must match what was saved."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint not found: {path}")
    source = _read(path)
    try:
        payload = torch.load(io.BytesIO(source) if isinstance(source, bytes) else source, map_location="cpu",
                             weights_only=True)
    except Exception as exc:  # torch raises many types for damaged files
        raise ValueError(f"{path} is not a readable checkpoint: {exc}") from exc
    if not isinstance(payload, dict) or payload.get("format") != FORMAT:
        raise ValueError(f"{path} is not a HyRES Kit checkpoint")
    if payload.get("format_version") not in READS:
        raise ValueError(f"{path} has checkpoint format {payload.get('format_version')}; "
                         f"this build reads {', '.join(map(str, READS))}")
    if payload["format_version"] == COMPACT_VERSION:
        if not isinstance(payload.get("state_dict"), dict) or not isinstance(payload.get("scales"), dict):
            raise ValueError(f"{path}: compact checkpoint without weights or scales")
        payload["state_dict"] = _dequantize(payload["state_dict"], payload.pop("scales"))
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
