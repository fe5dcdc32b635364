"""Record ids in tagging's JSONL files (data.id_column): read as they are, checked, absent when not asked for."""

from __future__ import annotations

import json

import pytest

from seqtune.data.readers.conll import read_tagged
from seqtune.errors import SeqtuneError


def write(path, records):
    path.write_text("".join(json.dumps(r) + "\n" for r in records))
    return path


def test_ids_are_read_as_they_are_and_missing_ones_are_none(tmp_path):
    path = write(tmp_path / "t.jsonl", [{"id": "s1", "tokens": ["a", "b"], "tags": ["O", "B-X"]},
                                        {"tokens": ["c"], "tags": ["O"]},
                                        {"id": 7, "tokens": ["d"], "tags": ["O"]}])
    sentences = read_tagged(str(path), id_key="id")
    assert [s.id for s in sentences] == ["s1", None, 7]
    assert [s.tokens for s in sentences] == [["a", "b"], ["c"], ["d"]]
    assert [s.tags for s in sentences] == [["O", "B-X"], ["O"], ["O"]]
    assert [s.id for s in read_tagged(str(path))] == [None, None, None]  # no id_key: no ids
    assert [s.id for s in read_tagged(str(path), id_key="name")] == [None, None, None]


def test_an_id_that_is_not_a_string_or_number_is_an_error_naming_the_record(tmp_path):
    path = write(tmp_path / "t.jsonl", [{"id": "ok", "tokens": ["a"]}, {"id": ["x"], "tokens": ["b"]}])
    with pytest.raises(SeqtuneError) as e:
        read_tagged(str(path), labelled=False, id_key="id")
    assert str(e.value) == (f"{path}:2: the record id 'id' must be a string or a whole number, found ['x'].")
