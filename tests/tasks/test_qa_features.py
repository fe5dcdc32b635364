"""QA windows (offsets, answer positions, overlap, caps) and post-processing over windows."""

from __future__ import annotations

import numpy as np
import pytest

from seqtune.data.readers.squad import Answer, QAExample
from seqtune.errors import SeqtuneError
from seqtune.tasks.qa_features import WindowSettings, make_windows
from seqtune.tasks.qa_postprocess import AnswerSettings, answer_questions, top_spans
from seqtune.tokenization import load_tokenizer

FILLER = "the river flows slowly past old houses and green fields under a grey sky".split()


@pytest.fixture(scope="module")
def tokenizer(minilm_dir):
    return load_tokenizer(minilm_dir)


def example(question: str, context: str, answer: str | None, qid: str = "q") -> QAExample:
    answers = None if answer is None else [Answer(answer, context.index(answer))]
    return QAExample(qid, question, context, answers, where=f"test {qid}")


def long_context(filler_words: int, answer_sentence: str, tail_words: int) -> str:
    words = [FILLER[i % len(FILLER)] for i in range(filler_words + tail_words)]
    return " ".join(words[:filler_words]) + " " + answer_sentence + " " + " ".join(words[filler_words:])


def test_short_example_is_one_window_with_answer_tokens(tokenizer):
    ex = example("Who won Super Bowl 50?", "The Denver Broncos won Super Bowl 50 in Santa Clara.", "Denver Broncos")
    (f,) = make_windows([ex], tokenizer, WindowSettings())
    ids = f["input_ids"]
    assert ids[0] == tokenizer.cls_id and ids[-1] == tokenizer.sep_id
    assert ids[f["context_start"] - 1] == tokenizer.sep_id
    assert set(f["token_type_ids"][:f["context_start"]]) == {0}
    assert set(f["token_type_ids"][f["context_start"]:]) == {1}
    assert (f["offsets"][:f["context_start"]] == -1).all()  # question and specials have no context offsets
    s, e = f["start_positions"], f["end_positions"]
    assert ex.context[f["offsets"][s, 0]:f["offsets"][e, 1]] == "Denver Broncos"


def test_answer_inside_a_word_maps_to_the_covering_tokens(tokenizer):
    ex = example("What colour?", "A goldenrod flower.", "gold")
    (f,) = make_windows([ex], tokenizer, WindowSettings())
    span = ex.context[f["offsets"][f["start_positions"], 0]:f["offsets"][f["end_positions"], 1]]
    assert "gold" in span and len(span) < len("A goldenrod flower.")


def test_long_context_windows_overlap_and_only_one_holds_the_answer(tokenizer):
    settings = WindowSettings(max_length=64, doc_stride=16)
    ex = example("Who keeps the zebra?", long_context(100, "The zebra keeper is Ada Lovelace.", 120),
                 "Ada Lovelace")
    windows = make_windows([ex], tokenizer, settings)
    assert len(windows) >= 4
    for w in windows:
        assert len(w["input_ids"]) <= 64
        assert w["input_ids"][1:w["context_start"] - 1] == windows[0]["input_ids"][1:windows[0]["context_start"] - 1]
    # Consecutive windows share exactly doc_stride context tokens.
    for a, b in zip(windows, windows[1:]):
        tail = [tuple(o) for o in a["offsets"][a["context_end"] - 15:a["context_end"] + 1]]
        head = [tuple(o) for o in b["offsets"][b["context_start"]:b["context_start"] + 16]]
        assert tail == head
    holding = [i for i, w in enumerate(windows) if w["start_positions"] != 0]
    assert holding == [2]  # the answer lies in the third window only
    w = windows[2]
    assert ex.context[w["offsets"][w["start_positions"], 0]:w["offsets"][w["end_positions"], 1]] == "Ada Lovelace"
    assert all(x["end_positions"] == 0 for i, x in enumerate(windows) if i != 2)


def fake_logits(windows: list[dict], tokenizer, start_word: str, end_word: str, seed: int = 0) -> list[np.ndarray]:
    """Logits that favour tokens by their *identity* (not by the gold positions), plus noise."""
    rng = np.random.default_rng(seed)
    start_id = tokenizer.backend.encode(start_word, add_special_tokens=False).ids[0]
    end_id = tokenizer.backend.encode(end_word, add_special_tokens=False).ids[-1]  # "love ##lace": "##lace"
    outputs = []
    for w in windows:
        ids = np.array(w["input_ids"])
        logits = rng.normal(0, 0.5, size=(len(ids), 2)).astype(np.float32)
        logits[ids == start_id, 0] += 8.0
        logits[ids == end_id, 1] += 8.0
        logits[0] += 2.0  # [CLS] is plausible, as after training
        outputs.append(logits)
    return outputs


def test_answer_in_the_third_window_is_found_with_original_text(tokenizer):
    settings = WindowSettings(max_length=64, doc_stride=16)
    ex = example("Who keeps the zebra?", long_context(100, "The zebra keeper is ADA Lovelace.", 120), None)
    windows = make_windows([ex], tokenizer, settings)
    outputs = fake_logits(windows, tokenizer, "ada", "lovelace")
    (record,) = answer_questions([ex], windows, outputs, AnswerSettings())
    assert record["answer"] == "ADA Lovelace"  # cut from the original context: case kept
    assert record["id"] == "q"
    assert len(record["n_best"]) == 20
    assert record["n_best"][0]["start"] == ex.context.index("ADA")
    assert sum(c["probability"] for c in record["n_best"]) == pytest.approx(1.0)
    scores = [c["score"] for c in record["n_best"]]
    assert scores == sorted(scores, reverse=True)
    spans = [(c["start"], c["text"]) for c in record["n_best"]]
    assert len(set(spans)) == len(spans)  # a span seen in two overlapping windows is listed once


def test_top_spans_respects_order_length_and_context():
    start = np.array([9.0, 0.0, 1.0, 5.0, 0.0])
    end = np.array([9.0, 0.0, 0.0, 1.0, 6.0])
    # context tokens 1..4; index 0 ([CLS]) is outside. Span 3..4 = 11 is best; 2..4 = 7 is too long.
    spans = top_spans(start, end, 1, 4, max_answer_length=2, n_best=20)
    assert spans[0] == (11.0, 3, 4)
    assert all(s <= e and e - s + 1 <= 2 and s >= 1 for _, s, e in spans)
    assert (7.0, 2, 4) not in spans
    assert len(spans) == 4 + 3  # single tokens + adjacent pairs
    assert len(top_spans(start, end, 1, 4, max_answer_length=30, n_best=3)) == 3


def test_v2_no_answer_when_null_score_wins(tokenizer):
    ex = example("Who keeps the zebra?", "Nobody here keeps any animals at all.", None)
    windows = make_windows([ex], tokenizer, WindowSettings())
    logits = np.zeros((len(windows[0]["input_ids"]), 2), dtype=np.float32)
    logits[0] = 5.0  # null score 10
    logits[windows[0]["context_start"] + 1] = 3.0  # best span "here": 6
    (no_answer,) = answer_questions([ex], windows, [logits], AnswerSettings(version_2=True))
    assert no_answer["answer"] == "" and no_answer["score_diff"] == pytest.approx(4.0)
    assert no_answer["best_span"] == "here"
    assert no_answer["n_best"][0]["text"] == ""
    (lenient,) = answer_questions([ex], windows, [logits], AnswerSettings(version_2=True, null_score_diff_threshold=4.5))
    assert lenient["answer"] == "here"
    (v1,) = answer_questions([ex], windows, [logits], AnswerSettings(version_2=False))
    assert v1["answer"] == "here" and all(c["text"] for c in v1["n_best"])


def test_too_many_windows_is_an_error(tokenizer):
    ex = example("Who keeps the zebra?", long_context(300, "Ada keeps it.", 300), None, qid="long-1")
    with pytest.raises(SeqtuneError, match=r"test long-1: the context needs \d+ windows .* task.max_windows = 3"):
        make_windows([ex], tokenizer, WindowSettings(max_length=64, doc_stride=16, max_windows=3))
    assert len(make_windows([ex], tokenizer, WindowSettings(max_length=64, doc_stride=16, max_windows=None))) > 3


def test_question_too_long_for_the_window_is_an_error(tokenizer):
    ex = example(" ".join(["why"] * 50), "Because.", None, qid="wordy")
    with pytest.raises(SeqtuneError, match="test wordy: the question has 50 tokens"):
        make_windows([ex], tokenizer, WindowSettings(max_length=64, doc_stride=16))


def test_windows_made_in_chunks_equal_those_of_one_call(tokenizer, monkeypatch):
    """The tokenizer runs ENCODE_CHUNK examples at a time; every chunk is truncated into windows
    (the truncation setting holds until the last chunk) and the features equal one call's."""
    import seqtune.tokenization as tokenization

    settings = WindowSettings(max_length=48, doc_stride=16)
    examples = [example(f"Who keeps zebra {i}?", long_context(10 + 7 * i, f"The keeper of zebra {i} is Ada.", 30),
                        "Ada", qid=f"q{i}") for i in range(7)]
    whole = make_windows(examples, tokenizer, settings)
    monkeypatch.setattr(tokenization, "ENCODE_CHUNK", 2)
    chunked = make_windows(examples, tokenizer, settings)
    assert len(chunked) == len(whole) > len(examples)  # long contexts: several windows each
    for a, b in zip(chunked, whole, strict=True):
        assert a.keys() == b.keys()
        for key in a:
            assert np.array_equal(a[key], b[key]), key
    assert max(len(f["input_ids"]) for f in chunked) <= 48
    assert tokenizer.backend.truncation is None  # and the tokenizer is left without truncation


def test_windows_are_held_flat_and_read_as_the_dicts_of_the_tokenizer(tokenizer):
    """make_windows keeps the windows flat (text_features.QAWindows); each reads as the dict made
    from the tokenizer's own windows, with answers and without, and slices give lists of them."""
    from seqtune.tasks.qa_features import _window_feature

    settings = WindowSettings(max_length=40, doc_stride=12)
    examples = [example("Who keeps the zebra?", long_context(30, "The zebra keeper is Ada Lovelace.", 20), "Ada"),
                example("What colour?", "A goldenrod flower.", None, qid="q2")]
    windows = make_windows(examples, tokenizer, settings)
    backend = tokenizer.backend
    backend.enable_truncation(40, stride=12, strategy="only_second")
    try:
        encodings = backend.encode_batch([(ex.question, ex.context) for ex in examples])
    finally:
        backend.no_truncation()
    expected = [_window_feature(w, ex, i) for i, (ex, first) in enumerate(zip(examples, encodings))
                for w in [first, *first.overflowing]]
    assert len(windows) == len(expected) >= 3
    for got, want in zip([windows[i] for i in range(len(windows))], expected, strict=True):
        assert got.keys() == want.keys()
        for key in want:
            assert np.array_equal(got[key], want[key]) and type(got[key]) is type(want[key]), key
    assert "start_positions" in windows[0] and "start_positions" not in windows[-1]
    assert [w["example_index"] for w in windows[1:]] == [w["example_index"] for w in expected[1:]]
    assert list(windows.lengths) == [len(w["input_ids"]) for w in expected]
