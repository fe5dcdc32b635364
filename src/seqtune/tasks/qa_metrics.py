"""SQuAD exact match and F1, following the definitions of the official evaluation scripts.

Normalisation (both versions): lower-case, drop ASCII punctuation, drop the articles a/an/the as
whole words, collapse white space. Exact match compares normalised strings; F1 is the harmonic
mean of precision and recall of the normalised *word bags*. Each question scores the maximum over
its gold answers; totals are fractions in [0, 1] over all questions (a missing prediction scores
0), like every other seqtune metric. The official scripts print the same numbers times 100.

The two official scripts differ only at empty answers, and we keep both behaviours:
- v1.1: F1 is 0 whenever prediction and gold share no word (even if both are empty);
- v2.0: gold answers that normalise to empty are dropped (an unanswerable question's gold is
  the empty string), and when either side is empty F1 is 1 if both are empty, else 0.
v2.0 also reports HasAns/NoAns splits and the best no-answer threshold (`best_null_threshold`).
"""

from __future__ import annotations

import re
import string
from collections import Counter

import numpy as np

_PUNCTUATION = frozenset(string.punctuation)
_ARTICLES = re.compile(r"\b(a|an|the)\b", re.UNICODE)


def normalize_answer(text: str) -> str:
    text = "".join(ch for ch in text.lower() if ch not in _PUNCTUATION)
    return " ".join(_ARTICLES.sub(" ", text).split())


def exact_match(prediction: str, gold: str) -> float:
    return float(normalize_answer(prediction) == normalize_answer(gold))


def f1_score(prediction: str, gold: str, version_2: bool = False) -> float:
    predicted, expected = normalize_answer(prediction).split(), normalize_answer(gold).split()
    if version_2 and (not predicted or not expected):
        return float(predicted == expected)
    shared = sum((Counter(predicted) & Counter(expected)).values())
    if shared == 0:
        return 0.0
    precision, recall = shared / len(predicted), shared / len(expected)
    return 2 * precision * recall / (precision + recall)


def gold_texts(answers: list[str], version_2: bool) -> list[str]:
    """The gold strings a prediction is compared with (v2.0: empty ones dropped, [''] if none left)."""
    if not version_2:
        return list(answers)
    kept = [a for a in answers if normalize_answer(a)]
    return kept or [""]


def question_scores(prediction: str, answers: list[str], version_2: bool = False) -> tuple[float, float]:
    """(exact match, F1) of one prediction: the maximum over the gold answers, each in [0, 1]."""
    golds = gold_texts(answers, version_2)
    if not golds:
        return 0.0, 0.0
    return (max(exact_match(prediction, g) for g in golds),
            max(f1_score(prediction, g, version_2) for g in golds))


def squad_scores(predictions: dict[str, str], golds: dict[str, list[str]], version_2: bool = False) -> dict:
    """Totals in [0, 1]: exact_match, f1, and total (an int: the number of questions); with
    version_2 also has_ans_* and no_ans_* splits (has_ans_total, no_ans_total also ints).

    predictions: question id -> predicted text ("" = no answer); golds: question id -> gold texts
    ([] for an unanswerable question).
    """
    ids = list(golds)
    em, f1 = per_question_scores(predictions, golds, version_2)
    result = _summary(em, f1, "")
    if version_2:
        has_answer = np.array([bool(golds[q]) for q in ids], dtype=bool)
        for name, mask in (("has_ans_", has_answer), ("no_ans_", ~has_answer)):
            if mask.any():
                result.update(_summary(em[mask], f1[mask], name))
    return result


def per_question_scores(predictions: dict[str, str], golds: dict[str, list[str]],
                        version_2: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """Exact match and F1 of each question (in `golds` order), each in [0, 1]."""
    pairs = [question_scores(predictions[q], golds[q], version_2) if q in predictions else (0.0, 0.0)
             for q in golds]
    scores = np.array(pairs, dtype=np.float64).reshape(-1, 2)
    return scores[:, 0], scores[:, 1]


def _summary(em: np.ndarray, f1: np.ndarray, prefix: str) -> dict:
    n = len(em)
    return {
        f"{prefix}exact_match": float(em.mean()) if n else 0.0,
        f"{prefix}f1": float(f1.mean()) if n else 0.0,
        f"{prefix}total": int(n),
    }


def best_null_threshold(score_diffs: np.ndarray, span_scores: np.ndarray, has_answer: np.ndarray) -> tuple[float, float]:
    """The null_score_diff_threshold that maximises a score on a labelled set, and that score in [0, 1].

    The rule being tuned: answer "" when null_score - best_span_score > threshold.
    score_diffs (N,): null score minus best span score of each question; span_scores (N,): the score
    (EM or F1, in [0, 1]) that the best *span* would get; has_answer (N,): bool.
    Sorted by score diff, a threshold at the k-th value answers the first k questions with their span
    and the rest with "" (right for unanswerable questions, wrong otherwise); every cut is tried,
    plus "always no answer". Only the score's scale is a fraction; the threshold is on the scale
    of the score diffs (logits), as in the official script's `find_best_thresh`.
    """
    if len(score_diffs) == 0:  # no questions: nothing to tune
        return 0.0, 0.0
    order = np.argsort(score_diffs, kind="stable")
    diffs = score_diffs[order]
    # Answering question i with its span instead of "" changes its score by:
    gain = np.where(has_answer[order], span_scores[order], -1.0)
    base = float((~has_answer).sum())  # every question answered with "" (threshold below all diffs)
    totals = base + np.concatenate([[0.0], np.cumsum(gain)])
    # Cuts can fall only between distinct diff values: keep the last index of each run of ties.
    last_of_run = np.append(diffs[1:] != diffs[:-1], True)
    candidates = np.concatenate([[0], np.nonzero(last_of_run)[0] + 1])
    best = candidates[np.argmax(totals[candidates])]
    threshold = float(diffs[best - 1]) if best > 0 else float(diffs[0] - 1.0) if len(diffs) else 0.0
    return threshold, float(totals[best]) / max(1, len(diffs))
