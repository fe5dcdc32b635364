"""FASTA: a `>` header line, then the lines of its record, for corpora and per-residue labels alike.

The reader only splits the file into records; what the lines after a header mean (one wrapped
sequence, or sequence / labels / mask lines) is up to the caller. Blank lines and `;` comment lines
(old FASTA files) are skipped.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from seqtune.data.readers.formats import open_text
from seqtune.errors import SeqtuneError


@dataclass
class FastaRecord:
    header: str  # the header line without its '>'
    line: int  # line number of the header, for messages
    number: int  # 1-based record number, for messages
    lines: list[str]  # the record's lines, stripped

    @property
    def id(self) -> str | None:
        """The first word of the header, as FASTA tools name a record."""
        words = self.header.split(None, 1)
        return words[0] if words else None


def read_fasta(path: str | Path, max_records: int | None = None, encoding: str = "utf-8") -> list[FastaRecord]:
    """Every record of the file (none for an empty file: callers say what was expected)."""
    return list(iter_fasta(path, max_records, encoding))


def iter_fasta(path: str | Path, max_records: int | None = None, encoding: str = "utf-8") -> Iterator[FastaRecord]:
    """The records of the file one at a time (a corpus larger than memory is never held whole)."""
    record: FastaRecord | None = None
    count = 0
    with open_text(path, encoding) as f:  # not numbered_lines: corpora of millions of lines, one strip each
        for n, line in enumerate(f, start=1):
            text = line.strip()
            if not text or text[0] == ";":
                continue
            if text[0] == ">":
                if record is not None:
                    yield record
                if max_records and count >= max_records:
                    return
                count += 1
                record = FastaRecord(text[1:], n, count, [])
            elif record is None:
                raise SeqtuneError(f"{path}:{n}: sequence data before the first '>' header; is this a FASTA file?")
            else:
                record.lines.append(text)
    if record is not None:
        yield record
