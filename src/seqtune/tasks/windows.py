"""Overlapping windows for token tasks whose inputs are longer than the model's maximum length.

Proteins and genes are often longer than 512 tokens. Instead of truncating (which silently leaves
positions without a prediction), a sequence of `length` content tokens is cut into windows of at
most `window` tokens whose starts are `stride` apart; the last window is aligned to the end of the
sequence so no window is short. Each window becomes one model input `[CLS] window [SEP]`.

Training uses every window with all of its labels (a position in an overlap is seen in more than one
context, a mild augmentation). At prediction and evaluation every position takes its logits from
exactly ONE window: the one where it has the most context, i.e. where the distance to the nearer
window edge is largest. An edge that is also an end of the whole sequence does not count as a
limit, since no other window could see further there. Ties go to the earlier window. We chose this
over averaging logits in the overlap because each output is then exactly what the model computes
for one real input (so a sequence that fits in one window gets bit-for-bit the same predictions as
without windowing), and positions near a window's cut edge, which see a one-sided context, never
influence the result.
"""

from __future__ import annotations

import numpy as np

from seqtune.errors import SeqtuneError

IGNORE_INDEX = -100  # label of positions left out of the loss (special tokens, continuation sub-tokens, masked)


def default_stride(window: int) -> int:
    """Half a window: every position is at least a quarter window from a cut edge of its owner window."""
    return max(1, window // 2)


def window_spans(length: int, window: int, stride: int | None = None) -> list[tuple[int, int]]:
    """[start, end) spans covering range(length) with windows of `window` positions, starts `stride` apart.

    A sequence that fits gives one span (0, length). The last window ends at `length`.
    """
    if window < 1:
        raise SeqtuneError(f"the window must hold at least one token, got {window}; raise data.max_length.")
    stride = default_stride(window) if stride is None else stride
    if not 1 <= stride <= window:
        raise SeqtuneError(
            f"task.window_stride is {stride} but must be between 1 and the window size {window} "
            "(data.max_length minus 2 special tokens); a larger stride would leave positions unseen."
        )
    if length <= window:
        return [(0, length)]
    starts = list(range(0, length - window, stride)) + [length - window]
    return [(s, s + window) for s in starts]


def window_owners(spans: list[tuple[int, int]], length: int) -> np.ndarray:
    """For each position, the index of the window where it has the most context: (length,) int."""
    best_context = np.full(length, -1, dtype=np.int64)
    owner = np.zeros(length, dtype=np.int64)
    unlimited = length  # larger than any real context
    for w, (start, end) in enumerate(spans):
        positions = np.arange(start, end)
        left = positions - start if start > 0 else np.full(end - start, unlimited)
        right = end - 1 - positions if end < length else np.full(end - start, unlimited)
        context = np.minimum(left, right)
        better = context > best_context[start:end]
        best_context[start:end][better] = context[better]
        owner[start:end][better] = w
    if (best_context < 0).any():
        raise AssertionError("windows do not cover the sequence")  # window_spans guarantees coverage
    return owner


def merge_windows(spans: list[tuple[int, int]], outputs: list[np.ndarray], length: int) -> np.ndarray:
    """Per-window outputs (end - start, C) -> per-position outputs (length, C), each from its owner window."""
    if len(spans) == 1:
        return outputs[0]
    owner = window_owners(spans, length)
    merged = np.empty((length,) + outputs[0].shape[1:], dtype=outputs[0].dtype)
    for w, (start, end) in enumerate(spans):
        mine = np.nonzero(owner[start:end] == w)[0]
        merged[start + mine] = outputs[w][mine]
    return merged


def window_features(
    token_ids: list[int],
    labels: list[int] | None,
    example_index: int,
    window: int,
    stride: int | None,
    cls_id: int,
    sep_id: int,
) -> list[dict]:
    """One example's content tokens -> features `[CLS] window [SEP]` with labels (IGNORE_INDEX on specials).

    Each feature records its example and the span it covers, for `merge_example_outputs`.
    """
    features = []
    for start, end in window_spans(len(token_ids), window, stride):
        feature = {"input_ids": [cls_id, *token_ids[start:end], sep_id],
                   "example_index": example_index, "span": (start, end)}
        if labels is not None:
            feature["labels"] = [IGNORE_INDEX, *labels[start:end], IGNORE_INDEX]
        features.append(feature)
    return features


def merge_example_outputs(outputs: list[np.ndarray], features: list[dict], lengths: list[int]) -> list[np.ndarray]:
    """Per-feature content outputs (window length, C) -> per-example outputs (example length, C).

    `lengths[i]` is example i's number of content tokens; every example must have its windows.
    """
    by_example: list[list[tuple[tuple[int, int], np.ndarray]]] = [[] for _ in lengths]
    for feature, out in zip(features, outputs):
        by_example[feature["example_index"]].append((feature["span"], out))
    merged = []
    for i, parts in enumerate(by_example):
        parts.sort(key=lambda p: p[0][0])
        spans = [span for span, _ in parts]
        if not spans or spans[0][0] != 0 or spans[-1][1] != lengths[i]:
            raise AssertionError(f"example {i}: windows {spans} do not cover its {lengths[i]} tokens")
        merged.append(merge_windows(spans, [out for _, out in parts], lengths[i]))
    return merged
