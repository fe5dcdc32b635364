"""Plain text, one example per line (MLM corpora): blank lines separate paragraphs and are skipped."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from seqtune.data.readers.formats import numbered_lines


@dataclass
class TextLines:
    lines: list[tuple[int, str]]  # (1-based line number, text) of every non-blank line
    blank: int  # blank lines skipped, reported so a user can see the file was read as expected


def read_lines(path: str | Path, max_records: int | None = None, encoding: str = "utf-8") -> TextLines:
    lines, blank = [], 0
    for n, text in numbered_lines(path, encoding):
        if not text.strip():
            blank += 1
            continue
        lines.append((n, text))
        if max_records and len(lines) >= max_records:
            break
    return TextLines(lines, blank)
