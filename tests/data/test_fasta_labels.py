"""FASTA records with one label each: the header's key=value field (UniProt-style values with spaces),
a labels table joined on the record id, and every way a label can be missing, each a clear error."""

from __future__ import annotations

import pytest

from seqtune.data.readers.fasta_labels import (
    header_value,
    read_fasta_texts,
    read_label_table,
)
from seqtune.errors import SeqtuneError


@pytest.mark.parametrize("header, key, value", [
    ("seq1 label=promoter", "label", "promoter"),
    ("sp|P69905|HBA_HUMAN Hemoglobin alpha OS=Homo sapiens OX=9606", "OS", "Homo sapiens"),
    ("sp|P69905|HBA_HUMAN Hemoglobin alpha OS=Homo sapiens OX=9606", "OX", "9606"),
    ("seq1 label=a b  ", "label", "a b"),
    ("seq1 label=", "label", ""),
    ("label=x seq1", "label", "x seq1"),  # at the start of the header
    ("seq1 mylabel=x", "label", None),  # the key must be a whole word
    ("seq1 label=x other=y", "other", "y"),
    ("seq1 a.b=1", "a.b", "1"),  # the key is matched literally
    ("seq1 axb=1", "a.b", None),
    ("seq1", "label", None),
])
def test_header_value(header, key, value):
    assert header_value(header, key) == value


def write(path, text):
    path.write_text(text)
    return str(path)


def test_labels_from_the_header_and_wrapped_sequences_joined(tmp_path):
    path = write(tmp_path / "a.fasta", ">s1 label=pos\nACGT\nAC\n\n; a comment\n>s2 x=1 label=neg\nTT\n")
    texts = read_fasta_texts(path, labelled=True)
    assert [(t.id, t.text, t.label) for t in texts] == [("s1", "ACGTAC", "pos"), ("s2", "TT", "neg")]
    assert texts[1].where == f"{path}:6 (record 2)"
    assert [t.label for t in read_fasta_texts(path, labelled=False)] == [None, None]
    assert len(read_fasta_texts(path, labelled=True, max_records=1)) == 1
    other = write(tmp_path / "b.fasta", ">s2 x=1 label=neg\nTT\n")
    assert read_fasta_texts(other, labelled=True, label_key="x")[0].label == "1"


def test_a_header_without_the_label_is_an_error(tmp_path):
    path = write(tmp_path / "a.fasta", ">s1 label=pos\nACGT\n>s2 kind=neg\nTT\n")
    with pytest.raises(SeqtuneError, match=r"a\.fasta:3 \(record 2\): the header >s2 kind=neg has no label=VALUE field"):
        read_fasta_texts(path, labelled=True)


def test_a_column_number_as_label_key_is_an_error(tmp_path):
    path = write(tmp_path / "a.fasta", ">s1 label=pos\nACGT\n")
    with pytest.raises(SeqtuneError, match="data.label_column is 1, a column number"):
        read_fasta_texts(path, labelled=True, label_key=1)
    assert read_fasta_texts(path, labelled=False, label_key=1)[0].label is None


def test_a_record_without_sequence_and_a_file_without_records(tmp_path):
    with pytest.raises(SeqtuneError, match=r":1 \(record 1\): the record >s1 label=pos has no sequence"):
        read_fasta_texts(write(tmp_path / "a.fasta", ">s1 label=pos\n>s2 label=neg\nAC\n"), labelled=True)
    with pytest.raises(SeqtuneError, match="the file has no FASTA records"):
        read_fasta_texts(write(tmp_path / "b.fasta", "\n; only a comment\n"), labelled=False)


def test_labels_from_a_table_joined_on_the_id(tmp_path):
    labels = write(tmp_path / "labels.tsv", "name\tclass\ns2\tneg\ns1\tpos\n s3 \tpos\n")
    path = write(tmp_path / "a.fasta", ">s1 label=ignored\nAC\n>s2\nTT\n>s3\nGG\n")
    texts = read_fasta_texts(path, labelled=True, label_key="class", labels_file=labels, id_column="name")
    assert [(t.id, t.label) for t in texts] == [("s1", "pos"), ("s2", "neg"), ("s3", "pos")]
    assert texts[0].where.endswith(f"(record 1), label from {labels}:3")
    # unlabelled reading never opens the table
    assert read_fasta_texts(path, labelled=False, labels_file=str(tmp_path / "missing.tsv"))[0].label is None


def test_records_missing_from_the_table_are_counted_and_named(tmp_path):
    labels = write(tmp_path / "labels.csv", "id,label\ns0,pos\n")
    path = write(tmp_path / "a.fasta", "".join(f">s{i}\nAC\n" for i in range(8)))
    with pytest.raises(SeqtuneError, match=r"a\.fasta: 7 records have no label in data\.labels_file .*labels\.csv "
                                           r"\(column 'id'\): 's1', 's2', 's3', 's4', 's5', \.\.\.\. Every"):
        read_fasta_texts(path, labelled=True, labels_file=labels)
    path = write(tmp_path / "b.fasta", ">s0\nAC\n>s1\nAC\n")
    with pytest.raises(SeqtuneError, match=r"1 records have no label .*: 's1'\. Every"):
        read_fasta_texts(path, labelled=True, labels_file=labels)


def test_label_table_rules(tmp_path):
    same_twice = write(tmp_path / "same.csv", "id,label\na,x\na,x\nb,y\n")
    assert read_label_table(same_twice, "id", "label") == {"a": ("x", f"{same_twice}:2"), "b": ("y", f"{same_twice}:4")}
    conflict = write(tmp_path / "conflict.csv", "id,label\na,x\nb,y\na,z\n")
    with pytest.raises(SeqtuneError, match=r"conflict\.csv:4: record id 'a' is listed again with label 'z'; "
                                           r".*conflict\.csv:2 gives it 'x'\. Keep one label per id\."):
        read_label_table(conflict, "id", "label")
    empty_id = write(tmp_path / "empty.csv", "id,label\na,x\n  ,y\n")
    with pytest.raises(SeqtuneError, match=r"empty\.csv:3: empty record id in column 'id'"):
        read_label_table(empty_id, "id", "label")
    with pytest.raises(SeqtuneError, match="data.id_column is not set"):
        read_label_table(same_twice, None, "label")
    no_header = write(tmp_path / "plain.tsv", "a\tx\nb\ty\n")
    assert read_label_table(no_header, 0, 1, header=False) == {"a": ("x", f"{no_header}:1"), "b": ("y", f"{no_header}:2")}


def test_a_header_without_an_id_with_a_labels_file(tmp_path):
    labels = write(tmp_path / "labels.csv", "id,label\na,x\n")
    path = write(tmp_path / "a.fasta", ">\nAC\n")
    with pytest.raises(SeqtuneError, match=r"the header has no id to look up in data\.labels_file"):
        read_fasta_texts(path, labelled=True, labels_file=labels)


def test_missing_columns_of_the_labels_table_are_named(tmp_path):
    labels = write(tmp_path / "labels.csv", "name,label\na,x\n")
    with pytest.raises(SeqtuneError, match=r"no column 'id' \(data\.id_column, the record ids of data\.labels_file\)"):
        read_label_table(labels, "id", "label")
    with pytest.raises(SeqtuneError, match=r"no column 'class' \(data\.label_column, the labels of data\.labels_file\)"):
        read_label_table(labels, "name", "class")
    with pytest.raises(SeqtuneError) as error:
        read_label_table(labels, None, "label")
    assert str(error.value) == (
        f"data.labels_file is {labels}, but data.id_column is not set; name the column of record ids to join the "
        "FASTA records on (e.g. --set data.id_column=id).")


def test_a_fasta_file_is_no_labels_table(tmp_path):
    table = write(tmp_path / "ids.csv", ">a\nAC\n")
    with pytest.raises(SeqtuneError, match="A labels task does not read fasta files"):
        read_label_table(table, "id", "label")


def test_a_labels_table_without_header_and_in_latin_1(tmp_path):
    labels = tmp_path / "labels.tsv"
    labels.write_bytes("s1\tcafé\ns2\tthé\n".encode("latin-1"))
    path = tmp_path / "a.fasta"
    path.write_bytes(">s1 note=é\nAC\n>s2\nTT\n".encode("latin-1"))
    texts = read_fasta_texts(str(path), labelled=True, label_key=1, labels_file=str(labels), id_column=0,
                             header=False, encoding="latin-1")
    assert [t.label for t in texts] == ["café", "thé"]
    (first,) = read_fasta_texts(str(path), labelled=True, label_key="note", encoding="latin-1", max_records=1)
    assert first.label == "é"


def test_long_headers_are_cut_in_messages(tmp_path):
    header = "s1 " + "x" * 100
    with pytest.raises(SeqtuneError) as error:
        read_fasta_texts(write(tmp_path / "a.fasta", f">{header}\n>s2\nAC\n"), labelled=False)
    assert f">{header[:60]} has no sequence." in str(error.value)
    with pytest.raises(SeqtuneError) as error:
        read_fasta_texts(write(tmp_path / "b.fasta", f">{header}\nAC\n"), labelled=True)
    assert f">{header[:80]} has no label=VALUE field. A labelled FASTA record reads e.g. '>seq1 label=promoter' " \
           "(data.label_column names the key), or set data.labels_file to a table of record ids and labels." \
           in str(error.value)


@pytest.mark.parametrize("missing, shown", [(5, "'s1', 's2', 's3', 's4', 's5'. Every"),
                                            (6, "'s1', 's2', 's3', 's4', 's5', .... Every")])
def test_at_most_five_missing_ids_are_shown(tmp_path, missing, shown):
    labels = write(tmp_path / "labels.csv", "id,label\ns0,pos\n")
    path = write(tmp_path / "a.fasta", "".join(f">s{i}\nAC\n" for i in range(missing + 1)))
    with pytest.raises(SeqtuneError) as error:
        read_fasta_texts(path, labelled=True, labels_file=labels)
    assert f"{missing} records have no label" in str(error.value) and shown in str(error.value)


def test_column_number_as_label_key_message(tmp_path):
    path = write(tmp_path / "a.fasta", ">s1 label=pos\nACGT\n")
    with pytest.raises(SeqtuneError) as error:
        read_fasta_texts(path, labelled=True, label_key=1)
    assert str(error.value) == (
        f"{path}: data.label_column is 1, a column number, but FASTA records take their label from a key=value "
        "field of the header, named by data.label_column (e.g. label for '>seq1 label=promoter'); or set "
        "data.labels_file to a table of labels.")
