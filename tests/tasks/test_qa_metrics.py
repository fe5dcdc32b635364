"""SQuAD EM/F1 against hand-computed values of the official definitions (v1.1 and v2.0)."""

from __future__ import annotations

import numpy as np
import pytest

from seqtune.tasks.qa_metrics import (
    best_null_threshold,
    exact_match,
    f1_score,
    normalize_answer,
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


def test_totals_in_percent_and_missing_predictions_score_zero():
    golds = {"a": ["Denver Broncos"], "b": ["Denver Broncos"], "c": ["Santa Clara"]}
    scores = squad_scores({"a": "Denver Broncos", "b": "Denver Broncos team"}, golds)
    assert scores["total"] == 3
    assert scores["exact_match"] == pytest.approx(100 / 3)
    assert scores["f1"] == pytest.approx(100 * (1 + 0.8 + 0) / 3)
    assert "has_ans_f1" not in scores


def test_v2_has_answer_and_no_answer_splits():
    golds = {"a": ["Normandy"], "b": ["Rollo"], "n1": [], "n2": []}
    preds = {"a": "Normandy", "b": "", "n1": "", "n2": "France"}
    s = squad_scores(preds, golds, version_2=True)
    assert (s["has_ans_exact_match"], s["has_ans_total"]) == (50.0, 2)
    assert (s["no_ans_exact_match"], s["no_ans_total"]) == (50.0, 2)
    assert s["exact_match"] == 50.0 and s["f1"] == 50.0


def test_best_null_threshold_sweeps_every_cut():
    # Answer "" when diff > t. Answerable questions have small diffs here, so the best cut is
    # between 0.5 and 1.0: answer the first two with their span, "" for the last two -> 100%.
    diffs = np.array([0.5, -2.0, 3.0, 1.0])
    span_scores = np.array([1.0, 1.0, 0.0, 0.0])
    has_answer = np.array([True, True, False, False])
    threshold, score = best_null_threshold(diffs, span_scores, has_answer)
    assert threshold == 0.5 and score == 100.0
    # If the span answers were all wrong, "" everywhere (a threshold below every diff) is best: 50%.
    threshold, score = best_null_threshold(diffs, np.zeros(4), has_answer)
    assert threshold < -2.0 and score == 50.0
    # Ties in diff move together: no threshold answers one of them and not the other (which
    # would score 100% here), so the best is 50%, reached first with "" for both.
    threshold, score = best_null_threshold(np.array([1.0, 1.0]), np.array([1.0, 0.0]),
                                           np.array([True, False]))
    assert score == 50.0 and threshold < 1.0
