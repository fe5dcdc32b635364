"""SQuAD EM/F1 against hand-computed values of the official definitions (v1.1 and v2.0)."""

from __future__ import annotations

import json

import numpy as np
import pytest

from seqtune.tasks.qa_metrics import (
    best_null_threshold,
    exact_match,
    f1_score,
    normalize_answer,
    per_question_scores,
    question_scores,
    squad_scores,
)


@pytest.mark.parametrize("text, normal", [
    ("The  Quick, brown fox!", "quick brown fox"),
    ("an apple a day", "apple day"),
    ("theory of the atheist", "theory of atheist"),  # articles only as whole words
    ("A-B", "ab"),  # punctuation is removed, not replaced by a space
    ("  Denver\tBroncos \n", "denver broncos"),
    ("café—bar", "café—bar"),  # only ASCII punctuation is stripped, as in the official script
])
def test_normalisation(text, normal):
    assert normalize_answer(text) == normal


def test_exact_match_ignores_case_punctuation_and_articles():
    assert exact_match("the Denver Broncos.", "Denver Broncos") == 1.0
    assert exact_match("Denver", "Denver Broncos") == 0.0


def test_f1_is_word_bag_overlap():
    # precision 2/3, recall 1 -> 2 * (2/3) / (5/3) = 0.8
    assert f1_score("Denver Broncos team", "Denver Broncos") == pytest.approx(0.8)
    # repeated words count with multiplicity: common {y: 2}, p = r = 2/3
    assert f1_score("x y y", "y y z") == pytest.approx(2 / 3)
    assert f1_score("Broncos", "Panthers") == 0.0


def test_maximum_over_gold_answers():
    golds = ["Denver Broncos", "Broncos", "the Broncos"]
    assert question_scores("broncos", golds) == (1.0, 1.0)
    # vs "Denver Broncos": p = 1, r = 1/2 -> 2/3; vs "Broncos": 0
    em, f1 = question_scores("the Denver", ["Denver Broncos", "Broncos"])
    assert em == 0.0 and f1 == pytest.approx(2 / 3)


def test_empty_prediction_v1_and_v2_rules():
    # v1.1: no shared word -> F1 0, even when the gold normalises to nothing
    assert question_scores("", ["Denver"]) == (0.0, 0.0)
    assert question_scores("", ["The"]) == (1.0, 0.0)
    # v2.0: golds that normalise to empty are dropped; "" is right exactly for unanswerable questions
    assert question_scores("", ["The"], version_2=True) == (1.0, 1.0)
    assert question_scores("", [], version_2=True) == (1.0, 1.0)
    assert question_scores("Paris", [], version_2=True) == (0.0, 0.0)
    assert question_scores("", ["Denver"], version_2=True) == (0.0, 0.0)


def test_totals_are_fractions_and_missing_predictions_score_zero():
    golds = {"a": ["Denver Broncos"], "b": ["Denver Broncos"], "c": ["Santa Clara"]}
    scores = squad_scores({"a": "Denver Broncos", "b": "Denver Broncos team"}, golds)
    assert scores["total"] == 3 and type(scores["total"]) is int
    assert scores["exact_match"] == pytest.approx(1 / 3)
    assert scores["f1"] == pytest.approx((1 + 0.8 + 0) / 3)
    assert "has_ans_f1" not in scores


@pytest.mark.parametrize("version_2", [False, True])
def test_perfect_predictions_score_one_not_one_hundred(version_2):
    """Same 0-1 scale as every other task's metrics (the official scripts print 100x this)."""
    golds = {"a": ["Denver Broncos"], "b": ["Santa Clara", "Levi's Stadium"]}
    if version_2:
        golds["n"] = []
    predictions = {"a": "the Denver Broncos", "b": "Levi's Stadium", "n": ""}
    scores = squad_scores(predictions, golds, version_2=version_2)
    assert scores["exact_match"] == 1.0 and scores["f1"] == 1.0
    if version_2:
        assert scores["has_ans_f1"] == scores["no_ans_f1"] == 1.0
        assert scores["has_ans_exact_match"] == scores["no_ans_exact_match"] == 1.0
    for key, value in scores.items():
        assert type(value) is (int if key.endswith("total") else float), key
        assert 0.0 <= value <= 1.0 or key.endswith("total"), key
    # JSON keeps counts as integers: 3, not 3.0
    assert json.dumps({"total": scores["total"]}) == '{"total": %d}' % len(golds)


def test_v2_has_answer_and_no_answer_splits():
    golds = {"a": ["Normandy"], "b": ["Rollo"], "n1": [], "n2": []}
    preds = {"a": "Normandy", "b": "", "n1": "", "n2": "France"}
    s = squad_scores(preds, golds, version_2=True)
    assert (s["has_ans_exact_match"], s["has_ans_total"]) == (0.5, 2)
    assert (s["no_ans_exact_match"], s["no_ans_total"]) == (0.5, 2)
    assert s["exact_match"] == 0.5 and s["f1"] == 0.5


def test_best_null_threshold_sweeps_every_cut():
    # Answer "" when diff > t. Answerable questions have small diffs here, so the best cut is
    # between 0.5 and 1.0: answer the first two with their span, "" for the last two -> 1.0.
    # The score is a fraction in [0, 1]; the threshold stays on the logit scale of the diffs.
    diffs = np.array([0.5, -2.0, 3.0, 1.0])
    span_scores = np.array([1.0, 1.0, 0.0, 0.0])
    has_answer = np.array([True, True, False, False])
    threshold, score = best_null_threshold(diffs, span_scores, has_answer)
    assert threshold == 0.5 and score == 1.0
    # If the span answers were all wrong, "" everywhere (a threshold below every diff) is best: 0.5.
    threshold, score = best_null_threshold(diffs, np.zeros(4), has_answer)
    assert threshold < -2.0 and score == 0.5
    # Ties in diff move together: no threshold answers one of them and not the other (which
    # would score 1.0 here), so the best is 0.5, reached first with "" for both.
    threshold, score = best_null_threshold(np.array([1.0, 1.0]), np.array([1.0, 0.0]),
                                           np.array([True, False]))
    assert score == 0.5 and threshold < 1.0


def test_best_null_threshold_score_matches_squad_scores_at_that_threshold():
    """Applying the returned threshold and scoring with squad_scores gives the returned score."""
    rng = np.random.default_rng(0)
    golds = {f"q{i}": (["answer"] if i % 3 else []) for i in range(30)}
    best_spans = {q: ("answer" if rng.random() < 0.6 else "wrong") for q in golds}
    diffs = rng.normal(size=len(golds)).round(1)  # rounded: ties happen
    has_answer = np.array([bool(g) for g in golds.values()])
    _, span_f1 = per_question_scores(best_spans, golds, version_2=True)
    threshold, score = best_null_threshold(diffs, span_f1, has_answer)
    answered = {q: ("" if d > threshold else best_spans[q]) for q, d in zip(golds, diffs)}
    assert squad_scores(answered, golds, version_2=True)["f1"] == pytest.approx(score)
    assert 0.0 <= score <= 1.0


def test_best_null_threshold_of_no_questions_is_zero():
    # It raised IndexError before session 6 (a dev set with no questions left after filtering).
    empty = np.zeros(0)
    assert best_null_threshold(empty, empty, np.zeros(0, dtype=bool)) == (0.0, 0.0)
