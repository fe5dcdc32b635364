"""The SQuAD reader on small hand-checked files: which questions are read (selectors, row limits, the
layout told by content), what each one holds, and the full text of every message (each names the
file and the article, paragraph, line or question id to blame)."""

from __future__ import annotations

import json

import pytest

from seqtune.data.readers.squad import Answer, QAExample, parse_selector, read_squad
from seqtune.errors import SeqtuneError

CONTEXT = "Paris is in France."


def message(call, *args, **kwargs) -> str:
    with pytest.raises(SeqtuneError) as e:
        call(*args, **kwargs)
    return str(e.value)


def write_json(tmp_path, document, name="s.json") -> str:
    path = tmp_path / name
    path.write_text(json.dumps(document))
    return str(path)


def write_jsonl(tmp_path, records, name="s.jsonl") -> str:
    path = tmp_path / name
    path.write_text("".join((r if isinstance(r, str) else json.dumps(r)) + "\n" for r in records))
    return str(path)


def squad(*articles) -> dict:
    return {"version": "1.1", "data": list(articles)}


def article(qas, title="T", context=CONTEXT) -> dict:
    return {"title": title, "paragraphs": [{"context": context, "qas": qas}]}


def question(qid, answers=(("France", 12),), **extra) -> dict:
    return {"id": qid, "question": "Where?", "answers": [{"text": t, "answer_start": s} for t, s in answers], **extra}


def test_answer_and_example_properties():
    assert Answer("France", 12).end == 18
    assert QAExample("q", "Where?", CONTEXT, []).is_impossible
    assert not QAExample("q", "Where?", CONTEXT, None).is_impossible  # unlabelled, not unanswerable
    assert not QAExample("q", "Where?", CONTEXT, [Answer("France", 12)]).is_impossible


def test_parse_selector():
    assert parse_selector("x.json#articles=0:32") == ("x.json", slice(0, 32))
    assert parse_selector("x.json#articles= 3 : ") == ("x.json", slice(3, None))
    assert parse_selector("x.json#articles=:") == ("x.json", slice(None, None))
    assert parse_selector("dir#articles/x.json") == ("dir#articles/x.json", None)
    for spec in ("1:2:3", "5", "a:b", "1:2#articles=3"):
        assert message(parse_selector, f"x.json#articles={spec}") == (
            f"x.json#articles={spec}: the article selector {spec!r} is not a slice; write e.g. "
            "'x.json#articles=0:32' (first 32 articles) or 'x.json#articles=32:' (from article 32 on).")


def test_squad_json_examples_exactly(tmp_path):
    path = write_json(tmp_path, squad(
        article([question("q1"), question("q2", answers=[("Paris", 0), ("Paris is", 0)])], title="Paris"),
        {"paragraphs": [{"context": "Rome is in Italy.", "qas": [
            {"id": 7, "question": "Which country?", "answers": [{"text": "Italy", "answer_start": 11}]},
            {"id": "q4", "question": "Unlabelled?"}]}]},
    ))
    examples = read_squad(path)
    assert [(e.id, e.question, e.context, e.title, e.answers, e.where) for e in examples] == [
        ("q1", "Where?", CONTEXT, "Paris", [Answer("France", 12)], f"{path}: question id 'q1' ('Paris', paragraph 0)"),
        ("q2", "Where?", CONTEXT, "Paris", [Answer("Paris", 0), Answer("Paris is", 0)],
         f"{path}: question id 'q2' ('Paris', paragraph 0)"),
        ("7", "Which country?", "Rome is in Italy.", "", [Answer("Italy", 11)],
         f"{path}: question id '7' ('', paragraph 0)"),
        ("q4", "Unlabelled?", "Rome is in Italy.", "", None, f"{path}: question id 'q4' ('', paragraph 0)"),
    ]


def test_selectors_and_max_rows(tmp_path):
    path = write_json(tmp_path, squad(article([question("a1"), question("a2")]), article([question("b1")]),
                                      article([question("c1")])))
    assert [e.id for e in read_squad(path + "#articles=1:")] == ["b1", "c1"]
    assert [e.id for e in read_squad(path + "#articles=:2")] == ["a1", "a2", "b1"]
    assert [e.id for e in read_squad(path + "#articles=1:2")] == ["b1"]
    for limit, ids in ((1, ["a1"]), (2, ["a1", "a2"]), (3, ["a1", "a2", "b1"]), (9, ["a1", "a2", "b1", "c1"])):
        assert [e.id for e in read_squad(path, max_rows=limit)] == ids
    assert [e.id for e in read_squad(path + "#articles=1:", max_rows=1)] == ["b1"]
    assert message(read_squad, path + "#articles=3:") == (
        f"{path}#articles=3:: the dataset has no questions in the articles chosen (3:; the file has 3 articles, "
        "numbered from 0).")
    assert message(read_squad, write_json(tmp_path, squad(), "e.json")) == (
        f"{tmp_path / 'e.json'}: the dataset has no questions.")


def test_jsonl_examples_exactly(tmp_path):
    path = write_jsonl(tmp_path, [
        {"id": "a", "question": "Where?", "context": CONTEXT, "title": "Paris",
         "answers": {"text": ["France", "France."], "answer_start": [12, 12]}},
        "",
        {"id": 9, "question": "Which city?", "context": CONTEXT, "answers": [{"text": "Paris", "answer_start": 0}]},
        {"question": "Unanswerable?", "context": CONTEXT, "answers": {"text": [], "answer_start": []}},
        {"question": "Unlabelled?", "context": CONTEXT},
        {"question": "No lists?", "context": CONTEXT, "answers": {}},  # two empty lists: unanswerable
    ])
    examples = read_squad(path)
    assert [(e.id, e.question, e.context, e.title, e.answers, e.where) for e in examples] == [
        ("a", "Where?", CONTEXT, "Paris", [Answer("France", 12), Answer("France.", 12)], f"{path}:1 (question id 'a')"),
        ("9", "Which city?", CONTEXT, "", [Answer("Paris", 0)], f"{path}:3 (question id '9')"),
        ("4", "Unanswerable?", CONTEXT, "", [], f"{path}:4 (question id '4')"),
        ("5", "Unlabelled?", CONTEXT, "", None, f"{path}:5 (question id '5')"),
        ("6", "No lists?", CONTEXT, "", [], f"{path}:6 (question id '6')"),
    ]
    assert [e.id for e in read_squad(path, max_rows=2)] == ["a", "9"]


def test_layout_is_told_by_content_whatever_the_extension(tmp_path):
    """An extension no format claims is read as SQuAD JSON (here indented, so its first line is no JSON
    object), or as JSONL when its lines are JSON objects."""
    document = tmp_path / "dev.data"
    document.write_text(json.dumps(squad(article([question("q1")])), indent=1))
    assert [(e.id, e.answers) for e in read_squad(str(document))] == [("q1", [Answer("France", 12)])]
    lines = write_jsonl(tmp_path, [{"id": "a", "question": "Q", "context": "C"}], "dev.lines")
    assert [e.id for e in read_squad(lines)] == ["a"]


def test_jsonl_one_line_and_the_encoding(tmp_path):
    """A JSONL file of one record parses as one JSON object without 'data': it is read as JSONL."""
    path = write_jsonl(tmp_path, [{"id": "x", "question": "Où?", "context": "À Paris.", "answers": [
        {"text": "Paris", "answer_start": 2}]}])
    (example,) = read_squad(path)
    assert (example.id, example.question, example.answers, example.where) == (
        "x", "Où?", [Answer("Paris", 2)], f"{path}:1 (question id 'x')")
    latin = tmp_path / "latin.json"
    latin.write_bytes(json.dumps(squad(article([question("q", answers=[("France", 8)])], context="Café in France.")),
                                 ensure_ascii=False).encode("latin-1"))
    assert read_squad(str(latin), encoding="latin-1")[0].context == "Café in France."
    latin_lines = tmp_path / "latin.jsonl"
    latin_lines.write_bytes((json.dumps({"id": "z", "question": "Où?", "context": "À Paris."}, ensure_ascii=False)
                             + "\n" + json.dumps({"id": "y", "question": "Q", "context": "C"}) + "\n").encode("latin-1"))
    assert [e.question for e in read_squad(str(latin_lines), encoding="latin-1")] == ["Où?", "Q"]
    assert "not UTF-8 text" in message(read_squad, str(latin_lines))


def test_document_messages(tmp_path):
    text = tmp_path / "str.json"
    text.write_text('"just text"')
    assert message(read_squad, str(text)) == (
        f"{text}: expected SQuAD JSON (an object with a 'data' list of articles) or JSONL (one question object "
        "per line), found a JSON str.")
    lines = write_jsonl(tmp_path, [{"id": "a", "question": "Q", "context": "C"}, {"id": "b", "question": "Q",
                                                                                   "context": "C"}])
    assert message(read_squad, lines + "#articles=0:1") == (
        f"{lines}#articles=0:1: an article selector needs a SQuAD JSON file with articles; this file is JSONL "
        "(one question per line). Use data.max_rows or split the file instead.")
    data = write_json(tmp_path, {"data": {"title": "T"}}, "d.json")
    assert message(read_squad, data) == f"{data}: 'data' must be a list of articles, found dict."


@pytest.mark.parametrize("document, blame", [
    (squad("not an article"), "article 0: expected an object with 'title' and 'paragraphs'."),
    (squad({"title": "T"}), "article 0: missing 'paragraphs'."),
    (squad({"title": "T", "paragraphs": "text"}), "article 0: 'paragraphs' must be a list, found str."),
    (squad({"title": "T", "paragraphs": ["text"]}), "article 0 ('T'), paragraph 0: expected an object with "
                                                    "'context' and 'qas'."),
    (squad({"title": "T", "paragraphs": [{"context": CONTEXT}]}), "article 0 ('T'), paragraph 0: missing 'qas'."),
    (squad(article(["q"])), "article 0 ('T'), paragraph 0: each entry of 'qas' must be an object with 'id' and "
                            "'question'."),
    (squad(article([{"question": "Where?"}])), "article 0 ('T'), paragraph 0: a question has no 'id' (needed to "
                                                "report its prediction)."),
    (squad(article([{"id": " ", "question": "Where?"}])), "article 0 ('T'), paragraph 0: a question has no 'id' "
                                                          "(needed to report its prediction)."),
    (squad(article([question("q1")]), article([question("q2")], context=" ")),
     "article 1 ('T'), paragraph 0: the context is empty or not text (' '); every question needs a question and a "
     "context."),
    (squad(article([{"id": "q", "question": 3}])), "question id 'q' ('T', paragraph 0): the question is empty or "
                                                   "not text (3); every question needs a question and a context."),
    (squad(article([{"id": "q", "question": "W?", "answers": {"text": "France"}}])),
     "question id 'q' ('T', paragraph 0): 'answers' must be a list, found dict."),
    (squad(article([{"id": "q", "question": "W?", "answers": ["France"]}])),
     "question id 'q' ('T', paragraph 0): answer 0 has no text (found None)."),
    (squad(article([question("q", answers=[("France", 12), ("", 0)])])),
     "question id 'q' ('T', paragraph 0): answer 1 has no text (found '')."),
    (squad(article([question("q", answers=[("France", "12")])])),
     "question id 'q' ('T', paragraph 0): answer 0 ('France') has no integer answer_start (found '12')."),
    (squad(article([question("q", answers=[("France", True)])])),
     "question id 'q' ('T', paragraph 0): answer 0 ('France') has no integer answer_start (found True)."),
    (squad(article([question("q", answers=[("France", 11)])])),
     "question id 'q' ('T', paragraph 0): answer 0 'France' does not match the context at answer_start 11: the "
     "context has ' Franc' there. answer_start must be the character offset of the answer in the context."),
    (squad(article([question("q", answers=[("Paris", 19)])])),
     "question id 'q' ('T', paragraph 0): answer 0 'Paris' does not match the context at answer_start 19: the "
     "context has only 19 characters. answer_start must be the character offset of the answer in the context."),
    (squad(article([question("q", answers=[("France", -7)])])),  # context[-7:-1] is 'France': still refused
     "question id 'q' ('T', paragraph 0): answer 0 'France' does not match the context at answer_start -7: the "
     "context has only 19 characters. answer_start must be the character offset of the answer in the context."),
    (squad(article([question("q", answers=[("France", 0)])])),
     "question id 'q' ('T', paragraph 0): answer 0 'France' does not match the context at answer_start 0: the "
     "context has 'Paris ' there. answer_start must be the character offset of the answer in the context."),
    (squad(article([question("q", answers=[("Paris", -1)])])),
     "question id 'q' ('T', paragraph 0): answer 0 'Paris' does not match the context at answer_start -1: the "
     "context has only 19 characters. answer_start must be the character offset of the answer in the context."),
    (squad(article([question("q", is_impossible="yes")])),
     "question id 'q' ('T', paragraph 0): is_impossible must be true or false, found 'yes'."),
    (squad(article([question("q", answers=[("France", 12), ("France", 12)], is_impossible=True)])),
     "question id 'q' ('T', paragraph 0): is_impossible is true but the question has 2 answers."),
    (squad(article([question("q", answers=[], is_impossible=False)])),
     "question id 'q' ('T', paragraph 0): is_impossible is false but the question has no answers."),
])
def test_squad_json_messages(tmp_path, document, blame):
    path = write_json(tmp_path, document)
    assert message(read_squad, path) == f"{path}: {blame}"


def test_is_impossible_reconciled_with_the_answers(tmp_path):
    path = write_json(tmp_path, squad(article([
        {"id": "none", "question": "W?", "is_impossible": True},  # no answers list: unanswerable
        question("empty", answers=[], is_impossible=True),
        question("has", is_impossible=False),
        {"id": "unlabelled", "question": "W?", "is_impossible": False},  # no answers: still unlabelled
    ])))
    assert [(e.id, e.answers) for e in read_squad(path)] == [
        ("none", []), ("empty", []), ("has", [Answer("France", 12)]), ("unlabelled", None)]


@pytest.mark.parametrize("record, blame", [
    ({"id": "a", "question": "Q", "context": CONTEXT, "answers": {"text": ["France"], "answer_start": []}},
     "'answers' must hold two lists of equal length, 'text' and 'answer_start'; found "
     "{'text': ['France'], 'answer_start': []}."),
    ({"id": "a", "question": "Q", "context": CONTEXT, "answers": {"text": "France", "answer_start": [12]}},
     "'answers' must hold two lists of equal length, 'text' and 'answer_start'; found "
     "{'text': 'France', 'answer_start': [12]}."),
    ({"id": "a", "question": "Q", "context": CONTEXT, "answers": {"text": ["France"], "answer_start": 12}},
     "'answers' must hold two lists of equal length, 'text' and 'answer_start'; found "
     "{'text': ['France'], 'answer_start': 12}."),
    ({"id": "a", "question": "Q", "context": CONTEXT, "answers": {"text": ["France"]}},
     "'answers' must hold two lists of equal length, 'text' and 'answer_start'; found {'text': ['France']}."),
    ({"id": "a", "question": "Q", "context": CONTEXT, "answers": "France"},
     "'answers' must be {\"text\": [...], \"answer_start\": [...]}, found 'France'."),
    ({"id": "a", "question": "Q", "context": CONTEXT, "answers": {"text": ["Paris"], "answer_start": [1]}},
     "answer 0 'Paris' does not match the context at answer_start 1: the context has 'aris ' there. "
     "answer_start must be the character offset of the answer in the context."),
    ({"id": "a", "question": "Q", "context": CONTEXT, "answers": [{"text": "Paris", "answer_start": 0}, "x"]},
     "answer 1 has no text (found None)."),
    ({"id": "a", "question": "Q", "context": CONTEXT, "answers": [{"answer_start": 0}]},
     "answer 0 has no text (found None)."),
    ({"id": "a", "question": "Q", "context": CONTEXT, "answers": [{"text": "Paris"}]},
     "answer 0 ('Paris') has no integer answer_start (found None)."),
    ({"id": "a", "question": "  ", "context": CONTEXT}, "the question is empty or not text ('  '); every question "
                                                        "needs a question and a context."),
    ({"id": "a", "question": "Q"}, "the context is missing; every question needs a question and a context."),
    ({"id": "a", "question": "Q", "context": CONTEXT, "answers": [], "is_impossible": False},
     "is_impossible is false but the question has no answers."),
])
def test_jsonl_messages(tmp_path, record, blame):
    path = write_jsonl(tmp_path, [{"id": "first", "question": "Q", "context": "C"}, record])
    assert message(read_squad, path) == f"{path}:2 (question id 'a'): {blame}"


def test_jsonl_without_a_usable_id(tmp_path):
    path = write_jsonl(tmp_path, [{"id": "", "question": "Q", "context": "C"}])
    assert message(read_squad, path) == f"{path}:1: a question has no 'id' (needed to report its prediction)."
    path = write_jsonl(tmp_path, [{"id": None, "question": "Q", "context": "C"}], "none.jsonl")
    assert message(read_squad, path) == f"{path}:1: a question has no 'id' (needed to report its prediction)."


def test_duplicate_ids_name_both_places(tmp_path):
    path = write_json(tmp_path, squad(article([question("q1")]), article([question("q1")], title="U")))
    assert message(read_squad, path) == (
        f"{path}: question id 'q1' ('U', paragraph 0): the question id 'q1' is used twice (first at {path}: "
        "question id 'q1' ('T', paragraph 0)); predictions are keyed by id, so ids must be unique.")
    lines = write_jsonl(tmp_path, [{"question": "Q", "context": "C"}, {"id": "1", "question": "Q", "context": "C"}])
    assert message(read_squad, lines) == (
        f"{lines}:2 (question id '1'): the question id '1' is used twice (first at {lines}:1 (question id '1')); "
        "predictions are keyed by id, so ids must be unique.")
