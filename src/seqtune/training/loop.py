"""The task-agnostic training loop: batches in, loss out, evaluate, keep the best.

It knows nothing about any task: the task collates batches, computes the loss and the metrics.
Everything that decides the rest of a run lives in `LoopState` (plus the model, optimiser, schedule,
scaler and RNG states): a checkpoint (training/checkpoint.py) saves it, and a run resumed from it
continues exactly where it was, bit for bit on the same machine.
"""

from __future__ import annotations

import copy
import itertools
import math
import time
from collections.abc import Callable, Sequence
from contextlib import nullcontext
from dataclasses import asdict, dataclass, field

import numpy as np
import torch

from seqtune.config import StrategyConfig, TrainConfig
from seqtune.data.batching import evaluation_batches, training_batches
from seqtune.errors import SeqtuneError, TrainingDiverged
from seqtune.inference import (
    Runtime,
    evaluate,
    format_metrics,
    scalar_metrics,
    single_predicted_label,
    to_device,
)
from seqtune.tasks.base import EncodedDataset, Task
from seqtune.training import checkpoint as checkpointing
from seqtune.training import distributed, gradients
from seqtune.training.distributed import SINGLE, World
from seqtune.training.optim import build_optimizer, build_schedule
from seqtune.training.progress import Progress
from seqtune.training.stops import StopRequests


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
        if not math.isfinite(value):  # a NaN or infinite metric is never the best model
            better = False
        else:
            better = self.value is None or (value > self.value if self.greater_is_better else value < self.value)
        if better:
            self.value, self.step, self.epoch, self.metrics = value, step, epoch, metrics
            self.evals_without_improvement = 0
        else:
            self.evals_without_improvement += 1
        return better


@dataclass
class LoopState:
    """Where the loop is: saved in every checkpoint (plain values only) and restored on resume."""

    step: int = 0  # optimiser steps done
    micro: int = 0  # micro-batches done (an unfinished accumulation holds micro % grad_accum_steps)
    epoch: int = 0  # epochs started
    batches: list[list[int]] | None = None  # the current epoch's batches (None: between epochs)
    position: int = 0  # batches of the current epoch done
    epoch_rng: dict | None = None  # the state of the generator that orders the next epochs
    tokens_seen: int = 0
    train_seconds: float = 0.0
    loss_sum: float = 0.0  # training loss since the last evaluation
    loss_count: int = 0
    curve: list[list[float]] = field(default_factory=list)  # [step, mean loss, lr] points since the last record
    curve_sum: float = 0.0  # training loss since the last curve point
    curve_count: int = 0
    early_stopped: bool = False
    best: dict = field(default_factory=dict)  # Best's fields
    history: list[dict] = field(default_factory=list)  # the records of metrics.jsonl so far


def micro_batches_per_epoch(first: Sequence, generator: np.random.Generator, draw: Callable, epochs: float,
                            world: World) -> list[int]:
    """This process's micro-batches in each epoch the run starts (ceil(epochs) of them): the first
    epoch's batches are `first`; the later ones are drawn from `generator` (a copy of the one that will
    order them), since token-budget batches give an epoch a batch or two more or fewer than another."""
    later = (draw(generator) for _ in range(math.ceil(epochs) - 1))  # one epoch's batches held at a time
    return [len(distributed.shard(batches, world)) for batches in itertools.chain([first], later)]


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
    checkpoints: checkpointing.Checkpoints | None = None,
    resume: dict | None = None,
    run_hint: str = "RUN_DIR",
    world: World = SINGLE,
) -> dict:
    """Train; evaluate on dev each epoch (and every `eval_every_steps`); call `on_best` on improvement.
    `strategy`: per-block learning rates and the Adam variant (see optim.build_optimizer).
    `checkpoints`: where training state is saved (each epoch end, every `checkpoint_every_steps`, and on
    SIGINT/SIGTERM, which then end the run with TrainingStopped); `resume`: a state saved there
    (checkpoint.read_state), whose weights are already in `model`; `run_hint`: the run directory, for
    the message that says how to resume. `world`: this process's place among torchrun's processes
    (training/distributed.py): each trains on its share of every epoch's batches, through
    DistributedDataParallel.

    Returns a summary: steps, timing, throughput and the best evaluation.
    """
    rng = np.random.default_rng(cfg.seed)
    lengths = train_set.lengths
    def batches_of_an_epoch(generator: np.random.Generator) -> list[list[int]]:
        return training_batches(lengths, cfg.batch_size, cfg.max_tokens, generator, cfg.length_buckets)

    epoch_batches = batches_of_an_epoch(rng)  # one generator for every epoch's order
    per_epoch = micro_batches_per_epoch(epoch_batches, copy.deepcopy(rng), batches_of_an_epoch, cfg.epochs, world)
    # the whole epochs, then the asked share of the last one (per_epoch[-1] when epochs is fractional)
    total_micro = sum(per_epoch[:int(cfg.epochs)]) + math.ceil(cfg.epochs % 1 * per_epoch[-1])
    # whole steps: the micro-batches of an unfinished accumulation at the very end are never stepped
    total_steps = max(1, total_micro // cfg.grad_accum_steps)
    epoch_length = 1  # micro-batches of the current epoch (this process's), set as each epoch starts
    curve_every = max(1, total_steps // 200)  # the run report's loss/lr curves: about 200 points a run
    optimizer = build_optimizer(model, cfg, strategy)
    schedule = build_schedule(optimizer, cfg, total_steps)
    scaler = torch.amp.GradScaler(enabled=runtime.autocast_dtype == torch.float16)
    net = distributed.wrap(model, world, runtime.device)  # what forward and backward go through
    metric = cfg.metric or task.primary_metric
    best = Best(metric, task.higher_is_better(metric))
    state = LoopState()
    if resume is not None:
        state = LoopState(**checkpointing.restore(resume, model, optimizer, schedule, scaler, task, world.rank))
        best = Best(**state.best)
        rng.bit_generator.state = state.epoch_rng
        log(f"resumed at optimiser step {state.step} of {total_steps} (epoch {state.epoch}, "
            f"{state.position} of its batches done)")
    else:
        distributed.decorrelate(task, world)
        fewest, most = (math.ceil(n / cfg.grad_accum_steps) for n in (min(per_epoch), max(per_epoch)))
        spread = f"{fewest}" if fewest == most else f"{fewest}-{most}"  # "200" or "200-201"
        log(f"training: {len(train_set.features)} inputs (windows counted apart), {spread} steps/epoch, "
            f"{total_steps} optimiser steps, lr {cfg.lr:g}")
    progress = Progress(total_steps, cfg.progress, log, initial=state.step)
    stops = StopRequests(log)

    def current_lr() -> float:
        """train.lr times the schedule's factor now (blocks with their own rate scale alike)."""
        return cfg.lr * schedule.lr_lambdas[0](schedule.last_epoch)

    def epochs_done() -> float:
        """Whole epochs done plus the share of the current one's batches (an epoch's end: a whole number)."""
        return round(max(0, state.epoch - 1) + state.position / max(1, epoch_length), 3)

    def run_evaluation() -> None:
        entry = {"step": state.step, "epoch": epochs_done(),
                 "train_loss": state.loss_sum / max(1, state.loss_count), "lr": current_lr(),
                 "train_curve": state.curve}
        state.loss_sum, state.loss_count, state.curve = 0.0, 0, []
        if dev_set is not None:
            metrics = distributed_evaluate(model, task, dev_set, runtime, world)
            entry.update({"split": "dev", **metrics})
            improved = best.update(metrics, state.step, entry["epoch"])
            log(f"eval @ step {state.step} (epoch {entry['epoch']:g}): {format_metrics(metrics)}"
                f"{'  *best*' if improved else ''}")
            stuck = single_predicted_label(metrics)
            if stuck is not None:
                log(f"warning: every dev prediction is {stuck!r}, one label for everything. If later evaluations "
                    f"say so too, try a longer warm-up (train.warmup_ratio), a lower train.lr, or "
                    f"task.class_weights: auto")
            if improved:
                on_best()
            patience = cfg.early_stopping_patience
            if patience is not None and best.evals_without_improvement >= patience:
                log(f"early stopping: no improvement of {best.metric} in {patience} evaluations")
                state.early_stopped = True
        state.history.append(entry)
        record(entry)
        model.train()

    def save_checkpoint() -> str | None:
        if checkpoints is None or not checkpoints.enabled:
            return None
        state.best = asdict(best)
        state.epoch_rng = rng.bit_generator.state
        ranks = distributed.all_gather(checkpointing.rank_states(task), world)  # every rank's RNGs
        if not world.is_main:
            return None
        loop = {**asdict(state), "batches": None if state.batches is None else [list(b) for b in state.batches]}
        saved = checkpoints.save(state.step, epochs_done(),
                                 checkpointing.capture(model, optimizer, schedule, scaler, task, loop, ranks))
        return saved.name

    def diverged(value: float) -> TrainingDiverged:
        kept = [f"the best model so far (step {best.step})"] if best.value is not None else []
        if checkpoints is not None and checkpoints.last is not None:
            kept.append(f"checkpoint {checkpoints.last}")
        return TrainingDiverged(
            f"the training loss became {value} at optimiser step {state.step + 1}; lower train.lr"
            + (f" ({' and '.join(kept)} kept in {run_hint})." if kept else "."))

    def stop_if_requested() -> None:
        if world.distributed:  # every process stops at the same step (signals reach them at different times)
            stops.requested = max(r or 0 for r in distributed.all_gather(stops.requested, world)) or None
        if stops.requested is not None:
            progress.close()
            saved = distributed.broadcast(save_checkpoint(), world)  # rank 0 writes it
            raise stops.stopped(state.step, run_hint, saved)

    model.train()
    # embedding tables give their batch's rows as gradient (gradients.py): not under torchrun
    with stops, gradients.row_gradients(model, optimizer, enabled=not world.distributed):
        while True:
            if state.batches is None:  # a new epoch
                state.batches = epoch_batches if state.epoch == 0 else batches_of_an_epoch(rng)
                state.epoch += 1
                state.position = 0
            mine = distributed.shard(state.batches, world, lengths, cfg.grad_accum_steps, state.micro - state.position)
            epoch_length = len(mine)
            while state.position < len(mine):
                idx = mine[state.position]
                start = time.perf_counter()
                batch = to_device(task.collate([train_set.features[i] for i in idx]), runtime.device)
                stepping = (state.micro + 1) % cfg.grad_accum_steps == 0
                # gradients are averaged over the processes at the last micro-batch of a step only
                with net.no_sync() if world.distributed and not stepping else nullcontext():
                    with runtime.autocast():
                        loss = task.loss(net(batch), batch)
                    loss_value = distributed.mean_over_ranks(loss.item(), world)  # over every process's batch
                    if not math.isfinite(loss_value):
                        progress.close()
                        raise diverged(loss_value)
                    scaler.scale(loss / cfg.grad_accum_steps).backward()
                state.position += 1
                state.micro += 1
                state.loss_sum += loss_value
                state.loss_count += 1
                state.curve_sum, state.curve_count = state.curve_sum + loss_value, state.curve_count + 1
                state.tokens_seen += int(batch["attention_mask"].sum())
                stepped = state.micro % cfg.grad_accum_steps == 0
                if stepped:
                    if cfg.max_grad_norm:
                        scaler.unscale_(optimizer)
                        gradients.clip_gradients(model.parameters(), cfg.max_grad_norm)
                    scaler.step(optimizer)
                    scaler.update()
                    optimizer.zero_grad(set_to_none=True)
                    schedule.step()
                    state.step += 1
                    if state.step % curve_every == 0:
                        state.curve.append([state.step, round(state.curve_sum / state.curve_count, 6), current_lr()])
                        state.curve_sum, state.curve_count = 0.0, 0
                state.train_seconds += time.perf_counter() - start
                progress.update(state.step, stepped, loss_value, state.tokens_seen / max(state.train_seconds, 1e-9))
                if stepped:
                    stops.after_step(state.step)
                    if cfg.eval_every_steps and state.step % cfg.eval_every_steps == 0 and state.step < total_steps:
                        run_evaluation()
                    if state.step >= total_steps or state.early_stopped:
                        break
                    if cfg.checkpoint_every_steps and state.step % cfg.checkpoint_every_steps == 0:
                        save_checkpoint()
                    stop_if_requested()
            # an epoch's end evaluates unless a periodic evaluation just did, at this very step (the same
            # model: a second record would count once more against early stopping's patience)
            if not state.early_stopped and not (state.history and state.history[-1]["step"] == state.step):
                run_evaluation()
            state.batches = None
            # token-budget batches: a later epoch can hold fewer steps than the first, so epochs count too
            if state.epoch >= cfg.epochs or state.step >= total_steps or state.early_stopped:
                break
            save_checkpoint()
            stop_if_requested()
    progress.close()
    if dev_set is None:
        on_best()  # no dev set: the final model is the one kept
    tokens = sum(distributed.all_gather(state.tokens_seen, world))  # of every process
    return {
        "steps": state.step,
        "epochs": epochs_done(),
        "train_seconds": round(state.train_seconds, 2),
        "train_tokens": tokens,
        "tokens_per_second": round(tokens / max(state.train_seconds, 1e-9), 1),
        "processes": world.size,
        "best": None if best.value is None else {
            "metric": best.metric, "value": best.value, "step": best.step, "epoch": best.epoch,
        },
        "best_metrics": best.metrics,  # the best evaluation's full metrics (None without a dev set)
    }


def distributed_evaluate(model, task: Task, dataset: EncodedDataset, runtime: Runtime, world: World) -> dict:
    """`evaluate` with the batches shared among the processes and the outputs gathered: every process
    gets the same metrics."""
    if not world.distributed:
        return evaluate(model, task, dataset, runtime, runtime.eval_batch_tokens)
    batches = evaluation_batches(dataset.lengths, runtime.eval_batch_tokens)[world.rank::world.size]
    model.eval()
    outputs = {}
    with torch.inference_mode(), runtime.autocast():
        for idx in batches:
            batch = to_device(task.collate([dataset.features[i] for i in idx]), runtime.device)
            outputs.update(zip(idx, task.split_outputs(model(batch), batch)))
    gathered = {}
    for part in distributed.all_gather(outputs, world):
        gathered.update(part)
    return task.metrics([gathered[i] for i in range(len(dataset.features))], dataset)
