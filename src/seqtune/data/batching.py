"""Length-bucketed batches: similar lengths together, so padding is small and never to a fixed size.

Training: shuffle all examples, cut them into chunks of `bucket_batches` batches, sort each chunk by
length, cut it into batches (a fixed number of examples, or as many as fit a token budget), then
shuffle the batch order. Every example appears exactly once per epoch; the seed makes it repeatable.
Evaluation: one pass sorted by length, batches filled to a token budget.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from seqtune.errors import SeqtuneError


class EpochBatches(Sequence):
    """An epoch's batches as one flat array of indices and batch boundaries (4 bytes per example,
    not a Python list each): batches[k] is a list of indices; iterating gives them in order."""

    def __init__(self, order: np.ndarray, bounds: np.ndarray):
        self.order, self.bounds = order, bounds

    def __len__(self) -> int:
        return len(self.bounds) - 1

    def __getitem__(self, k: int | slice) -> list[int] | list[list[int]]:
        if isinstance(k, slice):  # a run of batches (torchrun's sharding takes them a round at a time)
            return [self[i] for i in range(*k.indices(len(self)))]
        if not -len(self) <= k < len(self):
            raise IndexError(k)
        k %= len(self)
        return self.order[self.bounds[k]:self.bounds[k + 1]].tolist()

    def __eq__(self, other) -> bool:
        return list(self) == list(other)


def training_batches(
    lengths,
    batch_size: int | None,
    max_tokens: int | None,
    rng: np.random.Generator,
    bucket_batches: int = 50,
) -> EpochBatches:
    """One epoch of index batches, grouped by length. `max_tokens` overrides `batch_size` when set.
    bucket_batches=1 gives plain random batches (each batch a slice of the shuffled order).
    `lengths`: a list or a numpy array (a token store's memory-mapped lengths); nothing here holds a
    Python object per example, so memory stays small for corpora of millions."""
    if bucket_batches < 1:
        raise SeqtuneError(f"train.length_buckets must be at least 1 (got {bucket_batches}).")
    lengths = np.asarray(lengths)
    order = rng.permutation(len(lengths))
    if max_tokens is not None:
        chunk = max(1, bucket_batches * max_tokens // max(1, int(np.mean(lengths))))
        size = None
    else:
        chunk = bucket_batches * batch_size
        size = batch_size
    cuts: list[tuple[int, int]] = []
    for start in range(0, len(order), chunk):
        part = order[start:start + chunk]
        part = part[np.argsort(lengths[part], kind="stable")]  # stable: ties keep the shuffled order
        order[start:start + chunk] = part
        cuts.extend((start + a, start + b) for a, b in _cut_points(lengths[part].tolist(), size, max_tokens))
    perm = rng.permutation(len(cuts))
    # the batches laid out in their shuffled order, 4 bytes an example (held while the epoch runs)
    flat = np.empty(len(order), dtype=np.int32 if len(order) < 2**31 else np.int64)
    bounds = np.zeros(len(cuts) + 1, dtype=np.int64)
    position = 0
    for k, j in enumerate(perm.tolist()):
        a, b = cuts[j]
        flat[position:position + b - a] = order[a:b]
        position += b - a
        bounds[k + 1] = position
    return EpochBatches(flat, bounds)


def _cut_points(lengths: list[int], batch_size: int | None, max_tokens: int | None) -> list[tuple[int, int]]:
    """Cut positions 0..n-1 (lengths in batch order) into (start, end) ranges of `batch_size`
    examples, or of <= max_tokens padded tokens (the longest length times the count)."""
    cuts, start, longest = [], 0, 0
    for i, n in enumerate(lengths):
        count = i - start
        if count:
            full = count >= batch_size if batch_size else False
            if max_tokens is not None:
                full = full or max(longest, n) * (count + 1) > max_tokens
            if full:
                cuts.append((start, i))
                start, longest = i, 0
        longest = max(longest, n)
    if start < len(lengths):
        cuts.append((start, len(lengths)))
    return cuts


def evaluation_batches(lengths: list[int], max_tokens: int, max_batch: int = 256) -> list[list[int]]:
    """All indices, sorted by length, in batches of at most `max_tokens` padded tokens."""
    order = sorted(range(len(lengths)), key=lambda i: lengths[i])
    return [order[a:b] for a, b in _cut_points([lengths[i] for i in order], max_batch, max_tokens)]
