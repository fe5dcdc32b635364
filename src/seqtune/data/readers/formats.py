"""What every reader shares: telling a file's format, and opening it as text.

One detection function serves every task, so a file name means the same format everywhere; each
caller says which formats it can read (`allowed`, in order of preference where two claim the same
extension, e.g. `.txt` is CoNLL for tagging and text lines for a corpus). The first line of the file
is also looked at: one that is a JSON object (JSONL) or a FASTA header (`>id`) is not read as
columns. With data.format auto such a file is read in the format its content shows; when the
format was set (in the config, or saved with a model from its training files) and the content
says otherwise, that is an error rather than a silent misreading.

Every file is opened through `open_text`: in `encoding` (data.encoding, UTF-8 by default, which
also takes a byte-order mark: spreadsheet and Windows exports start with one, and it would
otherwise become part of the first column name), and gzip-compressed when the name ends in `.gz`.
Bytes that are not valid in the encoding are an error naming the file, the line and the byte.
"""

from __future__ import annotations

import codecs
import contextlib
import gzip
import io
import json
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
COLUMN_FORMATS = ("csv", "tsv", "conll")  # formats that would split a JSON or FASTA line into columns
SNIFF_BYTES = 1 << 16


def _allowed_list(allowed: tuple[str, ...]) -> str:
    return ", ".join(f"{name} ({FORMATS[name][1]})" for name in allowed)


def detect_format(path: str | Path, declared: str = "auto", allowed: tuple[str, ...] = TABLE_FORMATS,
                  what: str = "data", default: str | None = None) -> str:
    """The format to read `path` in: `declared` (data.format) if allowed, else from the extension;
    checked against the file's first line (see the module docstring).

    `what` names the task in messages; `default` is taken when the extension says nothing (for
    readers that tell layouts apart by content).
    """
    if declared != "auto":
        if declared not in allowed:
            raise SeqtuneError(
                f"{path}: data.format {declared!r} is not a {what} format; use auto or one of: "
                f"{_allowed_list(allowed)}."
            )
        _check_content(path, declared, allowed, what, declared=True)
        return declared
    name = Path(str(path)).name.lower().removesuffix(".gz")
    suffix = Path(name).suffix
    fmt = next((f for f in allowed if suffix in FORMATS[f][0]), default)
    shown = _content_format(path, fmt)
    if shown is not None and shown in allowed:
        return shown  # the content says clearly what the extension did not, or said otherwise
    if fmt is None:
        raise SeqtuneError(
            f"{path}: cannot tell the format from the extension {suffix!r}; set data.format to one of: "
            f"{_allowed_list(allowed)}."
        )
    _check_content(path, fmt, allowed, what, declared=False)
    return fmt


def _first_line(path: str | Path) -> tuple[int, str] | None:
    """(line number, text) of the first non-blank line, from the file's first bytes; None if unreadable."""
    p = Path(path)
    if not p.is_file():
        return None
    try:
        with (gzip.open(p) if p.name.lower().endswith(".gz") else p.open("rb")) as raw:
            head = raw.read(SNIFF_BYTES)
    except (OSError, EOFError):
        return None  # the reader reports it
    head = head.removeprefix(codecs.BOM_UTF8)
    for n, line in enumerate(head.split(b"\n"), start=1):
        if line.strip():
            return n, line.decode("utf-8", errors="replace").strip()
    return None


def _content_format(path: str | Path, fmt: str | None) -> str | None:
    """"jsonl" or "fasta" when the first line clearly is one (and reading it as `fmt` would split it
    into columns), else None."""
    if fmt not in (*COLUMN_FORMATS, "fasta", None):
        return None  # JSON formats, and text lines (which can hold anything)
    first = _first_line(path)
    if first is None:
        return None
    _, line = first
    if line.startswith("{"):
        try:
            if isinstance(json.loads(line), dict):
                return "jsonl"
        except json.JSONDecodeError:
            return None
    if fmt != "fasta" and len(line) > 1 and line[0] == ">" and (line[1].isalnum() or line[1] == "_"):
        return "fasta"  # ">sp|P69905|...", ">seq1 label=x"; not a CoNLL line for the word ">"
    return None


_LOOKS_LIKE = {"jsonl": "one JSON object per line (JSONL)", "fasta": "FASTA records ('>' header lines)"}


def _check_content(path: str | Path, fmt: str, allowed: tuple[str, ...], what: str, declared: bool) -> None:
    """Refuse to read a file in `fmt` when its first line shows another format."""
    shown = _content_format(path, fmt)
    if shown is None:
        return
    n, line = _first_line(path)
    source = (f"data.format is {fmt!r} (set in the config or with --set, or saved with the model from the "
              "format of its training files)") if declared else f"its extension says {fmt}"
    if shown in allowed:
        fix = f"Set data.format to {shown} or auto (train, evaluate and predict take --set data.format=auto)."
    else:
        fix = f"A {what} task does not read {shown} files; give one of: {_allowed_list(allowed)}."
    raise SeqtuneError(
        f"{path}: {source}, but the file holds {_LOOKS_LIKE[shown]}: line {n} reads {line[:80]!r}. {fix}"
    )


def check_file(path: str | Path) -> Path:
    p = Path(path)
    if not p.is_file():
        raise SeqtuneError(f"data file {str(path)!r} does not exist.")
    return p


def text_codec(encoding: str) -> str:
    """The codec that reads data.encoding; UTF-8 is read as "utf-8-sig" (an optional byte-order mark)."""
    try:
        name = codecs.lookup(encoding).name
    except (LookupError, TypeError):
        raise SeqtuneError(
            f"data.encoding {encoding!r} is not a text encoding Python knows; use e.g. utf-8 (the default), "
            "latin-1, cp1252 or utf-16."
        ) from None
    return "utf-8-sig" if name in ("utf-8", "utf-8-sig") else name


def _open_binary(p: Path):
    return gzip.open(p) if p.name.lower().endswith(".gz") else p.open("rb")


def _decode_error(path: str | Path, p: Path, codec: str, encoding: str, error: UnicodeDecodeError) -> SeqtuneError:
    """The first undecodable byte of the file, by line: found again by decoding the bytes line by line
    (the error raised while reading only knows its position in a buffer)."""
    decoder = codecs.getincrementaldecoder(codec)()
    offset, n, line = 0, 0, b""
    located = None  # (line number, 0-based position in the line, the bytes, reason, the line)
    try:
        with _open_binary(p) as raw:
            for n, line in enumerate(raw, start=1):
                try:
                    decoder.decode(line)
                except UnicodeDecodeError as e:
                    located = (n, e.start, e.object[e.start:e.end], e.reason, line)
                    break
                offset += len(line)
            else:  # an incomplete character at the very end
                try:
                    decoder.decode(b"", final=True)
                except UnicodeDecodeError as e:
                    bad = e.object[e.start:e.end]
                    offset -= len(line)
                    located = (max(n, 1), len(line) - len(bad), bad, e.reason, line)
    except (OSError, EOFError):
        pass
    name = "UTF-8" if codec == "utf-8-sig" else encoding
    hint = ("If the file is in another encoding (e.g. Latin-1, or cp1252 from a Windows spreadsheet export), "
            "set data.encoding, e.g. --set data.encoding=latin-1; or convert the file to UTF-8.")
    if located is None:  # not found again: report what the reading error knows
        return SeqtuneError(f"{path}: not {name} text ({error.reason}: byte {error.object[error.start:error.end]!r}). "
                            + hint)
    n, start, bad, reason, line = located
    start = max(0, min(start, len(line)))  # the incremental decoder may hold bytes from the line before
    shown = line.rstrip(b"\r\n").decode(codec, errors="backslashreplace")
    return SeqtuneError(
        f"{path}:{n}: not {name} text: byte {' '.join(f'0x{b:02X}' for b in bad[:4])} at position {start + 1} of "
        f"line {n} (file offset {offset + start}): {reason}. The line reads {shown[:120]!r}. " + hint
    )


@contextlib.contextmanager
def open_text(path: str | Path, encoding: str = "utf-8") -> Iterator[io.TextIOBase]:
    """The file as text (newline="" for the csv module); bad bytes become a SeqtuneError naming the
    file, the line and the byte."""
    codec = text_codec(encoding)
    p = check_file(path)
    try:
        with io.TextIOWrapper(_open_binary(p), encoding=codec, newline="") as f:
            yield f
    except UnicodeDecodeError as e:
        raise _decode_error(path, p, codec, encoding, e) from None
    except (gzip.BadGzipFile, EOFError) as e:
        raise SeqtuneError(f"{path}: not a readable gzip file ({e}).") from None


def numbered_lines(path: str | Path, encoding: str = "utf-8") -> Iterator[tuple[int, str]]:
    """(1-based line number, line without its line ending) for every line of the file."""
    with open_text(path, encoding) as f:
        for n, line in enumerate(f, start=1):
            yield n, line.rstrip("\r\n")
