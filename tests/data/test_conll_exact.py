"""CoNLL/JSONL reading pinned exactly: where each sentence starts, max_sentences with document
boundaries, negative and boundary column numbers, and the exact messages of each bad input."""

from __future__ import annotations

import json

import pytest

from seqtune.data.readers.conll import read_tagged
from seqtune.errors import SeqtuneError


def write(tmp_path, name: str, text: str) -> str:
    path = tmp_path / name
    path.write_text(text)
    return str(path)


def test_sentences_start_where_their_first_word_is(tmp_path):
    path = write(tmp_path, "t.conll", "\n\nA x B-ORG\nb y O\n-DOCSTART- -X- O\nC z O\n\n\nD w I-PER\n")
    sentences = read_tagged(path)
    assert [(s.tokens, s.tags, s.where) for s in sentences] == [
        (["A", "b"], ["B-ORG", "O"], f"{path}:3"),
        (["C"], ["O"], f"{path}:6"),  # -DOCSTART- ends a sentence without a blank line
        (["D"], ["I-PER"], f"{path}:9"),
    ]


def test_max_sentences(tmp_path):
    path = write(tmp_path, "t.conll", "a O\n\nb O\n-DOCSTART- O\nc O\n\nd O\n")
    assert [s.tokens for s in read_tagged(path, max_sentences=1)] == [["a"]]
    assert [s.tokens for s in read_tagged(path, max_sentences=2)] == [["a"], ["b"]]
    assert [s.tokens for s in read_tagged(path, max_sentences=3)] == [["a"], ["b"], ["c"]]
    assert len(read_tagged(path)) == 4
    # a column error after the last sentence wanted is never reached
    bad_later = write(tmp_path, "b.conll", "a O\n\nb O x\n")
    assert [s.tokens for s in read_tagged(bad_later, max_sentences=1)] == [["a"]]


@pytest.mark.parametrize("token_column, tag_column, tokens, tags", [
    (0, -1, ["EU", "rejects"], ["B-ORG", "O"]),
    (0, 2, ["EU", "rejects"], ["B-ORG", "O"]),
    (-3, 1, ["EU", "rejects"], ["NNP", "VBZ"]),
    (1, 0, ["NNP", "VBZ"], ["EU", "rejects"]),
    (-1, -3, ["B-ORG", "O"], ["EU", "rejects"]),
])
def test_columns_by_number(tmp_path, token_column, tag_column, tokens, tags):
    path = write(tmp_path, "t.conll", "EU NNP B-ORG\nrejects VBZ O\n")
    (sentence,) = read_tagged(path, token_column=token_column, tag_column=tag_column)
    assert (sentence.tokens, sentence.tags) == (tokens, tags)


@pytest.mark.parametrize("token_column, tag_column, message", [
    (3, -1, r"t\.conll:1: data\.token_column is 3 but the line has only 3 columns \(valid: 0\.\.2, or -1 for the last\)\."),
    (-4, -1, r"data\.token_column is -4 but the line has only 3 columns"),
    (0, 3, r"data\.tag_column is 3 but"),
    (0, -4, r"data\.tag_column is -4 but"),
    (0, -3, r"t\.conll: data\.token_column and data\.tag_column name the same column \(0\)\."),
    (2, -1, r"name the same column \(2\)"),
])
def test_bad_columns(tmp_path, token_column, tag_column, message):
    path = write(tmp_path, "t.conll", "EU NNP B-ORG\n")
    with pytest.raises(SeqtuneError, match=message):
        read_tagged(path, token_column=token_column, tag_column=tag_column)


def test_unlabelled_input_does_not_check_the_tag_column(tmp_path):
    path = write(tmp_path, "t.conll", "EU\nrejects\n")
    (sentence,) = read_tagged(path, labelled=False, tag_column=5)
    assert sentence.tokens == ["EU", "rejects"] and sentence.tags is None
    with pytest.raises(SeqtuneError, match="tag_column is 5"):
        read_tagged(path, tag_column=5)
    with pytest.raises(SeqtuneError, match="name the same column"):
        read_tagged(path)  # one column: the word and the tag would be the same


def test_column_count_message(tmp_path):
    path = write(tmp_path, "t.conll", "a x O\n\nb y\n")
    with pytest.raises(SeqtuneError) as error:
        read_tagged(path)
    assert str(error.value) == (
        f"{path}:3: found 2 columns but line 1 has 3; every word line of a CoNLL file needs the same columns "
        "(separated by spaces or tabs). The line reads: 'b y'.")


def test_no_sentences(tmp_path):
    with pytest.raises(SeqtuneError, match=r"t\.conll: the file has no sentences\."):
        read_tagged(write(tmp_path, "t.conll", "-DOCSTART- O\n\n\n"))


def test_jsonl_exact(tmp_path):
    path = write(tmp_path, "t.jsonl", json.dumps({"w": ["EU", "rejects"], "t": ["B-ORG", "O"]}) + "\n"
                 + json.dumps({"w": ["x"], "t": ["O"]}) + "\n")
    sentences = read_tagged(path, tokens_key="w", tags_key="t")
    assert [(s.tokens, s.tags, s.where) for s in sentences] == [
        (["EU", "rejects"], ["B-ORG", "O"], f"{path}:1"), (["x"], ["O"], f"{path}:2")]
    assert len(read_tagged(path, tokens_key="w", tags_key="t", max_sentences=1)) == 1
    (unlabelled, _) = read_tagged(path, labelled=False, tokens_key="w")
    assert unlabelled.tags is None


@pytest.mark.parametrize("record, labelled, message", [
    ({"words": ["a"]}, True,
     "expected an object with 'tokens' and 'tags' lists, e.g. {\"tokens\": [\"EU\", \"rejects\"], \"tags\": [\"B-ORG\", \"O\"]}."),
    ({"words": ["a"]}, False,
     "expected an object with 'tokens' lists, e.g. {\"tokens\": [\"EU\", \"rejects\"], \"tags\": [\"B-ORG\", \"O\"]}."),
    ({"tokens": []}, True, "empty sentence ('tokens' has no words); remove the record."),
    ({"tokens": ["a", 1], "tags": ["O", "O"]}, True, "'tokens' must be a list of strings, found ['a', 1]."),
    ({"tokens": ["a"], "tags": "O"}, True, "'tags' must be a list of strings, found O."),
    ({"tokens": ["a"], "tags": [""]}, True, "'tags' item 0 is empty or only whitespace."),
    ({"tokens": ["a", "b"], "tags": ["O"]}, True, "2 words but 1 tags; every word needs exactly one tag."),
    ({"tokens": ["a"]}, True, "the record has no 'tags' list (one tag per word)."),
])
def test_jsonl_messages(tmp_path, record, labelled, message):
    path = write(tmp_path, "t.jsonl", json.dumps(record) + "\n")
    with pytest.raises(SeqtuneError) as error:
        read_tagged(path, labelled=labelled)
    assert str(error.value) == f"{path}:1: {message}"


def test_a_fasta_file_is_no_tagging_file(tmp_path):
    with pytest.raises(SeqtuneError, match="A tagging task does not read fasta files"):
        read_tagged(write(tmp_path, "t.conll", ">a\nAC\n"))


def test_latin_1_conll(tmp_path):
    path = tmp_path / "t.conll"
    path.write_bytes("café O\nthé B-X\n".encode("latin-1"))
    (sentence,) = read_tagged(str(path), encoding="latin-1")
    assert sentence.tokens == ["café", "thé"]
    path = tmp_path / "t.jsonl"
    path.write_bytes(json.dumps({"tokens": ["café"], "tags": ["O"]}, ensure_ascii=False).encode("latin-1"))
    assert read_tagged(str(path), encoding="latin-1")[0].tokens == ["café"]


def test_long_lines_are_cut_in_messages(tmp_path):
    long_word = "w" * 200
    path = write(tmp_path, "t.conll", f"a x O\n{long_word} O\n")
    with pytest.raises(SeqtuneError) as error:
        read_tagged(path)
    assert str(error.value).endswith(f"The line reads: {(long_word + ' O')[:120]!r}.")
    path = write(tmp_path, "t.jsonl", json.dumps({"tokens": "x" * 200, "tags": ["O"]}) + "\n")
    with pytest.raises(SeqtuneError) as error:
        read_tagged(path)
    assert str(error.value).endswith(f"found {'x' * 80}.")
