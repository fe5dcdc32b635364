"""Length-bucketed batches: similar lengths together, so padding is small and never to a fixed size.

Training: shuffle all examples, cut them into chunks of `bucket_batches` batches, sort each chunk by
length, cut it into batches (a fixed number of examples, or as many as fit a token budget), then
shuffle the batch order. Every example appears exactly once per epoch; the seed makes it repeatable.
Evaluation: one pass sorted by length, batches filled to a token budget.
"""

from __future__ import annotations

import numpy as np

from seqtune.errors import SeqtuneError


def _cut(order: list[int], lengths: list[int], batch_size: int | None, max_tokens: int | None) -> list[list[int]]:
    """Cut an ordered index list into batches of `batch_size` examples, or of <= max_tokens padded tokens."""
    batches: list[list[int]] = []
    current: list[int] = []
    longest = 0
    for i in order:
        n = lengths[i]
        if current:
            full = len(current) >= batch_size if batch_size else False
            if max_tokens is not None:
                full = full or max(longest, n) * (len(current) + 1) > max_tokens
            if full:
                batches.append(current)
                current, longest = [], 0
        current.append(i)
        longest = max(longest, n)
    if current:
        batches.append(current)
    return batches


def training_batches(
    lengths: list[int],
    batch_size: int | None,
    max_tokens: int | None,
    rng: np.random.Generator,
    bucket_batches: int = 50,
) -> list[list[int]]:
    """One epoch of index batches, grouped by length. `max_tokens` overrides `batch_size` when set.
    bucket_batches=1 gives plain random batches (each batch a slice of the shuffled order)."""
    if bucket_batches < 1:
        raise SeqtuneError(f"train.length_buckets must be at least 1 (got {bucket_batches}).")
    order = rng.permutation(len(lengths)).tolist()
    if max_tokens is not None:
        chunk = max(1, bucket_batches * max_tokens // max(1, int(np.mean(lengths))))
        size = None
    else:
        chunk = bucket_batches * batch_size
        size = batch_size
    batches: list[list[int]] = []
    for start in range(0, len(order), chunk):
        part = sorted(order[start:start + chunk], key=lambda i: lengths[i])
        batches.extend(_cut(part, lengths, size, max_tokens))
    perm = rng.permutation(len(batches))
    return [batches[j] for j in perm]


def evaluation_batches(lengths: list[int], max_tokens: int, max_batch: int = 256) -> list[list[int]]:
    """All indices, sorted by length, in batches of at most `max_tokens` padded tokens."""
    order = sorted(range(len(lengths)), key=lambda i: lengths[i])
    return _cut(order, lengths, max_batch, max_tokens)
