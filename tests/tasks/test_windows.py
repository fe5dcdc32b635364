"""Overlapping windows: coverage, ownership (most context), merging back to one output per position."""

from __future__ import annotations

import numpy as np
import pytest

from seqtune.errors import SeqtuneError
from seqtune.tasks.windows import (
    IGNORE_INDEX,
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


@pytest.mark.parametrize("length", [1, 9, 10, 11, 30, 31, 97])
@pytest.mark.parametrize("window, stride", [(10, 1), (10, 5), (10, 10), (7, 3), (1, 1)])
def test_every_position_owned_by_exactly_one_covering_window(length, window, stride):
    spans = window_spans(length, window, stride)
    owner = window_owners(spans, length)
    assert owner.shape == (length,)
    for p, w in enumerate(owner):
        start, end = spans[w]
        assert start <= p < end


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
    for p in range(30):
        def context(w):
            s, e = spans[w]
            left = p - s if s > 0 else 10**9
            right = e - 1 - p if e < 30 else 10**9
            return min(left, right)
        covering = [w for w, (s, e) in enumerate(spans) if s <= p < e]
        best = max(context(w) for w in covering)
        assert owner[p] == min(w for w in covering if context(w) == best)


def test_merge_takes_each_position_from_its_owner():
    length, window, stride = 31, 10, 4
    spans = window_spans(length, window, stride)
    owner = window_owners(spans, length)
    # window w reports (w, absolute position) for each of its positions
    outputs = [np.stack([np.full(e - s, w), np.arange(s, e)], axis=1).astype(np.float32)
               for w, (s, e) in enumerate(spans)]
    merged = merge_windows(spans, outputs, length)
    assert merged.shape == (length, 2)
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
    with pytest.raises(SeqtuneError, match="window_stride is 11 but must be between 1 and the window size 10"):
        window_spans(30, 10, 11)
    with pytest.raises(SeqtuneError, match="window_stride is 0"):
        window_spans(30, 10, 0)
