"""Tabular records from CSV, TSV and JSONL files.

TSV is read GLUE style: tab-separated with quoting off, because GLUE texts hold unbalanced quote
characters that a quoting reader would run across lines. CSV uses standard quoting (fields with
commas are quoted). The first line names the columns; with `header=False` (GLUE CoLA, many bio
CSVs) there is no such line and columns are chosen by 0-based number.

Every record keeps the line it came from, so later checks (an empty text, an unknown label) can name
`file:line`. Rows with the wrong number of fields are errors, never dropped.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from seqtune.data.readers.formats import (
    TABLE_FORMATS,
    check_file,
    detect_format,
    numbered_lines,
    open_text,
)
from seqtune.errors import SeqtuneError

csv.field_size_limit(1 << 30)  # long biological sequences exceed the default 128 KiB

Column = str | int  # a name, or a 0-based number in a file without a header row


@dataclass
class Table:
    path: str
    columns: list  # names; 0..n-1 without a header row
    rows: list[dict]  # column -> value (str for CSV/TSV; any JSON value for JSONL)
    lines: list[int]  # 1-based line number of each row
    header: bool = True
    format: str = field(default="csv")

    def where(self, i: int) -> str:
        return f"{self.path}:{self.lines[i]}"

    def has(self, column: Column) -> bool:
        """Whether the file has this column, naming it the way the file does (name or number)."""
        return isinstance(column, int) != self.header and column in self.columns

    def require(self, column: Column, setting: str, what: str) -> None:
        """Refuse a column the file lacks, or one chosen the wrong way (number vs name)."""
        n = len(self.columns)
        if self.header and isinstance(column, int):
            named = "JSONL records name their fields" if self.format == "jsonl" else "data.header is true"
            raise SeqtuneError(
                f"{self.path}: {setting} is {column}, a column number, but {named}: the columns are "
                f"{', '.join(map(repr, self.columns)) or 'none'}. Give the column name"
                + ("." if self.format == "jsonl" else ", or set data.header: false for a file without a header row.")
            )
        if not self.header and isinstance(column, str):
            raise SeqtuneError(
                f"{self.path}: {setting} is {column!r}, a column name, but data.header is false (no header "
                f"row), so columns are chosen by 0-based number: this file has {n} (0..{n - 1})."
            )
        if not self.header and not 0 <= column < n:
            raise SeqtuneError(
                f"{self.path}:{self.lines[0]}: {setting} is {column}, but the line has {n} columns "
                f"(0..{n - 1}; data.header is false, so columns are numbered from 0)."
            )
        if column not in self.columns:
            raise SeqtuneError(
                f"{self.path}: no column {column!r} ({setting}, the {what}); the file has columns: "
                f"{', '.join(map(repr, self.columns)) or 'none'}. Set it in the config's data section, "
                f"or with --set {setting}=NAME (train, evaluate and predict all take --set)."
            )


def read_table(path: str | Path, fmt: str = "auto", max_rows: int | None = None, *,
               header: bool = True, what: str = "table", encoding: str = "utf-8") -> Table:
    """Read a CSV/TSV/JSONL file into a Table, checking every row. `what` names the task in messages;
    `encoding` is data.encoding."""
    check_file(path)
    fmt = detect_format(path, fmt, TABLE_FORMATS, what)
    if fmt == "jsonl":
        if not header:
            raise SeqtuneError(
                f"{path}: data.header is false, but JSONL records name their fields; leave data.header "
                "at true and give field names."
            )
        table = _read_jsonl(path, max_rows, encoding)
    else:
        table = _read_delimited(path, fmt, max_rows, header, encoding)
    if not table.rows:
        raise _no_records(path, header)
    return table


def iter_jsonl(path: str | Path, max_rows: int | None = None, encoding: str = "utf-8") -> Iterator[tuple[int, dict]]:
    """(line number, record) of a JSONL file, one record at a time: what `read_table` reads, with the
    same checks and messages, for a caller that streams a large file (the tagging token store)."""
    found = False
    for n, record in _jsonl_records(path, max_rows, encoding):
        found = True
        yield n, record
    if not found:
        raise _no_records(path, header=True)


def _no_records(path: str | Path, header: bool) -> SeqtuneError:
    return SeqtuneError(
        f"{path}: the file has no records (it is empty{' after the header line' if header else ''})."
    )


def _read_delimited(path: str | Path, fmt: str, max_rows: int | None, header: bool, encoding: str) -> Table:
    if fmt == "tsv":
        options = {"delimiter": "\t", "quoting": csv.QUOTE_NONE}
    else:
        options = {"delimiter": ","}
    rows, lines = [], []
    columns: list | None = None
    with open_text(path, encoding) as f:
        reader = csv.reader(f, **options)
        if header:
            first = next(reader, None)
            if not first:
                raise SeqtuneError(
                    f"{path}: the file is empty (a header line with column names is required; set "
                    "data.header: false for a file without one)."
                )
            columns = [h.strip() for h in first]
        for fields in reader:
            if max_rows is not None and len(rows) >= max_rows:
                break
            if not fields or (len(fields) == 1 and fields[0].strip() == ""):
                continue  # blank line
            if columns is None:
                columns = list(range(len(fields)))  # no header: the first record sets the count
            if len(fields) != len(columns):
                shape = f"({', '.join(columns)})" if header else f"(as on line {lines[0]})"
                raise SeqtuneError(
                    f"{path}:{reader.line_num}: expected {len(columns)} fields {shape} but found {len(fields)}. "
                    + ("TSV files are read with quoting off, so a tab inside a text splits it."
                       if fmt == "tsv" else "Quote fields that contain commas.")
                )
            rows.append(dict(zip(columns, fields)))
            lines.append(reader.line_num)
    return Table(str(path), columns or [], rows, lines, header, fmt)


def _read_jsonl(path: str | Path, max_rows: int | None, encoding: str) -> Table:
    rows, lines, columns = [], [], {}
    for n, record in _jsonl_records(path, max_rows, encoding):
        rows.append(record)
        lines.append(n)
        columns.update(dict.fromkeys(record))
    return Table(str(path), list(columns), rows, lines, True, "jsonl")


def _jsonl_records(path: str | Path, max_rows: int | None, encoding: str) -> Iterator[tuple[int, dict]]:
    count = 0
    for n, line in numbered_lines(path, encoding):
        if max_rows is not None and count >= max_rows:
            break
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError as e:
            raise SeqtuneError(f"{path}:{n}: not valid JSON ({e.msg}).") from None
        if not isinstance(record, dict):
            raise SeqtuneError(f"{path}:{n}: expected a JSON object per line, got {type(record).__name__}.")
        count += 1
        yield n, record
