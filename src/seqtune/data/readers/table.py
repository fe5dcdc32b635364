"""Tabular records from CSV, TSV (GLUE style: tab-separated, quoting off) and JSONL files.

Every record keeps the line it came from, so later checks (an empty text, an unknown label) can name
`file:line`. Rows with the wrong number of fields are errors, never dropped.
"""

from __future__ import annotations

import csv
import json
from dataclasses import dataclass
from pathlib import Path

from seqtune.errors import SeqtuneError

FORMATS_BY_SUFFIX = {".csv": "csv", ".tsv": "tsv", ".jsonl": "jsonl", ".json": "jsonl", ".ndjson": "jsonl"}
csv.field_size_limit(1 << 30)  # long biological sequences exceed the default 128 KiB


@dataclass
class Table:
    path: str
    columns: list[str]
    rows: list[dict]  # column -> value (str for CSV/TSV; any JSON value for JSONL)
    lines: list[int]  # 1-based line number of each row

    def where(self, i: int) -> str:
        return f"{self.path}:{self.lines[i]}"

    def require(self, column: str, what: str) -> None:
        if column not in self.columns:
            raise SeqtuneError(
                f"{self.path}: no column {column!r} (the {what}); the file has columns: "
                f"{', '.join(map(repr, self.columns)) or 'none'}. Set the column name in the data section "
                "of the config."
            )


def detect_format(path: str, fmt: str = "auto") -> str:
    if fmt != "auto":
        return fmt
    suffix = Path(path).suffix.lower()
    if suffix not in FORMATS_BY_SUFFIX:
        raise SeqtuneError(
            f"{path}: cannot tell the format from the extension {suffix!r}; set data.format to one of "
            f"csv, tsv, jsonl."
        )
    return FORMATS_BY_SUFFIX[suffix]


def check_file(path: str) -> Path:
    p = Path(path)
    if not p.is_file():
        raise SeqtuneError(f"data file {path!r} does not exist.")
    return p


def read_table(path: str, fmt: str = "auto", max_rows: int | None = None) -> Table:
    """Read a CSV/TSV/JSONL file into a Table, checking every row."""
    p = check_file(path)
    fmt = detect_format(path, fmt)
    if fmt == "jsonl":
        table = _read_jsonl(p, max_rows)
    elif fmt in ("csv", "tsv"):
        table = _read_delimited(p, fmt, max_rows)
    else:
        raise SeqtuneError(f"{path}: format {fmt!r} is not a table format (csv, tsv, jsonl).")
    if not table.rows:
        raise SeqtuneError(f"{path}: the file has no records.")
    return table


def _read_delimited(path: Path, fmt: str, max_rows: int | None) -> Table:
    if fmt == "tsv":
        options = {"delimiter": "\t", "quoting": csv.QUOTE_NONE}
    else:
        options = {"delimiter": ","}
    rows, lines = [], []
    with path.open(newline="", encoding="utf-8") as f:
        reader = csv.reader(f, **options)
        header = next(reader, None)
        if not header:
            raise SeqtuneError(f"{path}: the file is empty (a header line with column names is required).")
        header = [h.strip() for h in header]
        for fields in reader:
            if max_rows is not None and len(rows) >= max_rows:
                break
            if not fields or (len(fields) == 1 and fields[0].strip() == ""):
                continue  # blank line
            if len(fields) != len(header):
                raise SeqtuneError(
                    f"{path}:{reader.line_num}: expected {len(header)} fields ({', '.join(header)}) but "
                    f"found {len(fields)}. "
                    + ("TSV files are read with quoting off, so a tab inside a text splits it."
                       if fmt == "tsv" else "Quote fields that contain commas.")
                )
            rows.append(dict(zip(header, fields)))
            lines.append(reader.line_num)
    return Table(str(path), header, rows, lines)


def _read_jsonl(path: Path, max_rows: int | None) -> Table:
    rows, lines, columns = [], [], {}
    with path.open(encoding="utf-8") as f:
        for n, line in enumerate(f, start=1):
            if max_rows is not None and len(rows) >= max_rows:
                break
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except json.JSONDecodeError as e:
                raise SeqtuneError(f"{path}:{n}: not valid JSON ({e.msg}).") from None
            if not isinstance(record, dict):
                raise SeqtuneError(f"{path}:{n}: expected a JSON object per line, got {type(record).__name__}.")
            rows.append(record)
            lines.append(n)
            columns.update(dict.fromkeys(record))
    return Table(str(path), list(columns), rows, lines)
