"""Batches exactly as configured: `batch_size` examples (never one more), token budgets that are both
respected and tight (a batch closes only when the next example would not fit), chunks of
`length_buckets` batches, and evaluation batches in length order."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from seqtune.data.batching import evaluation_batches, training_batches


def padded(batch: list[int], lengths: list[int]) -> int:
    return len(batch) * max(lengths[i] for i in batch)


# ---- evaluation: length order, a token budget, at most max_batch examples ------------------------------
def test_evaluation_batches_exact():
    lengths = [3, 1, 2, 5, 4]  # sorted: 1 (idx 1), 2 (idx 2), 3 (idx 0), 4 (idx 4), 5 (idx 3)
    # budget 6: [1, 2] pads to 2 x 2 = 4; adding the 3 would need 3 x 3 = 9
    assert evaluation_batches(lengths, 6) == [[1, 2], [0], [4], [3]]
    # budget 9: exactly 3 x 3 = 9 still fits
    assert evaluation_batches(lengths, 9) == [[1, 2, 0], [4], [3]]
    # budget 8: 3 x 3 = 9 does not, 2 x 4 = 8 does
    assert evaluation_batches(lengths, 8) == [[1, 2], [0, 4], [3]]


def test_an_example_longer_than_the_budget_is_a_batch_alone():
    assert evaluation_batches([10, 1, 1], 5) == [[1, 2], [0]]
    assert training_batches([10], None, 5, np.random.default_rng(0)) == [[0]]


def test_evaluation_batches_hold_at_most_max_batch():
    assert evaluation_batches([1] * 10, 1000, max_batch=4) == [[0, 1, 2, 3], [4, 5, 6, 7], [8, 9]]
    # the default cap, 256 examples, also with a budget that would allow more
    assert [len(b) for b in evaluation_batches([1] * 300, 10**6)] == [256, 44]


def test_evaluation_batches_of_nothing():
    assert evaluation_batches([], 100) == []
    assert training_batches([], 4, None, np.random.default_rng(0)) == []


@settings(max_examples=60, deadline=None)
@given(st.lists(st.integers(1, 40), max_size=60), st.integers(1, 200), st.integers(1, 8))
def test_evaluation_batches_are_sorted_within_budget_and_tight(lengths, max_tokens, max_batch):
    batches = evaluation_batches(lengths, max_tokens, max_batch)
    assert [i for b in batches for i in b] == sorted(range(len(lengths)), key=lambda i: lengths[i])
    for b in batches:
        assert 1 <= len(b) <= max_batch
        assert padded(b, lengths) <= max_tokens or len(b) == 1
    for b, following in itertools.pairwise(batches):  # closed only when the next example would not fit
        assert len(b) == max_batch or padded(b + following[:1], lengths) > max_tokens


# ---- training: exact sizes ----------------------------------------------------------------------------
def test_training_batches_hold_exactly_batch_size():
    lengths = list(np.random.default_rng(0).integers(1, 50, 100))
    batches = training_batches(lengths, 8, None, np.random.default_rng(1))
    # one chunk of 50 x 8 >= 100 examples: twelve batches of 8 and one of the 4 left
    assert sorted(len(b) for b in batches) == [4] + [8] * 12
    assert sorted(i for b in batches for i in b) == list(range(100))


def test_chunks_hold_length_buckets_batches():
    # 23 examples, batch_size 5, two batches per chunk: chunks of 10, 10 and 3 examples
    batches = training_batches([7] * 23, 5, None, np.random.default_rng(0), bucket_batches=2)
    assert sorted(len(b) for b in batches) == [3, 5, 5, 5, 5]


def test_token_budget_batches_are_full():
    # all length 10, budget 35: three examples (30 tokens) per batch, a fourth would make 40
    batches = training_batches([10] * 10, None, 35, np.random.default_rng(0))
    assert sorted(len(b) for b in batches) == [1, 3, 3, 3]
    # max_tokens wins over batch_size when both are set
    assert sorted(len(b) for b in training_batches([10] * 10, 2, 35, np.random.default_rng(0))) == [1, 3, 3, 3]


def test_token_budget_chunks_hold_length_buckets_budgets():
    # mean length 10, budget 40, two budgets per chunk: chunks of 2 x 40 // 10 = 8 examples -> 8, 8, 2
    batches = training_batches([10] * 18, None, 40, np.random.default_rng(0), bucket_batches=2)
    assert sorted(len(b) for b in batches) == [2, 4, 4, 4, 4]


def test_default_length_buckets_is_50_batches():
    """README: `length_buckets` (batches per length-sorted chunk) defaults to 50."""
    # all length 10, budget 35 (3 per batch): chunks of 50 x 35 // 10 = 175 examples = 58 batches of 3
    # and one of 1; 176 examples make a second chunk of 1
    batches = training_batches([10] * 176, None, 35, np.random.default_rng(0))
    assert sorted(len(b) for b in batches) == [1, 1] + [3] * 58


def test_token_budget_chunk_is_at_least_one_example():
    # mean length 10, budget 15, one budget per chunk: 15 // 10 = 1 example per chunk, so each batch
    # holds one example, even the short ones that would fit together
    batches = training_batches([1] * 9 + [91], None, 15, np.random.default_rng(0), bucket_batches=1)
    assert len(batches) == 10
    # mean length 1: chunks of 1 x 5 // 1 = 5 examples
    batches = training_batches([1] * 7, None, 5, np.random.default_rng(0), bucket_batches=1)
    assert sorted(len(b) for b in batches) == [2, 5]


def test_each_batch_of_a_chunk_is_a_run_of_its_sorted_lengths():
    lengths = [5, 1, 4, 2, 3, 6]
    batches = training_batches(lengths, 2, None, np.random.default_rng(0))
    # one chunk: sorted 1 2 | 3 4 | 5 6 -> the batches, in some order
    assert sorted(sorted(lengths[i] for i in b) for b in batches) == [[1, 2], [3, 4], [5, 6]]


def test_seed_repeats_and_different_seeds_differ():
    lengths = list(np.random.default_rng(0).integers(1, 50, 64))
    a = training_batches(lengths, 4, None, np.random.default_rng(7))
    assert a == training_batches(lengths, 4, None, np.random.default_rng(7))
    assert a != training_batches(lengths, 4, None, np.random.default_rng(8))
    # the batch order is shuffled too, not only the examples: batches are not in length order
    means = [np.mean([lengths[i] for i in b]) for b in a]
    assert means != sorted(means)


@settings(max_examples=60, deadline=None)
@given(st.lists(st.integers(1, 30), max_size=80), st.integers(1, 9), st.integers(1, 4), st.integers(0, 1000))
def test_training_batch_sizes_per_chunk(lengths, batch_size, buckets, seed):
    batches = training_batches(lengths, batch_size, None, np.random.default_rng(seed), bucket_batches=buckets)
    assert sorted(i for b in batches for i in b) == list(range(len(lengths)))
    chunk = buckets * batch_size
    chunks = [min(chunk, len(lengths) - s) for s in range(0, len(lengths), chunk)]
    expected = sorted(n for c in chunks for n in [batch_size] * (c // batch_size) + [c % batch_size] if n)
    assert sorted(len(b) for b in batches) == expected
    assert len(batches) == sum(math.ceil(c / batch_size) for c in chunks)


@settings(max_examples=60, deadline=None)
@given(st.lists(st.integers(1, 30), min_size=1, max_size=80), st.integers(1, 120), st.integers(0, 1000))
def test_training_token_budgets_are_respected_and_tight(lengths, max_tokens, seed):
    batches = training_batches(lengths, None, max_tokens, np.random.default_rng(seed), bucket_batches=10**6)
    assert sorted(i for b in batches for i in b) == list(range(len(lengths)))
    for b in batches:
        assert padded(b, lengths) <= max_tokens or len(b) == 1
    # One chunk, cut in length order: a batch closed while a later, no shorter example could not join it.
    # Sorted by (shortest, longest, -size), batches come in cut order (a partial batch only ends a chunk).
    ordered = sorted(batches, key=lambda b: (min(lengths[i] for i in b), max(lengths[i] for i in b), -len(b)))
    for b, following in itertools.pairwise(ordered):
        shortest_next = min(lengths[i] for i in following)
        assert max(max(lengths[i] for i in b), shortest_next) * (len(b) + 1) > max_tokens


def test_epoch_batches_index_like_a_list():
    lengths = [5, 9, 3, 7, 2, 8, 4]
    batches = training_batches(lengths, 2, None, np.random.default_rng(0), 1)
    as_list = [list(b) for b in batches]
    assert sorted(itertools.chain(*as_list)) == list(range(len(lengths))) and len(as_list) == 4
    for k in range(-len(as_list), len(as_list)):
        assert batches[k] == as_list[k]
    assert batches[1:3] == as_list[1:3] and batches[::-1] == as_list[::-1]
    for k in (len(as_list), -len(as_list) - 1):
        with pytest.raises(IndexError):
            batches[k]
