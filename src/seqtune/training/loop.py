"""The task-agnostic training loop: batches in, loss out, evaluate, keep the best.

It knows nothing about any task: the task collates batches, computes the loss and the metrics.
"""

from __future__ import annotations

import math
import time
from contextlib import nullcontext
from dataclasses import dataclass
from typing import Callable

import numpy as np
import torch
from tqdm.auto import tqdm

from seqtune.config import TrainConfig
from seqtune.data.batching import evaluation_batches, training_batches
from seqtune.errors import SeqtuneError, TrainingDiverged
from seqtune.tasks.base import EncodedDataset, Task
from seqtune.training.optim import build_optimizer, build_schedule


@dataclass
class Runtime:
    """Where and in which precision the model runs."""

    device: torch.device
    autocast_dtype: torch.dtype | None = None  # None: plain fp32
    eval_batch_tokens: int = 16384  # padded tokens per inference batch (evaluation, caching)

    def autocast(self):
        if self.autocast_dtype is None:
            return nullcontext()
        return torch.autocast(self.device.type, dtype=self.autocast_dtype)


def resolve_runtime(cfg: TrainConfig) -> Runtime:
    if cfg.num_threads:
        torch.set_num_threads(cfg.num_threads)
    name = cfg.device
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise SeqtuneError(f"train.device is {cfg.device!r} but no CUDA GPU is available; use cpu or auto.")
    device = torch.device(name)
    precision = cfg.precision
    if precision == "auto":
        # bf16 is ~100x slower than fp32 on common CPUs: fp32 there, bf16 on GPUs.
        precision = "bf16" if device.type == "cuda" else "fp32"
    dtype = {"fp32": None, "bf16": torch.bfloat16, "fp16": torch.float16}[precision]
    return Runtime(device, dtype, cfg.eval_batch_tokens or default_eval_batch_tokens(device))


def default_eval_batch_tokens(device: torch.device) -> int:
    """On CPU, batches of ~1k tokens run faster than large ones (their activations stay in the CPU
    caches): MiniLM over 13k SST-2 tokens took 4.4 s at 1,024 tokens per batch, 7.3 s at 16,384."""
    return 1024 if device.type == "cpu" else 16384


def to_device(batch: dict, device: torch.device) -> dict:
    return {k: v.to(device, non_blocking=True) if torch.is_tensor(v) else v for k, v in batch.items()}


def run_outputs(model, task: Task, dataset: EncodedDataset, runtime: Runtime, batch_tokens: int) -> list[np.ndarray]:
    """Model outputs for every feature, in feature order (batches are sorted by length)."""
    model.eval()
    outputs: list = [None] * len(dataset.features)
    with torch.inference_mode(), runtime.autocast():
        for idx in evaluation_batches(dataset.lengths, batch_tokens):
            batch = to_device(task.collate([dataset.features[i] for i in idx]), runtime.device)
            for i, out in zip(idx, task.split_outputs(model(batch), batch)):
                outputs[i] = out
    return outputs


def evaluate(model, task: Task, dataset: EncodedDataset, runtime: Runtime, batch_tokens: int) -> dict:
    return task.metrics(run_outputs(model, task, dataset, runtime, batch_tokens), dataset)


def scalar_metrics(metrics: dict) -> dict:
    return {k: v for k, v in metrics.items() if isinstance(v, (int, float))}


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
) -> dict:
    """Train; evaluate on dev each epoch (and every `eval_every_steps`); call `on_best` on improvement.

    Returns a summary: steps, timing, throughput and the best evaluation.
    """
    rng = np.random.default_rng(cfg.seed)
    lengths = train_set.lengths
    def batches_of_an_epoch(generator: np.random.Generator) -> list[list[int]]:
        return training_batches(lengths, cfg.batch_size, cfg.max_tokens, generator, cfg.length_buckets)

    epoch_batches = batches_of_an_epoch(np.random.default_rng(cfg.seed))
    steps_per_epoch = math.ceil(len(epoch_batches) / cfg.grad_accum_steps)
    total_steps = max(1, math.ceil(cfg.epochs * steps_per_epoch))
    optimizer = build_optimizer(model, cfg)
    schedule = build_schedule(optimizer, cfg, total_steps)
    scaler = torch.amp.GradScaler(enabled=runtime.autocast_dtype == torch.float16)
    best = Best(cfg.metric or task.primary_metric, task.greater_is_better if not cfg.metric else
                not cfg.metric.startswith(("loss", "mse", "perplexity")))
    log(f"training: {len(train_set.features)} examples, {steps_per_epoch} steps/epoch, "
        f"{total_steps} optimiser steps, lr {cfg.lr:g}")

    step, micro, tokens_seen, train_seconds = 0, 0, 0, 0.0
    loss_sum, loss_count = 0.0, 0
    bar = tqdm(total=total_steps, disable=not cfg.progress, unit="step", dynamic_ncols=True)
    epoch = 0
    stop = False

    def run_evaluation() -> None:
        nonlocal loss_sum, loss_count, stop
        entry = {"step": step, "epoch": round(step / steps_per_epoch, 3),
                 "train_loss": loss_sum / max(1, loss_count)}
        loss_sum, loss_count = 0.0, 0
        if dev_set is not None:
            metrics = evaluate(model, task, dev_set, runtime, runtime.eval_batch_tokens)
            entry.update({"split": "dev", **metrics})
            improved = best.update(metrics, step, entry["epoch"])
            shown = ", ".join(f"{k} {v:.4f}" for k, v in scalar_metrics(metrics).items())
            log(f"eval @ step {step} (epoch {entry['epoch']:g}): {shown}{'  *best*' if improved else ''}")
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
            loss_sum += loss.item()
            loss_count += 1
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
            train_seconds += time.perf_counter() - start
            bar.update(1 if micro % cfg.grad_accum_steps == 0 else 0)
            bar.set_postfix(loss=f"{loss.item():.4f}", tok_s=f"{tokens_seen / max(train_seconds, 1e-9):.0f}")
            if micro % cfg.grad_accum_steps == 0:
                if cfg.eval_every_steps and step % cfg.eval_every_steps == 0 and step < total_steps:
                    run_evaluation()
                if step >= total_steps or stop:
                    break
        if not stop:
            run_evaluation()
    bar.close()
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
