"""What every reader shares (formats.py), on small hand-checked files: the format told by the first
line (also gzip-compressed or after a byte-order mark), the full text of the format and encoding
messages, and lines without their line endings."""

from __future__ import annotations

import codecs
import gzip
import json

import pytest

from seqtune.data.readers.conll import TAGGING_FORMATS
from seqtune.data.readers.formats import check_file, detect_format, numbered_lines, open_text, text_codec
from seqtune.data.readers.sequences import SEQUENCE_FORMATS
from seqtune.errors import SeqtuneError

HINT = ("If the file is in another encoding (e.g. Latin-1, or cp1252 from a Windows spreadsheet export), set "
        "data.encoding, e.g. --set data.encoding=latin-1; or convert the file to UTF-8.")
TABLES = ("csv (comma-separated columns), tsv (tab-separated columns, GLUE style), jsonl (one JSON object per "
          "line)")
CORPUS_FORMATS = ("text", "fasta", "csv", "tsv", "jsonl")


def message(call, *args, **kwargs) -> str:
    with pytest.raises(SeqtuneError) as e:
        call(*args, **kwargs)
    return str(e.value)


def write(tmp_path, name: str, data: str | bytes) -> str:
    path = tmp_path / name
    raw = data.encode() if isinstance(data, str) else data
    path.write_bytes(gzip.compress(raw) if name.lower().endswith(".gz") else raw)
    return str(path)


def read_all(path, encoding="utf-8") -> str:
    with open_text(path, encoding) as f:
        return f.read()


def test_unknown_extension_and_format_not_allowed_messages():
    assert message(detect_format, "a/train.dat") == (
        f"a/train.dat: cannot tell the format from the extension '.dat'; set data.format to one of: {TABLES}.")
    assert message(detect_format, "a/t.fasta", "fasta") == (
        f"a/t.fasta: data.format 'fasta' is not a data format; use auto or one of: {TABLES}.")


def test_declared_format_contradicted_by_the_content(tmp_path):
    path = write(tmp_path, "s.csv", "\n\n>seq1 " + "x" * 100 + "\nACGT\n")
    shown = repr((">seq1 " + "x" * 100)[:80])
    assert message(detect_format, path, "csv", SEQUENCE_FORMATS, "per-residue") == (
        f"{path}: data.format is 'csv' (set in the config or with --set, or saved with the model from the format "
        f"of its training files), but the file holds FASTA records ('>' header lines): line 3 reads {shown}. "
        "Set data.format to fasta or auto (train, evaluate and predict take --set data.format=auto).")
    assert message(detect_format, path, "csv", ("csv", "tsv"), "classification") == (
        f"{path}: data.format is 'csv' (set in the config or with --set, or saved with the model from the format "
        f"of its training files), but the file holds FASTA records ('>' header lines): line 3 reads {shown}. "
        "A classification task does not read fasta files; give one of: csv (comma-separated columns), tsv "
        "(tab-separated columns, GLUE style).")
    assert message(detect_format, path, allowed=("csv", "tsv"), what="classification").startswith(
        f"{path}: its extension says csv, but the file holds FASTA records ('>' header lines): line 3 reads")


def test_extension_contradicted_by_the_content(tmp_path):
    path = write(tmp_path, "t.tsv", '{"text": "a"}\n')
    assert message(detect_format, path, allowed=TAGGING_FORMATS[:1], what="tagging") == (
        f"{path}: its extension says conll, but the file holds one JSON object per line (JSONL): line 1 reads "
        "'{\"text\": \"a\"}'. A tagging task does not read jsonl files; give one of: conll (word and tag columns, "
        "a blank line between sentences).")


def test_a_declared_fasta_file_is_read_as_fasta(tmp_path):
    path = write(tmp_path, "p.fasta", ">p1\nMKV\nHEC\n")
    assert detect_format(path, "fasta", SEQUENCE_FORMATS) == "fasta"
    assert detect_format(path, "auto", SEQUENCE_FORMATS) == "fasta"


@pytest.mark.parametrize("name, text, allowed, fmt", [
    ("x.fasta", '{"sequence": "MKV"}\n', SEQUENCE_FORMATS, "jsonl"),  # JSON lines in a .fasta file
    ("x.csv", ">a\nMKV\n", SEQUENCE_FORMATS, "fasta"),  # the shortest FASTA header
    ("x.csv", ">_seq1\nMKV\n", SEQUENCE_FORMATS, "fasta"),
    ("x.csv", ">-seq1\nMKV\n", SEQUENCE_FORMATS, "csv"),  # not a header FASTA tools write
    ("x.conll", ">\nword O\n", TAGGING_FORMATS, "conll"),  # the word '>' alone
    ("x.conll", "> SYM O\n", TAGGING_FORMATS, "conll"),
    ("x.csv", "{not json\n", SEQUENCE_FORMATS, "csv"),
    ("x.csv", "[1, 2]\n", SEQUENCE_FORMATS, "csv"),  # JSON, but not an object
    ("c.txt", '{"text": "a"}\n', CORPUS_FORMATS, "text"),  # text lines can hold anything
    ("x.json", '>a\n', ("jsonl", "fasta"), "jsonl"),  # a JSON format is never sniffed
    ("x.csv", "", SEQUENCE_FORMATS, "csv"),
    ("x.csv", "\n  \n", SEQUENCE_FORMATS, "csv"),
])
def test_format_from_the_first_line(tmp_path, name, text, allowed, fmt):
    assert detect_format(write(tmp_path, name, text), "auto", allowed) == fmt


def test_first_line_of_gzip_and_after_a_byte_order_mark(tmp_path):
    assert detect_format(write(tmp_path, "x.csv.gz", ">p1\nMKV\n"), "auto", SEQUENCE_FORMATS) == "fasta"
    assert detect_format(write(tmp_path, "X.CSV.GZ", '{"a": 1}\n'), "auto", SEQUENCE_FORMATS) == "jsonl"
    bom = codecs.BOM_UTF8
    assert detect_format(write(tmp_path, "b.csv", bom + b">p1\nMKV\n"), "auto", SEQUENCE_FORMATS) == "fasta"
    assert detect_format(write(tmp_path, "j.csv", bom + json.dumps({"a": 1}).encode()), "auto",
                         SEQUENCE_FORMATS) == "jsonl"
    broken = tmp_path / "bad.csv.gz"
    broken.write_bytes(b"not gzip")
    assert detect_format(str(broken), "auto", SEQUENCE_FORMATS) == "csv"  # the reader reports it


def test_missing_file_message(tmp_path):
    path = tmp_path / "none.csv"
    assert message(check_file, path) == f"data file {str(path)!r} does not exist."
    assert message(check_file, tmp_path) == f"data file {str(tmp_path)!r} does not exist."  # a folder, not a file


def test_text_codec():
    assert [text_codec(e) for e in ("utf-8", "UTF8", "utf-8-sig", "latin-1", "cp1252")] == [
        "utf-8-sig", "utf-8-sig", "utf-8-sig", "iso8859-1", "cp1252"]
    assert message(text_codec, "klingon") == (
        "data.encoding 'klingon' is not a text encoding Python knows; use e.g. utf-8 (the default), latin-1, "
        "cp1252 or utf-16.")


def test_bad_byte_message_in_full(tmp_path):
    path = write(tmp_path, "t.txt", b"ok\ncaf\xe9 au lait  \n")
    shown = repr("caf\\xe9 au lait  ")  # trailing spaces kept, the line ending dropped
    assert message(read_all, path) == (
        f"{path}:2: not UTF-8 text: byte 0xE9 at position 4 of line 2 (file offset 6): invalid continuation byte. "
        f"The line reads {shown}. {HINT}")
    marked = write(tmp_path, "x.txt", b"\xff endsX\r\n")
    assert f"The line reads {repr(chr(92) + 'xff endsX')}." in message(read_all, marked)


def test_bad_byte_message_names_the_encoding_and_decodes_the_line_with_it(tmp_path):
    path = write(tmp_path, "t.txt", "café\n")  # UTF-8 bytes, read as ASCII
    assert message(read_all, path, "ascii") == (
        f"{path}:1: not ascii text: byte 0xC3 at position 4 of line 1 (file offset 3): ordinal not in range(128). "
        f"The line reads {repr('caf' + chr(92) + 'xc3' + chr(92) + 'xa9')}. {HINT}")


@pytest.mark.parametrize("data, line, position, offset, shown", [
    (b"abc\ndef\xe2\x82", 2, 4, 7, "def\\xe2\\x82"),  # a character cut off at the end of the file
    (b"caf\xe2\x82", 1, 4, 3, "caf\\xe2\\x82"),
])
def test_incomplete_character_at_the_end(tmp_path, data, line, position, offset, shown):
    path = write(tmp_path, "t.txt", data)
    assert message(read_all, path) == (
        f"{path}:{line}: not UTF-8 text: byte 0xE2 0x82 at position {position} of line {line} (file offset "
        f"{offset}): unexpected end of data. The line reads {shown!r}. {HINT}")


def test_long_lines_are_shown_cut(tmp_path):
    path = write(tmp_path, "t.txt", b"\xe9" + b"y" * 200 + b"\n")
    assert f"The line reads {repr((chr(92) + 'xe9' + 'y' * 200)[:120])}." in message(read_all, path)


def test_numbered_lines_drop_only_the_line_ending(tmp_path):
    path = write(tmp_path, "t.txt", "a  \r\n\n\tbX\nlast")
    assert list(numbered_lines(path)) == [(1, "a  "), (2, ""), (3, "\tbX"), (4, "last")]
