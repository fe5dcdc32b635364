"""What every reader shares: telling a file's format, and opening it as text.

One detection function serves every task, so a file name means the same format everywhere; each
caller says which formats it can read (`allowed`, in order of preference where two claim the same
extension, e.g. `.txt` is CoNLL for tagging and text lines for a corpus).

Every file is opened through `open_text`: UTF-8 with an optional byte-order mark (spreadsheet and
Windows exports start with one, and it would otherwise become part of the first column name), and
gzip-compressed when the name ends in `.gz`.
"""

from __future__ import annotations

import contextlib
import gzip
import io
from collections.abc import Iterator
from pathlib import Path

from seqtune.errors import SeqtuneError

# name -> (file extensions, a few words for messages)
FORMATS: dict[str, tuple[tuple[str, ...], str]] = {
    "csv": ((".csv",), "comma-separated columns"),
    "tsv": ((".tsv",), "tab-separated columns, GLUE style"),
    "jsonl": ((".jsonl", ".json", ".ndjson"), "one JSON object per line"),
    "fasta": ((".fasta", ".fa", ".faa", ".fna", ".ffn", ".fas", ".seq"), "'>' header line, then the sequence"),
    "text": ((".txt", ".text", ".raw", ".tokens"), "one example per line"),
    "conll": ((".conll", ".conllu", ".txt", ".iob", ".iob2", ".bio", ".tsv"),
              "word and tag columns, a blank line between sentences"),
    "squad": ((".json",), "SQuAD JSON with a 'data' list of articles"),
}
TABLE_FORMATS = ("csv", "tsv", "jsonl")


def _allowed_list(allowed: tuple[str, ...]) -> str:
    return ", ".join(f"{name} ({FORMATS[name][1]})" for name in allowed)


def detect_format(path: str | Path, declared: str = "auto", allowed: tuple[str, ...] = TABLE_FORMATS,
                  what: str = "data", default: str | None = None) -> str:
    """The format to read `path` in: `declared` (data.format) if allowed, else from the extension.

    `what` names the task in messages; `default` is taken when the extension says nothing (for
    readers that tell layouts apart by content).
    """
    if declared != "auto":
        if declared not in allowed:
            raise SeqtuneError(
                f"{path}: data.format {declared!r} is not a {what} format; use auto or one of: "
                f"{_allowed_list(allowed)}."
            )
        return declared
    name = Path(str(path)).name.lower().removesuffix(".gz")
    suffix = Path(name).suffix
    for fmt in allowed:
        if suffix in FORMATS[fmt][0]:
            return fmt
    if default is not None:
        return default
    raise SeqtuneError(
        f"{path}: cannot tell the format from the extension {suffix!r}; set data.format to one of: "
        f"{_allowed_list(allowed)}."
    )


def check_file(path: str | Path) -> Path:
    p = Path(path)
    if not p.is_file():
        raise SeqtuneError(f"data file {str(path)!r} does not exist.")
    return p


@contextlib.contextmanager
def open_text(path: str | Path) -> Iterator[io.TextIOBase]:
    """The file as text (newline="" for the csv module); bad bytes become a SeqtuneError naming it."""
    p = check_file(path)
    try:
        if p.name.lower().endswith(".gz"):
            f = io.TextIOWrapper(gzip.open(p), encoding="utf-8-sig", newline="")
        else:
            f = p.open(encoding="utf-8-sig", newline="")
        with f:
            yield f
    except UnicodeDecodeError as e:
        raise SeqtuneError(f"{path}: not UTF-8 text ({e.reason} at byte {e.start}).") from None
    except (gzip.BadGzipFile, EOFError) as e:
        raise SeqtuneError(f"{path}: not a readable gzip file ({e}).") from None


def numbered_lines(path: str | Path) -> Iterator[tuple[int, str]]:
    """(1-based line number, line without its line ending) for every line of the file."""
    with open_text(path) as f:
        for n, line in enumerate(f, start=1):
            yield n, line.rstrip("\r\n")
