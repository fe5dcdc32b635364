"""CoNLL and JSONL readers for word tagging: layout, options and every bad-input case."""

from __future__ import annotations

import json

import pytest

from seqtune.data.readers.conll import TAGGING_FORMATS, read_tagged
from seqtune.data.readers.formats import detect_format
from seqtune.errors import SeqtuneError

CONLL = """-DOCSTART- -X- -X- O

EU NNP B-NP B-ORG
rejects VBZ B-VP O
German JJ B-NP B-MISC

Peter NNP B-NP B-PER
Blackburn NNP B-NP I-PER


-DOCSTART- -X- -X- O
BRUSSELS NNP B-NP B-LOC
1996-08-22 CD I-NP O
"""


def write(tmp_path, name: str, text: str):
    path = tmp_path / name
    path.write_text(text)
    return str(path)


def test_conll_sentences_tags_and_docstart(tmp_path):
    path = write(tmp_path, "train.txt", CONLL)
    sentences = read_tagged(path)
    assert [s.tokens for s in sentences] == [
        ["EU", "rejects", "German"], ["Peter", "Blackburn"], ["BRUSSELS", "1996-08-22"]]
    assert [s.tags for s in sentences] == [["B-ORG", "O", "B-MISC"], ["B-PER", "I-PER"], ["B-LOC", "O"]]
    # -DOCSTART- ends a sentence even without a blank line before the next word
    assert sentences[2].where == f"{path}:12"
    assert sentences[0].where == f"{path}:3"


def test_conll_tag_column_is_configurable(tmp_path):
    path = write(tmp_path, "train.txt", CONLL)
    pos = read_tagged(path, token_column=0, tag_column=1)
    chunk = read_tagged(path, tag_column=-2)
    assert pos[0].tags == ["NNP", "VBZ", "JJ"]
    assert chunk[1].tags == ["B-NP", "B-NP"]


def test_conll_tabs_crlf_and_max_sentences(tmp_path):
    path = tmp_path / "t.conll"
    path.write_bytes(b"a\tO\r\nb\tB-X\r\n\r\nc\tO\r\n\r\nd\tO\r\n")
    assert [s.tags for s in read_tagged(str(path))] == [["O", "B-X"], ["O"], ["O"]]
    assert len(read_tagged(str(path), max_sentences=2)) == 2


def test_conll_wrong_column_count_names_file_and_line(tmp_path):
    text = CONLL.replace("Blackburn NNP B-NP I-PER", "Blackburn NNP I-PER")
    path = write(tmp_path, "bad.txt", text)
    with pytest.raises(SeqtuneError, match=rf"{path}:8: found 3 columns but line 3 has 4"):
        read_tagged(path)


def test_conll_tag_column_out_of_range(tmp_path):
    path = write(tmp_path, "t.txt", "a O\nb O\n")
    with pytest.raises(SeqtuneError, match=r"tag_column is 5 but the line has only 2 columns"):
        read_tagged(path, tag_column=5)


def test_conll_prediction_input_may_lack_tags(tmp_path):
    path = write(tmp_path, "words.txt", "EU\nrejects\n\nPeter\n")
    sentences = read_tagged(path, labelled=False)
    assert [s.tokens for s in sentences] == [["EU", "rejects"], ["Peter"]]
    assert all(s.tags is None for s in sentences)
    # labelled reading of the same file needs a tag column distinct from the word
    with pytest.raises(SeqtuneError, match="same column"):
        read_tagged(path)


def test_conll_without_sentences(tmp_path):
    path = write(tmp_path, "empty.txt", "-DOCSTART- -X- -X- O\n\n\n")
    with pytest.raises(SeqtuneError, match="no sentences"):
        read_tagged(path)


def test_jsonl_sentences(tmp_path):
    rows = [{"tokens": ["EU", "rejects"], "tags": ["B-ORG", "O"]}, {"tokens": ["Hi"], "tags": ["O"], "id": 7}]
    path = write(tmp_path, "train.jsonl", "\n".join(json.dumps(r) for r in rows) + "\n\n")
    sentences = read_tagged(path)
    assert [s.tokens for s in sentences] == [["EU", "rejects"], ["Hi"]]
    assert sentences[1].where == f"{path}:2"


def test_jsonl_custom_keys(tmp_path):
    path = write(tmp_path, "t.jsonl", json.dumps({"words": ["a"], "ner": ["O"]}) + "\n")
    assert read_tagged(path, tokens_key="words", tags_key="ner")[0].tags == ["O"]


def test_jsonl_empty_sentence_is_an_error(tmp_path):
    rows = [{"tokens": ["a"], "tags": ["O"]}, {"tokens": [], "tags": []}]
    path = write(tmp_path, "t.jsonl", "\n".join(json.dumps(r) for r in rows))
    with pytest.raises(SeqtuneError, match=rf"{path}:2: empty sentence"):
        read_tagged(path)


def test_jsonl_tag_count_mismatch(tmp_path):
    path = write(tmp_path, "t.jsonl", json.dumps({"tokens": ["a", "b", "c"], "tags": ["O", "O"]}))
    with pytest.raises(SeqtuneError, match=r":1: 3 words but 2 tags"):
        read_tagged(path)


@pytest.mark.parametrize("line, message", [
    ('{"tokens": ["a"]', "not valid JSON"),
    ('{"words": ["a"], "tags": ["O"]}', "expected an object with 'tokens'"),
    ('{"tokens": "a b", "tags": ["O"]}', "must be a list of strings"),
    ('{"tokens": ["a", " "], "tags": ["O", "O"]}', "item 1 is empty"),
    ('{"tokens": ["a"]}', "no 'tags' list"),
])
def test_jsonl_bad_records(tmp_path, line, message):
    path = write(tmp_path, "t.jsonl", '{"tokens": ["x"], "tags": ["O"]}\n' + line + "\n")
    with pytest.raises(SeqtuneError, match=rf"t.jsonl:2: .*{message}"):
        read_tagged(path)


def tagging_format(path: str, fmt: str = "auto") -> str:
    return detect_format(path, fmt, TAGGING_FORMATS, "tagging")


def test_format_from_extension_and_setting(tmp_path):
    assert tagging_format("a/train.txt") == "conll"
    assert tagging_format("a/train.jsonl") == "jsonl"
    assert tagging_format("a/train.data", "conll") == "conll"
    with pytest.raises(SeqtuneError, match="cannot tell the format"):
        tagging_format("a/train.data")
    with pytest.raises(SeqtuneError, match="not a tagging format"):
        tagging_format("a/train.csv", "csv")


@pytest.mark.slow
def test_conll2003_counts_match_provenance(shared_data):
    counts = {}
    for split in ("train", "valid", "test"):
        sentences = read_tagged(str(shared_data / "conll2003" / f"{split}.txt"))
        counts[split] = (len(sentences), sum(len(s.tokens) for s in sentences))
    assert counts == {"train": (14041, 203621), "valid": (3250, 51362), "test": (3453, 46435)}
