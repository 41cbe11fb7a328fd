"""One training loop for every stage of the kit (residual codec phases, refinement, hideNet).

A stage supplies ``step_fn(model, batch) -> dict`` of named scalar tensors, one of them ``"loss"``
(under DDP, ``step_fn`` must go through ``model(...)`` so gradients are synchronised); a step
function with state of its own (a warm-up counter) exposes it as ``state_dict``/``load_state_dict``
and is checkpointed with the rest. The engine does everything else::

    batches --step_fn--> {"loss", ...} --backward/clip--> optimiser step --> scheduler step
        |                       \\--> CSV log (+ TensorBoard), tqdm, live-plot callback
        |                       \\--> validation (validation split only) --> best weights
        \\--> checkpoint every few minutes and at the end --> resume=True continues exactly

CompressAI models keep their entropy-bottleneck quantiles (``*.quantiles``) out of the main
optimiser; when there are any, a second optimiser minimises ``model.aux_loss()``. Steps whose
loss or gradients are not finite are skipped and counted; too many in a row stop the run.

Resuming restores weights, optimisers, scheduler, step, the step function's state, RNG states and
the position in the data, and rewrites the CSV log from the checkpoint, so nothing computed after
the checkpoint is claimed.
"""

from __future__ import annotations

import contextlib
import copy
import csv
import math
import random
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import asdict, dataclass, field, fields, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn
from tqdm.auto import tqdm

from ..core.fileio import atomic_write
from . import distributed
from .interrupt import StopRequest, TrainingInterrupted

StepFn = Callable[[nn.Module, Any], dict[str, torch.Tensor]]
ValFn = Callable[[nn.Module], dict[str, float]]
STATE_FORMAT = 1


@dataclass(frozen=True)
class TrainConfig:
    """What the loop does; every stage passes a :class:`TrainSetup` (a TrainConfig with the stage's data
    and method settings), so each option here is reachable from notebooks, profiles and the CLI."""

    steps: int
    lr: float = 1e-4
    aux_lr: float = 1e-3
    optimizer: str = "adam"            # "adam" | "adamw"
    weight_decay: float = 0.0
    schedule: str = "cosine"           # "cosine" (to lr*final_lr_ratio) | "constant" | "plateau" (on val loss)
    final_lr_ratio: float = 0.01
    plateau_factor: float = 0.5
    plateau_patience: int = 2          # validations without improvement before the lr drops
    clip_norm: float = 1.0
    log_every: int = 10
    val_every: int = 0                 # 0: validate once at the end (if a val_fn is given)
    max_bad_steps: int = 20            # consecutive non-finite steps before giving up
    device: str = "cpu"
    amp: str = "none"                  # "none" | "bf16" | "fp16" (autocast on the device; fp16 uses a GradScaler)
    #                                    | "auto": bf16 on CUDA, none elsewhere
    channels_last: bool | str = False  # NHWC model and batches: faster convolutions on tensor cores; "auto": on CUDA
    checkpoint_every_s: float = 300.0  # with a checkpoint path: also written at the end
    checkpoint_every_steps: int = 0    # 0: time-based only


@dataclass(frozen=True)
class TrainSetup(TrainConfig):
    """One training configuration for every stage (residual codec phases, reference, refinement, hideNet
    predictors): the engine's :class:`TrainConfig` itself — so no wrapper can drop an engine option on
    the way — plus the crops the stage draws and the residual codec's training options."""

    lr: float = 1e-3
    log_every: int = 25
    crop: int = 128
    batch: int = 8
    workers: int = 1
    seed: int = 0
    quantizer: str = "ste"       # residual codec: "ste" | "noise", the training stand-in for rounding
    rate_warmup: float = 0.0     # residual codec: fraction of the steps over which the rate's weight ramps 0 -> 1
    latent_dropout: float = 0.0  # residual codec: fraction of crops trained in the latent-free mode

    def signature(self) -> dict[str, Any]:
        """The settings that decide what training produces, to recognise finished work: never the
        device or the checkpoint interval; options added after the first signatures were written are
        left out while at their defaults, so work finished before they existed is still recognised."""
        defaults = {f.name: f.default for f in fields(self)}
        return {name: None if name == "device" else value for name, value in asdict(self).items()
                if name not in _RESULT_NEUTRAL and (name in _FIRST_SIGNED or value != defaults[name])}


_RESULT_NEUTRAL = ("checkpoint_every_s", "checkpoint_every_steps")
_FIRST_SIGNED = ("steps", "crop", "batch", "lr", "quantizer", "rate_warmup", "latent_dropout", "workers", "val_every",
                 "log_every", "seed", "device")


def resolve(cfg: TrainConfig, device: torch.device) -> TrainConfig:
    """``cfg`` with its "auto" options decided for ``device``: bf16 autocast and channels_last on CUDA
    (tensor cores), neither elsewhere (a CPU rarely gains from them)."""
    cuda = device.type == "cuda"
    if cfg.channels_last not in (True, False, "auto"):
        raise ValueError(f"channels_last must be true, false or auto, got {cfg.channels_last!r}")
    return replace(cfg, amp=("bf16" if cuda else "none") if cfg.amp == "auto" else cfg.amp,
                   channels_last=cuda if cfg.channels_last == "auto" else bool(cfg.channels_last))


@dataclass
class History:
    """What a run produced: logged rows, validation rows, and the best validated weights."""

    rows: list[dict[str, float]] = field(default_factory=list)
    val_rows: list[dict[str, float]] = field(default_factory=list)
    skipped_steps: int = 0
    best_step: int = -1
    best_val: float = math.inf
    best_state: dict[str, torch.Tensor] | None = None
    seconds: float = 0.0
    resumed_from: int = 0


def split_parameters(model: nn.Module) -> tuple[list[nn.Parameter], list[nn.Parameter]]:
    """(main, aux): CompressAI's ``*.quantiles`` go to the auxiliary optimiser."""
    main, aux = [], []
    for name, p in model.named_parameters():
        if p.requires_grad:
            (aux if name.endswith(".quantiles") else main).append(p)
    return main, aux


class _Batches:
    """Endless batches with a resumable position (epoch, batch index within the epoch).

    Each epoch reseeds the loader's generator and tells the dataset/sampler the epoch, so the
    order is a function of (seed, epoch) alone and a resumed run sees the same batches.
    """

    def __init__(self, loader: Iterable, epoch: int = 0, index: int = 0):
        self.loader, self.epoch, self.index = loader, epoch, index
        gen = getattr(loader, "generator", None)
        self.base_seed = gen.initial_seed() if gen is not None else None
        self._it: Iterator | None = None

    def _start_epoch(self) -> None:
        for obj in (getattr(self.loader, "dataset", None), getattr(self.loader, "sampler", None)):
            if hasattr(obj, "set_epoch"):
                obj.set_epoch(self.epoch)
        if self.base_seed is not None:
            self.loader.generator.manual_seed(self.base_seed + self.epoch)
        # A DataLoader without a generator draws its base seed from the global RNG when an iterator
        # is made (a sampler without one, on its first batch). Forking keeps these draws out of the
        # training's random stream: otherwise a resumed run (restored RNG, then a new iterator and
        # a fast-forward) would draw more than the uninterrupted run did after the checkpoint.
        with torch.random.fork_rng(devices=[]):
            self._it = iter(self.loader)
            for _ in range(self.index):  # fast-forward after a resume
                next(self._it)

    def __next__(self):
        while True:
            if self._it is None:
                self._start_epoch()
            try:
                batch = next(self._it)
                self.index += 1
                return batch
            except StopIteration:
                self.epoch, self.index, self._it = self.epoch + 1, 0, None


def _to_device(batch, device: torch.device, channels_last: bool):
    if isinstance(batch, torch.Tensor):
        batch = batch.to(device, non_blocking=True)
        return batch.contiguous(memory_format=torch.channels_last) if channels_last and batch.dim() == 4 else batch
    if isinstance(batch, (list, tuple)):
        return type(batch)(_to_device(b, device, channels_last) for b in batch)
    return batch


def _make_optimizer(params, cfg: TrainConfig) -> torch.optim.Optimizer:
    if cfg.optimizer == "adamw":
        return torch.optim.AdamW(params, lr=cfg.lr, weight_decay=cfg.weight_decay)
    if cfg.optimizer == "adam":
        return torch.optim.Adam(params, lr=cfg.lr, weight_decay=cfg.weight_decay)
    raise ValueError(f"optimizer must be adam or adamw, got {cfg.optimizer!r}")


def _make_scheduler(opt: torch.optim.Optimizer, cfg: TrainConfig):
    if cfg.schedule == "cosine":
        return torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=max(1, cfg.steps),
                                                          eta_min=cfg.lr * cfg.final_lr_ratio)
    if cfg.schedule == "plateau":
        return torch.optim.lr_scheduler.ReduceLROnPlateau(opt, mode="min", factor=cfg.plateau_factor,
                                                          patience=cfg.plateau_patience)
    if cfg.schedule == "constant":
        return None
    raise ValueError(f"schedule must be cosine, plateau or constant, got {cfg.schedule!r}")


def _autocast(cfg: TrainConfig, device: torch.device):
    if cfg.amp not in ("none", "bf16", "fp16"):
        raise ValueError(f"amp must be none, bf16 or fp16, got {cfg.amp!r}")
    if cfg.amp == "none":
        return contextlib.nullcontext()
    return torch.autocast(device.type, dtype=torch.bfloat16 if cfg.amp == "bf16" else torch.float16)


def _rng_state() -> dict[str, Any]:
    state = {"torch": torch.get_rng_state(), "numpy": np.random.get_state(), "python": random.getstate()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def _set_rng_state(state: dict[str, Any]) -> None:
    torch.set_rng_state(state["torch"])
    np.random.set_state(state["numpy"])
    random.setstate(state["python"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


class Trainer:
    """Holds everything a run needs to be checkpointed and resumed; :func:`train` drives it."""

    def __init__(self, model: nn.Module, step_fn: StepFn, loader: Iterable, cfg: TrainConfig,
                 val_fn: ValFn | None = None, checkpoint_path: str | Path | None = None):
        self.device = torch.device(cfg.device)
        self.cfg = cfg = resolve(cfg, self.device)
        self.step_fn, self.val_fn = step_fn, val_fn
        self.world = distributed.current()
        self.module = model.to(self.device)
        if cfg.channels_last:
            self.module = self.module.to(memory_format=torch.channels_last)
        self.main_params, self.aux_params = split_parameters(self.module)
        self.model = self._wrap_ddp(self.module)
        self.opt = _make_optimizer(self.main_params, cfg)
        self.aux_opt = torch.optim.Adam(self.aux_params, lr=cfg.aux_lr) if self.aux_params else None
        self.sched = _make_scheduler(self.opt, cfg)
        self.scaler = torch.amp.GradScaler(self.device.type) if cfg.amp == "fp16" else None
        self.batches = _Batches(loader)
        self.step, self.bad_in_row = 0, 0
        self.hist = History()
        self.checkpoint_path = Path(checkpoint_path) if checkpoint_path else None

    def _wrap_ddp(self, module: nn.Module) -> nn.Module:
        if not self.world.distributed:
            return module
        from torch.nn.parallel import DistributedDataParallel as DDP

        ignore = [n for n, _ in module.named_parameters() if n.endswith(".quantiles")]
        ignore += [n for n, _ in module.named_buffers() if n.rsplit(".", 1)[-1].startswith("_")]
        DDP._set_params_and_buffers_to_ignore_for_model(module, ignore)
        ids = [self.device.index] if self.device.type == "cuda" else None
        return DDP(module, device_ids=ids)

    # --- checkpointing -------------------------------------------------------------------
    def state(self) -> dict[str, Any]:
        h = self.hist
        return {"format": STATE_FORMAT, "step": self.step, "config": asdict(self.cfg),
                "model": self.module.state_dict(), "opt": self.opt.state_dict(),
                "aux_opt": self.aux_opt.state_dict() if self.aux_opt else None,
                "sched": self.sched.state_dict() if self.sched else None,
                "scaler": self.scaler.state_dict() if self.scaler else None,
                "data": {"epoch": self.batches.epoch, "index": self.batches.index}, "rng": _rng_state(),
                "step_fn": self.step_fn.state_dict() if hasattr(self.step_fn, "state_dict") else None,
                "history": {"rows": h.rows, "val_rows": h.val_rows, "skipped_steps": h.skipped_steps,
                            "best_step": h.best_step, "best_val": h.best_val, "best_state": h.best_state,
                            "seconds": h.seconds}}

    def save(self) -> None:
        if self.checkpoint_path is None or not self.world.is_main:
            return
        state = self.state()
        atomic_write(self.checkpoint_path, lambda f: torch.save(state, f))

    def load(self, path: Path) -> None:
        # weights_only=False: the file holds RNG states (numpy tuples); it is our own resume file.
        state = torch.load(path, map_location="cpu", weights_only=False)
        if state.get("format") != STATE_FORMAT:
            raise ValueError(f"{path} is not a training state of format {STATE_FORMAT}")
        self.module.load_state_dict(state["model"])
        self.opt.load_state_dict(state["opt"])
        if self.aux_opt and state["aux_opt"]:
            self.aux_opt.load_state_dict(state["aux_opt"])
        if self.sched and state["sched"]:
            self.sched.load_state_dict(state["sched"])
        if self.scaler and state["scaler"]:
            self.scaler.load_state_dict(state["scaler"])
        self.step = state["step"]
        self.batches = _Batches(self.batches.loader, **state["data"])
        if state.get("step_fn") is not None:
            self.step_fn.load_state_dict(state["step_fn"])
        _set_rng_state(state["rng"])
        h = state["history"]
        self.hist = History(rows=h["rows"], val_rows=h["val_rows"], skipped_steps=h["skipped_steps"],
                            best_step=h["best_step"], best_val=h["best_val"], best_state=h["best_state"],
                            seconds=h["seconds"], resumed_from=self.step)

    # --- one optimisation step -------------------------------------------------------------
    def _finite_grads(self) -> bool:
        return all(p.grad is None or torch.isfinite(p.grad).all() for p in self.main_params)

    def train_step(self) -> dict[str, torch.Tensor] | None:
        """One optimiser step; returns the step's scalars, or None when it was skipped."""
        batch = _to_device(next(self.batches), self.device, self.cfg.channels_last)
        with _autocast(self.cfg, self.device):
            out = self.step_fn(self.model, batch)
        loss = out["loss"].float()
        self.opt.zero_grad(set_to_none=True)
        if torch.isfinite(loss):
            (self.scaler.scale(loss) if self.scaler else loss).backward()
            if self.scaler:
                self.scaler.unscale_(self.opt)
        if not torch.isfinite(loss) or not self._finite_grads():
            self.hist.skipped_steps += 1
            self.bad_in_row += 1
            if self.scaler:
                self.scaler.update()
            if self.bad_in_row >= self.cfg.max_bad_steps:
                raise FloatingPointError(f"{self.bad_in_row} consecutive steps with non-finite loss or gradients "
                                         f"at step {self.step}: lower the learning rate or check the data")
            return None
        self.bad_in_row = 0
        if self.cfg.clip_norm:
            nn.utils.clip_grad_norm_(self.main_params, self.cfg.clip_norm)
        if self.scaler:
            self.scaler.step(self.opt)
            self.scaler.update()
        else:
            self.opt.step()
        if self.aux_opt is not None:
            self.aux_opt.zero_grad(set_to_none=True)
            aux_loss = self.module.aux_loss()
            aux_loss.backward()
            self.aux_opt.step()
            out = {**out, "aux": aux_loss.detach()}
        if self.sched is not None and self.cfg.schedule != "plateau":
            self.sched.step()
        self.step += 1
        return out

    def validate(self) -> dict[str, float]:
        self.module.eval()
        with torch.no_grad():
            metrics = self.val_fn(self.module)
        self.module.train()
        self.hist.val_rows.append({"step": self.step, **metrics})
        if metrics["loss"] < self.hist.best_val:
            self.hist.best_val, self.hist.best_step = metrics["loss"], self.step
            self.hist.best_state = copy.deepcopy(self.module.state_dict())
        if self.cfg.schedule == "plateau":
            self.sched.step(metrics["loss"])  # the validation loss, not the step count
        return metrics


def _global_means(out: dict[str, torch.Tensor], world: distributed.World) -> dict[str, float]:
    """Logged scalars averaged over ranks, so a DDP run logs the global-batch values."""
    names = [k for k, v in out.items() if v.numel() == 1]
    values = torch.stack([out[k].detach().float().reshape(()) for k in names])
    if world.distributed:
        torch.distributed.all_reduce(values)
        values /= world.size
    return dict(zip(names, values.tolist()))


class _Log:
    """CSV (always rewritten from the in-memory rows on open) and TensorBoard when installed."""

    def __init__(self, path: str | Path | None, rows: list[dict[str, float]], enabled: bool):
        self.file = self.writer = self.tb = None
        if not enabled:
            return
        if path:
            Path(path).parent.mkdir(parents=True, exist_ok=True)
            self.file = open(path, "w", newline="")
            for row in rows:
                self.write(row, tb=False)
            with contextlib.suppress(ImportError, ModuleNotFoundError):
                from torch.utils.tensorboard import SummaryWriter

                self.tb = SummaryWriter(str(Path(path).with_suffix("")) + "_tb")

    def write(self, row: dict[str, float], tb: bool = True) -> None:
        if self.file:
            if self.writer is None:
                self.writer = csv.DictWriter(self.file, fieldnames=list(row), extrasaction="ignore")
                self.writer.writeheader()
            self.writer.writerow(row)
            self.file.flush()
        if self.tb and tb:
            for k, v in row.items():
                if k != "step":
                    self.tb.add_scalar(k, v, int(row["step"]))

    def close(self) -> None:
        if self.file:
            self.file.close()
        if self.tb:
            self.tb.close()


def train(model: nn.Module, step_fn: StepFn, loader: Iterable, cfg: TrainConfig, val_fn: ValFn | None = None,
          log_csv: str | Path | None = None, on_log: Callable[[History], None] | None = None,
          progress: bool = True, desc: str = "train", checkpoint_path: str | Path | None = None,
          resume: bool = False) -> History:
    """Train ``model`` for ``cfg.steps`` optimiser steps; returns the :class:`History`.

    With ``val_fn`` the weights with the lowest validation ``"loss"`` are kept in
    ``History.best_state`` (validation data only: never select on the test set). With
    ``checkpoint_path`` the full training state is written atomically every
    ``cfg.checkpoint_every_s`` seconds (and/or ``checkpoint_every_steps``) and at the end;
    ``resume=True`` continues from it when it exists.
    """
    tr = Trainer(model, step_fn, loader, cfg, val_fn, checkpoint_path)
    if resume and tr.checkpoint_path is not None and tr.checkpoint_path.is_file():
        tr.load(tr.checkpoint_path)
    main = tr.world.is_main
    log = _Log(log_csv, tr.hist.rows, main)
    val_every = cfg.val_every or cfg.steps
    bar = tqdm(total=cfg.steps, initial=tr.step, desc=desc, disable=not (progress and main), leave=True)
    t0, last_save = time.perf_counter() - tr.hist.seconds, time.perf_counter()
    tr.module.train()
    try:
        with StopRequest(enabled=not tr.world.distributed) as stop:  # ranks must stop together: DDP stops at once
            while tr.step < cfg.steps and not stop.requested:
                try:
                    out = tr.train_step()
                except RuntimeError:  # e.g. a DataLoader worker that the same interrupt stopped
                    if stop.requested:
                        break
                    raise
                if out is None:
                    continue
                bar.update(1)
                if tr.step % cfg.log_every == 0 or tr.step == cfg.steps:
                    row = {"step": tr.step, "lr": tr.opt.param_groups[0]["lr"], "seconds": time.perf_counter() - t0,
                           **_global_means(out, tr.world)}
                    tr.hist.rows.append(row)
                    log.write(row)
                    bar.set_postfix({k: f"{v:.4g}" for k, v in row.items() if k not in ("step", "seconds", "lr")})
                    if on_log and main:
                        on_log(tr.hist)
                if val_fn is not None and (tr.step % val_every == 0 or tr.step == cfg.steps):
                    tr.validate()
                due_steps = cfg.checkpoint_every_steps and tr.step % cfg.checkpoint_every_steps == 0
                if due_steps or time.perf_counter() - last_save >= cfg.checkpoint_every_s:
                    tr.hist.seconds = time.perf_counter() - t0
                    tr.save()
                    last_save = time.perf_counter()
        tr.hist.seconds = time.perf_counter() - t0
        tr.save()
    finally:
        bar.close()
        log.close()
    if tr.cfg.channels_last:  # back to the default layout: a codec built from the saved weights computes the same
        tr.module.to(memory_format=torch.contiguous_format)
    if stop.requested:
        raise TrainingInterrupted(tr.step, cfg.steps, tr.checkpoint_path)
    return tr.hist
