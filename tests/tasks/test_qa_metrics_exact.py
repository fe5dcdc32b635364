"""SQuAD v2.0 scores on asymmetric data (more answerable than unanswerable questions, partially
right answers), so that swapping the splits or F1 degenerating to exact match shows, and the best
no-answer threshold including the "answer everything" and "answer nothing" cuts."""

from __future__ import annotations

import numpy as np
import pytest

from seqtune.tasks.qa_metrics import (
    best_null_threshold,
    exact_match,
    f1_score,
    gold_texts,
    normalize_answer,
    per_question_scores,
    question_scores,
    squad_scores,
)


def test_v2_f1_of_a_partially_right_answer_is_partial():
    # precision 2/3, recall 1 -> 0.8, in v2.0 as in v1.1
    assert f1_score("Denver Broncos team", "Denver Broncos", version_2=True) == pytest.approx(0.8)
    assert question_scores("Denver Broncos team", ["Denver Broncos"], version_2=True) == (0.0, pytest.approx(0.8))
    assert f1_score("", "", version_2=True) == 1.0 and f1_score("", "") == 0.0
    assert f1_score("Paris", "", version_2=True) == 0.0 and f1_score("", "Paris", version_2=True) == 0.0


def test_f1_precision_and_recall_are_not_swapped_in_effect():
    # p = 1/4, r = 1/2 -> 2 * (1/8) / (3/4) = 1/3
    assert f1_score("x a1 a2 a3", "x y") == pytest.approx(1 / 3)
    assert f1_score("x", "x y z w") == pytest.approx(2 * 0.25 / 1.25)  # p 1, r 1/4 -> 0.4


def test_v2_splits_on_asymmetric_data():
    golds = {"a": ["Normandy"], "b": ["Rollo"], "c": ["the Seine river"], "n": []}
    predictions = {"a": "Normandy", "b": "", "c": "Seine", "n": "France"}
    s = squad_scores(predictions, golds, version_2=True)
    # answerable: a right, b unanswered, c half right ("seine" of "seine river": p 1, r 1/2 -> 2/3)
    assert s["has_ans_total"] == 3 and s["no_ans_total"] == 1
    assert s["has_ans_exact_match"] == pytest.approx(1 / 3)
    assert s["has_ans_f1"] == pytest.approx((1 + 0 + 2 / 3) / 3)
    assert s["no_ans_exact_match"] == 0.0 and s["no_ans_f1"] == 0.0
    assert s["total"] == 4
    assert s["exact_match"] == pytest.approx(1 / 4) and s["f1"] == pytest.approx((1 + 2 / 3) / 4)


def test_v2_without_unanswerable_questions_has_no_no_ans_split():
    s = squad_scores({"a": "x"}, {"a": ["x"]}, version_2=True)
    assert "no_ans_total" not in s and s["has_ans_total"] == 1
    s = squad_scores({"n": ""}, {"n": []}, version_2=True)
    assert "has_ans_total" not in s and s["no_ans_exact_match"] == 1.0


def test_no_questions_score_zero():
    assert squad_scores({}, {}) == {"exact_match": 0.0, "f1": 0.0, "total": 0}
    em, f1 = per_question_scores({}, {})
    assert em.shape == f1.shape == (0,)


def test_per_question_scores_follow_the_gold_order():
    em, f1 = per_question_scores({"b": "x y", "a": "z"}, {"a": ["z"], "c": ["q"], "b": ["x"]})
    assert em.tolist() == [1.0, 0.0, 0.0]
    assert f1.tolist() == pytest.approx([1.0, 0.0, 2 / 3])


def test_gold_texts():
    assert gold_texts(["", "The", "x"], version_2=False) == ["", "The", "x"]
    assert gold_texts(["", "The", "x"], version_2=True) == ["x"]
    assert gold_texts(["", "a"], version_2=True) == [""]
    assert gold_texts([], version_2=True) == [""]
    assert question_scores("x", [], version_2=False) == (0.0, 0.0)  # v1.1 without golds


def test_normalisation_edge_cases():
    assert normalize_answer("A") == "" and normalize_answer("An apple") == "apple"
    assert normalize_answer("THE END.") == "end"
    assert normalize_answer("a.b,c") == "abc"
    assert exact_match("", "") == 1.0 and exact_match("x", "y") == 0.0
    assert type(exact_match("x", "x")) is float


# ---- the best no-answer threshold ------------------------------------------------------------------------
def test_answering_everything_can_be_best():
    diffs = np.array([0.1, 0.3, 0.2])
    threshold, score = best_null_threshold(diffs, np.ones(3), np.ones(3, dtype=bool))
    assert threshold == 0.3 and score == 1.0  # the largest diff: no question is answered ""


def test_answering_nothing_can_be_best():
    # one answerable question whose span is wrong, one unanswerable: "" for both scores 1 of 2
    threshold, score = best_null_threshold(np.array([2.0, 3.0]), np.zeros(2), np.array([True, False]))
    assert threshold == 1.0 and score == 0.5  # one below the smallest diff


def test_threshold_with_partial_span_scores():
    diffs = np.array([2.0, -1.0, 0.0])
    span_scores = np.array([0.0, 0.5, 1.0])
    has_answer = np.array([False, True, True])
    # sorted by diff: -1 (answerable, 0.5), 0 (answerable, 1.0), 2 (unanswerable: answering costs 1)
    # totals by cut: 1, 1.5, 2.5, 1.5 -> answer the first two: threshold 0.0, score 2.5 / 3
    threshold, score = best_null_threshold(diffs, span_scores, has_answer)
    assert threshold == 0.0 and score == pytest.approx(2.5 / 3)


def test_threshold_types():
    threshold, score = best_null_threshold(np.array([1, 2]), np.array([1.0, 1.0]), np.array([True, True]))
    assert type(threshold) is float and type(score) is float and (threshold, score) == (2.0, 1.0)


def test_answering_past_an_unanswerable_question_can_pay():
    # sorted: +1, -1 (unanswerable), +1, +1: totals from 1 ("" everywhere): 1, 2, 1, 2, 3 -> answer all
    diffs = np.array([0.0, 1.0, 2.0, 3.0])
    threshold, score = best_null_threshold(diffs, np.array([1.0, 0.0, 1.0, 1.0]), np.array([True, False, True, True]))
    assert threshold == 3.0 and score == 0.75


def test_a_cut_never_falls_inside_a_run_of_equal_diffs():
    # sorted: 0 (+1), 1 (+1), 1 (unanswerable, -1): cutting between the two 1s would score 3 of 3,
    # but one threshold answers both or neither: the best is 2 of 3 at threshold 0
    threshold, score = best_null_threshold(np.array([0.0, 1.0, 1.0]), np.array([1.0, 1.0, 0.0]),
                                           np.array([True, True, False]))
    assert threshold == 0.0 and score == pytest.approx(2 / 3)


def test_threshold_after_the_first_question():
    threshold, score = best_null_threshold(np.array([0.0, 5.0]), np.array([1.0, 0.0]), np.array([True, False]))
    assert (threshold, score) == (0.0, 1.0)
    assert best_null_threshold(np.array([0.5]), np.array([1.0]), np.array([True])) == (0.5, 1.0)


def test_per_question_scores_default_to_v1():
    em, f1 = per_question_scores({"q": ""}, {"q": ["The"]})
    assert (em.tolist(), f1.tolist()) == ([1.0], [0.0])  # v1.1: no shared word, F1 0
    em, f1 = per_question_scores({"q": ""}, {"q": ["The"]}, version_2=True)
    assert f1.tolist() == [1.0]


def test_v2_scores_of_no_questions():
    assert squad_scores({}, {}, version_2=True) == {"exact_match": 0.0, "f1": 0.0, "total": 0}
