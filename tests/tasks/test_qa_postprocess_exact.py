"""QA post-processing on hand-made windows (no tokenizer): exact span scores and order, the answer
length limit, one entry per character span across overlapping windows, the no-answer score (the
lowest over windows), the threshold's strict comparison and the n-best probabilities."""

from __future__ import annotations

import math

import numpy as np
import pytest

from seqtune.data.readers.squad import QAExample
from seqtune.tasks.qa_postprocess import AnswerSettings, answer_questions, top_spans

CONTEXT = "Ada keeps a red zebra"
WORDS = [(0, 3), (4, 9), (10, 11), (12, 15), (16, 21)]  # Ada keeps a red zebra


def test_top_spans_exact_scores_and_order():
    # token 0 ([CLS]) has huge logits but lies outside the context 1..3
    start = np.array([100.0, 0.0, 1.0, 3.0])
    end = np.array([100.0, 4.0, 0.5, 2.0])
    # spans (start, end) -> start + end: (1,1) 4, (1,2) 0.5, (1,3) 2, (2,2) 1.5, (2,3) 3, (3,3) 5
    assert top_spans(start, end, 1, 3, max_answer_length=3, n_best=10) == [
        (5.0, 3, 3), (4.0, 1, 1), (3.0, 2, 3), (2.0, 1, 3), (1.5, 2, 2), (0.5, 1, 2)]
    # at most 2 tokens: (1,3) is out; only the 3 best kept
    assert top_spans(start, end, 1, 3, max_answer_length=2, n_best=3) == [(5.0, 3, 3), (4.0, 1, 1), (3.0, 2, 3)]
    assert top_spans(start, end, 1, 3, max_answer_length=1, n_best=10) == [(5.0, 3, 3), (4.0, 1, 1), (1.5, 2, 2)]
    assert top_spans(start, end, 1, 3, max_answer_length=30, n_best=1) == [(5.0, 3, 3)]
    assert top_spans(start, end, 3, 2, max_answer_length=30, n_best=5) == []  # no context tokens
    assert top_spans(start, end, 0, 0, max_answer_length=3, n_best=5) == [(200.0, 0, 0)]
    assert all(type(score) is float and type(s) is int for score, s, _ in top_spans(start, end, 1, 3, 3, 10))


@pytest.mark.parametrize("seed", range(4))
def test_top_spans_equal_brute_force_on_long_contexts(seed):
    rng = np.random.default_rng(seed)
    start, end = rng.normal(size=350), rng.normal(size=350)
    for max_answer_length in (1, 3):
        pairs = sorted(((start[i] + end[j], i, j) for i in range(1, 350) for j in range(i, min(350, i + max_answer_length))),
                       reverse=True)
        for n_best in (1, 2, 5):
            spans = top_spans(start, end, 1, 349, max_answer_length, n_best)
            assert [(s, e) for _, s, e in spans] == [(i, j) for _, i, j in pairs[:n_best]]


def test_probabilities_of_large_scores():
    feature, logits = window({3: 500.0, 4: 499.0}, {4: 500.0})
    (record,) = answer_questions([example()], [feature], [logits], AnswerSettings(n_best=2))
    p = 1 / (1 + math.exp(-1))
    assert [c["probability"] for c in record["n_best"]] == pytest.approx([p, 1 - p])  # no overflow


def test_a_question_without_context_tokens_gets_no_answer():
    feature, logits = window({}, {}, cls=1.0)
    feature["context_end"] = feature["context_start"] - 1  # no context token in the window
    (record,) = answer_questions([example()], [feature], [logits], AnswerSettings())
    assert record["answer"] == "" and record["n_best"] == []
    (record,) = answer_questions([example()], [feature], [logits], AnswerSettings(version_2=True))
    assert record["answer"] == "" and record["best_span"] == "" and record["score_diff"] == math.inf
    assert [(c["text"], c["score"], c["probability"]) for c in record["n_best"]] == [("", 2.0, 1.0)]


def window(start: dict[int, float], end: dict[int, float], first_word: int = 0, n_words: int = 5,
           cls: float = 0.0, example_index: int = 0) -> tuple[dict, np.ndarray]:
    """A window [CLS] q [SEP] words[first_word : first_word + n_words] with the given logits per word."""
    T = 3 + n_words
    offsets = np.zeros((T, 2), dtype=np.int64)
    offsets[3:] = WORDS[first_word:first_word + n_words]
    logits = np.full((T, 2), -10.0)
    logits[0] = cls
    for w, value in start.items():
        logits[3 + w - first_word, 0] = value
    for w, value in end.items():
        logits[3 + w - first_word, 1] = value
    feature = {"example_index": example_index, "offsets": offsets, "context_start": 3, "context_end": T - 1}
    return feature, logits


def example(qid: str = "q") -> QAExample:
    return QAExample(qid, "What does Ada keep?", CONTEXT, None)


def test_best_span_text_score_and_probabilities():
    feature, logits = window({3: 2.0, 4: 1.0}, {4: 2.0})
    (record,) = answer_questions([example()], [feature], [logits], AnswerSettings(n_best=2))
    assert record["id"] == "q" and record["answer"] == "red zebra"
    # "red zebra" 2 + 2 = 4, "zebra" 1 + 2 = 3
    assert [(c["text"], c["score"], c["start"]) for c in record["n_best"]] == [("red zebra", 4.0, 12), ("zebra", 3.0, 16)]
    p = 1 / (1 + math.exp(-1))
    assert [c["probability"] for c in record["n_best"]] == pytest.approx([p, 1 - p])
    assert "score_diff" not in record and "best_span" not in record


def test_answer_length_limit_in_tokens():
    feature, logits = window({0: 5.0, 3: 1.0}, {4: 5.0})
    (record,) = answer_questions([example()], [feature], [logits], AnswerSettings(max_answer_length=2))
    assert record["answer"] == "red zebra"  # "Ada keeps a red zebra" (10) has 5 tokens
    (record,) = answer_questions([example()], [feature], [logits], AnswerSettings(max_answer_length=5))
    assert record["answer"] == CONTEXT


def test_a_span_in_two_windows_is_listed_once_with_its_best_score():
    a = window({3: 1.0}, {3: 1.0}, first_word=0, n_words=4)  # Ada keeps a red
    b = window({3: 4.0}, {3: 1.0}, first_word=2, n_words=3)  # a red zebra
    (record,) = answer_questions([example()], [a[0], b[0]], [a[1], b[1]], AnswerSettings())
    reds = [c for c in record["n_best"] if c["text"] == "red"]
    assert len(reds) == 1 and reds[0]["score"] == 5.0 and record["answer"] == "red"
    (record,) = answer_questions([example()], [b[0], a[0]], [b[1], a[1]], AnswerSettings())  # any window order
    assert next(c for c in record["n_best"] if c["text"] == "red")["score"] == 5.0


def test_n_best_keeps_the_best_across_windows():
    a = window({0: 3.0}, {0: 3.0}, first_word=0, n_words=2)
    b = window({4: 2.0}, {4: 2.0}, first_word=3, n_words=2)
    (record,) = answer_questions([example()], [a[0], b[0]], [a[1], b[1]], AnswerSettings(n_best=2))
    assert [c["text"] for c in record["n_best"]] == ["Ada", "zebra"]


def test_v2_null_score_is_the_lowest_over_windows_and_the_threshold_is_strict():
    a = window({3: 2.0}, {3: 2.0}, first_word=0, n_words=4, cls=3.0)  # null 6, "red" 4
    b = window({}, {}, first_word=2, n_words=3, cls=2.5)  # null 5: the lowest
    examples = [example()]
    (record,) = answer_questions(examples, [a[0], b[0]], [a[1], b[1]], AnswerSettings(version_2=True))
    assert record["score_diff"] == 1.0 and record["answer"] == "" and record["best_span"] == "red"
    assert type(record["score_diff"]) is float
    assert {k: record["n_best"][0][k] for k in ("text", "score", "start")} == {"text": "", "score": 5.0, "start": -1}
    scores = np.array([c["score"] for c in record["n_best"]])
    assert [c["probability"] for c in record["n_best"]] == pytest.approx(np.exp(scores) / np.exp(scores).sum())
    assert record["n_best"][1]["text"] == "red"
    assert sum(c["probability"] for c in record["n_best"]) == pytest.approx(1.0)
    # a diff equal to the threshold still answers; above it, ""
    (record,) = answer_questions(examples, [a[0], b[0]], [a[1], b[1]],
                                 AnswerSettings(version_2=True, null_score_diff_threshold=1.0))
    assert record["answer"] == "red"
    (record,) = answer_questions(examples, [a[0], b[0]], [a[1], b[1]],
                                 AnswerSettings(version_2=True, null_score_diff_threshold=0.99))
    assert record["answer"] == ""


def test_v2_n_best_with_the_empty_answer_is_cut_to_n_best():
    feature, logits = window({3: 2.0, 4: 1.0}, {4: 2.0}, cls=-5.0)
    (record,) = answer_questions([example()], [feature], [logits], AnswerSettings(version_2=True, n_best=2))
    assert [c["text"] for c in record["n_best"]] == ["red zebra", "zebra"]  # "" (score -10) cut
    assert record["answer"] == "red zebra" and record["score_diff"] == -14.0


def test_records_come_in_example_order():
    f0, l0 = window({0: 1.0}, {0: 1.0}, example_index=0)
    f1, l1 = window({4: 1.0}, {4: 1.0}, example_index=1)
    records = answer_questions([example("first"), example("second")], [f1, f0], [l1, l0], AnswerSettings())
    assert [(r["id"], r["answer"]) for r in records] == [("first", "Ada"), ("second", "zebra")]


def test_answer_settings_defaults_are_run_qa_defaults():
    """Hugging Face run_qa's defaults, which the QA options repeat (README "Question answering")."""
    assert AnswerSettings() == AnswerSettings(n_best=20, max_answer_length=30, version_2=False,
                                              null_score_diff_threshold=0.0)
