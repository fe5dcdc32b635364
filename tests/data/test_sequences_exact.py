"""The per-residue sequence reader on small hand-checked inputs: how fields are split into residues,
labels and mask values, which columns are read (labelled or not), row limits and encodings, and the
full text of its messages (each names the file, line and record, and the setting to change)."""

from __future__ import annotations

import json

import pytest

from seqtune.data.readers.sequences import (
    LabelledSequence,
    iter_fasta_records,
    make_record,
    parse_mask,
    parse_sequence,
    read_sequences,
    split_items,
)
from seqtune.errors import SeqtuneError


def message(call, *args, **kwargs) -> str:
    with pytest.raises(SeqtuneError) as e:
        call(*args, **kwargs)
    return str(e.value)


def write(tmp_path, name: str, text: str) -> str:
    path = tmp_path / name
    path.write_text(text)
    return str(path)


@pytest.mark.parametrize("value, items", [
    ("MKV", ["M", "K", "V"]), ("  MKV \n", ["M", "K", "V"]), ("M K  V", ["M", "K", "V"]),
    ("exon\tintron", ["exon", "intron"]), (["H", 1, 0.5], ["H", "1", "0.5"]), ("", []), ([], []),
])
def test_split_items(value, items):
    assert split_items(value, "labels", "w") == items


def test_split_items_refuses_other_values():
    assert message(split_items, 5, "sequence", "f.jsonl:3 (record 2)") == (
        "f.jsonl:3 (record 2): the sequence should be a string or a list, found 5.")
    assert message(split_items, {"a": 1}, "mask", "w") == "w: the mask should be a string or a list, found {'a': 1}."


def test_parse_sequence():
    assert parse_sequence("M K V", "w") == "MKV" and parse_sequence(["A", "C"], "w") == "AC"
    assert message(parse_sequence, "  ", "f.csv:2 (record 1)") == (
        "f.csv:2 (record 1): empty sequence; every record needs at least one residue.")
    assert message(parse_sequence, "M KV LA", "f.csv:2 (record 1)") == (
        "f.csv:2 (record 1): the sequence is split into items of more than one character (e.g. 'KV'); "
        "residues must be single characters.")
    assert message(parse_sequence, 7, "w") == "w: the sequence should be a string or a list, found 7."


@pytest.mark.parametrize("value, mask", [
    ("0110", [False, True, True, False]), (" 1 ", [True]), ("0", [False]),
    ("1 0 1", [True, False, True]), ("1.0 0.0 0.5", [True, False, True]), ("-1 0", [True, False]),
    ("True false YES no", [True, False, True, False]), ([True, False, 1, 0, "1", 2.5], [True, False, True, False,
                                                                                          True, True]),
])
def test_parse_mask(value, mask):
    assert parse_mask(value, "w") == mask


def test_parse_mask_messages():
    assert message(parse_mask, "1 x", "f.csv:2 (record 1)") == (
        "f.csv:2 (record 1): mask value 'x' is not 0/1 (or a number, or true/false).")
    assert message(parse_mask, "01a", "w") == "w: mask value 'a' is not 0/1 (or a number, or true/false)."
    assert message(parse_mask, 1, "f.jsonl:1 (record 1)") == (
        "f.jsonl:1 (record 1): the mask should be a string or a list, found 1.")


def test_make_record():
    record = make_record("M K V", "H E C", "0 1 1", 7, "w")
    assert record == LabelledSequence("MKV", ["H", "E", "C"], [False, True, True], "7", "w")
    assert make_record("MKV", None, None, None, "w") == LabelledSequence("MKV", None, None, None, "w")
    assert message(make_record, "MKV", "HE", None, None, "f.csv:2 (record 1)") == (
        "f.csv:2 (record 1): the sequence has 3 residues but labels has 2 labels; every residue needs exactly one "
        "label (one character each, or separated by spaces).")
    assert message(make_record, "MKV", "HEC", "11", None, "f.csv:2 (record 1)") == (
        "f.csv:2 (record 1): the sequence has 3 residues but the mask has 2 values.")
    assert message(make_record, "MKV", 3, None, None, "f.jsonl:1 (record 1)") == (
        "f.jsonl:1 (record 1): the labels should be a string or a list, found 3.")
    assert message(make_record, "MKV", "HEC", "1 1 z", None, "f.csv:2 (record 1)") == (
        "f.csv:2 (record 1): mask value 'z' is not 0/1 (or a number, or true/false).")


def test_table_records_exactly(tmp_path):
    path = write(tmp_path, "t.csv", "id,sequence,labels,mask\np1,MKV,HEC,011\n\np2,A C,x y,true false\n")
    assert read_sequences(path, mask_column="mask") == [
        LabelledSequence("MKV", ["H", "E", "C"], [False, True, True], "p1", f"{path}:2 (record 1)"),
        LabelledSequence("AC", ["x", "y"], [True, False], "p2", f"{path}:4 (record 2)"),
    ]
    assert [r.sequence for r in read_sequences(path, max_records=1)] == ["MKV"]
    assert read_sequences(path, id_column=None)[0].id is None
    assert read_sequences(path)[0].mask is None  # no mask column configured: every residue scored


def test_unlabelled_reading_ignores_labels_but_takes_a_mask_and_id_it_finds(tmp_path):
    path = write(tmp_path, "t.csv", "id,sequence,labels,mask\np1,MKV,HE,011\n")
    (record,) = read_sequences(path, labelled=False, mask_column="mask")
    assert (record.labels, record.mask, record.id) == (None, [False, True, True], "p1")
    no_mask = write(tmp_path, "n.csv", "sequence\nMKV\n")
    (record,) = read_sequences(no_mask, labelled=False, mask_column="mask")
    assert (record.sequence, record.labels, record.mask, record.id) == ("MKV", None, None, None)


def test_headerless_table_with_numbered_columns(tmp_path):
    path = write(tmp_path, "t.tsv", "p1\tMKV\tHEC\n")
    (record,) = read_sequences(path, header=False, sequence_column=1, label_column=2, id_column=0)
    assert (record.id, record.sequence, record.labels) == ("p1", "MKV", ["H", "E", "C"])
    # the default id column ("id") is a name: a headerless file cannot have it, and it is passed over
    assert read_sequences(path, header=False, sequence_column=1, label_column=2)[0].id is None


def test_column_messages_name_the_setting(tmp_path):
    path = write(tmp_path, "t.csv", "seq,lab\nMKV,HEC\n")
    columns = "the file has columns: 'seq', 'lab'. Set it in the config's data section, or with --set"
    assert message(read_sequences, path) == (
        f"{path}: no column 'sequence' (data.text_column, the sequence); {columns} data.text_column=NAME (train, "
        "evaluate and predict all take --set).")
    assert message(read_sequences, path, sequence_column="seq") == (
        f"{path}: no column 'labels' (data.label_column, the per-residue labels); {columns} data.label_column=NAME "
        "(train, evaluate and predict all take --set).")
    assert message(read_sequences, path, sequence_column="seq", label_column="lab", mask_column="mask") == (
        f"{path}: no column 'mask' (data.mask_column, the scoring mask); {columns} data.mask_column=NAME (train, "
        "evaluate and predict all take --set).")
    assert message(read_sequences, path, sequence_column="seq", label_column="lab", id_column=0).startswith(
        f"{path}: data.id_column is 0, a column number, but data.header is true")


def test_label_count_messages_name_the_column_or_the_line(tmp_path):
    path = write(tmp_path, "t.csv", "sequence,dssp3\nMKV,HE\n")
    assert message(read_sequences, path, label_column="dssp3") == (
        f"{path}:2 (record 1): the sequence has 3 residues but column 'dssp3' has 2 labels; every residue needs "
        "exactly one label (one character each, or separated by spaces).")
    fasta = write(tmp_path, "t.fasta", ">p1\nMKV\nHE\n")
    assert message(read_sequences, fasta) == (
        f"{fasta}:1 (record 1): the sequence has 3 residues but the label line has 2 labels; every residue needs "
        "exactly one label (one character each, or separated by spaces).")


def test_format_messages(tmp_path):
    path = write(tmp_path, "t.conll", "M H\n")
    assert message(read_sequences, path, "conll").startswith(
        f"{path}: data.format 'conll' is not a per-residue format; use auto or one of: csv (")
    jsonl = write(tmp_path, "t.jsonl", json.dumps({"sequence": "MKV", "labels": "HEC"}) + "\n")
    assert message(read_sequences, jsonl, "fasta").startswith(f"{jsonl}: data.format is 'fasta'")


def test_fasta_records_exactly(tmp_path):
    path = write(tmp_path, "t.fasta", ">p1 first\nMKV\nHEC\n; a comment\n>p2\nAA\nCC\n>p3\nG\nE\n")
    assert read_sequences(path) == [
        LabelledSequence("MKV", ["H", "E", "C"], None, "p1", f"{path}:1 (record 1)"),
        LabelledSequence("AA", ["C", "C"], None, "p2", f"{path}:5 (record 2)"),
        LabelledSequence("G", ["E"], None, "p3", f"{path}:8 (record 3)"),
    ]
    assert [r.id for r in read_sequences(path, max_records=2)] == ["p1", "p2"]
    # called directly, a labelled record has no mask line unless asked for, and the file is UTF-8
    assert [r.id for r in iter_fasta_records(path, labelled=True)] == ["p1", "p2", "p3"]
    assert [r.where for r in read_sequences(path, labelled=False)] == [
        f"{path}:1 (record 1)", f"{path}:5 (record 2)", f"{path}:8 (record 3)"]
    assert [r.sequence for r in read_sequences(path, labelled=False, max_records=1)] == ["MKVHEC"]


def test_fasta_encoding(tmp_path):
    latin = tmp_path / "l.fasta"
    latin.write_bytes(">é1\nMKV\n".encode("latin-1"))
    assert read_sequences(str(latin), labelled=False, encoding="latin-1")[0].id == "é1"
    assert "not UTF-8 text" in message(read_sequences, str(latin), labelled=False)
    utf8 = write(tmp_path, "u.fasta", ">é1\nMKV\nHEC\n")
    assert next(iter_fasta_records(utf8, labelled=True)).id == "é1"


def test_fasta_line_count_messages(tmp_path):
    path = write(tmp_path, "t.fasta", ">p1\nMKV\nHEC\n>p2\nAA\n")
    assert message(read_sequences, path) == (
        f"{path}:4 (record 2): a labelled FASTA record has 2 lines after the header (sequence, labels), each on one "
        "unwrapped line; this one has 1.")
    assert message(read_sequences, path, mask_column="mask") == (
        f"{path}:1 (record 1): a labelled FASTA record has 3 lines after the header (sequence, labels, mask), each "
        "on one unwrapped line; this one has 2.")
    empty = write(tmp_path, "e.fasta", "; only a comment\n")
    assert message(read_sequences, empty) == f"{empty}: the file has no FASTA records (lines starting with '>')."
    assert message(read_sequences, empty, labelled=False) == (
        f"{empty}: the file has no FASTA records (lines starting with '>').")
