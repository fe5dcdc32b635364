"""The table reader on small hand-checked files: exact rows, line numbers, formats, row limits and
the full text of its messages (each names the file, and the line where one is to blame)."""

from __future__ import annotations

import pytest

from seqtune.data.readers.table import Table, read_table
from seqtune.errors import SeqtuneError


def message(call, *args, **kwargs) -> str:
    with pytest.raises(SeqtuneError) as e:
        call(*args, **kwargs)
    return str(e.value)


def test_csv_rows_lines_and_format(tmp_path):
    """Blank and whitespace-only lines are skipped (the line numbers still count them); a row whose
    first field is empty is a row, not a blank line."""
    path = tmp_path / "t.csv"
    path.write_text('text,label\n"a, quoted",1\n\n   \n,0\nlast,1\n')
    table = read_table(path)
    assert (table.path, table.columns, table.header, table.format) == (str(path), ["text", "label"], True, "csv")
    assert table.rows == [{"text": "a, quoted", "label": "1"}, {"text": "", "label": "0"},
                          {"text": "last", "label": "1"}]
    assert table.lines == [2, 5, 6]
    assert table.where(1) == f"{path}:5"


def test_tsv_and_jsonl_formats_are_recorded(tmp_path):
    (tmp_path / "t.tsv").write_text("text\tlabel\na\t1\n")
    assert read_table(tmp_path / "t.tsv").format == "tsv"
    (tmp_path / "h.tsv").write_text("a\t1\n")
    headerless = read_table(tmp_path / "h.tsv", header=False)
    assert (headerless.format, headerless.header, headerless.columns) == ("tsv", False, [0, 1])
    (tmp_path / "t.jsonl").write_text('{"text": "a"}\n\n{"label": 2, "text": "b"}\n')
    table = read_table(tmp_path / "t.jsonl")
    assert (table.format, table.header, table.columns) == ("jsonl", True, ["text", "label"])
    assert table.rows == [{"text": "a"}, {"label": 2, "text": "b"}] and table.lines == [1, 3]


@pytest.mark.parametrize("name, text", [
    ("t.csv", "text\na\nb\nc,too,many\n"),
    ("t.tsv", "text\na\nb\nc\ttoo\tmany\n"),
    ("t.jsonl", '{"text": "a"}\n{"text": "b"}\n[1, 2]\n'),
])
def test_max_rows_stops_reading(tmp_path, name, text):
    """Rows after the limit are not read at all (so a bad line there is no error)."""
    (tmp_path / name).write_text(text)
    first = 1 if name == "t.jsonl" else 2  # the line of the first record
    for limit in (1, 2):
        table = read_table(tmp_path / name, max_rows=limit)
        assert [row["text"] for row in table.rows] == ["a", "b"][:limit]
        assert table.lines == [first, first + 1][:limit]
    with pytest.raises(SeqtuneError):
        read_table(tmp_path / name)


@pytest.mark.parametrize("name, text", [
    ("t.csv", "text,label\ncafé,1\n"),
    ("t.tsv", "text\tlabel\ncafé\t1\n"),
    ("t.jsonl", '{"text": "café", "label": 1}\n'),
])
def test_the_encoding_is_used_for_every_format(tmp_path, name, text):
    path = tmp_path / name
    path.write_bytes(text.encode("latin-1"))
    assert read_table(path, encoding="latin-1").rows[0]["text"] == "café"
    assert "not UTF-8 text" in message(read_table, path)  # the default is UTF-8


def test_wrong_field_count_messages(tmp_path):
    (tmp_path / "t.csv").write_text("text,label\nok,1\nbad,1,extra\n")
    assert message(read_table, tmp_path / "t.csv") == (
        f"{tmp_path / 't.csv'}:3: expected 2 fields (text, label) but found 3. Quote fields that contain commas.")
    (tmp_path / "t.tsv").write_text("text\tlabel\nok\t1\nshort\n")
    assert message(read_table, tmp_path / "t.tsv") == (
        f"{tmp_path / 't.tsv'}:3: expected 2 fields (text, label) but found 1. "
        "TSV files are read with quoting off, so a tab inside a text splits it.")
    (tmp_path / "h.csv").write_text("\na,1\nb,0,x\n")
    assert message(read_table, tmp_path / "h.csv", header=False) == (
        f"{tmp_path / 'h.csv'}:3: expected 2 fields (as on line 2) but found 3. Quote fields that contain commas.")


def test_empty_file_messages(tmp_path):
    (tmp_path / "e.csv").write_text("")
    assert message(read_table, tmp_path / "e.csv") == (
        f"{tmp_path / 'e.csv'}: the file is empty (a header line with column names is required; set "
        "data.header: false for a file without one).")
    assert message(read_table, tmp_path / "e.csv", header=False) == (
        f"{tmp_path / 'e.csv'}: the file has no records (it is empty).")
    (tmp_path / "h.csv").write_text("text,label\n\n")
    assert message(read_table, tmp_path / "h.csv") == (
        f"{tmp_path / 'h.csv'}: the file has no records (it is empty after the header line).")
    (tmp_path / "e.jsonl").write_text("\n")
    assert message(read_table, tmp_path / "e.jsonl") == (
        f"{tmp_path / 'e.jsonl'}: the file has no records (it is empty after the header line).")


def test_jsonl_messages(tmp_path):
    (tmp_path / "t.jsonl").write_text('{"text": "a"}\n\n[1, 2]\n')
    assert message(read_table, tmp_path / "t.jsonl") == (
        f"{tmp_path / 't.jsonl'}:3: expected a JSON object per line, got list.")
    assert message(read_table, tmp_path / "t.jsonl", header=False) == (
        f"{tmp_path / 't.jsonl'}: data.header is false, but JSONL records name their fields; leave data.header "
        "at true and give field names.")


def test_has_names_a_column_the_way_the_file_does(tmp_path):
    named = Table("t.csv", ["text", "label"], [{"text": "a", "label": "1"}], [2])
    assert named.has("text") and named.has("label") and not named.has("id")
    assert not named.has(0) and not named.has(1)
    numbered = Table("t.csv", [0, 1], [{0: "a", 1: "1"}], [1], header=False)
    assert numbered.has(0) and numbered.has(1) and not numbered.has(2)
    assert not numbered.has("text") and not numbered.has("0")


def test_require_messages(tmp_path):
    csv_table = Table("t.csv", ["text", "label"], [{}], [2])
    csv_table.require("text", "data.text_column", "text")  # present: no error
    assert message(csv_table.require, "sentence", "data.text_column", "text") == (
        "t.csv: no column 'sentence' (data.text_column, the text); the file has columns: 'text', 'label'. "
        "Set it in the config's data section, or with --set data.text_column=NAME (train, evaluate and "
        "predict all take --set).")
    assert message(csv_table.require, 0, "data.text_column", "text") == (
        "t.csv: data.text_column is 0, a column number, but data.header is true: the columns are 'text', "
        "'label'. Give the column name, or set data.header: false for a file without a header row.")
    empty_jsonl = Table("t.jsonl", [], [{}], [1], format="jsonl")
    assert message(empty_jsonl.require, "text", "data.text_column", "text") == (
        "t.jsonl: no column 'text' (data.text_column, the text); the file has columns: none. "
        "Set it in the config's data section, or with --set data.text_column=NAME (train, evaluate and "
        "predict all take --set).")
    assert message(empty_jsonl.require, 1, "data.label_column", "label") == (
        "t.jsonl: data.label_column is 1, a column number, but JSONL records name their fields: the columns "
        "are none. Give the column name.")
    numbered = Table("t.tsv", [0, 1, 2], [{}], [4], header=False, format="tsv")
    numbered.require(2, "data.label_column", "label")
    assert message(numbered.require, 3, "data.label_column", "label") == (
        "t.tsv:4: data.label_column is 3, but the line has 3 columns (0..2; data.header is false, so columns "
        "are numbered from 0).")
    assert message(numbered.require, -1, "data.label_column", "label").startswith("t.tsv:4: data.label_column is -1")
    assert message(numbered.require, "label", "data.label_column", "label") == (
        "t.tsv: data.label_column is 'label', a column name, but data.header is false (no header row), so "
        "columns are chosen by 0-based number: this file has 3 (0..2).")
