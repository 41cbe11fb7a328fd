"""One training loop for every stage of the kit (residual codec, refinement, hideNet predictors).

A stage supplies a ``step_fn(model, batch) -> dict`` returning named scalar tensors, one of them
``"loss"``; the engine does the rest::

    batches --step_fn--> {"loss", ...} --backward/clip--> optimiser step --scheduler step
                                   \\--> CSV log, tqdm, live-plot callback, validation -> best state

CompressAI models keep their entropy-bottleneck quantiles (parameters named ``*.quantiles``) out
of the main optimiser; when there are any, a second optimiser minimises ``model.aux_loss()``.
Steps whose loss or gradients are not finite are skipped and counted; too many in a row stop the
run with a clear error instead of training on garbage.
"""

from __future__ import annotations

import copy
import csv
import math
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn
from tqdm.auto import tqdm

StepFn = Callable[[nn.Module, Any], dict[str, torch.Tensor]]
ValFn = Callable[[nn.Module], dict[str, float]]


@dataclass
class TrainConfig:
    steps: int
    lr: float = 1e-4
    aux_lr: float = 1e-3
    optimizer: str = "adam"            # "adam" | "adamw"
    weight_decay: float = 0.0
    schedule: str = "cosine"           # "cosine" (to lr*final_lr_ratio) | "constant"
    final_lr_ratio: float = 0.01
    clip_norm: float = 1.0
    log_every: int = 10
    val_every: int = 0                 # 0: validate once at the end (if a val_fn is given)
    max_bad_steps: int = 20            # consecutive non-finite steps before giving up
    device: str = "cpu"


@dataclass
class History:
    """What a run produced: per-log-step rows, validation rows, and the best validated weights."""

    rows: list[dict[str, float]] = field(default_factory=list)
    val_rows: list[dict[str, float]] = field(default_factory=list)
    skipped_steps: int = 0
    best_step: int = -1
    best_val: float = math.inf
    best_state: dict[str, torch.Tensor] | None = None
    seconds: float = 0.0


def split_parameters(model: nn.Module) -> tuple[list[nn.Parameter], list[nn.Parameter]]:
    """(main, aux): CompressAI's ``*.quantiles`` go to the auxiliary optimiser."""
    main, aux = [], []
    for name, p in model.named_parameters():
        if p.requires_grad:
            (aux if name.endswith(".quantiles") else main).append(p)
    return main, aux


def _forever(loader: Iterable) -> Iterator:
    epoch = 0
    while True:
        if hasattr(getattr(loader, "dataset", None), "set_epoch"):
            loader.dataset.set_epoch(epoch)
        yield from loader
        epoch += 1


def _to_device(batch, device: torch.device):
    if isinstance(batch, torch.Tensor):
        return batch.to(device, non_blocking=True)
    if isinstance(batch, (list, tuple)):
        return type(batch)(_to_device(b, device) for b in batch)
    return batch


def _make_optimizer(params, cfg: TrainConfig, lr: float) -> torch.optim.Optimizer:
    if cfg.optimizer == "adamw":
        return torch.optim.AdamW(params, lr=lr, weight_decay=cfg.weight_decay)
    if cfg.optimizer == "adam":
        return torch.optim.Adam(params, lr=lr, weight_decay=cfg.weight_decay)
    raise ValueError(f"optimizer must be adam or adamw, got {cfg.optimizer!r}")


def _make_scheduler(opt: torch.optim.Optimizer, cfg: TrainConfig):
    if cfg.schedule == "cosine":
        return torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=max(1, cfg.steps),
                                                          eta_min=cfg.lr * cfg.final_lr_ratio)
    if cfg.schedule == "constant":
        return None
    raise ValueError(f"schedule must be cosine or constant, got {cfg.schedule!r}")


def _grads_finite(params: list[nn.Parameter]) -> bool:
    return all(p.grad is None or torch.isfinite(p.grad).all() for p in params)


def train(model: nn.Module, step_fn: StepFn, loader: Iterable, cfg: TrainConfig, val_fn: ValFn | None = None,
          log_csv: str | Path | None = None, on_log: Callable[[History], None] | None = None,
          progress: bool = True, desc: str = "train") -> History:
    """Train ``model`` for ``cfg.steps`` optimiser steps; returns the :class:`History`.

    When ``val_fn`` is given, the weights with the lowest validation ``"loss"`` are kept in
    ``History.best_state`` (validation data only: never select on the test set).
    """
    device = torch.device(cfg.device)
    model.to(device).train()
    main_params, aux_params = split_parameters(model)
    opt = _make_optimizer(main_params, cfg, cfg.lr)
    aux_opt = torch.optim.Adam(aux_params, lr=cfg.aux_lr) if aux_params else None
    sched = _make_scheduler(opt, cfg)
    hist, bad_in_row, t0 = History(), 0, time.perf_counter()
    writer, csv_file = None, None
    if log_csv:
        Path(log_csv).parent.mkdir(parents=True, exist_ok=True)
        csv_file = open(log_csv, "w", newline="")
    val_every = cfg.val_every or cfg.steps
    batches = _forever(loader)
    bar = tqdm(total=cfg.steps, desc=desc, disable=not progress, leave=True)
    try:
        step = 0
        while step < cfg.steps:
            out = step_fn(model, _to_device(next(batches), device))
            loss = out["loss"]
            opt.zero_grad(set_to_none=True)
            if torch.isfinite(loss):
                loss.backward()
            if not torch.isfinite(loss) or not _grads_finite(main_params):
                hist.skipped_steps += 1
                bad_in_row += 1
                if bad_in_row >= cfg.max_bad_steps:
                    raise FloatingPointError(f"{bad_in_row} consecutive steps with non-finite loss or gradients "
                                             f"at step {step}: lower the learning rate or check the data")
                continue
            bad_in_row = 0
            if cfg.clip_norm:
                nn.utils.clip_grad_norm_(main_params, cfg.clip_norm)
            opt.step()
            if aux_opt is not None:
                aux_opt.zero_grad(set_to_none=True)
                aux_loss = model.aux_loss()
                aux_loss.backward()
                aux_opt.step()
                out = {**out, "aux": aux_loss.detach()}
            if sched is not None:
                sched.step()
            step += 1
            bar.update(1)
            if step % cfg.log_every == 0 or step == cfg.steps:
                row = {"step": step, "lr": opt.param_groups[0]["lr"], "seconds": time.perf_counter() - t0,
                       **{k: float(v.detach()) for k, v in out.items() if v.numel() == 1}}
                hist.rows.append(row)
                bar.set_postfix({k: f"{v:.4g}" for k, v in row.items() if k not in ("step", "seconds", "lr")})
                if csv_file:
                    if writer is None:
                        writer = csv.DictWriter(csv_file, fieldnames=list(row), extrasaction="ignore")
                        writer.writeheader()
                    writer.writerow(row)
                    csv_file.flush()
                if on_log:
                    on_log(hist)
            if val_fn is not None and (step % val_every == 0 or step == cfg.steps):
                _validate(model, val_fn, step, hist)
    finally:
        bar.close()
        if csv_file:
            csv_file.close()
    hist.seconds = time.perf_counter() - t0
    return hist


def _validate(model: nn.Module, val_fn: ValFn, step: int, hist: History) -> None:
    model.eval()
    with torch.no_grad():
        metrics = val_fn(model)
    model.train()
    hist.val_rows.append({"step": step, **metrics})
    if metrics["loss"] < hist.best_val:
        hist.best_val, hist.best_step = metrics["loss"], step
        hist.best_state = copy.deepcopy(model.state_dict())
