"""Word-tagged sentences (NER, POS, chunking) from CoNLL column files and JSONL.

CoNLL: one word per line, whitespace-separated columns (`EU NNP B-NP B-ORG`), a blank line between
sentences, `-DOCSTART-` lines (document boundaries) skipped. Which columns hold the word and the tag
is configurable (`token_column`, `tag_column`; negative counts from the end, so -1 is the last
column). Every word line must have as many columns as the first one: a line that does not is an
error naming `file:line`, never silently dropped.

JSONL: one sentence per line, `{"tokens": ["EU", "rejects", ...], "tags": ["B-ORG", "O", ...]}` (key
names configurable). An empty sentence (no tokens) is an error: it has nothing to tag.

For prediction (`labelled=False`) the tag column/key may be absent; tags are then None.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from seqtune.data.readers.formats import check_file, detect_format, numbered_lines
from seqtune.data.readers.table import read_table
from seqtune.errors import SeqtuneError

TAGGING_FORMATS = ("conll", "jsonl")
DOCSTART = "-DOCSTART-"


@dataclass
class TaggedSentence:
    """One sentence: its words and (when labelled) one tag per word."""

    tokens: list[str]
    tags: list[str] | None
    where: str  # "file:line" of the sentence's first word (CoNLL) or record (JSONL), for messages
    id: str | int | None = None  # a JSONL record's data.id_column value, copied into its prediction


def read_tagged(
    path: str,
    fmt: str = "auto",
    *,
    labelled: bool = True,
    token_column: int = 0,
    tag_column: int = -1,
    tokens_key: str = "tokens",
    tags_key: str = "tags",
    max_sentences: int | None = None,
    encoding: str = "utf-8",
    id_key: str | None = None,
) -> list[TaggedSentence]:
    """Read every sentence of a CoNLL or JSONL file, checking each line. See the module docstring."""
    p = check_file(path)
    if detect_format(path, fmt, TAGGING_FORMATS, "tagging") == "jsonl":
        sentences = _read_jsonl(p, labelled, tokens_key, tags_key, max_sentences, encoding, id_key)
    else:
        sentences = _read_conll(p, labelled, token_column, tag_column, max_sentences, encoding)
    if not sentences:
        raise SeqtuneError(f"{path}: the file has no sentences.")
    return sentences


def _read_conll(
    path: Path, labelled: bool, token_column: int, tag_column: int, max_sentences: int | None, encoding: str
) -> list[TaggedSentence]:
    sentences: list[TaggedSentence] = []
    tokens: list[str] = []
    tags: list[str] = []
    first_line = 0
    expected: tuple[int, int] | None = None  # (number of columns, line that set it)

    def close() -> None:
        nonlocal tokens, tags
        if tokens:
            sentences.append(TaggedSentence(tokens, tags if labelled else None, f"{path}:{first_line}"))
        tokens, tags = [], []

    for n, line in numbered_lines(path, encoding):
        columns = line.split()
        if not columns:
            close()
            if max_sentences is not None and len(sentences) >= max_sentences:
                break
            continue
        if columns[0] == DOCSTART:
            close()  # a document boundary also ends a sentence
            continue
        if expected is None:
            expected = (len(columns), n)
            _check_columns(path, n, len(columns), token_column, tag_column if labelled else None)
        elif len(columns) != expected[0]:
            raise SeqtuneError(
                f"{path}:{n}: found {len(columns)} columns but line {expected[1]} has {expected[0]}; "
                "every word line of a CoNLL file needs the same columns (separated by spaces or tabs). "
                f"The line reads: {line.strip()[:120]!r}."
            )
        if not tokens:
            first_line = n
        tokens.append(columns[token_column])
        if labelled:
            tags.append(columns[tag_column])
    close()
    return sentences[:max_sentences] if max_sentences is not None else sentences


def _check_columns(path: Path, line: int, count: int, token_column: int, tag_column: int | None) -> None:
    for name, index in (("data.token_column", token_column), ("data.tag_column", tag_column)):
        if index is not None and not -count <= index < count:
            raise SeqtuneError(
                f"{path}:{line}: {name} is {index} but the line has only {count} columns "
                f"(valid: 0..{count - 1}, or -1 for the last)."
            )
    if tag_column is not None and token_column % count == tag_column % count:
        raise SeqtuneError(f"{path}: data.token_column and data.tag_column name the same column ({token_column}).")


def _read_jsonl(
    path: Path, labelled: bool, tokens_key: str, tags_key: str, max_sentences: int | None, encoding: str,
    id_key: str | None = None,
) -> list[TaggedSentence]:
    sentences: list[TaggedSentence] = []
    table = read_table(path, "jsonl", max_sentences, what="tagging", encoding=encoding)
    for i, record in enumerate(table.rows):
        where = table.where(i)
        if tokens_key not in record:
            raise SeqtuneError(
                f"{where}: expected an object with {tokens_key!r}"
                + (f" and {tags_key!r}" if labelled else "")
                + f" lists, e.g. {{\"{tokens_key}\": [\"EU\", \"rejects\"], \"{tags_key}\": [\"B-ORG\", \"O\"]}}."
            )
        tokens = _string_list(record[tokens_key], tokens_key, where)
        if not tokens:
            raise SeqtuneError(f"{where}: empty sentence ({tokens_key!r} has no words); remove the record.")
        tags = None
        if labelled:
            if tags_key not in record:
                raise SeqtuneError(f"{where}: the record has no {tags_key!r} list (one tag per word).")
            tags = _string_list(record[tags_key], tags_key, where)
            if len(tags) != len(tokens):
                raise SeqtuneError(
                    f"{where}: {len(tokens)} words but {len(tags)} tags; every word needs exactly one tag."
                )
        record_id = record.get(id_key) if id_key is not None else None
        if record_id is not None and not isinstance(record_id, (str, int)):
            raise SeqtuneError(f"{where}: the record id {id_key!r} must be a string or a whole number, "
                               f"found {str(record_id)[:80]}.")
        sentences.append(TaggedSentence(tokens, tags, where, record_id))
    return sentences


def _string_list(value, key: str, where: str) -> list[str]:
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise SeqtuneError(f"{where}: {key!r} must be a list of strings, found {str(value)[:80]}.")
    for i, v in enumerate(value):
        if not v.strip():
            raise SeqtuneError(f"{where}: {key!r} item {i} is empty or only whitespace.")
    return value
