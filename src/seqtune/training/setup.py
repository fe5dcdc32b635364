"""`train_from_config`: the fine-tuning recipe, read top to bottom.

setup (tokenizer, task, data, model) -> train (loop.train) -> test with the best model -> results.json
"""

from __future__ import annotations

import platform
import random
import sys
import time
from dataclasses import fields, replace
from datetime import datetime, timezone
from importlib.metadata import version as package_version
from pathlib import Path

import numpy as np
import torch

from seqtune.config import RunConfig, StrategyConfig, config_to_yaml
from seqtune.errors import SeqtuneError
from seqtune.inference import (
    evaluate,
    format_metrics,
    load_trained_model,
    resolve_runtime,
)
from seqtune.memory import MemorySampler, limit_heap_retention
from seqtune.models import hf_encoder, hf_tokenizer
from seqtune.models.checkpoint import encoder_config_from_dir
from seqtune.models.encoder import check_positions
from seqtune.models.hf_config import GenericConfig
from seqtune.models.hub import ModelSource, resolve_model
from seqtune.models.task_model import model_for_finetuning, save_model
from seqtune.report import report_at_end_of_run
from seqtune.tasks import task_class
from seqtune.tasks.base import EncodedDataset, Task
from seqtune.tokenization import load_tokenizer
from seqtune.tracking import Tracking
from seqtune.training import distributed, strategies
from seqtune.training.caching import model_for_training
from seqtune.training.checkpoint import (
    Checkpoints,
    identity_differences,
    load_weights,
    run_identity,
)
from seqtune.training.compiling import compile_blocks
from seqtune.training.loop import train
from seqtune.training.resume import ResumePoint
from seqtune.training.run_dir import RunDir, check_output_dir
from seqtune.training.strategies import (
    apply_strategy,
    block_learning_rates,
    block_of,
    format_counts,
    parameter_counts,
)


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def load_split(task: Task, path: str, split: str, log) -> EncodedDataset:
    start = time.perf_counter()
    examples = task.read(path, split)
    if split == "train":
        task.fit(examples)
    dataset = task.encode(examples, split)
    lengths = dataset.lengths
    log(f"{split}: {len(examples)} examples -> {len(lengths)} features, {sum(lengths)} tokens "
        f"(mean {np.mean(lengths):.1f}, max {max(lengths)}) from {path} in {time.perf_counter() - start:.1f}s")
    info = dict(dataset.info)
    if info.pop("truncated", 0):
        log(f"{split}: {dataset.info['truncated']} examples were longer than data.max_length="
            f"{task.data.max_length} tokens and were truncated"
            + ("" if task.data.text_pair_column is not None else " (data.long_inputs: windows scores them whole)"))
    details = {k: v for k, v in info.items() if v}  # windows, unknown residues, ... (task-specific)
    if details:
        log(f"{split}: " + ", ".join(f"{k} {v}" for k, v in details.items()))
    return dataset


def require_model(cfg: RunConfig) -> ModelSource:
    """model.path as a local directory (a hub id is downloaded, pinned to model.revision)."""
    if not cfg.model.path:
        raise SeqtuneError("model.path is required: a Hugging Face BERT checkpoint directory "
                           "(config.json, model.safetensors or pytorch_model.bin, vocab.txt or tokenizer.json).")
    return resolve_model(cfg.model.path, cfg.model.revision)


def max_length_for(cfg: RunConfig, max_positions: int | None, offset: int = 0) -> int:
    """data.max_length as set (checked against the model's positions), or else the task's default,
    capped at the model's positions. max_positions: usable positions (EncoderConfig.max_tokens),
    offset: EncoderConfig.position_offset (for the message)."""
    if cfg.data.max_length is not None:
        if max_positions is not None:
            check_positions(cfg.data.max_length, max_positions, offset=offset)
        return cfg.data.max_length
    default = task_class(cfg.task.type).default_max_length
    return default if max_positions is None else min(default, max_positions)


def check_data_files(cfg: RunConfig) -> None:
    """Every data file named in the config exists, checked before anything is loaded or trained."""
    if not cfg.data.train:
        raise SeqtuneError("data.train is required: the training file.")
    for split in ("train", "dev", "test"):
        value = getattr(cfg.data, split)
        if value and not Path(value.partition("#")[0]).is_file():  # "file.json#articles=0:32"
            raise SeqtuneError(f"data.{split}: file {value.partition('#')[0]!r} does not exist.")
    for spec in cfg.data.exclude_similar_to or ():  # "valid.csv#input"
        if not Path(spec.partition("#")[0]).is_file():
            raise SeqtuneError(f"data.exclude_similar_to: file {spec.partition('#')[0]!r} does not exist.")


def check_metric(cfg: RunConfig, task: Task) -> None:
    """train.metric must be one the task computes (known once the training data is read)."""
    if cfg.train.metric is None:
        return
    names = task.metric_names()
    if cfg.train.metric not in names:
        raise SeqtuneError(f"train.metric {cfg.train.metric!r} is not computed by this task; choose one of: "
                           f"{', '.join(names)}.")


def log_strategy(cfg: RunConfig, model, log) -> None:
    """The strategy's non-default settings and the learning rate of every block."""
    changed = {f.name: getattr(cfg.strategy, f.name) for f in fields(StrategyConfig)
               if getattr(cfg.strategy, f.name) != f.default}
    log("strategy: " + (", ".join(f"{k}={v}" for k, v in changed.items()) if changed else
                        "full fine-tuning (defaults)"))
    rates = block_learning_rates(model, cfg.strategy, cfg.train.lr)
    trained = {name for name, p in model.named_parameters() if p.requires_grad}
    shown = [f"{block} {lr:.3g}" for block, lr in rates.items()
             if any(block_of(name) == block for name in trained)]
    log("learning rates: " + ", ".join(shown))


def environment() -> dict:
    """Versions and machine facts for results.json."""
    versions = {"seqtune": package_version("seqtune"), "torch": torch.__version__, "python": platform.python_version()}
    if "transformers" in sys.modules:  # only when something in this process used it
        versions["transformers"] = sys.modules["transformers"].__version__
    return {"versions": versions, "torch_threads": torch.get_num_threads(), "platform": platform.platform()}


def train_from_config(cfg: RunConfig, resume: ResumePoint | None = None) -> Path:
    """Fine-tune as `cfg` says; returns the run directory (config.yaml, metrics.jsonl, results.json, model/,
    checkpoints/). `resume`: continue that run from its checkpoint (training/resume.py) instead.

    Everything that can be checked before training is: data files, output_dir, model directory and
    type, max_length against the model's positions, strategy ranges, train.metric (the config's own
    ranges were checked when it was read). A run that fails removes its directory unless it has saved
    a model or a checkpoint."""
    started = time.time()
    memory = MemorySampler().start()  # peak memory of the run, for results.json (seqtune/memory.py)
    check_data_files(cfg)
    if resume is None:
        check_output_dir(cfg.output_dir)
    seed_everything(cfg.train.seed)
    source = require_model(cfg)
    model_path = source.path
    encoder_cfg = encoder_config_from_dir(model_path)  # a wrong or unsupported model type fails here
    cfg = replace(cfg, data=replace(cfg.data, max_length=max_length_for(
        cfg, encoder_cfg.max_tokens, encoder_cfg.position_offset)))
    strategies.validate(cfg.strategy, encoder_cfg.num_hidden_layers)
    generic = isinstance(encoder_cfg, GenericConfig)  # no native implementation: through transformers
    tokenizer = hf_tokenizer.generic_tokenizer(model_path, encoder_cfg) if generic else load_tokenizer(model_path)
    task = task_class(cfg.task.type)(cfg.task, cfg.data, tokenizer)
    if generic:
        hf_encoder.check_run(task, encoder_cfg, cfg.strategy, model_path)
    else:
        task.check_model_type(encoder_cfg.model_type)
    runtime = resolve_runtime(cfg.train)
    world = distributed.start(runtime.device)  # several processes under torchrun; rank 0 writes
    runtime.device = distributed.device_for(world, runtime.device)
    try:
        return run_training(cfg, resume, world, runtime, source, task, tokenizer, started, memory)
    finally:
        distributed.stop(world)


def open_run(cfg: RunConfig, resume: ResumePoint | None, world: distributed.World):
    """The run directory (rank 0), or a `distributed.Follower` that writes nothing (other ranks)."""
    if not world.is_main:
        distributed.quiet_logs()
        return distributed.Follower(distributed.broadcast(None, world), world)
    run = RunDir.create(cfg) if resume is None else RunDir.reopen(resume.run_dir)
    distributed.broadcast(str(run.path), world)
    return run


def run_training(cfg: RunConfig, resume: ResumePoint | None, world: distributed.World, runtime, source, task,
                 tokenizer, started: float, memory: MemorySampler) -> Path:
    model_path = source.path
    with open_run(cfg, resume, world) as run:
        log = run.log
        log(f"run directory: {run.path}")
        allocator = limit_heap_retention(cfg.train.malloc_mmap_threshold)  # seqtune/memory.py
        if allocator:
            log(allocator)
        if resume is not None:
            for skipped in resume.checkpoint.skipped:
                log(f"warning: checkpoint {skipped}; using the one before it")
            log(f"resuming from {resume.checkpoint.path}")
        train_set = load_split(task, cfg.data.train, "train", log)
        dev_set = load_split(task, cfg.data.dev, "dev", log) if cfg.data.dev else None
        check_metric(cfg, task)
        if cfg.data.test:  # its format and columns are checked now, not after training (it is encoded then)
            task.read(cfg.data.test, "test")
        log(f"task: {task.describe()}")

        model, report = model_for_finetuning(model_path, task)
        model.to(runtime.device)
        model.encoder.gradient_checkpointing = cfg.train.gradient_checkpointing
        n_params = sum(p.numel() for p in model.parameters())
        log(f"model: {model_path} ({model.encoder.config.num_hidden_layers} layers, hidden "
            f"{model.encoder.config.hidden_size}, {n_params / 1e6:.1f}M parameters) on {runtime.device}, "
            f"{runtime.precision}, "
            f"{torch.get_num_threads()} CPU threads")
        for line in report:
            log(f"model: {line}")
        # Fine-tuning strategy (training/strategies.py): freeze / re-initialise blocks, per-block learning
        # rates; frozen bottom layers run through FrozenBottomModel, cached when allowed (caching.py).
        frozen_layers = apply_strategy(model, cfg.strategy)
        if resume is not None:
            load_weights(model, resume.state)
        if cfg.train.compile:  # after the weights are final; compiled at the first batches (compiling.py)
            log(f"train.compile: {compile_blocks(model)} encoder blocks compiled with torch.compile (inductor) "
                "at their first batches")
        log_strategy(cfg, model, log)
        parameters = parameter_counts(model)
        for line in format_counts(parameters):
            log(f"parameters: {line}")
        trained = model_for_training(model, frozen_layers, cfg.strategy, task, [train_set, dev_set], runtime,
                                     cfg.train.epochs, run.path, log)

        identity = run_identity(task, train_set, dev_set, trained, world.size)
        if resume is not None:
            differences = identity_differences(resume.checkpoint.manifest["identity"], identity)
            if differences:
                raise SeqtuneError(f"--resume {run.path}: the run's data or setup changed since its checkpoint "
                                   f"({'; '.join(differences)}); it cannot continue exactly. Start a new run.")
            run.set_metrics(resume.state["loop"]["history"])  # the records up to the checkpoint
        run.remove_leftovers()
        # train.log_to (tracking.py): the scalars also go to TensorBoard / MLflow; rank 0 only
        tracking = Tracking.open(cfg.train.log_to if world.is_main else None, run.path, cfg.to_dict(),
                                 config_to_yaml(cfg))
        summary = train(trained, task, train_set, dev_set, cfg.train, runtime, log, tracking.wrap(run.add_metrics),
                        on_best=lambda: run.save_model(lambda path: save_model(path, model, task, tokenizer)),
                        strategy=cfg.strategy,
                        checkpoints=Checkpoints(run.checkpoint_dir, cfg.train.keep_checkpoints, identity),
                        resume=None if resume is None else resume.state, run_hint=str(run.path), world=world)

        dev_metrics = summary.pop("best_metrics")
        results: dict = {"train": summary, "parameters": parameters}
        if dev_metrics is not None:
            results["dev"] = dev_metrics
        results["run"] = {**environment(), **source.run_info(), "device": str(runtime.device),
                          "precision": runtime.precision}
        error = None
        if cfg.data.test and world.is_main:
            try:
                _, best_model = load_trained_model(run.model_dir)
                best_model.to(runtime.device)
                test_set = load_split(task, cfg.data.test, "test", log)
                results["test"] = evaluate(best_model, task, test_set, runtime)
                log(f"test: {format_metrics(results['test'])}")
            except SeqtuneError as e:  # the training result is kept; the error is reported with it
                results["test"] = {"error": str(e)}
                error = e
        ended = time.time()
        results["run"].update(started=iso_time(started), ended=iso_time(ended),
                              wall_seconds=round(ended - started, 2))
        results["memory"] = memory.stop()
        run.write_results(results)
        run.remove_checkpoints()  # they serve only to resume, and a finished run is not resumed
        if world.is_main:
            report_at_end_of_run(run.path, log)
            tracking.finish(results, summary["steps"])
            log(f"saved: {run.model_dir}")
        if error is not None:
            raise SeqtuneError(f"the final test evaluation failed (training results are in "
                               f"{run.path / 'results.json'}): {error}")
    return Path(run.hint) if isinstance(run, distributed.Follower) else run.path


def iso_time(seconds: float) -> str:
    return datetime.fromtimestamp(seconds, timezone.utc).isoformat(timespec="seconds")
