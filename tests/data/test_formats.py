"""One format detection for every task; every reader takes a UTF-8 byte-order mark and gzip."""

from __future__ import annotations

import gzip
import json

import pytest

from seqtune.data.corpus import read_corpus
from seqtune.data.readers.conll import TAGGING_FORMATS, read_tagged
from seqtune.data.readers.fasta import read_fasta
from seqtune.data.readers.formats import TABLE_FORMATS, detect_format
from seqtune.data.readers.lines import read_lines
from seqtune.data.readers.sequences import SEQUENCE_FORMATS, read_sequences
from seqtune.data.readers.squad import read_squad
from seqtune.data.readers.table import read_table
from seqtune.errors import SeqtuneError

BOM = "\ufeff"
SQUAD = {"version": "1.1", "data": [{"title": "T", "paragraphs": [{"context": "Paris is in France.", "qas": [
    {"id": "q1", "question": "Where is Paris?", "answers": [{"text": "France", "answer_start": 12}]}]}]}]}


def test_one_detection_function_with_per_task_choices():
    assert detect_format("a/train.txt", allowed=TAGGING_FORMATS) == "conll"
    assert detect_format("a/train.txt", allowed=("text", "fasta", "csv", "tsv", "jsonl")) == "text"
    assert detect_format("a/train.tsv", allowed=TAGGING_FORMATS) == "conll"
    assert detect_format("a/train.tsv") == "tsv"
    assert detect_format("a/train.tsv.gz") == "tsv"
    assert detect_format("a/CB513.fasta.gz", allowed=SEQUENCE_FORMATS) == "fasta"
    assert detect_format("a/dev.data", allowed=("squad", "jsonl"), default="squad") == "squad"


def test_detection_errors_name_the_file_and_the_formats_allowed():
    with pytest.raises(SeqtuneError, match=r"a/train\.dat: cannot tell the format .*'\.dat'.*csv \(.*tsv \(.*jsonl \("):
        detect_format("a/train.dat")
    with pytest.raises(SeqtuneError, match=r"a/t\.fasta: data.format 'fasta' is not a classification format; "
                                           r"use auto or one of: csv .*tsv .*jsonl"):
        detect_format("a/t.fasta", "fasta", TABLE_FORMATS, "classification")


def test_tasks_refuse_a_declared_format_they_cannot_read(tmp_path):
    (tmp_path / "t.csv").write_text("text,label\na,1\n")
    with pytest.raises(SeqtuneError, match="t.csv: data.format 'conll' is not a table format"):
        read_table(str(tmp_path / "t.csv"), "conll")
    with pytest.raises(SeqtuneError, match="t.csv: data.format 'csv' is not a question-answering format"):
        read_squad(str(tmp_path / "t.csv"), fmt="csv")
    with pytest.raises(SeqtuneError, match="t.csv: data.format 'squad' is not a corpus format"):
        read_corpus(tmp_path / "t.csv", "squad")


def test_tsv_is_read_with_quoting_off_everywhere(tmp_path):
    """GLUE texts hold unbalanced quotes: a quoting reader would swallow the next lines."""
    (tmp_path / "c.tsv").write_text('text\tid\n"an opening quote only\t1\nnext line\t2\n')
    assert [r.text for r in read_corpus(tmp_path / "c.tsv").records] == ['"an opening quote only', "next line"]
    table = read_table(str(tmp_path / "c.tsv"))
    assert [row["text"] for row in table.rows] == ['"an opening quote only', "next line"]


def write_bom(path, text: str, compress: bool = False) -> str:
    data = (BOM + text).encode("utf-8")
    path.write_bytes(gzip.compress(data) if compress else data)
    return str(path)


@pytest.mark.parametrize("compress", [False, True])
def test_byte_order_mark_table_formats(tmp_path, compress):
    gz = ".gz" if compress else ""
    tsv = write_bom(tmp_path / f"train.tsv{gz}", "Quality\t#1 String\n1\tAmrozi accused\n", compress)
    assert read_table(tsv).columns == ["Quality", "#1 String"]
    csv_path = write_bom(tmp_path / f"train.csv{gz}", "text,label\ngood,1\n", compress)
    assert read_table(csv_path).rows == [{"text": "good", "label": "1"}]
    jsonl = write_bom(tmp_path / f"train.jsonl{gz}", '{"text": "good", "label": 1}\n', compress)
    assert read_table(jsonl).rows == [{"text": "good", "label": 1}]


@pytest.mark.parametrize("compress", [False, True])
def test_byte_order_mark_conll_and_tagging_jsonl(tmp_path, compress):
    gz = ".gz" if compress else ""
    conll = write_bom(tmp_path / f"train.conll{gz}", "EU B-ORG\nrejects O\n", compress)
    assert read_tagged(conll)[0].tokens == ["EU", "rejects"]
    jsonl = write_bom(tmp_path / f"train.jsonl{gz}", '{"tokens": ["EU"], "tags": ["B-ORG"]}\n', compress)
    assert read_tagged(jsonl)[0].tags == ["B-ORG"]


@pytest.mark.parametrize("compress", [False, True])
def test_byte_order_mark_fasta_and_sequence_tables(tmp_path, compress):
    gz = ".gz" if compress else ""
    fasta = write_bom(tmp_path / f"train.fasta{gz}", ">p1\nMKV\nHEC\n", compress)
    assert [(r.id, r.sequence, r.labels) for r in read_sequences(fasta)] == [("p1", "MKV", ["H", "E", "C"])]
    assert read_fasta(fasta)[0].lines == ["MKV", "HEC"]
    csv_path = write_bom(tmp_path / f"train.csv{gz}", "sequence,labels\nMKV,HEC\n", compress)
    assert read_sequences(csv_path)[0].sequence == "MKV"


@pytest.mark.parametrize("compress", [False, True])
def test_byte_order_mark_squad_json_and_jsonl(tmp_path, compress):
    gz = ".gz" if compress else ""
    squad = write_bom(tmp_path / f"dev.json{gz}", json.dumps(SQUAD), compress)
    assert [e.answers[0].text for e in read_squad(squad)] == ["France"]
    record = {"id": "q1", "question": "Where?", "context": "In France.",
              "answers": {"text": ["France"], "answer_start": [3]}}
    jsonl = write_bom(tmp_path / f"dev.jsonl{gz}", json.dumps(record) + "\n", compress)
    assert read_squad(jsonl)[0].id == "q1"


@pytest.mark.parametrize("compress", [False, True])
def test_byte_order_mark_corpora(tmp_path, compress):
    gz = ".gz" if compress else ""
    text = write_bom(tmp_path / f"c.txt{gz}", "first line\nsecond\n", compress)
    assert [r.text for r in read_corpus(text).records] == ["first line", "second"]
    assert read_lines(text).lines[0] == (1, "first line")
    fasta = write_bom(tmp_path / f"c.fa{gz}", ">a\nMK\nVL\n", compress)
    assert [r.text for r in read_corpus(fasta).records] == ["MKVL"]
    table = write_bom(tmp_path / f"c.csv{gz}", "text\nACGT\n", compress)
    assert [r.text for r in read_corpus(table).records] == ["ACGT"]
    jsonl = write_bom(tmp_path / f"c.jsonl{gz}", '{"text": "ACGT"}\n', compress)
    assert [r.text for r in read_corpus(jsonl).records] == ["ACGT"]


def test_bad_bytes_and_bad_gzip_are_clear_errors(tmp_path):
    (tmp_path / "t.tsv").write_bytes(b"text\tlabel\n\xff\xfe\t1\n")
    with pytest.raises(SeqtuneError, match=r"t.tsv:2: not UTF-8 text: byte 0xFF at position 1 of line 2 "
                                           r"\(file offset 11\)"):
        read_table(str(tmp_path / "t.tsv"))
    (tmp_path / "t.conll.gz").write_bytes(b"EU B-ORG\n")
    with pytest.raises(SeqtuneError, match="t.conll.gz: not a readable gzip file"):
        read_tagged(str(tmp_path / "t.conll.gz"))
