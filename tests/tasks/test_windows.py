"""Overlapping windows: coverage, ownership (most context), merging back to one output per position."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from seqtune.errors import SeqtuneError
from seqtune.tasks.windows import (
    IGNORE_INDEX,
    default_stride,
    merge_example_outputs,
    merge_windows,
    window_features,
    window_owners,
    window_spans,
)


def test_short_sequence_is_one_window():
    assert window_spans(5, 10, 3) == [(0, 5)]
    assert window_spans(10, 10, 3) == [(0, 10)]


def test_spans_cover_with_full_windows_and_last_aligned_to_end():
    spans = window_spans(25, 10, 4)
    assert spans == [(0, 10), (4, 14), (8, 18), (12, 22), (15, 25)]
    assert all(e - s == 10 for s, e in spans)


def most_context_owner(spans: list[tuple[int, int]], length: int, p: int) -> int:
    """The rule, written out: the covering window where p is farthest from a cut edge (an edge at an end
    of the sequence is no limit); ties go to the earlier window."""
    def context(w):
        s, e = spans[w]
        left = p - s if s > 0 else 10**9
        right = e - 1 - p if e < length else 10**9
        return min(left, right)
    covering = [w for w, (s, e) in enumerate(spans) if s <= p < e]
    best = max(context(w) for w in covering)
    return min(w for w in covering if context(w) == best)


@pytest.mark.parametrize("length", [1, 9, 10, 11, 30, 31, 97])
@pytest.mark.parametrize("window, stride", [(10, 1), (10, 5), (10, 10), (7, 3), (1, 1)])
def test_every_position_owned_by_the_window_with_most_context(length, window, stride):
    spans = window_spans(length, window, stride)
    owner = window_owners(spans, length)
    assert owner.shape == (length,) and owner.dtype == np.int64
    assert owner.tolist() == [most_context_owner(spans, length, p) for p in range(length)]


@settings(max_examples=150, deadline=None)
@given(st.integers(1, 120), st.integers(1, 30), st.data())
def test_spans_and_owners_hold_for_any_length_window_and_stride(length, window, data):
    stride = data.draw(st.integers(1, window))
    spans = window_spans(length, window, stride)
    # full windows (one short one only when the sequence fits), starts `stride` apart but the last,
    # which ends at the sequence's end
    assert spans[0][0] == 0 and spans[-1][1] == length
    assert all(e - s == min(window, length) for s, e in spans)
    starts = [s for s, _ in spans]
    assert all(b - a == stride for a, b in itertools.pairwise(starts[:-1]))
    assert all(0 < b - a <= stride for a, b in itertools.pairwise(starts))
    owner = window_owners(spans, length)
    assert owner.tolist() == [most_context_owner(spans, length, p) for p in range(length)]


def test_owner_is_the_window_with_most_context():
    spans = window_spans(30, 10, 5)  # (0,10) (5,15) (10,20) (15,25) (20,30)
    owner = window_owners(spans, 30)
    # position 0..7: only the first window sees their left end of the sequence -> first window
    assert owner[0] == 0 and owner[7] == 0
    # position 10: context min(5, 4) = 4 in (5,15), 0 in (10,20) -> window 1
    assert owner[10] == 1
    # the last positions belong to the last window, where the sequence end is not a cut edge
    assert owner[29] == 4 and owner[24] == 4
    # a brute-force check of the rule on every position
    assert owner.tolist() == [most_context_owner(spans, 30, p) for p in range(30)]


def test_merge_takes_each_position_from_its_owner():
    length, window, stride = 31, 10, 4
    spans = window_spans(length, window, stride)
    owner = window_owners(spans, length)
    # window w reports (w, absolute position) for each of its positions
    outputs = [np.stack([np.full(e - s, w), np.arange(s, e)], axis=1).astype(np.float32)
               for w, (s, e) in enumerate(spans)]
    merged = merge_windows(spans, outputs, length)
    assert merged.shape == (length, 2) and merged.dtype == np.float32
    np.testing.assert_array_equal(merged[:, 1], np.arange(length))  # every position exactly once, in order
    np.testing.assert_array_equal(merged[:, 0], owner)


def test_three_times_longer_than_window_gives_one_output_per_position():
    window = 14
    tokens = list(range(100, 100 + 3 * window))
    features = window_features(tokens, [1] * len(tokens), 0, window, None, cls_id=2, sep_id=3)
    assert len(features) > 3
    assert all(len(f["input_ids"]) == window + 2 for f in features)
    assert all(f["input_ids"][0] == 2 and f["input_ids"][-1] == 3 for f in features)
    assert all(f["labels"][0] == IGNORE_INDEX == f["labels"][-1] for f in features)
    outputs = [np.asarray(f["input_ids"][1:-1], dtype=np.float32)[:, None] for f in features]
    (merged,) = merge_example_outputs(outputs, features, [len(tokens)])
    np.testing.assert_array_equal(merged[:, 0], tokens)


def test_merge_example_outputs_in_any_feature_order():
    a = window_features(list(range(25)), None, 0, 10, 5, 0, 0)
    b = window_features(list(range(4)), None, 1, 10, 5, 0, 0)
    features = (b + a)[::-1]
    outputs = [np.asarray(f["input_ids"][1:-1], dtype=np.float32)[:, None] for f in features]
    merged = merge_example_outputs(outputs, features, [25, 4])
    np.testing.assert_array_equal(merged[0][:, 0], np.arange(25))
    np.testing.assert_array_equal(merged[1][:, 0], np.arange(4))


def test_bad_stride_is_a_clear_error():
    with pytest.raises(SeqtuneError) as error:
        window_spans(30, 10, 11)
    assert str(error.value) == (
        "task.window_stride is 11 but must be between 1 and the window size 10 (data.max_length minus 2 "
        "special tokens); a larger stride would leave positions unseen.")
    with pytest.raises(SeqtuneError, match="window_stride is 0"):
        window_spans(30, 10, 0)


def test_spans_exact_with_stride_1_and_the_default_stride():
    assert window_spans(5, 3, 1) == [(0, 3), (1, 4), (2, 5)]
    assert window_spans(4, 3, 1) == [(0, 3), (1, 4)]
    assert window_spans(11, 4) == [(0, 4), (2, 6), (4, 8), (6, 10), (7, 11)]  # default: half a window
    assert window_spans(0, 4) == [(0, 0)]


def test_default_stride_is_half_a_window_and_at_least_1():
    assert [default_stride(w) for w in (1, 2, 3, 8, 9, 510)] == [1, 1, 1, 4, 4, 255]


def test_owners_exact_with_stride_1():
    spans = window_spans(6, 3, 1)  # (0,3) (1,4) (2,5) (3,6)
    # 0, 1: the first window (sequence start); 2: centre of (1,4) (context 1) beats (0,3) (right edge 0);
    # 3: centre of (2,5); 4, 5: the last window (sequence end)
    assert window_owners(spans, 6).tolist() == [0, 0, 1, 2, 3, 3]


def test_owner_ties_go_to_the_earlier_window():
    spans = window_spans(6, 4, 1)  # (0,4) (1,5) (2,6)
    # 2: context 1 in (0,4) (right edge), 1 in (1,5), 0 in (2,6) -> tie: window 0
    # 3: 0 in (0,4), 1 in (1,5), 1 in (2,6) (left edge; its right is the sequence end) -> tie: window 1
    assert window_owners(spans, 6).tolist() == [0, 0, 0, 1, 2, 2]


def test_merge_of_one_window_returns_it_unchanged():
    out = np.arange(6, dtype=np.float32).reshape(3, 2)
    assert merge_windows([(0, 3)], [out], 3) is out


def test_window_features_exact():
    features = window_features([11, 12, 13, 14, 15], [1, 2, 3, 4, 5], 7, 3, 2, cls_id=101, sep_id=102)
    assert features == [
        {"input_ids": [101, 11, 12, 13, 102], "example_index": 7, "span": (0, 3),
         "labels": [IGNORE_INDEX, 1, 2, 3, IGNORE_INDEX]},
        {"input_ids": [101, 13, 14, 15, 102], "example_index": 7, "span": (2, 5),
         "labels": [IGNORE_INDEX, 3, 4, 5, IGNORE_INDEX]},
    ]
    assert "labels" not in window_features([11], None, 0, 3, None, 101, 102)[0]
    assert IGNORE_INDEX == -100  # what torch's cross-entropy ignores by default


def test_merge_example_outputs_refuses_missing_windows():
    features = window_features(list(range(10)), None, 0, 4, 2, 0, 0)
    outputs = [np.zeros((4, 1)) for _ in features]
    with pytest.raises(AssertionError, match="do not cover its 10 tokens"):
        merge_example_outputs(outputs[1:], features[1:], [10])  # the first window is missing
    with pytest.raises(AssertionError, match="do not cover"):
        merge_example_outputs(outputs[:-1], features[:-1], [10])  # the last window is missing
    with pytest.raises(AssertionError, match="example 1"):
        merge_example_outputs(outputs, features, [10, 3])  # example 1 has no windows at all


def test_window_smaller_than_1_is_a_clear_error():
    with pytest.raises(SeqtuneError, match="at least one token, got 0; raise data.max_length"):
        window_spans(5, 0)
    assert window_spans(3, 1) == [(0, 1), (1, 2), (2, 3)]


def test_merge_example_outputs_orders_windows_by_position_not_by_value():
    features = window_features(list(range(12)), None, 0, 4, 2, 0, 0)
    # two output columns, falling along the sequence: position p reports (100 - p, p)
    outputs = [np.stack([100.0 - np.arange(s, e), np.arange(s, e)], axis=1) for s, e in (f["span"] for f in features)]
    order = [3, 0, 4, 1, 2]
    (merged,) = merge_example_outputs([outputs[i] for i in order], [features[i] for i in order], [12])
    np.testing.assert_array_equal(merged[:, 1], np.arange(12))
