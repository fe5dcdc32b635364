"""The FASTA reader's defaults and its message for data before the first header (pinned values)."""

from __future__ import annotations

import pytest

from seqtune.data.readers.fasta import iter_fasta, read_fasta
from seqtune.errors import SeqtuneError


def test_the_default_encoding_is_utf8(tmp_path):
    """Without an encoding argument a UTF-8 file (a non-ASCII header) is read as UTF-8."""
    path = tmp_path / "p.fasta"
    path.write_bytes(">Lösung-1 protéine\nMKV\nLA\n>b\nGG\n".encode())
    records = list(iter_fasta(path))
    assert [(r.header, "".join(r.lines)) for r in records] == [("Lösung-1 protéine", "MKVLA"), ("b", "GG")]
    assert [(r.header, "".join(r.lines)) for r in read_fasta(path)] == [("Lösung-1 protéine", "MKVLA"), ("b", "GG")]


def test_sequence_before_the_first_header_names_file_and_line(tmp_path):
    path = tmp_path / "bad.fasta"
    path.write_text("\nMKV\n>a\nGG\n")
    with pytest.raises(SeqtuneError) as e:
        read_fasta(path)
    assert str(e.value) == f"{path}:2: sequence data before the first '>' header; is this a FASTA file?"
