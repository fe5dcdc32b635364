"""`train_from_config`: the fine-tuning recipe, read top to bottom.

setup (tokenizer, task, data, model) -> train (loop.train) -> test with the best model -> results.json
"""

from __future__ import annotations

import random
import time
from pathlib import Path

import numpy as np
import torch

from seqtune.config import RunConfig
from seqtune.errors import SeqtuneError
from seqtune.models.hub import resolve_model_path
from seqtune.models.task_model import load_trained_model, model_for_finetuning, save_model
from seqtune.tasks import task_class
from seqtune.tasks.base import EncodedDataset, Task
from seqtune.tokenization import load_tokenizer
from seqtune.training.caching import model_for_training
from seqtune.training.loop import evaluate, resolve_runtime, scalar_metrics, train
from seqtune.training.run_dir import RunDir
from seqtune.training.strategies import apply_strategy, format_counts, parameter_counts


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
            f"{task.data.max_length} tokens and were truncated")
    details = {k: v for k, v in info.items() if v}  # windows, unknown residues, ... (task-specific)
    if details:
        log(f"{split}: " + ", ".join(f"{k} {v}" for k, v in details.items()))
    return dataset


def require_model_path(cfg: RunConfig) -> str:
    if not cfg.model.path:
        raise SeqtuneError("model.path is required: a Hugging Face BERT checkpoint directory "
                           "(config.json, model.safetensors or pytorch_model.bin, vocab.txt or tokenizer.json).")
    return resolve_model_path(cfg.model.path)


def train_from_config(cfg: RunConfig) -> Path:
    """Fine-tune as `cfg` says; returns the run directory (config.yaml, metrics.jsonl, results.json, model/)."""
    if not cfg.data.train:
        raise SeqtuneError("data.train is required: the training file.")
    seed_everything(cfg.train.seed)
    model_path = require_model_path(cfg)
    tokenizer = load_tokenizer(model_path)
    task = task_class(cfg.task.type)(cfg.task, cfg.data, tokenizer)
    runtime = resolve_runtime(cfg.train)

    run = RunDir.create(cfg)
    log = run.log
    log(f"run directory: {run.path}")
    train_set = load_split(task, cfg.data.train, "train", log)
    dev_set = load_split(task, cfg.data.dev, "dev", log) if cfg.data.dev else None
    log(f"task: {task.describe()}")

    model, report = model_for_finetuning(model_path, task)
    model.to(runtime.device)
    n_params = sum(p.numel() for p in model.parameters())
    log(f"model: {model_path} ({model.encoder.config.num_hidden_layers} layers, hidden "
        f"{model.encoder.config.hidden_size}, {n_params / 1e6:.1f}M parameters) on {runtime.device}")
    for line in report:
        log(f"model: {line}")
    # Fine-tuning strategy (training/strategies.py): freeze / re-initialise blocks, per-block learning
    # rates; frozen bottom layers run through FrozenBottomModel, cached when allowed (caching.py).
    frozen_layers = apply_strategy(model, cfg.strategy)
    parameters = parameter_counts(model)
    for line in format_counts(parameters):
        log(f"parameters: {line}")
    trained = model_for_training(model, frozen_layers, cfg.strategy, task, [train_set, dev_set], runtime,
                                 cfg.train, run.path, log)

    summary = train(trained, task, train_set, dev_set, cfg.train, runtime, log, run.add_metrics,
                    on_best=lambda: save_model(run.model_dir, model, task, tokenizer))

    dev_metrics = summary.pop("best_metrics")
    results: dict = {"train": summary, "parameters": parameters}
    if dev_metrics is not None:
        results["dev"] = dev_metrics
    if cfg.data.test:
        _, best_model = load_trained_model(run.model_dir)
        best_model.to(runtime.device)
        test_set = load_split(task, cfg.data.test, "test", log)
        results["test"] = evaluate(best_model, task, test_set, runtime, runtime.eval_batch_tokens)
        log("test: " + ", ".join(f"{k} {v:.4f}" for k, v in scalar_metrics(results["test"]).items()))
    run.write_results(results)
    log(f"saved: {run.model_dir}")
    return run.path

