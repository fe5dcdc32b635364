"""SQuAD JSON (v1.1, v2.0) and JSONL reading, article selection, and the errors for bad input."""

from __future__ import annotations

import json

import pytest

from seqtune.data.readers.squad import parse_selector, read_squad
from seqtune.errors import SeqtuneError

CONTEXT_A = "Denver Broncos won Super Bowl 50. The game was played in Santa Clara."
CONTEXT_B = "The Normans gave their name to Normandy, a region in France."


def squad_json(articles: list) -> dict:
    return {"version": "1.1", "data": articles}


def article(title: str, context: str, qas: list) -> dict:
    return {"title": title, "paragraphs": [{"context": context, "qas": qas}]}


def qa(qid: str, question: str, answers: list[tuple[str, int]], **extra) -> dict:
    return {"id": qid, "question": question,
            "answers": [{"text": t, "answer_start": s} for t, s in answers], **extra}


def write(tmp_path, name: str, content) -> str:
    path = tmp_path / name
    if isinstance(content, str):
        path.write_text(content)
    else:
        path.write_text(json.dumps(content))
    return str(path)


@pytest.fixture
def two_articles(tmp_path) -> str:
    return write(tmp_path, "squad.json", squad_json([
        article("Super_Bowl", CONTEXT_A, [
            qa("q1", "Who won Super Bowl 50?", [("Denver Broncos", 0), ("Broncos", 7)]),
            qa("q2", "Where was the game played?", [("Santa Clara", 57)]),
        ]),
        article("Normans", CONTEXT_B, [qa("q3", "Which region is named after the Normans?", [("Normandy", 31)])]),
    ]))


def test_reads_squad_v1_json_with_all_gold_answers(two_articles):
    examples = read_squad(two_articles)
    assert [e.id for e in examples] == ["q1", "q2", "q3"]
    q1 = examples[0]
    assert q1.context == CONTEXT_A and q1.title == "Super_Bowl"
    assert [(a.text, a.start, a.end) for a in q1.answers] == [("Denver Broncos", 0, 14), ("Broncos", 7, 14)]
    assert not q1.is_impossible
    assert examples[2].answers[0].text == CONTEXT_B[31:39]


def test_article_selector_takes_a_slice_of_articles(two_articles):
    assert [e.id for e in read_squad(two_articles + "#articles=0:1")] == ["q1", "q2"]
    assert [e.id for e in read_squad(two_articles + "#articles=1:")] == ["q3"]
    assert parse_selector("x.json#articles=:32") == ("x.json", slice(None, 32))
    assert parse_selector("x.json") == ("x.json", None)
    with pytest.raises(SeqtuneError, match="not a slice"):
        read_squad(two_articles + "#articles=first")
    with pytest.raises(SeqtuneError, match="no questions"):
        read_squad(two_articles + "#articles=5:")


def test_max_rows_limits_questions(two_articles):
    assert len(read_squad(two_articles, max_rows=2)) == 2


def test_reads_v2_unanswerable_questions(tmp_path):
    path = write(tmp_path, "v2.json", {"version": "v2.0", "data": [article("Normans", CONTEXT_B, [
        qa("has", "Which region?", [("Normandy", 31)], is_impossible=False),
        {"id": "none", "question": "Who named Paris?", "answers": [], "is_impossible": True,
         "plausible_answers": [{"text": "France", "answer_start": 53}]},
    ])]})
    has, none = read_squad(path)
    assert not has.is_impossible and has.answers[0].text == "Normandy"
    assert none.is_impossible and none.answers == []


def test_reads_jsonl_in_datasets_layout_and_unlabelled_records(tmp_path):
    lines = [
        {"id": "a", "question": "Who won?", "context": CONTEXT_A,
         "answers": {"text": ["Denver Broncos"], "answer_start": [0]}},
        {"id": "b", "question": "Who named Paris?", "context": CONTEXT_B,
         "answers": {"text": [], "answer_start": []}},
        {"question": "Where?", "context": CONTEXT_A},
    ]
    path = write(tmp_path, "qa.jsonl", "\n".join(json.dumps(x) for x in lines) + "\n")
    a, b, c = read_squad(path)
    assert a.answers[0].text == "Denver Broncos" and not a.is_impossible
    assert b.is_impossible
    assert c.answers is None and not c.is_impossible
    assert c.id == "3"  # no id: the line number
    with pytest.raises(SeqtuneError, match="needs a SQuAD JSON file with articles"):
        read_squad(path + "#articles=0:1")


def test_wrong_answer_start_names_the_record_and_the_text_found(tmp_path):
    path = write(tmp_path, "bad.json", squad_json([
        article("Super_Bowl", CONTEXT_A, [qa("q-bad", "Who won?", [("Denver Broncos", 3)])])]))
    with pytest.raises(SeqtuneError) as err:
        read_squad(path)
    message = str(err.value)
    assert "q-bad" in message and "bad.json" in message
    assert repr(CONTEXT_A[3:17]) in message  # the text actually at answer_start


def test_answer_start_past_the_context_is_an_error(tmp_path):
    line = {"id": "x", "question": "Who?", "context": "short", "answers": {"text": ["short"], "answer_start": [40]}}
    path = write(tmp_path, "far.jsonl", json.dumps(line) + "\n")
    with pytest.raises(SeqtuneError, match="only 5 characters"):
        read_squad(path)


@pytest.mark.parametrize("missing", ["context", "question"])
def test_missing_context_or_question(tmp_path, missing):
    line = {"id": "r7", "question": "Who won?", "context": CONTEXT_A}
    del line[missing]
    path = write(tmp_path, "missing.jsonl", json.dumps(line) + "\n")
    with pytest.raises(SeqtuneError, match=rf"missing\.jsonl:1 \(question id 'r7'\): the {missing} is missing"):
        read_squad(path)


def test_missing_context_in_squad_json(tmp_path):
    path = write(tmp_path, "noctx.json", squad_json([{"title": "T", "paragraphs": [{"qas": []}]}]))
    with pytest.raises(SeqtuneError, match="paragraph 0: the context is missing"):
        read_squad(path)


def test_empty_datasets(tmp_path):
    with pytest.raises(SeqtuneError, match="no questions"):
        read_squad(write(tmp_path, "empty.json", squad_json([])))
    with pytest.raises(SeqtuneError, match="no records"):
        read_squad(write(tmp_path, "empty.jsonl", "\n"))


def test_duplicate_ids_and_contradictory_flags(tmp_path):
    dup = write(tmp_path, "dup.json", squad_json([article("A", CONTEXT_A, [
        qa("same", "Who won?", [("Denver Broncos", 0)]), qa("same", "Where?", [("Santa Clara", 57)])])]))
    with pytest.raises(SeqtuneError, match="used twice"):
        read_squad(dup)
    flagged = write(tmp_path, "flag.json", squad_json([article("A", CONTEXT_A, [
        qa("f", "Who won?", [("Denver Broncos", 0)], is_impossible=True)])]))
    with pytest.raises(SeqtuneError, match="is_impossible is true but"):
        read_squad(flagged)


def test_not_squad_and_missing_file(tmp_path):
    with pytest.raises(SeqtuneError, match="found a JSON list"):
        read_squad(write(tmp_path, "list.json", [1, 2]))
    with pytest.raises(SeqtuneError, match="does not exist"):
        read_squad(str(tmp_path / "nope.json"))


def test_official_dev_file_split_by_article(shared_data):
    dev = shared_data / "squad_v1.1" / "dev-v1.1.json"
    everything = read_squad(str(dev))
    train = read_squad(f"{dev}#articles=0:32")
    evaluation = read_squad(f"{dev}#articles=32:")
    assert len(everything) == 10570  # the official count
    assert len(train) + len(evaluation) == 10570
    assert not {e.title for e in train} & {e.title for e in evaluation}
    assert len({e.title for e in train}) == 32 and len({e.title for e in evaluation}) == 16
