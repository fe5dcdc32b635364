"""Start/end logits of every window -> the answer text of each question, with an n-best list.

For each question, over all of its windows: every pair (start, end) of context tokens with
start <= end and end - start + 1 <= max_answer_length is a candidate scored start_logit + end_logit
(all pairs are scored, not only the top starts x top ends, so the best valid span is always
found). The same character span seen in two overlapping windows is kept once, with its best score.
The answer text is cut from the original context by character offsets, so its spacing, case and
accents are the user's.

SQuAD v2.0: the "no answer" score is start_logit[CLS] + end_logit[CLS], the lowest over the
question's windows (the window most sure that an answer exists, as in the BERT reference code). The
prediction is "" when null_score - best_span_score > null_score_diff_threshold.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from seqtune.data.readers.squad import QAExample


@dataclass
class AnswerSettings:
    n_best: int = 20  # candidates kept per question
    max_answer_length: int = 30  # tokens
    version_2: bool = False  # allow "no answer"
    null_score_diff_threshold: float = 0.0


def top_spans(start_logits: np.ndarray, end_logits: np.ndarray, context_start: int, context_end: int,
              max_answer_length: int, n_best: int) -> list[tuple[float, int, int]]:
    """The n_best best (score, start, end) token spans inside [context_start, context_end], best first.

    start_logits, end_logits: (T,) of one window. Scores of all valid pairs form an (n, K) band,
    n context tokens by K = max_answer_length lengths, built without Python loops.
    """
    starts = start_logits[context_start:context_end + 1].astype(np.float64)
    ends = end_logits[context_start:context_end + 1].astype(np.float64)
    n, width = len(starts), min(max_answer_length, len(starts))
    if n == 0 or width <= 0:
        return []
    padded_ends = np.concatenate([ends, np.full(width - 1, -np.inf)])
    band = starts[:, None] + sliding_window_view(padded_ends, width)  # band[i, k]: span i .. i+k
    flat = band.ravel()
    valid = np.count_nonzero(np.isfinite(flat))
    keep = min(n_best, valid)
    if keep == 0:
        return []
    top = np.argpartition(-flat, keep - 1)[:keep]
    top = top[np.argsort(-flat[top], kind="stable")]
    spans = []
    for flat_index in top:
        i, k = divmod(int(flat_index), width)
        spans.append((float(flat[flat_index]), context_start + i, context_start + i + k))
    return spans


def answer_questions(examples: list[QAExample], features: list[dict], outputs: list[np.ndarray],
                     settings: AnswerSettings) -> list[dict]:
    """One record per example, in example order: id, answer, n_best [{text, score, probability, start}],
    and for v2.0 score_diff (null score minus best span score; "" is predicted above the threshold).

    features: the windows (example_index, offsets, context_start, context_end); outputs: one (T, 2)
    array of start/end logits per window, in the same order.
    """
    windows_of: list[list[int]] = [[] for _ in examples]
    for f, feature in enumerate(features):
        windows_of[feature["example_index"]].append(f)
    return [_answer_one(example, [features[f] for f in fs], [outputs[f] for f in fs], settings)
            for example, fs in zip(examples, windows_of)]


def _answer_one(example: QAExample, features: list[dict], outputs: list[np.ndarray], settings: AnswerSettings) -> dict:
    candidates: dict[tuple[int, int], float] = {}  # (char start, char end) -> best score
    null_score = np.inf
    for feature, logits in zip(features, outputs):
        start_logits, end_logits = logits[:, 0], logits[:, 1]
        null_score = min(null_score, float(start_logits[0]) + float(end_logits[0]))
        spans = top_spans(start_logits, end_logits, feature["context_start"], feature["context_end"],
                          settings.max_answer_length, settings.n_best)
        offsets = feature["offsets"]
        for score, s, e in spans:
            key = (int(offsets[s, 0]), int(offsets[e, 1]))
            if score > candidates.get(key, -np.inf):
                candidates[key] = score
    ranked = sorted(candidates.items(), key=lambda kv: -kv[1])[: settings.n_best]
    n_best = [{"text": example.context[a:b], "score": score, "start": a} for (a, b), score in ranked]
    record: dict = {"id": example.id}
    best = n_best[0] if n_best else {"text": "", "score": -np.inf}
    if settings.version_2:
        diff = null_score - best["score"]
        record["answer"] = "" if diff > settings.null_score_diff_threshold else best["text"]
        record["score_diff"] = float(diff)
        record["best_span"] = best["text"]
        n_best = sorted(n_best + [{"text": "", "score": null_score, "start": -1}], key=lambda c: -c["score"])
        n_best = n_best[: settings.n_best]
    else:
        record["answer"] = best["text"]
    _add_probabilities(n_best)
    record["n_best"] = n_best
    return record


def _add_probabilities(candidates: list[dict]) -> None:
    """Softmax of the candidate scores, so the n-best list reads as a distribution."""
    if not candidates:
        return
    scores = np.array([c["score"] for c in candidates])
    weights = np.exp(scores - scores.max())
    for c, p in zip(candidates, weights / weights.sum()):
        c["probability"] = float(p)
