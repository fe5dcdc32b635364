"""The task-agnostic training loop: batches in, loss out, evaluate, keep the best.

It knows nothing about any task: the task collates batches, computes the loss and the metrics.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from typing import Callable

import numpy as np
import torch

from seqtune.config import StrategyConfig, TrainConfig
from seqtune.data.batching import training_batches
from seqtune.errors import SeqtuneError, TrainingDiverged
from seqtune.inference import (
    Runtime,
    evaluate,
    format_metrics,
    scalar_metrics,
    to_device,
)
from seqtune.tasks.base import EncodedDataset, Task
from seqtune.training.optim import build_optimizer, build_schedule
from seqtune.training.progress import Progress


@dataclass
class Best:
    metric: str
    greater_is_better: bool
    value: float | None = None
    step: int = 0
    epoch: float = 0.0
    metrics: dict | None = None
    evals_without_improvement: int = 0

    def update(self, metrics: dict, step: int, epoch: float) -> bool:
        if self.metric not in metrics:
            raise SeqtuneError(
                f"train.metric {self.metric!r} is not computed by this task; choose one of: "
                f"{', '.join(scalar_metrics(metrics))}."
            )
        value = metrics[self.metric]
        better = self.value is None or (value > self.value if self.greater_is_better else value < self.value)
        if better:
            self.value, self.step, self.epoch, self.metrics = value, step, epoch, metrics
            self.evals_without_improvement = 0
        else:
            self.evals_without_improvement += 1
        return better


def train(
    model: torch.nn.Module,
    task: Task,
    train_set: EncodedDataset,
    dev_set: EncodedDataset | None,
    cfg: TrainConfig,
    runtime: Runtime,
    log: Callable[[str], None],
    record: Callable[[dict], None],
    on_best: Callable[[], None],
    strategy: StrategyConfig | None = None,
) -> dict:
    """Train; evaluate on dev each epoch (and every `eval_every_steps`); call `on_best` on improvement.
    `strategy`: per-block learning rates and the Adam variant (see optim.build_optimizer).

    Returns a summary: steps, timing, throughput and the best evaluation.
    """
    rng = np.random.default_rng(cfg.seed)
    lengths = train_set.lengths
    def batches_of_an_epoch(generator: np.random.Generator) -> list[list[int]]:
        return training_batches(lengths, cfg.batch_size, cfg.max_tokens, generator, cfg.length_buckets)

    epoch_batches = batches_of_an_epoch(np.random.default_rng(cfg.seed))
    steps_per_epoch = math.ceil(len(epoch_batches) / cfg.grad_accum_steps)
    total_steps = max(1, math.ceil(cfg.epochs * steps_per_epoch))
    optimizer = build_optimizer(model, cfg, strategy)
    schedule = build_schedule(optimizer, cfg, total_steps)
    scaler = torch.amp.GradScaler(enabled=runtime.autocast_dtype == torch.float16)
    metric = cfg.metric or task.primary_metric
    best = Best(metric, task.higher_is_better(metric))
    log(f"training: {len(train_set.features)} inputs (windows counted apart), {steps_per_epoch} steps/epoch, "
        f"{total_steps} optimiser steps, lr {cfg.lr:g}")

    step, micro, tokens_seen, train_seconds = 0, 0, 0, 0.0
    loss_sum, loss_count = 0.0, 0
    # the run report's loss/lr curves: a point every `curve_every` steps, kept with the next evaluation
    curve_every, curve, curve_sum, curve_count = max(1, total_steps // 200), [], 0.0, 0
    progress = Progress(total_steps, cfg.progress, log)
    epoch = 0
    stop = False

    def current_lr() -> float:
        """train.lr times the schedule's factor now (blocks with their own rate scale alike)."""
        return cfg.lr * schedule.lr_lambdas[0](schedule.last_epoch)

    def run_evaluation() -> None:
        nonlocal loss_sum, loss_count, stop, curve
        entry = {"step": step, "epoch": round(step / steps_per_epoch, 3),
                 "train_loss": loss_sum / max(1, loss_count), "lr": current_lr(), "train_curve": curve}
        loss_sum, loss_count, curve = 0.0, 0, []
        if dev_set is not None:
            metrics = evaluate(model, task, dev_set, runtime, runtime.eval_batch_tokens)
            entry.update({"split": "dev", **metrics})
            improved = best.update(metrics, step, entry["epoch"])
            log(f"eval @ step {step} (epoch {entry['epoch']:g}): {format_metrics(metrics)}"
                f"{'  *best*' if improved else ''}")
            if improved:
                on_best()
            patience = cfg.early_stopping_patience
            if patience is not None and best.evals_without_improvement >= patience:
                log(f"early stopping: no improvement of {best.metric} in {patience} evaluations")
                stop = True
        record(entry)
        model.train()

    model.train()
    while step < total_steps and not stop:
        batches = epoch_batches if epoch == 0 else batches_of_an_epoch(rng)
        epoch += 1
        for idx in batches:
            start = time.perf_counter()
            batch = to_device(task.collate([train_set.features[i] for i in idx]), runtime.device)
            with runtime.autocast():
                loss = task.loss(model(batch), batch)
            if not torch.isfinite(loss):
                raise TrainingDiverged(f"the training loss became {loss.item()} at step {step}; lower train.lr.")
            scaler.scale(loss / cfg.grad_accum_steps).backward()
            micro += 1
            loss_value = loss.item()
            loss_sum += loss_value
            loss_count += 1
            curve_sum, curve_count = curve_sum + loss_value, curve_count + 1
            tokens_seen += int(batch["attention_mask"].sum())
            if micro % cfg.grad_accum_steps == 0:
                if cfg.max_grad_norm:
                    scaler.unscale_(optimizer)
                    torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.max_grad_norm)
                scaler.step(optimizer)
                scaler.update()
                optimizer.zero_grad(set_to_none=True)
                schedule.step()
                step += 1
                if step % curve_every == 0:  # [step, mean loss since the last point, lr]
                    curve.append([step, round(curve_sum / curve_count, 6), current_lr()])
                    curve_sum, curve_count = 0.0, 0
            train_seconds += time.perf_counter() - start
            progress.update(step, micro % cfg.grad_accum_steps == 0, loss_value,
                            tokens_seen / max(train_seconds, 1e-9))
            if micro % cfg.grad_accum_steps == 0:
                if cfg.eval_every_steps and step % cfg.eval_every_steps == 0 and step < total_steps:
                    run_evaluation()
                if step >= total_steps or stop:
                    break
        if not stop:
            run_evaluation()
        if epoch >= cfg.epochs:  # token-budget batches: a later epoch can hold fewer steps than the first
            break
    progress.close()
    if dev_set is None:
        on_best()  # no dev set: the final model is the one kept
    return {
        "steps": step,
        "epochs": round(step / steps_per_epoch, 3),
        "train_seconds": round(train_seconds, 2),
        "train_tokens": tokens_seen,
        "tokens_per_second": round(tokens_seen / max(train_seconds, 1e-9), 1),
        "best": None if best.value is None else {
            "metric": best.metric, "value": best.value, "step": best.step, "epoch": best.epoch,
        },
        "best_metrics": best.metrics,  # the best evaluation's full metrics (None without a dev set)
    }
