"""Activation caching: run frozen layers once per example, not once per epoch.

When a strategy freezes the embeddings and the bottom K layers, their output for an input never
changes during training: the frozen blocks have no gradients and run in eval mode (no dropout). So
`FrozenBottomModel` splits the forward pass in two:

    bottom: embeddings + layers[:K]   (frozen; eval mode; no autograd)  -> hidden (B, T, H)
    top:    layers[K:] + pooler + head (trained)                         -> logits

and an `ActivationCache` stores the bottom's output for every training and dev input, computed once
before training. Every epoch then runs only the top; with a frozen encoder (K = all layers) only the
head runs. Without a cache the same wrapper computes the bottom each time, so cached and uncached
training give the same losses (up to float rounding; `tests/training/test_caching.py`).

Cache entries are keyed by content (the row's real input_ids and token_type_ids), not by position:
the loop and the tasks need no change, duplicate inputs share one entry, and an input that is not in
the cache (e.g. a task that masks its inputs differently each epoch) is simply computed, never
mismatched. Storage is one (tokens, H) matrix of the real (unpadded) positions only: a tensor on the
training device, or a memory-mapped temporary file in the run directory when it exceeds
`strategy.cache_memory_mb`; fp16 halves its size.
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from torch import nn

from seqtune.config import StrategyConfig
from seqtune.data.batching import evaluation_batches
from seqtune.inference import Runtime, to_device
from seqtune.models.hf_encoder import GenericTaskModel
from seqtune.models.task_model import TaskModel
from seqtune.tasks.base import EncodedDataset, Task


class FrozenBottomModel(TaskModel):
    """A `TaskModel` whose embeddings and bottom `frozen_layers` layers are a fixed feature extractor.

    forward(batch) -> the head's logits, like TaskModel, through the same `forward_from`. It shares
    the model's modules, so parameter names ("encoder....", "head....") and weights are the same.
    """

    def __init__(self, model: TaskModel, frozen_layers: int, cache: "ActivationCache | None" = None):
        super().__init__(model.encoder, model.head)
        self.frozen_layers = frozen_layers
        self.cache = cache

    def frozen_modules(self) -> list[nn.Module]:
        return [self.encoder.embeddings, *self.encoder.layers[:self.frozen_layers]]

    def train(self, mode: bool = True) -> "FrozenBottomModel":
        super().train(mode)
        for module in self.frozen_modules():  # frozen blocks never use dropout
            module.eval()
        return self

    @torch.no_grad()
    def bottom(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        """Embeddings + frozen layers: (B, T) ids -> (B, T, H) hidden states."""
        hidden = self.encoder.embeddings(batch["input_ids"], batch.get("token_type_ids"), batch["attention_mask"])
        return self.encoder.run_layers(hidden, batch["attention_mask"], 0, self.frozen_layers)

    def forward(self, batch: dict[str, torch.Tensor]):
        hidden = self.cache.lookup(batch) if self.cache is not None else None
        if hidden is None:
            hidden = self.bottom(batch)
        return self.forward_from(hidden, self.frozen_layers, batch)


def row_keys(batch: dict[str, torch.Tensor]) -> list[tuple[bytes, bytes]]:
    """One key per row: the bytes of its real input_ids and token_type_ids (padding excluded)."""
    lengths = batch["attention_mask"].sum(1).tolist()
    ids = batch["input_ids"].cpu().numpy()
    types = batch["token_type_ids"].cpu().numpy() if "token_type_ids" in batch else None
    return [(ids[i, :n].tobytes(), b"" if types is None else types[i, :n].tobytes())
            for i, n in enumerate(lengths)]


class ActivationCache:
    """Hidden states (n_tokens, H) of cached inputs; `index` maps a row key to (offset, length)."""

    def __init__(self, storage: torch.Tensor | np.ndarray, device: torch.device):
        self.storage = storage  # torch tensor (in memory) or np.memmap (on disk)
        self.device = device
        self.index: dict[tuple[bytes, bytes], tuple[int, int]] = {}
        self.used = 0  # rows [0, used) of storage are filled
        self.hits = 0  # batches answered from the cache
        self.misses = 0  # batches that had to run the frozen layers

    @property
    def on_disk(self) -> bool:
        return isinstance(self.storage, np.ndarray)

    def add(self, batch: dict[str, torch.Tensor], hidden: torch.Tensor) -> None:
        """Store the real positions of each row of `hidden` (B, T, H) not stored yet."""
        lengths = batch["attention_mask"].sum(1).tolist()
        for i, (key, n) in enumerate(zip(row_keys(batch), lengths)):
            if key in self.index:
                continue
            rows = hidden[i, :n]
            if self.on_disk:
                self.storage[self.used:self.used + n] = rows.float().cpu().numpy()
            else:
                self.storage[self.used:self.used + n] = rows
            self.index[key] = (self.used, n)
            self.used += n

    def lookup(self, batch: dict[str, torch.Tensor]) -> torch.Tensor | None:
        """(B, T, H) float32 hidden states for the batch (zeros at padding), or None if a row is missing."""
        spans = [self.index.get(key) for key in row_keys(batch)]
        if any(span is None for span in spans):
            self.misses += 1
            return None
        self.hits += 1
        B, T = batch["attention_mask"].shape
        src = np.concatenate([np.arange(offset, offset + n) for offset, n in spans])
        dst = np.concatenate([i * T + np.arange(n) for i, (_, n) in enumerate(spans)])
        if self.on_disk:
            rows = torch.from_numpy(np.asarray(self.storage[src]))
        else:
            rows = self.storage[torch.from_numpy(src).to(self.storage.device)]
        hidden = torch.zeros(B * T, self.storage.shape[1], dtype=torch.float32, device=self.device)
        hidden[torch.from_numpy(dst).to(self.device)] = rows.to(self.device, torch.float32)
        return hidden.view(B, T, -1)


def allocate(n_tokens: int, hidden_size: int, dtype: str, memory_mb: int, device: torch.device,
             directory: Path) -> ActivationCache:
    """In memory on `device` when it fits `memory_mb`, else a memory-mapped temporary file in `directory`."""
    itemsize = 2 if dtype == "fp16" else 4
    if n_tokens * hidden_size * itemsize <= memory_mb * 2**20:
        torch_dtype = torch.float16 if dtype == "fp16" else torch.float32
        return ActivationCache(torch.empty(n_tokens, hidden_size, dtype=torch_dtype, device=device), device)
    # An unnamed temporary file: the operating system removes it when the run ends.
    handle = tempfile.TemporaryFile(dir=directory, prefix="activation-cache-")
    storage = np.memmap(handle, dtype=np.float16 if dtype == "fp16" else np.float32, mode="w+",
                        shape=(max(1, n_tokens), hidden_size))
    return ActivationCache(storage, device)


def build_cache(model: FrozenBottomModel, task: Task, datasets: list[EncodedDataset], runtime: Runtime,
                strategy: StrategyConfig, batch_tokens: int, directory: Path) -> ActivationCache:
    """Run the frozen bottom once over every feature of `datasets` (eval mode) and store the result."""
    n_tokens = sum(d.num_tokens() for d in datasets)
    cache = allocate(n_tokens, model.encoder.config.hidden_size, strategy.cache_dtype,
                     strategy.cache_memory_mb, runtime.device, directory)
    was_training = model.training
    model.eval()
    with torch.no_grad(), runtime.autocast():
        for dataset in datasets:
            for idx in evaluation_batches(dataset.lengths, batch_tokens):
                batch = to_device(task.collate([dataset.features[i] for i in idx]), runtime.device)
                cache.add(batch, model.bottom(batch))
    model.train(was_training)
    return cache


def should_cache(strategy: StrategyConfig, frozen_layers: int, epochs: float) -> bool:
    """auto: cache when at least one layer is frozen and the data is seen more than once."""
    if strategy.cache_frozen == "auto":
        return frozen_layers >= 1 and epochs > 1
    return bool(strategy.cache_frozen)


def model_for_training(model: TaskModel, frozen_layers: int | None, strategy: StrategyConfig, task: Task,
                       datasets: list[EncodedDataset | None], runtime: Runtime, epochs: float, directory: Path,
                       log) -> TaskModel:
    """The module the loop trains: `model` itself when nothing is frozen, else a FrozenBottomModel
    (sharing its weights) with an activation cache over `datasets` when the strategy allows it."""
    if frozen_layers is None:
        return model
    if isinstance(model, GenericTaskModel):  # transformers runs the encoder whole: no bottom to cache
        model.freeze_in_eval_mode(frozen_layers)
        log(f"frozen: embeddings + {frozen_layers} layers, computed every step (the activation cache is not "
            "on the transformers path)")
        return model
    wrapped = FrozenBottomModel(model, frozen_layers)
    if not should_cache(strategy, frozen_layers, epochs):
        log(f"frozen: embeddings + {frozen_layers} layers, computed every step (activation cache off)")
        return wrapped
    start = time.perf_counter()
    wrapped.cache = build_cache(wrapped, task, [d for d in datasets if d is not None], runtime, strategy,
                                runtime.eval_batch_tokens, directory)
    cache = wrapped.cache
    size_mb = cache.used * cache.storage.shape[1] * (2 if strategy.cache_dtype == "fp16" else 4) / 2**20
    log(f"activation cache: embeddings + {frozen_layers} frozen layers computed once for {len(cache.index)} "
        f"inputs ({cache.used} tokens, {size_mb:.1f} MB {strategy.cache_dtype}, "
        f"{'memory-mapped file' if cache.on_disk else str(runtime.device)}) in {time.perf_counter() - start:.1f}s")
    return wrapped
