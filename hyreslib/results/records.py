"""One measured rate-distortion point of one image, the same record for every codec of the kit.

``hyres eval``, the classical sweep (:mod:`hyreslib.pipeline.baselines`), HyRES's evaluation
(:mod:`hyreslib.hyres.evaluate`), the run's RD tables (:mod:`hyreslib.results.rd`) and the notebooks all
write and read :class:`ImageRecord`; its dictionary form is flat (``bpp_<part>`` keys for the
parts of the rate), so a list of them is a table::

    codec --encode--> bytes --decode--> image --metrics--> ImageRecord --to_dict--> JSON / table row

:meth:`ImageRecord.from_dict` also reads the shapes older results files used (``name`` for the
image, ``curve``/``point`` or ``quality`` for codec and setting, ``bpp_header`` for the container).
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field, fields
from typing import Any

import torch

from . import metrics

# Older key -> current key, for results files written before the record was one type.
_OLD_KEYS = {"name": "image", "curve": "codec", "point": "setting", "bpp_header": "bpp_container"}


def quality_setting(quality: int | None) -> str:
    """The setting label of a classical codec's quality (``None``: a lossless codec)."""
    return "lossless" if quality is None else f"q{int(quality)}"


@dataclass(frozen=True)
class ImageRecord:
    """``bpp`` is counted from the file's bytes; ``parts`` splits it (e.g. jpeg, z, y, container,
    each in bpp); ``extra`` holds what only one codec measures (coding mode, the base's PSNR...)."""

    image: str
    codec: str
    setting: str                       # the RD point: "q50", a model or checkpoint name, "lossless"
    bpp: float
    psnr: float
    ms_ssim: float | None = None
    bytes: int | None = None           # None only in records read from files that did not store it
    width: int | None = None
    height: int | None = None
    encode_s: float | None = None
    decode_s: float | None = None
    parts: dict[str, float] = field(default_factory=dict)
    extra: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """A flat dictionary: the fields, ``bpp_<part>`` for each part, then ``extra``."""
        out = {f.name: getattr(self, f.name) for f in fields(self) if f.name not in ("parts", "extra")}
        out.update({f"bpp_{k}": v for k, v in self.parts.items()})
        out.update(self.extra)
        return out

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> ImageRecord:
        """The inverse of :meth:`to_dict`; also reads older record shapes (see the module)."""
        d = {_OLD_KEYS.get(k, k): v for k, v in d.items()}
        if "setting" not in d and "quality" in d:
            d["setting"] = quality_setting(d["quality"])
        names = {f.name for f in fields(cls)} - {"parts", "extra"}
        missing = {"image", "codec", "setting", "bpp", "psnr"} - set(d)
        if missing:
            raise ValueError(f"not an image record: no {', '.join(sorted(missing))}")
        parts = {k.removeprefix("bpp_"): v for k, v in d.items() if k.startswith("bpp_")}
        extra = {k: v for k, v in d.items() if k not in names and not k.startswith("bpp_")}
        return cls(**{k: v for k, v in d.items() if k in names}, parts=parts, extra=extra)

    @property
    def lossless(self) -> bool:
        return math.isinf(self.psnr)


def measure_file(image: str, codec: str, setting: str, x: torch.Tensor, encode: Callable[[torch.Tensor], bytes],
            decode: Callable[[bytes], torch.Tensor], parts: Callable[[bytes], dict[str, int]] | None = None,
            extra: dict[str, Any] | None = None) -> tuple[ImageRecord, bytes]:
    """Encode ``x`` to bytes, decode those bytes alone, time both: the record (rate from the bytes,
    quality from the decoded pixels, ``parts`` of the file in bytes -> bpp) and the file."""
    t0 = time.perf_counter()
    data = encode(x)
    t1 = time.perf_counter()
    x_hat = decode(data)
    t2 = time.perf_counter()
    if x_hat.shape != x.shape:
        raise RuntimeError(f"{codec} {setting} decoded {image} to {tuple(x_hat.shape)}, not {tuple(x.shape)}")
    h, w = x.shape[-2:]
    record = ImageRecord(image, codec, setting, metrics.bpp(len(data), h, w), float(metrics.psnr(x_hat, x)),
                         float(metrics.ms_ssim(x_hat, x)), len(data), w, h, t1 - t0, t2 - t1,
                         {k: metrics.bpp(v, h, w) for k, v in (parts(data) if parts else {}).items()}, extra or {})
    return record, data
