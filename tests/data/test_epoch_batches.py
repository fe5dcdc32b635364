"""Epoch batches as flat arrays are exactly the batches of the list-based reference (the code before
the token store), for lists and memory-mapped numpy lengths alike."""

from __future__ import annotations

import numpy as np
import pytest

from seqtune.data.batching import training_batches


def reference_batches(lengths, batch_size, max_tokens, rng, bucket_batches=50):
    def cut(order, batch_size):
        batches, current, longest = [], [], 0
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

    order = rng.permutation(len(lengths)).tolist()
    if max_tokens is not None:
        chunk, size = max(1, bucket_batches * max_tokens // max(1, int(np.mean(lengths)))), None
    else:
        chunk, size = bucket_batches * batch_size, batch_size
    batches = []
    for start in range(0, len(order), chunk):
        batches.extend(cut(sorted(order[start:start + chunk], key=lambda i: lengths[i]), size))
    perm = rng.permutation(len(batches))
    return [batches[j] for j in perm]


@pytest.mark.parametrize("seed", range(12))
def test_same_batches_as_the_reference(seed, tmp_path):
    rng = np.random.default_rng(seed)
    lengths = rng.integers(3, 600, size=int(rng.integers(1, 2500))).tolist()
    size, budget = (32, None) if seed % 2 else (None, 4096)
    buckets = int(rng.integers(1, 60))
    expected = reference_batches(lengths, size, budget, np.random.default_rng(seed), buckets)
    assert list(training_batches(lengths, size, budget, np.random.default_rng(seed), buckets)) == expected
    mapped = np.memmap(tmp_path / "lengths.bin", dtype=np.int64, mode="w+", shape=(len(lengths),))
    mapped[:] = lengths
    assert list(training_batches(mapped, size, budget, np.random.default_rng(seed), buckets)) == expected
