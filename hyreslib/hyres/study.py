"""The equal-budget study: what a training budget buys each kind of learned codec.

Four variants are trained on the same crops, steps and λ values (one model per λ, from scratch)
and measured through real files at several points along training::

    residual     HyRES as in the seed: JPEG base + coded residual, conditioning "none"
    conditional  the same, with the decoded base feeding g_a, entropy model and g_s ("base")
    learned      the same residual codec with no base layer: a pure learned codec of equal size
    bmshj2018    CompressAI's bmshj2018-hyperprior, randomly initialised

    for each variant, each λ:  train --every val_every steps--> snapshot of the weights
    for each snapshot:          encode + decode every image --> mean bpp (real bytes), PSNR
    for each variant and step:  the λ points form a curve --> BD-rate against JPEG 4:2:0

The hybrids pair each λ with a base quality (a high-rate point gets a better base), so each λ is
one distinct RD point. Weights are chosen by nothing: every snapshot is reported, so the study
shows the budget, not a selection.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace

import torch
from tqdm.auto import tqdm

from ..datasets.data import ImageSet
from ..results.metrics import bd_rate, bpp, psnr
from ..training.engine import TrainSetup
from .codec import NO_BASE, HyresCodec, JpegSettings
from .evaluate import evaluate, jpeg_curve, summarize
from .reference import ReferenceCodec, bmshj2018
from .residual import ResidualCodec, ResidualConfig
from .stages import train_reference, train_residual
from .train import finalize

VARIANTS = ("residual", "conditional", "learned", "bmshj2018")
HYBRIDS = ("residual", "conditional")


@dataclass(frozen=True)
class StudySetup:
    """One budget for every variant. ``budget.val_every`` sets the snapshot interval."""

    lambdas: tuple[float, ...]
    base_qualities: tuple[int, ...]   # one per λ, for the hybrids
    budget: TrainSetup
    N: int = 32
    M: int = 48
    depth: int = 4
    variants: tuple[str, ...] = VARIANTS

    def __post_init__(self) -> None:
        if len(self.lambdas) != len(self.base_qualities):
            raise ValueError("give one base quality per λ")
        unknown = set(self.variants) - set(VARIANTS)
        if unknown:
            raise ValueError(f"unknown study variants {sorted(unknown)}; choose from {VARIANTS}")

    def settings(self, variant: str, i: int) -> JpegSettings:
        return JpegSettings(quality=self.base_qualities[i] if variant in HYBRIDS else NO_BASE)

    def residual_config(self, variant: str) -> ResidualConfig:
        # Without a base, x - 0.5 has a std near 0.25, not a JPEG residual's 0.05: no gain needed.
        return ResidualConfig(N=self.N, M=self.M, depth=self.depth,
                              conditioning="base" if variant == "conditional" else "none",
                              residual_gain=1.0 if variant == "learned" else ResidualConfig.residual_gain)


def _snapshot_steps(budget: TrainSetup, count: int) -> list[int]:
    """The steps at which the engine validated (every ``val_every`` steps, and at the end)."""
    every = budget.val_every or budget.steps
    return [min((k + 1) * every, budget.steps) for k in range(count)]


def train_variant(setup: StudySetup, variant: str, i: int, train_images: ImageSet, val_images: ImageSet
                  ) -> list[tuple[int, object]]:
    """Train one variant at ``setup.lambdas[i]``; returns ``(step, codec)`` per snapshot."""
    lmbda, settings, snaps = setup.lambdas[i], setup.settings(variant, i), []
    keep = lambda m: snaps.append(copy.deepcopy(m.state_dict()))  # noqa: E731
    desc = f"{variant} λ={lmbda}"
    if variant == "bmshj2018":
        codec, _ = train_reference(lmbda, setup.N, setup.M, train_images, val_images, setup.budget, settings,
                                   desc=desc, on_validate=keep)
        codecs = [ReferenceCodec(_loaded(bmshj2018(setup.N, setup.M), s)) for s in snaps]
    else:
        cfg = setup.residual_config(variant)
        # From scratch, a residual codec needs the rate warm-up against latent collapse (see make_step).
        warm = replace(setup.budget, rate_warmup=max(setup.budget.rate_warmup, 0.1))
        train_residual(ResidualCodec(cfg), lmbda, settings, train_images, val_images, warm, desc=desc,
                       on_validate=keep)
        codecs = [HyresCodec(finalize(_loaded(ResidualCodec(cfg), s)), settings, lmbda=lmbda) for s in snaps]
    return list(zip(_snapshot_steps(setup.budget, len(codecs)), codecs))


def _loaded(model: torch.nn.Module, state: dict) -> torch.nn.Module:
    model.load_state_dict(state)
    return model


def measure(codec: object, images: ImageSet) -> dict[str, float]:
    """Mean real-byte bpp and PSNR over ``images`` (and the bpp parts of a HyRES codec)."""
    if isinstance(codec, HyresCodec):
        rows = evaluate(codec, images, progress=False)
        s = summarize(rows)
        # the model's estimate of its latent in place of the real strings
        estimated = [r["bpp"] - r["bpp_y"] - r["bpp_z"]
                     + (r["est_bits_y"] + r["est_bits_z"]) / (r["width"] * r["height"]) for r in rows]
        return {k: s[k] for k in ("bpp", "psnr", "bpp_jpeg", "bpp_z", "bpp_y", "bpp_container")} | {
            "bpp_estimated": sum(estimated) / len(estimated)}
    rates, quals = [], []
    for _, x in images:
        data = codec.encode(x)
        rates.append(bpp(len(data), *x.shape[-2:]))
        quals.append(psnr(codec.decode(data), x))
    return {"bpp": sum(rates) / len(rates), "psnr": sum(quals) / len(quals)}


def run(setup: StudySetup, train_images: ImageSet, val_images: ImageSet,
        eval_sets: Mapping[str, ImageSet]) -> list[dict]:
    """Train every variant at every λ and measure every snapshot on each evaluation set (e.g.
    ``{"validation": ..., "test": ...}``: choose on the first, report the second): one row per
    (set, variant, λ, step)."""
    rows = []
    jobs = [(v, i) for v in setup.variants for i in range(len(setup.lambdas))]
    for variant, i in tqdm(jobs, desc="study", leave=False):
        for step, codec in train_variant(setup, variant, i, train_images, val_images):
            for set_name, images in eval_sets.items():
                rows.append({"set": set_name, "variant": variant, "lmbda": setup.lambdas[i], "step": step,
                             "base_quality": setup.settings(variant, i).quality, **measure(codec, images)})
    return rows


def bd_by_step(rows: Sequence[dict], jpeg: Sequence[dict]) -> list[dict]:
    """BD-rate (%) against the JPEG curve (measured on the same images as ``rows``) for every
    (variant, step); ``None`` with the reason where the curves do not overlap in quality."""
    out = []
    for variant in dict.fromkeys(r["variant"] for r in rows):
        for step in sorted({r["step"] for r in rows if r["variant"] == variant}):
            pts = sorted((r for r in rows if r["variant"] == variant and r["step"] == step), key=lambda r: r["bpp"])
            row = {"variant": variant, "step": step, "bd_rate_pct": None, "reason": ""}
            try:
                row["bd_rate_pct"] = bd_rate([p["bpp"] for p in jpeg], [p["psnr"] for p in jpeg],
                                             [p["bpp"] for p in pts], [p["psnr"] for p in pts])
            except ValueError as exc:
                row["reason"] = str(exc)
            out.append(row)
    return out


def jpeg_anchor(images: ImageSet, qualities: Sequence[int] = (2, 5, 10, 20, 30, 40, 50, 60, 75, 90)) -> list[dict]:
    """The JPEG 4:2:0 anchor on the study images, with default Huffman tables like the kit's
    classical baseline and the published curves (the base layer optimises its tables)."""
    return jpeg_curve(images, qualities, JpegSettings(optimize=False))
