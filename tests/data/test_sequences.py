"""Per-residue labelled sequences: CSV/TSV/JSONL/FASTA layouts, masks, and the bad-input cases."""

from __future__ import annotations

import json

import pytest

from seqtune.data.readers.formats import detect_format
from seqtune.data.readers.sequences import SEQUENCE_FORMATS, read_sequences
from seqtune.errors import SeqtuneError

# The example of the issue: 23 residues, 29 labels.
ISSUE_RECORD = "DFASDGFTHGFDDFSDASFDASF , 00000001111111100000000022222"


def write(tmp_path, name: str, text: str) -> str:
    path = tmp_path / name
    path.write_text(text)
    return str(path)


def test_csv_characters_and_mask(tmp_path):
    path = write(tmp_path, "train.csv", "id,input,dssp3,resolved_mask\np1,MKV,HEC,011\np2,AA,CC,11\n")
    records = read_sequences(path, sequence_column="input", label_column="dssp3", mask_column="resolved_mask")
    assert [(r.id, r.sequence, r.labels, r.mask) for r in records] == [
        ("p1", "MKV", ["H", "E", "C"], [False, True, True]),
        ("p2", "AA", ["C", "C"], [True, True]),
    ]
    assert records[1].where == f"{path}:3 (record 2)"


def test_csv_space_separated_fields_like_cb513(tmp_path):
    text = "input, dssp3, disorder\nR T D,C C H,1.0 0.0 1.0\n"
    path = write(tmp_path, "cb.csv", text)
    (r,) = read_sequences(path, sequence_column="input", label_column="dssp3", mask_column="disorder",
                          id_column=None)
    assert (r.sequence, r.labels, r.mask) == ("RTD", ["C", "C", "H"], [True, False, True])


def test_space_separated_multi_character_labels(tmp_path):
    path = write(tmp_path, "t.tsv", "sequence\tlabels\nACG\texon exon intron\n")
    (r,) = read_sequences(path)
    assert r.labels == ["exon", "exon", "intron"]


def test_issue_example_length_mismatch_names_record_and_both_lengths(tmp_path):
    path = write(tmp_path, "train.csv", "sequence,labels\nAAAA,0000\n" + ISSUE_RECORD + "\n")
    with pytest.raises(SeqtuneError) as err:
        read_sequences(path)
    message = str(err.value)
    assert f"{path}:3 (record 2)" in message
    assert "23 residues" in message and "29 labels" in message


def test_mask_length_mismatch(tmp_path):
    path = write(tmp_path, "t.csv", "sequence,labels,mask\nAAA,HHH,11\n")
    with pytest.raises(SeqtuneError, match=r"record 1\).*3 residues but the mask has 2 values"):
        read_sequences(path, mask_column="mask")


def test_bad_mask_value(tmp_path):
    path = write(tmp_path, "t.csv", "sequence,labels,mask\nAA,HH,1 x\n")
    with pytest.raises(SeqtuneError, match="mask value 'x'"):
        read_sequences(path, mask_column="mask")


def test_empty_sequence(tmp_path):
    path = write(tmp_path, "t.csv", "sequence,labels\nAA,HH\n , \n")
    with pytest.raises(SeqtuneError, match=r"record 2\): empty sequence"):
        read_sequences(path)


def test_missing_column_lists_the_columns(tmp_path):
    path = write(tmp_path, "t.csv", "seq,labels\nAA,HH\n")
    with pytest.raises(SeqtuneError, match=r"no column 'sequence'.*'seq', 'labels'"):
        read_sequences(path)


def test_jsonl_strings_and_lists(tmp_path):
    rows = [{"sequence": "MK", "labels": "HE"}, {"sequence": ["A", "C"], "labels": ["x", "y"], "id": 5}]
    path = write(tmp_path, "t.jsonl", "\n".join(json.dumps(r) for r in rows) + "\n")
    records = read_sequences(path)
    assert [(r.sequence, r.labels, r.id) for r in records] == [("MK", ["H", "E"], None), ("AC", ["x", "y"], "5")]


def test_jsonl_length_mismatch(tmp_path):
    path = write(tmp_path, "t.jsonl", json.dumps({"sequence": "MKV", "labels": "HE"}) + "\n")
    with pytest.raises(SeqtuneError, match=r"t.jsonl:1 \(record 1\): the sequence has 3 residues but .* 2 labels"):
        read_sequences(path)


def test_fasta_three_line_records_with_optional_mask(tmp_path):
    path = write(tmp_path, "t.fasta", ">p1 first\nMKV\nHEC\n\n>p2\nAA\nCC\n")
    records = read_sequences(path)
    assert [(r.id, r.sequence, r.labels) for r in records] == [("p1", "MKV", ["H", "E", "C"]), ("p2", "AA", ["C", "C"])]
    masked = write(tmp_path, "m.fasta", ">p1\nMKV\nHEC\n011\n")
    assert read_sequences(masked, mask_column="mask")[0].mask == [False, True, True]


def test_fasta_length_mismatch_and_wrong_line_count(tmp_path):
    path = write(tmp_path, "t.fasta", ">ok\nAA\nCC\n>bad\nDFASDGFTHGFDDFSDASFDASF\n00000001111111100000000022222\n")
    with pytest.raises(SeqtuneError, match=r"t.fasta:4 \(record 2\): the sequence has 23 residues but .* 29 labels"):
        read_sequences(path)
    wrapped = write(tmp_path, "w.fasta", ">p\nAAAA\nAA\nCCCCCC\n")
    with pytest.raises(SeqtuneError, match=r"record 1\): a labelled FASTA record has 2 lines .* this one has 3"):
        read_sequences(wrapped)


def test_plain_fasta_for_prediction_joins_wrapped_lines(tmp_path):
    path = write(tmp_path, "p.fa", ">a\nMKV\nLL\n>b\nC\n")
    records = read_sequences(path, labelled=False)
    assert [(r.id, r.sequence, r.labels) for r in records] == [("a", "MKVLL", None), ("b", "C", None)]


def test_prediction_csv_ignores_missing_labels(tmp_path):
    path = write(tmp_path, "p.csv", "sequence\nMKV\n")
    assert read_sequences(path, labelled=False, mask_column="mask")[0].labels is None


def test_format_detection():
    def sequence_format(path):
        return detect_format(path, "auto", SEQUENCE_FORMATS)

    assert sequence_format("x/CB513.fasta") == "fasta"
    assert sequence_format("x/train.csv") == "csv"
    with pytest.raises(SeqtuneError, match="cannot tell the format"):
        sequence_format("x/train.dat")


@pytest.mark.slow
def test_shared_protein_ss_files(shared_data):
    base = shared_data / "protein_ss"
    test = read_sequences(str(base / "test_new364.csv"), sequence_column="input", label_column="dssp3",
                          mask_column="resolved_mask")
    assert len(test) == 364 and sum(len(r.sequence) for r in test) == 84541
    cb513 = read_sequences(str(base / "cb513" / "CB513_HHblits.csv"), sequence_column="input",
                           label_column="dssp3", mask_column="disorder", id_column=None)
    assert sum(len(r.sequence) for r in cb513) == 144011
    assert sum(len(r.mask) - sum(r.mask) for r in cb513) == 3525  # disordered residues (PROVENANCE.md)
    fasta = read_sequences(str(base / "cb513" / "CB513.fasta"), labelled=False)
    assert [r.sequence for r in fasta] == [r.sequence for r in cb513]
