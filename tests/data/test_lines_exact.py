"""The text-lines reader (MLM corpora) on a hand-checked file: line numbers, the blank lines it skips
and counts, the record limit and the encoding."""

from __future__ import annotations

import pytest

from seqtune.data.readers.lines import TextLines, read_lines
from seqtune.errors import SeqtuneError


def test_lines_numbers_and_blank_lines(tmp_path):
    path = tmp_path / "c.txt"
    path.write_text("first line \n\n  \r\nsecond\r\n\tthird\n\n")
    assert read_lines(path) == TextLines([(1, "first line "), (4, "second"), (5, "\tthird")], blank=3)


@pytest.mark.parametrize("limit, lines, blank", [
    (1, [(1, "a")], 0), (2, [(1, "a"), (3, "b")], 1), (3, [(1, "a"), (3, "b"), (4, "c")], 1),
    (9, [(1, "a"), (3, "b"), (4, "c")], 2), (None, [(1, "a"), (3, "b"), (4, "c")], 2),
    (0, [(1, "a"), (3, "b"), (4, "c")], 2),  # 0: no limit, like data.max_rows unset
])
def test_max_records(tmp_path, limit, lines, blank):
    path = tmp_path / "c.txt"
    path.write_text("a\n\nb\nc\n\n")
    assert read_lines(path, limit) == TextLines(lines, blank)


def test_encoding(tmp_path):
    path = tmp_path / "c.txt"
    path.write_bytes("café\n".encode("latin-1"))
    assert read_lines(path, encoding="latin-1").lines == [(1, "café")]
    with pytest.raises(SeqtuneError, match="not UTF-8 text"):
        read_lines(path)
    path.write_bytes("café\n".encode())
    assert read_lines(path).lines == [(1, "café")]
